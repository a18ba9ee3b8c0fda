/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "cgroup-walk.h"
#include "cgroup.h"
#include "log.h"
#include "signal-util.h"
#include "util.h"

static void fclosep_(FILE **f) {
        if (*f)
                fclose(*f);
}

struct CgroupRoot {
        char *path;              /* the delegated root, absolute in the file system */
        char *rel;               /* ... and as /proc/PID/cgroup names it ("0::/...") */
};

/* How many gen-N.K a generation tries beside a populated gen-N. */
#define GEN_LEAF_TRIES 16

struct Cgroup {
        char *path;
        char *rel;
        unsigned number;
        sd_event_source *watch;
        void (*changed)(void *userdata);
        void *userdata;
};

/* Where the unified hierarchy is mounted: /sys/fs/cgroup on a pure v2
 * host, /sys/fs/cgroup/unified on a hybrid one (from mountinfo, so any
 * other place works too). */
static int unified_mount(char **ret) {
        _cleanup_(fclosep_) FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -errno;
        char line[4096];
        while (fgets(line, sizeof line, f)) {
                /* "id parent maj:min root mountpoint opts [optional...] - fstype source superopts" */
                char *sep = strstr(line, " - ");
                if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
                        continue;
                char mnt[1024];
                if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1)
                        continue;
                return (*ret = strdup(mnt)) ? 0 : -ENOMEM;
        }
        return -ENOENT;
}

/* The unified-hierarchy cgroup (the "0::" line) of pid, or of ourselves
 * for 0, allocated into *ret. */
static int cgroup_of_pid(pid_t pid, char **ret) {
        char path[64];
        if (pid == 0)
                snprintf(path, sizeof path, "/proc/self/cgroup");
        else
                snprintf(path, sizeof path, "/proc/%d/cgroup", (int) pid);
        _cleanup_(fclosep_) FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        char line[4096];
        while (fgets(line, sizeof line, f))
                if (strncmp(line, "0::", 3) == 0) {
                        line[strcspn(line, "\n")] = '\0';
                        return (*ret = strdup(line + 3)) ? 0 : -ENOMEM;
                }
        return -ENOENT;
}

static bool marked_delegated(const char *path) {
        static const char *const names[] = { "trusted.delegate", "user.delegate" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char v[8];
                ssize_t n = getxattr(path, names[i], v, sizeof v);
                if (n == 1 && v[0] == '1')
                        return true;
        }
        return false;
}

/* "handoff.<digits>": the leaf of a handoff process. */
static bool is_handoff_leaf(const char *name) {
        if (strncmp(name, "handoff.", 8) != 0 || !name[8])
                return false;
        return strspn(name + 8, "0123456789") == strlen(name + 8);
}

/* gen-N, or gen-N.K beside a populated leftover gen-N: a cgroup of ours.
 * Others in the delegated root (gen-cache, say) are the server's. */
static bool is_generation_leaf(const char *name) {
        if (strncmp(name, "gen-", 4) != 0)
                return false;
        size_t n = strspn(name + 4, "0123456789");
        if (n == 0)
                return false;
        name += 4 + n;
        if (*name == '.' && (n = strspn(name + 1, "0123456789")) > 0)
                name += 1 + n;
        return *name == '\0';
}

static int write_file(const char *dir, const char *file, const char *text) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, text, strlen(text));
        if (n < 0)
                return -errno;
        return 0;
}

static ssize_t read_file(const char *dir, const char *file, char *buf, size_t size) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t have = 0;
        ssize_t n;
        while (have < size - 1 && (n = read(fd, buf + have, size - 1 - have)) > 0)
                have += (size_t) n;
        buf[have] = '\0';
        return (ssize_t) have;
}

static void remove_one(const char *path, void *userdata) {
        int *r = userdata;
        if (rmdir(path) < 0 && errno != ENOENT && *r == 0)
                *r = -errno;
}

/* Removes path with the cgroups its server made below it, children first,
 * as systemd's cg_trim() does; but only when no process runs in any of
 * them: the empty sub-cgroups of a live generation are its server's. 0 when
 * gone, -EBUSY when populated, cgroup.events's -errno when it cannot be
 * read (not removed then), -E2BIG when the tree is past the walk's bounds,
 * or the first rmdir() error. */
static int remove_tree(const char *path) {
        int k = cgroup_tree_populated(path);
        if (k != 0)
                return k > 0 ? -EBUSY : k;
        int r = 0;
        k = cgroup_walk(path, CGROUP_WALK_CHILDREN_FIRST, remove_one, &r);
        /* A walk cut short leaves the top's rmdir() EBUSY: not a process. */
        return k < 0 ? k : r;
}

/* Leaves of handoffs and generations that are gone (a handoff whose next
 * handoff did not see it exit, which cgroup_root_remove_leaf() is for; a
 * service stopped with KillMode=process). A populated one stays, as it
 * should. */
static void remove_stale(const char *root, const char *own_leaf) {
        DIR *d = opendir(root);
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || strcmp(de->d_name, own_leaf) == 0 ||
                    !(is_handoff_leaf(de->d_name) || is_generation_leaf(de->d_name)))
                        continue;
                char *path;
                if (asprintf(&path, "%s/%s", root, de->d_name) < 0)
                        break;
                if (remove_tree(path) == 0)
                        log_debug("Removed empty cgroup %s.", path);
                free(path);
        }
        closedir(d);
}

/* Best effort: memory.current (and pids) in each generation's cgroup need
 * the controllers enabled below the root, which only works once the root
 * holds no process. */
static void enable_controllers(const char *root) {
        char avail[512];
        if (read_file(root, "cgroup.controllers", avail, sizeof avail) <= 0)
                return;
        static const char *const wanted[] = { "memory", "pids" };
        for (size_t i = 0; i < ELEMENTSOF(wanted); i++) {
                char word[32];
                snprintf(word, sizeof word, " %s ", wanted[i]);
                char padded[520];
                snprintf(padded, sizeof padded, " %.*s ", (int) strcspn(avail, "\n"), avail);
                if (!strstr(padded, word))
                        continue;
                char change[32];
                snprintf(change, sizeof change, "+%s", wanted[i]);
                int r = write_file(root, "cgroup.subtree_control", change);
                if (r < 0)
                        log_debug_errno(r, "Cannot enable the %s controller below %s: %m", wanted[i], root);
        }
}

int cgroup_root_setup(CgroupMode mode, CgroupRoot **ret) {
        *ret = NULL;
        if (mode == CGROUP_NO)
                return 0;
        int level = mode == CGROUP_YES ? LOG_ERR : LOG_DEBUG;
        /* Paths on the heap, not in this frame: three of 4 KiB here (and one
         * in remove_stale(), inlined) put the reads of mountinfo below them
         * deeper than any of a reload's calls go, and every stack page
         * handoff touches once stays dirty for its life. */
        _cleanup_free_ char *mnt = NULL, *own = NULL;
        int r = unified_mount(&mnt);
        if (r < 0)
                return mode == CGROUP_YES ? log_error_errno(r, "No cgroup2 (unified) hierarchy is mounted: %m") : 0;
        if ((r = cgroup_of_pid(0, &own)) < 0)
                return mode == CGROUP_YES ? log_error_errno(r, "Cannot find our cgroup: %m") : 0;

        /* The next handoff of a handover starts in its predecessor's leaf:
         * the root is one up. */
        char *slash = strrchr(own, '/');
        if (slash && is_handoff_leaf(slash + 1))
                *slash = '\0';
        _cleanup_free_ char *root = NULL;
        if (asprintf(&root, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own) < 0)
                return -ENOMEM;
        if (strcmp(own, "/") == 0 || strcmp(own, "") == 0) {
                /* Never the root of a hierarchy: that is nobody's to split. */
                log_full_errno(level, 0, mode == CGROUP_YES ? "Cannot use --cgroup=yes: handoff runs in the root cgroup, "
                                                              "which is nobody's to split."
                                                            : "Not using cgroups: handoff runs in the root cgroup.");
                return mode == CGROUP_YES ? -EPERM : 0;
        }
        if (mode == CGROUP_AUTO && !marked_delegated(root)) {
                log_debug("Not using cgroups: %s is not marked delegated (Delegate=yes; or say --cgroup=yes).", root);
                return 0;
        }

        char leaf_name[32];
        _cleanup_free_ char *leaf = NULL;
        snprintf(leaf_name, sizeof leaf_name, "handoff.%d", (int) getpid());
        if (asprintf(&leaf, "%s/%s", root, leaf_name) < 0)
                return -ENOMEM;
        if (mkdir(leaf, 0755) < 0 && errno != EEXIST) {
                r = -errno;
                log_full_errno(mode == CGROUP_YES ? LOG_ERR : LOG_WARNING, r,
                               "Cannot create cgroup %s, containing generations by process group only: %m", leaf);
                return mode == CGROUP_YES ? r : 0;
        }
        if ((r = write_file(leaf, "cgroup.procs", "0")) < 0) {
                (void) rmdir(leaf);
                log_full_errno(mode == CGROUP_YES ? LOG_ERR : LOG_WARNING, r,
                               "Cannot move into cgroup %s, containing generations by process group only: %m", leaf);
                return mode == CGROUP_YES ? r : 0;
        }
        remove_stale(root, leaf_name);
        enable_controllers(root);

        CgroupRoot *cr = calloc(1, sizeof *cr);
        if (!cr)
                return -ENOMEM;
        cr->path = TAKE_PTR(root);
        cr->rel = TAKE_PTR(own);
        log_debug("Generations run in cgroups below %s.", cr->path);
        *ret = cr;
        return 0;
}

CgroupRoot *cgroup_root_free(CgroupRoot *r) {
        if (r) {
                free(r->path);
                free(r->rel);
                free(r);
        }
        return NULL;
}

void cgroup_root_remove_leaf(CgroupRoot *r, pid_t pid) {
        char path[4096];
        snprintf(path, sizeof path, "%s/handoff.%d", r->path, (int) pid);
        int k = remove_tree(path);
        if (k == 0)
                log_debug("Removed cgroup %s.", path);
        else
                log_debug_errno(k, "Cannot remove cgroup %s: %m", path);
}

/* Makes R/name for a generation: anew when it is there already and empty
 * (left by an earlier life of the service: numbers start at 1 again after
 * a restart). -EBUSY when processes run in it: they are not this
 * generation's. */
static int make_leaf(const char *path) {
        int k = mkdir(path, 0755) < 0 ? -errno : 0;
        if (k == -EEXIST && (k = remove_tree(path)) == 0)
                k = mkdir(path, 0755) < 0 ? -errno : 0;
        return k;
}

int cgroup_new_generation(CgroupRoot *r, unsigned number, Cgroup **ret, int *ret_procs_fd) {
        Cgroup *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->number = number;
        /* gen-N; when processes of an earlier handoff still run there (its
         * service stopped with KillMode=process, say), gen-N.1, gen-N.2 ...
         * beside it, as systemd starts a unit beside left-over processes:
         * they are left alone, and the service starts. */
        char name[32];
        int k = -EBUSY;
        bool made = false;
        for (unsigned i = 0; k == -EBUSY && i <= GEN_LEAF_TRIES; i++) {
                if (i == 0)
                        snprintf(name, sizeof name, "gen-%u", number);
                else
                        snprintf(name, sizeof name, "gen-%u.%u", number, i);
                free(c->path);
                free(c->rel);
                c->path = c->rel = NULL;
                if (asprintf(&c->path, "%s/%s", r->path, name) < 0)
                        c->path = NULL;
                if (asprintf(&c->rel, "%s/%s", r->rel, name) < 0)
                        c->rel = NULL;
                if (!c->path || !c->rel) {
                        k = -ENOMEM;
                        break;
                }
                k = make_leaf(c->path);
                made = k == 0;
                if (k == -EBUSY)
                        log_warning("Cgroup %s exists and is not empty: processes of an earlier handoff run there; "
                                    "leaving them alone.", c->path);
        }
        if (k < 0)
                goto fail;
        if (strchr(name, '.'))
                log_warning("Generation %u runs in cgroup %s.", number, c->path);
        char procs[4096];
        snprintf(procs, sizeof procs, "%s/cgroup.procs", c->path);
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
                k = -errno;
                goto fail;
        }
        *ret = c;
        *ret_procs_fd = fd;
        return 0;
fail:
        if (made)
                cgroup_free(c);
        else {
                /* Not ours to remove: a leftover, or nothing. */
                free(c->path);
                free(c->rel);
                free(c);
        }
        return k;
}

int cgroup_generation_of(CgroupRoot *r, pid_t pid, char *name, size_t size) {
        _cleanup_free_ char *cg = NULL;
        int k = cgroup_of_pid(pid, &cg);
        if (k < 0)
                return k == -ENOENT || k == -ESRCH ? 0 : k;
        size_t n = strlen(r->rel);
        if (strncmp(cg, r->rel, n) != 0 || cg[n] != '/')
                return 0;
        size_t len = strcspn(cg + n + 1, "/");
        if (len >= size)
                return 0;
        memcpy(name, cg + n + 1, len);
        name[len] = '\0';
        return is_generation_leaf(name);
}

int cgroup_open_generation_of(CgroupRoot *r, pid_t pid, Cgroup **ret) {
        char name[64];
        *ret = NULL;
        int k = cgroup_generation_of(r, pid, name, sizeof name);
        return k <= 0 ? k : cgroup_open_generation(r, name, ret);
}

int cgroup_open_generation(CgroupRoot *r, const char *name, Cgroup **ret) {
        *ret = NULL;
        if (!is_generation_leaf(name))
                return 0;
        _cleanup_free_ char *path = NULL, *rel = NULL;
        if (asprintf(&path, "%s/%s", r->path, name) < 0)
                path = NULL;
        if (asprintf(&rel, "%s/%s", r->rel, name) < 0)
                rel = NULL;
        Cgroup *c = path && rel ? calloc(1, sizeof *c) : NULL;
        if (!c)
                return -ENOMEM;
        c->path = TAKE_PTR(path);
        c->rel = TAKE_PTR(rel);
        *ret = c;
        return 0;
}

static int on_events(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Cgroup *c = userdata;
        c->changed(c->userdata);
        return 0;
}

int cgroup_watch(Cgroup *c, sd_event *e, void (*changed)(void *userdata), void *userdata) {
        char path[4096];
        snprintf(path, sizeof path, "%s/cgroup.events", c->path);
        c->changed = changed;
        c->userdata = userdata;
        return sd_event_add_inotify(e, &c->watch, path, IN_MODIFY, on_events, c);
}

int cgroup_populated(Cgroup *c) {
        return cgroup_tree_populated(c->path);
}

typedef struct Pass {
        int sig;                 /* 0: only count */
        unsigned n;
} Pass;

/* The processes of one cgroup.procs: signalled, or counted. */
static void each_proc(const char *path, void *userdata) {
        Pass *pass = userdata;
        char buf[65536];
        ssize_t k = read_file(path, "cgroup.procs", buf, sizeof buf);
        if (k <= 0)
                return;
        if ((size_t) k == sizeof buf - 1) {
                /* Full: its last pid may be cut in two. Not one of those
                 * (a stranger's pid, maybe); past it, only the SIGKILL
                 * passes get the rest, as the killed leave the list. */
                char *nl = strrchr(buf, '\n');
                if (!nl)
                        return;
                nl[1] = '\0';
        }
        for (char *p = buf, *end;; p = end) {
                long pid = strtol(p, &end, 10);
                if (end == p)
                        break;
                if (pid > 0 && (pass->sig == 0 || kill((pid_t) pid, pass->sig) == 0))
                        pass->n++;
        }
}

/* One pass over the cgroup.procs of the cgroup and of those below it, which
 * its server may have made and moved processes into: cgroup.procs lists
 * only a cgroup's own. */
static int each_of_tree(Cgroup *c, int sig, unsigned *ret_n) {
        Pass pass = { .sig = sig };
        int r = cgroup_walk(c->path, CGROUP_WALK_PARENTS_FIRST, each_proc, &pass);
        *ret_n = pass.n;
        return r;
}

void cgroup_signal(Cgroup *c, int sig) {
        unsigned n;
        int r;
        if (sig == SIGKILL) {
                r = write_file(c->path, "cgroup.kill", "1");
                if (r >= 0)
                        return; /* the kernel kills the whole subtree */
                log_debug_errno(r, "No cgroup.kill in %s (kernel < 5.14?), killing each process: %m", c->path);
                /* A process may fork while we read: go again until a pass
                 * finds nobody (bounded; the rest gets the next SIGCHLD). */
                for (int i = 0; i < 16; i++) {
                        r = each_of_tree(c, SIGKILL, &n);
                        if (n == 0)
                                break; /* a cut walk too: passes again would find what this one did */
                }
        } else
                r = each_of_tree(c, sig, &n);
        if (r == -E2BIG)
                log_warning("Not every cgroup below %s could be read (more than %u of them, more than %u levels, "
                            "paths too long or out of fds): some processes in them did not get %s.",
                            c->path, CGROUP_WALK_MAX_DIRS - 1, CGROUP_WALK_MAX_DEPTH, SIGNAL_NAME(sig));
}

unsigned cgroup_count(Cgroup *c) {
        unsigned n;
        (void) each_of_tree(c, 0, &n);
        return n;
}

uint64_t cgroup_memory(Cgroup *c) {
        char buf[64];
        if (read_file(c->path, "memory.current", buf, sizeof buf) <= 0)
                return UINT64_MAX;
        return strtoull(buf, NULL, 10);
}

bool cgroup_has_pid(Cgroup *c, pid_t pid) {
        _cleanup_free_ char *cg = NULL;
        if (cgroup_of_pid(pid, &cg) < 0)
                return false;
        size_t n = strlen(c->rel);
        return strncmp(cg, c->rel, n) == 0 && (cg[n] == '\0' || cg[n] == '/');
}

const char *cgroup_path(Cgroup *c) {
        return c->path;
}

Cgroup *cgroup_free(Cgroup *c) {
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->watch);
        int r = remove_tree(c->path);
        if (r < 0 && r != -ENOENT)
                log_debug_errno(r, "Cannot remove cgroup %s (or one below it): %m", c->path);
        free(c->path);
        free(c->rel);
        free(c);
        return NULL;
}
