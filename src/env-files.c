/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env-file.h"
#include "env-files.h"
#include "env.h"
#include "log.h"
#include "util.h"

static void warn_skipped(const char *key, unsigned line, const char *why, void *userdata) {
        size_t k = utf8_trim_partial(key, printable_prefix(key, 64));
        log_warning("%s:%u: ignoring \"%.*s\": %s.", (const char *) userdata, line, (int) k, key, why);
}

/* The whole file, as a string of at most max bytes, read to its end: a
 * file in /proc says it has size 0, and one may grow while it is read. */
static int read_file(const char *path, size_t max, char **ret, size_t *ret_len) {
        /* O_NONBLOCK: opening a FIFO must not wait for its writer, nor a
         * read from a device for its data. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* A character device: /dev/null, which systemd takes as empty. */
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        /* Room for one byte more than max, to tell a file that is longer. */
        size_t size = st.st_size > 0 && (uint64_t) st.st_size < max ? (size_t) st.st_size + 1 : 4096, len = 0;
        if (size > max + 1)
                size = max + 1;
        _cleanup_free_ char *buf = malloc(size + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len == size) {
                        if (size > max)
                                return -EFBIG;
                        size = 2 * size > max + 1 ? max + 1 : 2 * size;
                        char *b = realloc(buf, size + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                ssize_t k = read(fd, buf + len, size - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* One file into x; *budget is what may still be read. A file that fails
 * adds nothing. */
static int read_one(const char *path, EnvList *x, size_t *budget, unsigned *ret_line) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file(path, *budget, &text, &len);
        if (r < 0)
                return r;
        *budget -= len;
        EnvList m;
        if ((r = env_list_init(&m)) < 0)
                return r;
        r = env_file_parse(text, len, &m, warn_skipped, (void *) path, ret_line);
        if (r < 0) {
                env_list_done(&m);
                return r;
        }
        return env_list_merge(x, &m);
}

/* An optional file that fails: a missing one is what "-" is for; one that
 * is there but cannot be read (a drop-in's User= may not read root's file)
 * means the server does not get its edits, which is worth a warning. */
static int skip(const char *path, int error) {
        if (error == -ENOENT)
                log_debug_errno(error, "Skipping environment file %s: %m", path);
        else
                log_warning_errno(error, "Skipping environment file %s: %m", path);
        return 0;
}

/* As systemd's safe_glob(): . and .. are no match, at any level of the
 * pattern ("/x/.*" matches neither, "/x/.*\/f" never climbs up). */
static void *glob_opendir(const char *path) {
        return opendir(path);
}

static struct dirent *glob_readdir(void *d) {
        struct dirent *de;
        while ((de = readdir(d)) && (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0))
                ;
        return de;
}

static void glob_closedir(void *d) {
        closedir(d);
}

static int glob_errno(int g) {
        return g == GLOB_NOMATCH ? -ENOENT : g == GLOB_NOSPACE ? -ENOMEM : -EIO;
}

/* One spec's files into x, as systemd reads EnvironmentFile=: a file that
 * fails adds nothing, and stops the start unless the spec is optional. */
static int read_spec(const char *spec, EnvList *x, size_t *budget, char **ret_failed, unsigned *ret_line) {
        bool optional = spec[0] == '-';
        const char *pattern = spec + optional;
        /* A path without a wildcard is opened as it is: glob() would say
         * "no match" for one in a directory we may not search, where open()
         * says EACCES. */
        bool wildcard = strpbrk(pattern, "*?[");
        char *one[] = { (char *) pattern, NULL };
        glob_t g = {
                .gl_pathc = 1,
                .gl_pathv = one,
                .gl_opendir = glob_opendir,
                .gl_readdir = glob_readdir,
                .gl_closedir = glob_closedir,
                .gl_lstat = lstat,
                .gl_stat = stat,
        };
        int r = wildcard ? glob(pattern, GLOB_ALTDIRFUNC, NULL, &g) : 0;
        if (r != 0) {
                globfree(&g);
                r = glob_errno(r);
                if (optional && r != -ENOMEM)
                        return skip(pattern, r);
                *ret_failed = strdup(pattern);
                return r;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
                unsigned line = 0;
                r = read_one(g.gl_pathv[i], x, budget, &line);
                if (r == 0)
                        continue;
                if (optional && r != -ENOMEM) {
                        r = skip(g.gl_pathv[i], r);
                        continue;
                }
                *ret_line = line;
                *ret_failed = strdup(g.gl_pathv[i]);
                break;
        }
        if (wildcard)
                globfree(&g);
        return r;
}

int env_files_read(char *const *specs, char ***ret, char **ret_failed, unsigned *ret_line) {
        EnvList x;
        int r = env_list_init(&x);
        if (r < 0)
                return r;
        *ret_failed = NULL;
        *ret_line = 0;
        size_t budget = ENV_FILE_MAX_SIZE;
        for (char *const *s = specs; s && *s; s++)
                if ((r = read_spec(*s, &x, &budget, ret_failed, ret_line)) < 0) {
                        env_list_done(&x);
                        return r;
                }
        char **l = env_list_steal(&x);
        if (!l)
                return -ENOMEM;
        /* What handoff sets for each generation is not the files' to say. */
        size_t k = 0;
        for (size_t i = 0; l[i]; i++) {
                if (!env_is_scrubbed(l[i])) {
                        l[k++] = l[i];
                        continue;
                }
                log_warning("Ignoring %.*s= from the environment files: handoff sets it for each generation.",
                            (int) env_name_length(l[i]), l[i]);
                free(l[i]);
        }
        l[k] = NULL;
        *ret = l;
        return 0;
}

char *env_file_names(char *const *l) {
        size_t size = 1;
        for (char *const *e = l; e && *e; e++)
                size += 1 + env_name_length(*e);
        char *s = malloc(size), *w = s;
        if (!s)
                return NULL;
        for (char *const *e = l; e && *e; e++) {
                *w++ = ':';
                w = mempcpy(w, *e, env_name_length(*e));
        }
        *w = 0;
        return s;
}

bool env_file_names_valid(const char *s) {
        if (!*s)
                return true;
        if (*s != ':')
                return false;
        for (const char *p = s + 1;; p++) {
                size_t k = strcspn(p, ":");
                if (!env_name_is_valid_n(p, k))
                        return false;
                p += k;
                if (!*p)
                        return true;
        }
}
