/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "address.h"
#include "sdstore.h"
#include "listeners.h"
#include "log.h"
#include "socket-file.h"

char *fdnames_join(char *const *names, size_t n) {
        size_t len = 1;
        for (size_t i = 0; i < n; i++)
                len += strlen(names[i]) + 1;
        char *s = malloc(len), *p = s;
        if (!s)
                return NULL;
        *p = '\0';
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *p++ = ':';
                p = stpcpy(p, names[i]);
        }
        return s;
}

static int listeners_add(Listeners *l, int fd, char *name) {
        int *fds = realloc(l->fds, sizeof(int) * (l->n + 1));
        if (fds)
                l->fds = fds;
        char **names = realloc(l->names, sizeof(char *) * (l->n + 2));
        if (names)
                l->names = names;
        if (!fds || !names || !name) {
                free(name);
                return -ENOMEM;
        }
        l->fds[l->n] = fd;
        l->names[l->n++] = name;
        l->names[l->n] = NULL;
        return 0;
}

/* Adds full, the name of an entry of systemd's fd store, to names, once. */
static void remove_later(char ***names, size_t *n, const char *full) {
        for (size_t i = 0; i < *n; i++)
                if (strcmp((*names)[i], full) == 0)
                        return;
        if (strv_push(names, n, strdup(full)) < 0)
                log_warning_errno(ENOMEM, "Out of memory; %s stays in the service manager's fd store.", full);
}

/* Whether fd is one of the sockets in l->fds, or a copy of one (the same
 * open file: kcmp(), not fstat(), which on a file a server stored under our
 * name, on FUSE, would wait for that file system's server). Where kcmp()
 * is refused, fd_same_file() takes the inode, from fstat() where statx()
 * is refused too (Docker's seccomp profile before 18.04): a file is no
 * socket, asked of the socket layer alone first, and never looked at. */
static bool is_served(const Listeners *l, int fd) {
        int type;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return false;
        for (size_t i = 0; i < l->n; i++)
                if (fd_same_file(fd, l->fds[i]))
                        return true;
        return false;
}

/* The --listen index in the name of a handoff.listen. entry (suffix, after
 * the prefix), or -1. Only the name mirror_listen() gives: "01" or "+1"
 * would stay in systemd's store under that name whatever became of index 1. */
static long listen_index(const char *suffix) {
        char canonical[24];
        unsigned long i = strtoul(suffix, NULL, 10);
        snprintf(canonical, sizeof canonical, "%lu", i);
        return i < 1024 && strcmp(suffix, canonical) == 0 ? (long) i : -1;
}

/* A stored fd recovered from systemd's fd store. One that handoff's store
 * has no room for (--fd-store-max lowered since it was put there), or no
 * valid name, is closed: -ENOSPC, -EINVAL. */
static int take_stored_entry(FdStore *store, const char *name, int fd) {
        (void) fd_cloexec(fd, true);
        /* Whether FDPOLL=0 came with it is systemd's to know, not ours:
         * unwatched, it is kept as before, never lost. */
        int r = fdstore_add(store, name, fd, false);
        if (r == -ENOSPC)
                log_warning("fd store full (--fd-store-max=%zu): dropped fd \"%s\" recovered from the service "
                            "manager's fd store.", store->max, name);
        else if (r < 0)
                log_warning_errno(r, "Could not keep %s%s from the service manager's fd store: %m",
                                  SDSTORE_STORE_PREFIX, name);
        else
                log_info("Recovered stored fd \"%s\" from the service manager's fd store.", name);
        return r;
}

/* Else systemd holds the fds handoff dropped for good (their full names in
 * dropped), and passes them at every start. A removal takes every fd of its
 * name: those handoff kept under it are put back, after it (systemd ignores
 * the put of an fd it still holds): the fds kept under a handoff.store.
 * name, the socket kept under a handoff.listen. name stored twice. */
static void unmirror_dropped(const Listeners *l, const FdStore *store, char *const *dropped, size_t n_dropped) {
        size_t sp = strlen(SDSTORE_STORE_PREFIX), lp = strlen(SDSTORE_LISTEN_PREFIX);
        for (size_t i = 0; i < n_dropped; i++) {
                (void) sdstore_remove_name(dropped[i]);
                if (strncmp(dropped[i], SDSTORE_LISTEN_PREFIX, lp) == 0) {
                        long k = listen_index(dropped[i] + lp);
                        if (k >= 0 && (size_t) k < l->n_recovered && l->recovered[k] >= 0)
                                (void) sdstore_put(SDSTORE_LISTEN_PREFIX, dropped[i] + lp, l->recovered[k], true);
                        continue;
                }
                const char *name = dropped[i] + sp;
                for (size_t k = 0; k < store->n; k++)
                        if (strcmp(store->entries[k].name, name) == 0)
                                (void) sdstore_put(SDSTORE_STORE_PREFIX, name, store->entries[k].fd,
                                                   store->entries[k].poll);
        }
}

/* Without --systemd-fd-store (switched off since a handoff put these
 * there), systemd would hold them for good and pass them at every start:
 * a server would get back the state it stored then, however often it
 * replaced it since, and a socket file removed at the final stop would
 * leave its socket unreachable. They were taken all the same, to serve
 * the clients queued on a socket and give the server its state at this
 * start (handoff's own store keeps that across reloads), and only then
 * are they removed from systemd's store. */
static void unmirror_all(char *const *names, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (sdstore_remove_name(names[i]) > 0)
                        log_info("Removed %s from the service manager's fd store, where handoff keeps nothing "
                                 "without --systemd-fd-store.", names[i]);
}

/* An entry a previous handoff put into systemd's fd store. Returns true when
 * name was one (fd then taken); its name is added to to_remove if it is to
 * be removed from systemd's store (entries). */
static bool take_own_entry(Listeners *l, FdStore *store, const char *name, int fd, SdStoreEntries entries,
                           char ***to_remove, size_t *n_to_remove) {
        size_t lp = strlen(SDSTORE_LISTEN_PREFIX), sp = strlen(SDSTORE_STORE_PREFIX);
        if (strncmp(name, SDSTORE_STORE_PREFIX, sp) == 0) {
                int r = take_stored_entry(store, name + sp, fd);
                if (entries == SDSTORE_ENTRIES_REMOVE ||
                    (entries == SDSTORE_ENTRIES_MIRROR && (r == -ENOSPC || r == -EINVAL)))
                        remove_later(to_remove, n_to_remove, name);
                return true;
        }
        if (strncmp(name, SDSTORE_LISTEN_PREFIX, lp) != 0)
                return false;
        if (entries == SDSTORE_ENTRIES_REMOVE)
                remove_later(to_remove, n_to_remove, name);
        long i = listen_index(name + lp);
        if (i < 0) {
                log_warning("Closing %s passed from the service manager's fd store: no --listen index (0 to 1023) "
                            "in its name.", name);
                if (entries == SDSTORE_ENTRIES_MIRROR)
                        remove_later(to_remove, n_to_remove, name);
                safe_close(fd);
                return true;
        }
        if ((size_t) i >= l->n_recovered) {
                int *r = realloc(l->recovered, sizeof(int) * (i + 1));
                if (!r) {
                        safe_close(fd);
                        return true;
                }
                for (size_t k = l->n_recovered; k <= (size_t) i; k++)
                        r[k] = -EBADF;
                l->recovered = r;
                l->n_recovered = (size_t) i + 1;
        }
        (void) fd_cloexec(fd, true);
        if (l->recovered[i] >= 0) {
                /* Another socket under this name (a server's,
                 * NotifyAccess=all): the one passed last is kept. This one
                 * is shut down, as release_recovered() does, or systemd's
                 * copy would listen on where a --listen may bind anew, and
                 * the name is removed from systemd's store, the one kept
                 * put back (unmirror_dropped()). */
                log_warning("Closing a socket passed from the service manager's fd store as %s: another one "
                            "follows under that name.", name);
                if (!is_served(l, l->recovered[i]))
                        (void) shutdown(l->recovered[i], SHUT_RDWR);
                if (entries == SDSTORE_ENTRIES_MIRROR)
                        remove_later(to_remove, n_to_remove, name);
        }
        safe_close(l->recovered[i]);
        l->recovered[i] = fd;
        return true;
}

int listeners_from_systemd(Listeners *l, size_t n_stored, const char *fdpoll, FdStore *store,
                           SdStoreEntries entries) {
        char **names = NULL;
        _cleanup_strv_free_ char **to_remove = NULL;
        size_t n_to_remove = 0;
        /* Read before libsystemd unsets them, to say which one is wrong. */
        const char *e = getenv("LISTEN_PID");
        char pid_value[32];
        snprintf(pid_value, sizeof pid_value, "%s", e ? e : "");
        bool have_fds = getenv("LISTEN_FDS") != NULL;
        char *end;
        errno = 0;
        long pid = strtol(pid_value, &end, 10);
        if (have_fds && e && (!*pid_value || *end || errno || pid <= 0)) {
                log_error("Invalid LISTEN_PID=\"%s\": not a process id.", pid_value);
                unsetenv("LISTEN_FDS");
                unsetenv("LISTEN_PID");
                unsetenv("LISTEN_FDNAMES");
                return -EINVAL;
        }
        /* unset_environment=1: LISTEN_* were for us, not for anything we run. */
        int n = sd_listen_fds_with_names(1, &names);
        if (n < 0)
                return log_error_errno(n, "Invalid socket passing environment (LISTEN_FDS/LISTEN_FDNAMES): %m");
        if (n == 0) {
                if (have_fds && !e)
                        log_info("Ignoring LISTEN_FDS: no LISTEN_PID says whom they are for.");
                else if (have_fds && pid != getpid())
                        log_info("Ignoring LISTEN_FDS: LISTEN_PID=%ld is another process.", pid);
                strv_free(names);
                return 0;
        }

        int r = 0;
        if (n_stored > (size_t) n)
                n_stored = (size_t) n;
        size_t n_poll = fdpoll ? strlen(fdpoll) : 0; /* past it: watched */
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                if ((size_t) i >= (size_t) n - n_stored) {
                        /* A stored fd may be anything: a memfd, a connection. */
                        size_t k = (size_t) i - ((size_t) n - n_stored);
                        bool poll = k >= n_poll || fdpoll[k] != '0';
                        (void) fd_cloexec(fd, true);
                        if ((r = fdstore_add(store, names[i], fd, poll)) < 0) {
                                log_warning_errno(r, "Failed to keep stored fd %d (%s): %m", fd, names[i]);
                                r = 0;
                        }
                        continue;
                }
                /* A next handoff's sockets are its predecessor's listeners,
                 * whatever their names: one named handoff.store.x
                 * (--listen ADDR=NAME, FileDescriptorName=) is no entry
                 * of systemd's fd store there. */
                if (entries != SDSTORE_ENTRIES_LEAVE &&
                    take_own_entry(l, store, names[i], fd, entries, &to_remove, &n_to_remove))
                        continue;
                /* Asked of the socket layer alone: an fd stored by a server
                 * (NotifyAccess=all) may be a file on FUSE, whose fstat()
                 * asks the file system's server and waits, for ever if it
                 * never answers; getsockopt() answers from the open file,
                 * under any seccomp profile. */
                int type;
                socklen_t tl = sizeof type;
                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) {
                        r = errno == ENOTSOCK
                                ? log_error_errno(ENOTSOCK, "Passed fd %d (%s) is not a socket.", fd, names[i])
                                : log_error_errno(errno, "Passed fd %d (%s) is not open: %m", fd, names[i]);
                        break;
                }
                if ((r = listeners_add(l, fd, TAKE_PTR(names[i]))) < 0) {
                        log_error_errno(r, "Out of memory");
                        break;
                }
        }
        /* Not strv_free(): the names taken above left NULL holes. */
        for (int i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return r;
        if (entries == SDSTORE_ENTRIES_MIRROR)
                unmirror_dropped(l, store, to_remove, n_to_remove);
        else
                unmirror_all(to_remove, n_to_remove);
        l->from_systemd = true;
        if (!(l->fdnames = fdnames_join(l->names, l->n)))
                return log_error_errno(ENOMEM, "Out of memory");
        return (int) l->n;
}

/* The file is told by its inode, which our socket, bound to it, keeps
 * from being reused while we hold it: a file at the path with the same
 * inode is ours, whoever removed or replaced it meanwhile. */
static int created_file_add(Listeners *l, char *path, dev_t dev, ino_t ino) {
        char **p = path ? realloc(l->created_paths, sizeof(char *) * (l->n_created + 1)) : NULL;
        if (p)
                l->created_paths = p;
        dev_t *d = p ? realloc(l->created_devs, sizeof(dev_t) * (l->n_created + 1)) : NULL;
        if (d)
                l->created_devs = d;
        ino_t *i = d ? realloc(l->created_inos, sizeof(ino_t) * (l->n_created + 1)) : NULL;
        if (!i) {
                free(path);
                return -ENOMEM;
        }
        l->created_inos = i;
        l->created_paths[l->n_created] = path;
        l->created_devs[l->n_created] = dev;
        l->created_inos[l->n_created++] = ino;
        return 0;
}

static void log_not_its_file(const char *path) {
        log_warning("%s is no longer the file of handoff's socket (removed or replaced since): clients there do "
                    "not reach the service until handoff binds the path anew (at a start without a stored socket), "
                    "and it is not handoff's to remove.", path);
}

/* The file at path now, if the kernel says it is the own of fd (>= 0),
 * the socket bound there. One recovered (a previous handoff bound it, it
 * is back from systemd's fd store) may have had its file removed and the
 * path bound anew by another before this start. One just bound may not be
 * where its path leads now either: a directory on the way swapped since
 * (a symlink in a directory others may write) would make the file
 * removed at stop another of the same name. Neither is handoff's to
 * remove. */
static int created_path_add(Listeners *l, char *path, int fd, bool recovered) {
        struct stat st;
        if (path && lstat(path, &st) < 0) {
                /* Just bound by us, it is there; a recovered one's may be
                 * gone since, as a reload would warn. */
                if (recovered && errno == ENOENT)
                        log_not_its_file(path);
                else
                        log_debug_errno(errno, "Not removing %s at stop: %m", path);
                free(path);
                return 0;
        }
        int r = path && fd >= 0 ? socket_file_is(fd, &st) : 1;
        if (r < 0 && !recovered) {
                /* Where the kernel cannot tell (no CAP_NET_ADMIN, no
                 * sock_diag), the file at the path of a socket bound a
                 * moment ago is taken for its own, as it always was. */
                log_debug_errno(r, "Taking %s for the file of the socket just bound there: the kernel cannot "
                                "tell (%m).", path);
                r = 1;
        }
        if (r == 0)
                log_not_its_file(path);
        else if (r < 0)
                log_warning_errno(r, "Not removing %s at stop: failed to tell whether it is the file of "
                                  "handoff's socket: %m", path);
        if (r <= 0) {
                free(path);
                return 0;
        }
        return created_file_add(l, path, path ? st.st_dev : 0, path ? st.st_ino : 0);
}

int listeners_add_created_path(Listeners *l, const char *path) {
        return created_path_add(l, strdup(path), -EBADF, false);
}

int listeners_add_created_file(Listeners *l, const char *path, dev_t dev, ino_t ino) {
        return created_file_add(l, strdup(path), dev, ino);
}

void listeners_forget_replaced(Listeners *l) {
        size_t k = 0;
        for (size_t i = 0; i < l->n_created; i++) {
                struct stat st;
                if (lstat(l->created_paths[i], &st) < 0 || st.st_dev != l->created_devs[i] ||
                    st.st_ino != l->created_inos[i]) {
                        log_not_its_file(l->created_paths[i]);
                        free(l->created_paths[i]);
                        continue;
                }
                l->created_paths[k] = l->created_paths[i];
                l->created_devs[k] = l->created_devs[i];
                l->created_inos[k++] = l->created_inos[i];
        }
        l->n_created = k;
}

/* The entry of --listen i in systemd's fd store: any socket stored for it
 * removed, then fd (unless -EBADF) put there; one socket per --listen. */
static void mirror_listen(size_t i, int fd) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        (void) sdstore_remove(SDSTORE_LISTEN_PREFIX, idx);
        if (fd >= 0)
                (void) sdstore_put(SDSTORE_LISTEN_PREFIX, idx, fd, true);
}

/* Removes the file at path if it is the one socket fd is bound to (fd >=
 * 0), or else the file dev/ino: 1 removed, 0 not that file (or none), or a
 * negative errno. Looked at and removed through its directory, opened
 * once, so that no directory on the way renamed, no symlink swapped in
 * between, makes the file removed another than the one looked at. (Who
 * may write that directory can still replace the file in between, but
 * could as well remove it.) */
static int unlink_own_file(const char *path, int fd, dev_t dev, ino_t ino) {
        const char *base = strrchr(path, '/') + 1; /* absolute */
        _cleanup_free_ char *dir = strndup(path, (size_t) (base - path));
        if (!dir)
                return -ENOMEM;
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct stat st;
        if (dfd < 0 || fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        int r = fd >= 0 ? socket_file_is(fd, &st) : st.st_dev == dev && st.st_ino == ino;
        if (r <= 0)
                return r;
        return unlinkat(dfd, base, 0) < 0 ? -errno : 1;
}

/* Whether a unix --listen (of either type) in specs is bound at path. */
static bool is_listen_path(char *const *specs, size_t n_specs, const char *path) {
        bool found = false;
        for (size_t i = 0; i < n_specs && !found; i++) {
                ListenAddress a;
                const char *err = NULL;
                if (listen_address_parse(specs[i], &a, &err) < 0)
                        continue;
                found = (a.kind == ADDR_UNIX_STREAM || a.kind == ADDR_UNIX_DGRAM) && !a.abstract &&
                        strcmp(a.path, path) == 0;
                listen_address_done(&a);
        }
        return found;
}

/* A socket a previous handoff put into systemd's fd store (for --listen i
 * then) that no --listen asks for any more (why): --listen changed since (a
 * restart that kept systemd's store, a crash after a daemon-reload), and
 * serving the old address would ignore the new one; or systemd passed the
 * unit's own sockets, and no --listen is served. Let go of before
 * anything is bound, since its address or its file may be another
 * --listen's now. Shut down, not just closed: the service manager's store
 * holds a copy of it, which it lets go of only once it has read
 * FDSTOREREMOVE=1 (or seen the hang-up), while a socket shut down listens
 * for no holder and lets its port be bound anew (SO_REUSEADDR). Its unix
 * socket file is removed where a --listen names its path now (another type
 * of socket there, or the file would be in the way of its bind): the file
 * it is bound to, not any at its path (removed and bound again since by
 * another, perhaps not listening yet, which a stale socket probe would
 * take for dead). Any other path is not even looked up: the socket may be
 * a server's own, stored under our name (NotifyAccess=all), bound where a
 * lookup waits for ever (in a FUSE file system of that server's); handoff
 * looks up and removes the paths it is told to listen on, no others. */
static void release_recovered(Listeners *l, size_t i, char *const *specs, size_t n_specs, bool mirror,
                              const char *why) {
        int fd = l->recovered[i];
        union {
                struct sockaddr_un un;
                char raw[sizeof(struct sockaddr_un) + 1]; /* a NUL after the longest path */
        } sa = {};
        socklen_t len = sizeof sa.un;

        log_info("Closing the socket the service manager's fd store holds for --listen %zu: %s.", i + 1, why);
        /* Not one of the unit's own sockets, which a server may store
         * under our name (NotifyAccess=all): shut down, it would listen no
         * more for the generations served on it; closed, the copy lets go
         * of nothing. */
        if (!is_served(l, fd))
                (void) shutdown(fd, SHUT_RDWR);
        bool has_path = getsockname(fd, (struct sockaddr *) &sa.un, &len) >= 0 && sa.un.sun_family == AF_UNIX &&
                        len > offsetof(struct sockaddr_un, sun_path) && sa.un.sun_path[0] == '/';
        if (has_path && !is_listen_path(specs, n_specs, sa.un.sun_path))
                log_info("Not removing %s, the file of that socket: no --listen names that path now.",
                         sa.un.sun_path);
        else if (has_path) {
                int r = unlink_own_file(sa.un.sun_path, fd, 0, 0);
                if (r > 0)
                        log_info("Removed %s, the file of that socket.", sa.un.sun_path);
                else if (r == 0)
                        log_info("Not removing %s: not the file of that socket (removed or replaced since).",
                                 sa.un.sun_path);
                else
                        log_warning_errno(r, "Not removing %s: failed to tell whether it is the file of that "
                                          "socket: %m", sa.un.sun_path);
        }
        l->recovered[i] = safe_close(fd);
        if (mirror)
                mirror_listen(i, -EBADF);
}

/* Whether recovered socket j is still there for a, the address of --listen
 * i: not released, not taken by an earlier --listen (claimed[0..i)). */
static bool recovered_fits(const Listeners *l, const ListenAddress *a, size_t i, const size_t *claimed, size_t j) {
        for (size_t c = 0; c < i; c++)
                if (claimed[c] == j)
                        return false;
        return l->recovered[j] >= 0 && listen_address_matches(a, l->recovered[j]);
}

/* Which recovered socket --listen i (spec) reuses: its index, or SIZE_MAX.
 * Found by what it is (its type and address), not by its place, so that a
 * --listen that only moved (the list reordered, one before it dropped)
 * keeps its socket and the connections queued on it. The one of its own
 * place first: a host name is not looked up (listen_address_matches()), so
 * two sockets on one port may fit. A name (=NAME) is not the socket's: it
 * is passed on as --listen says now. */
static size_t recovered_match(const Listeners *l, const char *spec, size_t i, const size_t *claimed) {
        ListenAddress a;
        const char *err = NULL;
        size_t found = SIZE_MAX;
        if (listen_address_parse(spec, &a, &err) < 0)
                return SIZE_MAX; /* out of memory: the open fails on it */
        if (i < l->n_recovered && recovered_fits(l, &a, i, claimed, i))
                found = i;
        for (size_t j = 0; j < l->n_recovered && found == SIZE_MAX; j++)
                if (recovered_fits(l, &a, i, claimed, j))
                        found = j;
        listen_address_done(&a);
        return found;
}

/* Sets O_NONBLOCK on a socket handoff has just opened for --listen. It is
 * a flag of the open file description, shared by every process that holds
 * the socket: so it is set only here, before anyone else has it, and never
 * on a socket recovered from systemd's fd store, which a process of an
 * earlier generation may hold still (a crash leaves what KillMode= leaves),
 * blocking in accept() or polling it. */
static int set_nonblock(int fd, const char *spec) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return log_error_errno(errno, "Failed to read the flags of %s: %m", spec);
        if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_error_errno(errno, "Failed to set O_NONBLOCK on %s: %m", spec);
        return 0;
}

/* A socket recovered from systemd's fd store keeps its flag (see
 * set_nonblock()). One that is blocking under --non-blocking=yes is said:
 * the server that needs non-blocking listeners gets a blocking one (nginx
 * stalls on it), and nothing else would tell why. That happens when the
 * option changed before a restart, since systemctl restart keeps the store
 * as Restart= does. Not said without the option, where a non-blocking one
 * may be the server's doing (Go sets the flag itself). */
static void warn_recovered_blocking(int fd, const char *spec) {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0 && !(flags & O_NONBLOCK))
                log_warning("%s, reused from the service manager's fd store, stays blocking despite "
                            "--non-blocking=yes: O_NONBLOCK is set only on a socket handoff opens, since a process "
                            "of an earlier generation may hold this one. It is opened anew once systemd lets go of "
                            "it (systemctl stop, then start; a restart keeps the store).",
                            spec);
}

void listeners_release_recovered(Listeners *l, bool mirror) {
        for (size_t i = 0; i < l->n_recovered; i++)
                if (l->recovered[i] >= 0)
                        release_recovered(l, i, NULL, 0, mirror,
                                          "systemd passed the unit's own sockets, and --listen is ignored");
}

int listeners_open(Listeners *l, char *const *specs, size_t n_specs, bool mirror, bool nonblock) {
        for (size_t i = 0; i < n_specs; i++) {
                ListenAddress a;
                const char *err = NULL;
                int r = listen_address_parse(specs[i], &a, &err);
                if (r < 0) {
                        log_error("Invalid --listen address \"%s\": %s.", specs[i], err);
                        return r;
                }
                listen_address_done(&a);
        }
        /* The recovered socket each --listen reuses (SIZE_MAX: none). */
        _cleanup_free_ size_t *from = malloc(sizeof(size_t) * (n_specs + 1));
        if (!from)
                return log_error_errno(ENOMEM, "Out of memory");
        for (size_t i = 0; i < n_specs; i++)
                from[i] = recovered_match(l, specs[i], i, from);
        for (size_t j = 0; j < l->n_recovered; j++) {
                bool wanted = false;
                for (size_t i = 0; i < n_specs; i++)
                        wanted = wanted || from[i] == j;
                if (l->recovered[j] >= 0 && !wanted)
                        release_recovered(l, j, specs, n_specs, mirror, "no --listen asks for it any more");
        }
        /* One that moved is stored anew under the index of its place. The
         * old names all go first, since another may be put under one (and
         * not the put first: systemd ignores an fd it holds already, under
         * whatever name). */
        if (mirror) {
                for (size_t i = 0; i < n_specs; i++)
                        if (from[i] != SIZE_MAX && from[i] != i)
                                mirror_listen(from[i], -EBADF);
                for (size_t i = 0; i < n_specs; i++)
                        if (from[i] != SIZE_MAX && from[i] != i)
                                mirror_listen(i, l->recovered[from[i]]);
        }

        for (size_t i = 0; i < n_specs; i++) {
                ListenAddress a;
                const char *err = NULL;
                int r = listen_address_parse(specs[i], &a, &err);
                if (r < 0)
                        return log_error_errno(r, "Out of memory");
                int fd = -EBADF;
                char *created = NULL;
                if (from[i] != SIZE_MAX) {
                        /* Never closed since a previous handoff opened it:
                         * clients queued meanwhile are served now. */
                        fd = TAKE_FD(l->recovered[from[i]]);
                        if ((a.kind == ADDR_UNIX_STREAM || a.kind == ADDR_UNIX_DGRAM) && !a.abstract &&
                            !(created = strdup(a.path)))
                                r = -ENOMEM;
                        if (from[i] == i)
                                log_info("Reusing %s from the service manager's fd store.", specs[i]);
                        else
                                log_info("Reusing %s from the service manager's fd store, where it was stored for "
                                         "--listen %zu.", specs[i], from[i] + 1);
                } else
                        r = listen_address_open(&a, specs[i], &fd, &created);
                if (r >= 0 && created)
                        r = created_path_add(l, created, fd, from[i] != SIZE_MAX);
                if (r >= 0)
                        r = listeners_add(l, fd, TAKE_PTR(a.name));
                listen_address_done(&a);
                if (r < 0)
                        return r == -ENOMEM ? log_error_errno(r, "Out of memory") : r;
                /* Once it is in l, which closes it (and removes its file)
                 * on failure. A recovered one keeps the flag it has. */
                if (nonblock && from[i] != SIZE_MAX)
                        warn_recovered_blocking(fd, specs[i]);
                else if (nonblock && (r = set_nonblock(fd, specs[i])) < 0)
                        return r;
                /* Stored once it has the flag: systemd's copy shares it, and
                 * one stored blocking would come back so at a Restart=. */
                if (from[i] == SIZE_MAX && mirror)
                        mirror_listen(i, fd);
                log_info("Listening on %s (fd %d, name %s).", specs[i], fd, l->names[l->n - 1]);
        }
        /* listeners_from_systemd() joined none, when it passed only
         * entries of its fd store. */
        free(l->fdnames);
        if (!(l->fdnames = fdnames_join(l->names, l->n)))
                return log_error_errno(ENOMEM, "Out of memory");
        return 0;
}

void listeners_done(Listeners *l, bool unlink_paths) {
        /* Before the sockets are closed, which frees their inodes for
         * reuse by a new file at the path. */
        if (unlink_paths)
                listeners_forget_replaced(l);
        for (size_t i = 0; i < l->n_created; i++) {
                int r = unlink_paths ? unlink_own_file(l->created_paths[i], -EBADF, l->created_devs[i],
                                                       l->created_inos[i]) : 0;
                if (r < 0)
                        log_warning_errno(r, "Failed to remove %s: %m", l->created_paths[i]);
                free(l->created_paths[i]);
        }
        for (size_t i = 0; i < l->n; i++)
                safe_close(l->fds[i]);
        for (size_t i = 0; i < l->n_recovered; i++)
                safe_close(l->recovered[i]);
        free(l->recovered);
        free(l->fds);
        strv_free(l->names);
        free(l->fdnames);
        free(l->created_paths);
        free(l->created_devs);
        free(l->created_inos);
        *l = (Listeners) {};
}
