/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "client.h"
#include "control-protocol.h"
#include "options.h"
#include "proc-stat.h"
#include "reload-config.h"
#include "runtime-dir.h"
#include "time-util.h"
#include "unix-diag.h"
#include "util.h"

/* How often a reply may send us on to another handoff (a handover during
 * the reload): more would mean a loop. */
#define MAX_HOPS 8

/* An abstract name with an "@" for its leading NUL, and a NUL at its end. */
#define ABSTRACT_SIZE (sizeof ((struct sockaddr_un) {}).sun_path + 1)

/* "handoff" or "handoffctl", whichever was run: the first word of our
 * messages and of the commands they suggest. */
static const char *prog = "handoff";

#define say(fmt, ...) fprintf(stderr, "%s: " fmt, prog, ##__VA_ARGS__)

static void help(const char *verb) {
        if (strcmp(verb, "reload") == 0)
                printf("Usage: %s reload [--pid PID] [--timeout DUR] [-- [OPTIONS] -- COMMAND [ARG...]]\n"
                       "\n"
                       "Ask the handoff whose main PID is PID (default: $MAINPID, as systemd sets it\n"
                       "for ExecReload=; without it, pid 1 if that is a handoff, as in a container) to\n"
                       "reload, and wait until a reload that started after this request has ended.\n"
                       "\n"
                       "With a command line after \"--\" (handoff's OPTIONS and COMMAND, as when it was\n"
                       "started), the reload starts that command with those options, and they stay\n"
                       "in effect once it serves; a unit's ExecReload= repeats its ExecStart='s\n"
                       "arguments this way, so that an edited EnvironmentFile= takes effect. Options\n"
                       "of the service itself (--listen, --mode, --cgroup, --pid-file,\n"
                       "--notify-socket, --fd-store-max, --systemd-fd-store, --non-blocking) cannot\n"
                       "change at a reload.\n"
                       "\n"
                       "Exit status: 0 reloaded; 1 the reload failed (the old generation serves on, or\n"
                       "the main died during it and its next handoff gave up); 2 invalid arguments;\n"
                       "3 handoff could not be reached or refused the request;\n"
                       "4 timed out (the reload may still complete).\n", prog);
        else
                printf("Usage: %s status [--pid PID] [--json] [--timeout DUR]\n"
                       "\n"
                       "Show the generations, sockets and reloads of the handoff whose main PID is\n"
                       "PID (default: $MAINPID, else pid 1 if that is a handoff). Exit status: 0, or\n"
                       "2, 3 and 4 as for reload.\n", prog);
}

static const char *const verbs[] = { "reload", "status" };

bool client_is_verb(const char *word) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(word, verbs[i]) == 0)
                        return true;
        return false;
}

/* Optimal string alignment distance, for the few short words we compare. */
static size_t edit_distance(const char *a, const char *b) {
        size_t n = strlen(a), m = strlen(b);
        if (n > 32 || m > 32)
                return SIZE_MAX;
        size_t d[33][33];
        for (size_t i = 0; i <= n; i++)
                for (size_t j = 0; j <= m; j++) {
                        if (i == 0 || j == 0) {
                                d[i][j] = i + j;
                                continue;
                        }
                        size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
                        if (d[i - 1][j] + 1 < best)
                                best = d[i - 1][j] + 1;
                        if (d[i][j - 1] + 1 < best)
                                best = d[i][j - 1] + 1;
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                                best = d[i - 2][j - 2] + 1;
                        d[i][j] = best;
                }
        return d[n][m];
}

const char *client_verb_near(const char *word) {
        if (word[0] == '-' || strchr(word, '/'))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (edit_distance(word, verbs[i]) <= 2)
                        return verbs[i];
        return NULL;
}

/* Whether pid 1 of our pid namespace is a handoff (its command name): the
 * pid to ask in a container whose PID 1 handoff is, where nothing sets
 * $MAINPID ("docker exec CONTAINER handoff status"). */
static bool pid1_is_handoff(void) {
        char comm[32] = "";
        FILE *f = fopen("/proc/1/comm", "re");
        if (!f)
                return false;
        bool yes = fgets(comm, sizeof comm, f) && strcmp(comm, "handoff\n") == 0;
        fclose(f);
        return yes;
}

static int parse_pid(const char *s, pid_t *ret) {
        char *end;
        errno = 0;
        long v = s ? strtol(s, &end, 10) : 0;
        if (!s || !*s || *end || errno || v <= 0 || v > 4194304)
                return -EINVAL;
        *ret = (pid_t) v;
        return 0;
}

/* The effective uid of pid, and whether it has exited (a zombie its parent
 * has not reaped), from /proc/<pid>/status. */
static int status_of(pid_t pid, uid_t *ret_uid, bool *ret_exited) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        int r = -EBADMSG;
        unsigned ruid, euid;
        char state = 0;
        while (r < 0 && fgets(line, sizeof line, f))
                if (sscanf(line, "State: %c", &state) == 1)
                        continue;
                else if (sscanf(line, "Uid: %u %u", &ruid, &euid) == 2) {
                        *ret_uid = (uid_t) euid;
                        r = 0;
                }
        fclose(f);
        *ret_exited = state == 'Z' || state == 'X';
        return r;
}

/* The inodes of the sockets among pid's fds. */
static int socket_inodes_of(pid_t pid, unsigned long **ret, size_t *ret_n) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd", (int) pid);
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        unsigned long *inodes = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char target[64];
                if (de->d_name[0] == '.')
                        continue;
                ssize_t k = readlinkat(dirfd(d), de->d_name, target, sizeof target - 1);
                unsigned long ino;
                if (k <= 0)
                        continue;
                target[k] = '\0';
                if (sscanf(target, "socket:[%lu]", &ino) != 1)
                        continue;
                unsigned long *m = realloc(inodes, sizeof *inodes * (n + 1));
                if (!m) {
                        free(inodes);
                        closedir(d);
                        return -ENOMEM;
                }
                inodes = m;
                inodes[n++] = ino;
        }
        closedir(d);
        *ret = inodes;
        *ret_n = n;
        return 0;
}

/* A handoff that cannot bind its path listens on an abstract name
 * (CONTROL_ABSTRACT_PREFIX "<pid>/<hex>", control.c); handoff before 0.2
 * listened on CONTROL_ABSTRACT_PREFIX "<pid>", and after a package upgrade
 * ExecReload= runs this client against that old handoff, still main.
 * Anyone may bind such a name, so one is used only as a path is: if it is
 * one of pid's own listening sockets (its pid is that of pid's namespace,
 * not necessarily ours), and the peer's pid and uid are checked once
 * connected. */

/* Whether pid is in our network namespace, where its abstract names are
 * the ones we reach; unknown when that cannot be told. */
static bool same_netns(pid_t pid, bool unknown) {
        char path[64];
        struct stat ours, theirs;
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int) pid);
        if (stat("/proc/self/ns/net", &ours) < 0 || stat(path, &theirs) < 0)
                return unknown;
        return ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino;
}

/* Whether the unix socket ino of our network namespace has the name a line
 * of /proc/net/unix gives it ("@" for an abstract name's leading NUL, and
 * for any other NUL, as the kernel writes it there): 1 or 0, or -errno
 * where the kernel cannot be asked (no unix sock_diag). A line cannot be
 * taken at its word: the kernel writes a name as it is, newlines and all,
 * and anyone can bind an abstract name that reads as a line of its own,
 * with the inode of a handoff's control socket and a name of their
 * choosing; a client that took it would fail to reach that handoff. */
static int unix_socket_named(unsigned long ino, const char *name) {
        if (ino > UINT32_MAX)
                return -EOVERFLOW;
        char p[sizeof(struct sockaddr_un)];
        /* -ENOENT too: no unix sock_diag in this kernel, or the socket
         * closed meanwhile (a forged line names a live one). 0: it has no
         * name. */
        int r = unix_diag_attr(ino, UDIAG_SHOW_NAME, UNIX_DIAG_NAME, p, sizeof p);
        if (r <= 0)
                return r;
        /* As unix_seq_show() writes it: a path without its NUL. */
        size_t len = r, i = 0;
        if (len > 0 && p[0] != '\0')
                len--;
        if (strlen(name) != len)
                return 0;
        for (; i < len; i++)
                if ((p[i] ? p[i] : '@') != name[i])
                        return 0;
        return 1;
}

/* One pass over pid's network namespace's unix sockets for a listening
 * SOCK_SEQPACKET socket named ".../control.*" that is one of pid's own fds;
 * else for one named "@handoff/control/...", returned with its "@". */
static int control_path_scan(pid_t pid, const unsigned long *inodes, size_t n, char *ret, size_t size) {
        char path[64], line[4096], abstract[ABSTRACT_SIZE] = "";
        snprintf(path, sizeof path, "/proc/%d/net/unix", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        int r = -ENOENT;
        bool ask_kernel = same_netns(pid, false);
        while (fgets(line, sizeof line, f)) {
                unsigned flags, type, state;
                unsigned long ino;
                int off = 0;
                /* Num RefCount Protocol Flags Type St Inode Path */
                if (sscanf(line, "%*s %*s %*s %x %x %x %lu %n", &flags, &type, &state, &ino, &off) != 4 || off == 0)
                        continue;
                char *p = line + off;
                p[strcspn(p, "\n")] = '\0';
                const char *base = strrchr(p, '/');
                /* 0x10000: __SO_ACCEPTCON, a listening socket. */
                if (!(flags & 0x10000) || type != SOCK_SEQPACKET)
                        continue;
                bool is_abstract = strncmp(p, "@" CONTROL_ABSTRACT_PREFIX, strlen("@" CONTROL_ABSTRACT_PREFIX)) == 0;
                if (!is_abstract && (p[0] != '/' || !base || strncmp(base, "/control.", 9) != 0))
                        continue;
                bool ours = false;
                for (size_t i = 0; i < n; i++)
                        ours = ours || inodes[i] == ino;
                if (!ours || (ask_kernel && unix_socket_named(ino, p) == 0))
                        continue;
                if (is_abstract) {
                        if (strlen(p) < sizeof abstract)
                                strcpy(abstract, p);
                        continue;
                }
                if (strlen(p) < size) {
                        strcpy(ret, p);
                        r = 0;
                        break;
                }
        }
        fclose(f);
        if (r == -ENOENT && abstract[0] && strlen(abstract) < size) {
                strcpy(ret, abstract);
                r = 0;
        }
        return r;
}

/* The path of pid's control socket, from /proc/<pid>/net/unix. The file is
 * read a page at a time, each read resuming at an index into the kernel's
 * socket table: a socket closed meanwhile moves the next ones up, and one
 * of them is skipped. Where other processes open and close unix sockets
 * fast (a test suite, a busy host), a pass missed a live handoff's socket
 * now and then ("no handoff control socket"): a miss is tried again. */
static int control_path_of(pid_t pid, const unsigned long *inodes, size_t n, char *ret, size_t size) {
        int r = -ENOENT;
        for (int pass = 0; pass < 4 && r == -ENOENT && n > 0; pass++)
                r = control_path_scan(pid, inodes, n, ret, size);
        return r;
}

/* SIGTERM is what systemd sends to ExecReload= when the service stops during
 * a reload: the stop decides the reload's fate, and a reload command killed
 * by a signal would mark the unit failed. So it ends the wait with 0.
 * SIGINT (Ctrl-C) ends it as a shell reports it, 130. */
_Noreturn static void interrupted(int sigfd) {
        struct signalfd_siginfo si;
        if (read(sigfd, &si, sizeof si) != sizeof si)
                exit(EXIT_CLIENT_UNREACHABLE);
        if (si.ssi_signo == SIGTERM) {
                say("stopped waiting (SIGTERM); the service is probably stopping.\n");
                exit(0);
        }
        exit(128 + (int) si.ssi_signo);
}

/* Milliseconds until deadline for poll(), at most cap (-1: none). */
static int ms_until(usec_t deadline, int cap) {
        if (deadline == USEC_INFINITY)
                return cap;
        usec_t now = now_monotonic();
        if (now >= deadline)
                return 0;
        usec_t ms = (deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC;
        return cap >= 0 && ms > (usec_t) cap ? cap : ms > INT_MAX ? INT_MAX : (int) ms;
}

/* Waits until fd is readable: 1; until deadline: 0; or -errno of poll().
 * SIGTERM or SIGINT on sigfd ends the wait and the program (interrupted()). */
static int wait_readable(int fd, usec_t deadline, int sigfd) {
        for (;;) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };
                int r = poll(p, 2, ms_until(deadline, -1));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (p[1].revents & POLLIN)
                        interrupted(sigfd);
                return r > 0;
        }
}

/* Finds pid's control socket (control-protocol.h says where it lives) among pid's
 * own fds, so that neither its environment nor its mount namespace need
 * to be guessed (uid: pid's). Returns 0 with its path, as pid sees it, in
 * ret (connect_path_in_child() opens it); 1 when pid listens on an abstract
 * name instead, the name with its "@" in ret; or -errno with what went
 * wrong in why. Reads only /proc: nothing of pid's choosing can make it
 * wait. */
static int find_control_socket(pid_t pid, uid_t uid, char ret[static PATH_MAX], char *why, size_t why_size) {
        _cleanup_free_ unsigned long *inodes = NULL;
        size_t n = 0;
        int r = socket_inodes_of(pid, &inodes, &n);
        if (r == -EACCES || r == -EPERM) {
                snprintf(why, why_size, "permission denied: pid %d runs as uid %u; only root and that uid may "
                                        "control it", (int) pid, (unsigned) uid);
                return r;
        }
        if (r >= 0)
                r = control_path_of(pid, inodes, n, ret, PATH_MAX);
        if (r == -ENOENT) {
                snprintf(why, why_size, "pid %d has no handoff control socket (is it running, and is %d its main PID?)",
                         (int) pid, (int) pid);
                return r;
        }
        if (r < 0) {
                snprintf(why, why_size, "cannot look into pid %d: %s", (int) pid, strerror(-r));
                return r;
        }
        if (ret[0] == '@' && !same_netns(pid, true)) {
                snprintf(why, why_size, "its control socket is the abstract name %s, in another network namespace: "
                                        "run this in that one (nsenter --net=/proc/%d/ns/net)", ret, (int) pid);
                return -EXDEV;
        }
        if (ret[0] == '@' && strlen(ret) >= ABSTRACT_SIZE)
                return -ENAMETOOLONG;
        return ret[0] == '@';
}

/* The address of an abstract name, given with its "@" in front. */
static socklen_t abstract_address(const char *name, struct sockaddr_un *sa) {
        size_t n = strlen(name);
        memcpy(sa->sun_path + 1, name + 1, n - 1);
        return (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
}

/* Connects to sa, and keeps the connection only if pid itself listens
 * there, as uid (pid's), root or ourselves: only the process we asked for
 * is the handoff we asked for. (The server admits only root and its own
 * uid.) Never blocks: a unix socket whose backlog is full (a handoff that is
 * frozen or swamped, or anyone's socket on an abstract name) fails connect()
 * with EAGAIN at once, and there is no way to wait for room in it but to
 * try again, here until deadline (0: only once) and unless SIGTERM or
 * SIGINT comes on sigfd (then interrupted(); -1: none). Returns the fd
 * (blocking), or -errno of socket() or connect(); -ETIMEDOUT (the backlog
 * stayed full until deadline) or -EPERM (what the peer was) with why. */
static int connect_checked(const struct sockaddr_un *sa, socklen_t sa_len, pid_t pid, uid_t uid, usec_t deadline,
                           int sigfd, char *why, size_t why_size) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        for (int delay_ms = 1; connect(fd, (const struct sockaddr *) sa, sa_len) < 0;) {
                if (errno != EAGAIN)
                        return -errno;
                int ms = ms_until(deadline, delay_ms);
                if (ms == 0) {
                        snprintf(why, why_size, "did not take the connection in time (its control socket's queue "
                                                "stayed full)");
                        return -ETIMEDOUT;
                }
                struct pollfd p = { .fd = sigfd, .events = POLLIN };
                int r = poll(&p, 1, ms);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r > 0)
                        interrupted(sigfd);
                delay_ms = delay_ms < 64 ? delay_ms * 2 : delay_ms;
        }
        struct ucred uc = { .pid = 0 };
        socklen_t ul = sizeof uc;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || uc.pid != pid) {
                snprintf(why, why_size, "the control socket of pid %d is held by pid %d", (int) pid, (int) uc.pid);
                return -EPERM;
        }
        if (uc.uid != uid && uc.uid != 0 && uc.uid != geteuid()) {
                snprintf(why, why_size, "refusing pid %d's control socket: it listens as uid %u, not as its uid %u "
                                        "or root", (int) pid, (unsigned) uc.uid, (unsigned) uid);
                return -EPERM;
        }
        if (fcntl(fd, F_SETFL, 0) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* Where a handoff with our environment binds its socket (runtime_dir_path()):
 * under systemd, ExecReload= has ExecStart='s $RUNTIME_DIRECTORY. Exact, and
 * a few system calls where the search below takes some thirty. Used only in
 * a directory of pid's uid that nobody else may write (as the server binds
 * only in one of its own), at the first try, and if pid listens there;
 * otherwise (another mount namespace, environment or user, a pid reused, a
 * full backlog) the search decides. */
static int connect_conventional(pid_t pid, uid_t uid) {
        char dir[PATH_MAX], why[128];
        bool made_by_us;
        struct stat st;
        if (runtime_dir_path(dir, sizeof dir, &made_by_us) < 0)
                return -ENOENT;
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fstat(dfd, &st) < 0 || !runtime_dir_private(&st, uid))
                return -EPERM;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/control.%d", dfd, (int) pid);
        return connect_checked(&sa, sizeof sa, pid, uid, 0, -1, why, sizeof why);
}

/* Opens path, pid's control socket as pid sees it, through /proc/<pid>/root
 * (uid: pid's, which the file must belong to), and connects to it
 * (connect_checked(), until deadline). Returns the fd, or -errno with what
 * went wrong in why. */
static int connect_path(pid_t pid, uid_t uid, const char *path, usec_t deadline, char *why, size_t why_size) {
        char full[PATH_MAX + 64];
        snprintf(full, sizeof full, "/proc/%d/root%s", (int) pid, path);
        _cleanup_close_ int pfd = open(full, O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (pfd < 0) {
                int r = -errno;
                snprintf(why, why_size, "cannot open %s (pid %d's control socket): %s", path, (int) pid, strerror(-r));
                return r;
        }
        /* The file at that path now is not necessarily the socket pid holds:
         * it must at least be a socket of that uid. The peer's pid is
         * checked once connected. */
        struct stat st;
        if (fstat(pfd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != uid) {
                bool sock = S_ISSOCK(st.st_mode);
                snprintf(why, why_size, "refusing %s: %s uid %u, not by pid %d's uid %u", path,
                         sock ? "a socket owned by" : "not a socket; owned by", (unsigned) st.st_uid, (int) pid,
                         (unsigned) uid);
                return -EPERM;
        }
        /* Through the O_PATH fd: the path may be longer than sun_path holds,
         * and it is the file just checked. */
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d", pfd);
        int fd = connect_checked(&sa, sizeof sa, pid, uid, deadline, -1, why, why_size);
        if (fd < 0 && fd != -EPERM && fd != -ETIMEDOUT)
                snprintf(why, why_size, "%s", strerror(-fd));
        return fd;
}

/* The child of connect_path_in_child(): connect_path(), then the outcome
 * sent over sock, -errno and why, or 0 and the connected fd. */
_Noreturn static void connect_path_child(int sock, pid_t parent, pid_t pid, uid_t uid, const char *path,
                                         usec_t deadline, char *why, size_t why_size) {
        /* Should the lookup never end, this copy must hold none of the
         * caller's fds: a shell that reads our output ($(handoff status))
         * would wait for it to close them. 0-2 are open
         * (std_fds_ensure_open()): sock and null are above. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
            dup2(null, STDERR_FILENO) < 0 || dup2(sock, 3) < 0 || close_from(4) < 0)
                _exit(EXIT_FAILURE);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        int fd = connect_path(pid, uid, path, deadline, why, why_size), r = fd < 0 ? fd : 0;
        struct iovec iov[2] = { { &r, sizeof r }, { why, fd < 0 ? strlen(why) : 0 } };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        if (fd >= 0)
                msghdr_put_fds(&mh, &control, &fd, 1);
        _exit(sendmsg(3, &mh, MSG_NOSIGNAL) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

/* connect_path() in a child, which sends back the connected fd, or the
 * error and why. The path is looked up in pid's mount namespace, through
 * mounts of its user's choosing: a FUSE file system there may never answer
 * the lookup, the fstat() or the connect() (a permission check), and no
 * signal ends that wait, not even SIGKILL once its server has read the
 * request. We wait for the child until deadline (-ETIMEDOUT) or a signal on
 * sigfd (interrupted()), and leave it behind then: it dies with us
 * (PR_SET_PDEATHSIG), as soon as the file system lets it. */
static int connect_path_in_child(pid_t pid, uid_t uid, const char *path, usec_t deadline, int sigfd, char *why,
                                 size_t why_size) {
        _cleanup_close_ int ours = -EBADF;
        int sv[2], r = -EIO, fd = -EBADF;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                r = -errno;
                snprintf(why, why_size, "socketpair: %s", strerror(-r));
                return r;
        }
        ours = sv[0];
        pid_t parent = getpid(), child = fork();
        if (child == 0)
                connect_path_child(sv[1], parent, pid, uid, path, deadline, why, why_size);
        if (child < 0)
                r = -errno;
        safe_close(sv[1]);
        if (child < 0) {
                snprintf(why, why_size, "fork: %s", strerror(-r));
                return r;
        }
        int k = wait_readable(ours, deadline, sigfd);
        if (k == 0) {
                /* Its own wait for room in the backlog ends at the same
                 * deadline: which of the two it was, we cannot tell. */
                snprintf(why, why_size, "did not take the connection in time (its control socket %s could not be "
                                        "looked up, or its queue stayed full)", path);
                return -ETIMEDOUT;
        }
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov[2] = { { &r, sizeof r }, { why, why_size - 1 } };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = &control,
                             .msg_controllen = sizeof control };
        ssize_t n = k > 0 ? recvmsg(ours, &mh, MSG_CMSG_CLOEXEC) : -1;
        struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&fd, CMSG_DATA(c), sizeof fd);
        /* It has answered or exited: it is not held where it looked. */
        if (n >= 0)
                (void) waitpid(child, NULL, 0);
        if (n < (ssize_t) sizeof r || (r == 0 && fd < 0)) {
                safe_close(fd);
                snprintf(why, why_size, "the process that looked up its control socket %s did not answer", path);
                return -EIO;
        }
        why[n - sizeof r] = '\0';
        return r < 0 ? r : fd;
}

/* Connects to pid's control socket, waiting for room in its backlog until
 * deadline (-ETIMEDOUT) or a signal on sigfd. *ret_uid: the uid pid must
 * run as, unless root; (uid_t) -1 for any, then set to pid's. */
static int connect_to(pid_t pid, uid_t *ret_uid, usec_t deadline, int sigfd, char *why, size_t why_size) {
        /* pid's uid, read once for both ways of finding its socket. */
        uid_t uid = (uid_t) -1;
        bool exited = false;
        int r = status_of(pid, &uid, &exited);
        if (r < 0) {
                snprintf(why, why_size, r == -ENOENT ? "no process with pid %d" : "cannot read pid %d's status: %s",
                         (int) pid, strerror(-r));
                return r;
        }
        /* A FOLLOW or JOIN names its next handoff by pid alone, which may
         * be another user's process by now: the peer's uid is checked
         * against this one once connected. */
        if (*ret_uid != (uid_t) -1 && uid != *ret_uid && uid != 0) {
                snprintf(why, why_size, "pid %d runs as uid %u, not as uid %u of the handoff that sent us there",
                         (int) pid, (unsigned) uid, (unsigned) *ret_uid);
                return -EPERM;
        }
        if (*ret_uid == (uid_t) -1)
                *ret_uid = uid;
        if (exited) {
                snprintf(why, why_size, "pid %d has exited (its parent has not reaped it yet)", (int) pid);
                return -ESRCH;
        }
        int fd = connect_conventional(pid, uid);
        if (fd >= 0)
                return fd;
        char path[PATH_MAX];
        r = find_control_socket(pid, uid, path, why, why_size);
        if (r == 0)
                return connect_path_in_child(pid, uid, path, deadline, sigfd, why, why_size);
        if (r < 0)
                return r;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        fd = connect_checked(&sa, abstract_address(path, &sa), pid, uid, deadline, sigfd, why, why_size);
        if (fd < 0 && fd != -EPERM && fd != -ETIMEDOUT)
                snprintf(why, why_size, "%s", strerror(-fd));
        return fd;
}

/* Reads the one message waiting on fd, of any size, into a new string in
 * *reply: 0, -EAGAIN (none yet), -ECONNRESET (closed without one) or
 * -ENOMEM. */
static int recv_reply(int fd, char **reply) {
        /* Its size first, then all of it. */
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return -EAGAIN;
        char *buf = n > 0 ? malloc((size_t) n + 1) : NULL;
        if (n > 0 && !buf)
                return -ENOMEM;
        if (n > 0)
                n = recv(fd, buf, (size_t) n, MSG_DONTWAIT);
        if (n <= 0) {
                free(buf);
                return -ECONNRESET;
        }
        buf[n] = '\0';
        free(*reply);
        *reply = buf;
        return 0;
}

/* Sends one request over fd, connected to pid, and waits for its one
 * reply, of any size, until deadline. *reply is replaced with a new string.
 * -ECONNRESET: pid closed the connection without an answer (not said). */
static int exchange(int fd, pid_t pid, const char *request, size_t len, usec_t deadline, int sigfd, char **reply) {
        if (send(fd, request, len, MSG_NOSIGNAL) < 0) {
                say("cannot send to handoff pid %d: %m\n", (int) pid);
                return EXIT_CLIENT_UNREACHABLE;
        }
        for (;;) {
                int r = wait_readable(fd, deadline, sigfd);
                if (r == 0) {
                        say("no answer from handoff pid %d in time; the reload may still "
                                        "complete.\n", (int) pid);
                        return EXIT_CLIENT_TIMEOUT;
                }
                if (r < 0) {
                        say("cannot wait for handoff pid %d's answer: %s\n", (int) pid, strerror(-r));
                        return EXIT_CLIENT_UNREACHABLE;
                }
                r = recv_reply(fd, reply);
                if (r == -EAGAIN)
                        continue;
                if (r == -ENOMEM) {
                        say("out of memory for a reply.\n");
                        return EXIT_CLIENT_UNREACHABLE;
                }
                return r;
        }
}

/* Connects to pid and asks (exchange()); *uid as for connect_to(). */
static int ask(pid_t pid, uid_t *uid, const char *request, size_t len, usec_t deadline, int sigfd, char **reply) {
        char why[PATH_MAX + 256];
        _cleanup_close_ int fd = connect_to(pid, uid, deadline, sigfd, why, sizeof why);
        if (fd == -ETIMEDOUT) {
                say("handoff pid %d %s; nothing was asked of it.\n", (int) pid, why);
                return EXIT_CLIENT_TIMEOUT;
        }
        if (fd < 0) {
                say("cannot reach handoff pid %d: %s\n", (int) pid, why);
                return EXIT_CLIENT_UNREACHABLE;
        }
        return exchange(fd, pid, request, len, deadline, sigfd, reply);
}

/* A process's fds close a moment before it has exited: how long one that
 * closed our connection is given to be seen gone. */
#define EXIT_GRACE_USEC USEC_PER_SEC

/* Whether pid exits (has exited) within EXIT_GRACE_USEC; false also where
 * that cannot be watched (no pidfds). */
static bool exits(pid_t pid, usec_t deadline, int sigfd) {
        _cleanup_close_ int fd = pidfd_open_pid(pid);
        if (fd == -ESRCH)
                return true;
        if (fd < 0)
                return false;
        usec_t until = usec_add(now_monotonic(), EXIT_GRACE_USEC);
        if (until > deadline)
                until = deadline;
        return wait_readable(fd, until, sigfd) > 0;
}

/* pid closed the connection of a reload without an answer. Killed (the
 * OOM killer, say) right after its MAINPID= named its next handoff, it
 * leaves the service to that one, which takes over by itself: the reload
 * may well have succeeded, and only that next handoff can tell
 * ("OUTCOME <pid> <start time>"; any other handoff refuses). start_time,
 * read while pid lived, tells which process of that pid: the next handoff
 * of an earlier one, another service's main by now, would answer for the
 * pid alone. It is found among the control sockets of the runtime
 * directory our environment gives, where ExecReload= finds ExecStart='s.
 * All are asked at once: one that never answers (stopped, frozen,
 * another service's) must not keep the next handoff from being heard.
 * Returns 0 with its "OK" or "FAIL" in *reply, an exit code, or
 * -ECONNRESET when pid lives on (it closed for another reason) or no
 * handoff answers for it. */
static int ask_next_handoff(pid_t pid, uint64_t start_time, usec_t deadline, int sigfd, char **reply) {
        uid_t uid;
        ProcStat now = {};
        /* Alive, and still the process we asked: a pid given out again
         * (another start time) is another process, and pid has exited. */
        if (!exits(pid, deadline, sigfd) && proc_stat_read(pid, &now) == 0 && now.start_time == start_time &&
            !proc_stat_exiting(&now))
                return -ECONNRESET;
        char dir[PATH_MAX], what[64];
        bool made_by_us;
        if (runtime_dir_path(dir, sizeof dir, &made_by_us) < 0)
                return -ECONNRESET;
        DIR *d = opendir(dir);
        if (!d)
                return -ECONNRESET;
        snprintf(what, sizeof what, "OUTCOME %d %" PRIu64, (int) pid, start_time);
        /* p[0]: sigfd; then a connection to each handoff asked, asked[i]. */
        struct pollfd *p = malloc(sizeof *p);
        pid_t *asked = malloc(sizeof *asked);
        size_t n = 1, waiting = 0;
        struct dirent *de;
        while (p && asked && (de = readdir(d))) {
                pid_t next;
                bool gone = false;
                if (strncmp(de->d_name, "control.", 8) != 0 || parse_pid(de->d_name + 8, &next) < 0 ||
                    next == pid || status_of(next, &uid, &gone) < 0 || gone)
                        continue;
                /* Only a socket that next itself listens on, in a directory
                 * of its uid's that nobody else may write. */
                int fd = connect_conventional(next, uid);
                if (fd < 0)
                        continue;
                struct pollfd *mp = realloc(p, sizeof *p * (n + 1));
                pid_t *ma = mp ? realloc(asked, sizeof *asked * (n + 1)) : NULL;
                p = mp ? mp : p;
                asked = ma ? ma : asked;
                if (!ma || send(fd, what, strlen(what), MSG_NOSIGNAL) < 0) {
                        safe_close(fd);
                        continue;
                }
                p[n] = (struct pollfd) { .fd = fd, .events = POLLIN };
                asked[n++] = next;
                waiting++;
        }
        closedir(d);
        int r = -ECONNRESET;
        pid_t by = 0;
        if (p)
                p[0] = (struct pollfd) { .fd = sigfd, .events = POLLIN };
        while (p && asked && waiting > 0) {
                int k = poll(p, n, ms_until(deadline, -1));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k > 0 && (p[0].revents & POLLIN))
                        interrupted(sigfd);
                if (k == 0) {
                        say("no answer from handoff pid %d's next handoff in time; the reload may still complete.\n",
                            (int) pid);
                        r = EXIT_CLIENT_TIMEOUT;
                }
                if (k <= 0)
                        break;
                for (size_t i = 1; i < n; i++) {
                        _cleanup_free_ char *answer = NULL;
                        if (p[i].fd < 0 || p[i].revents == 0 || recv_reply(p[i].fd, &answer) == -EAGAIN)
                                continue;
                        p[i].fd = safe_close(p[i].fd);
                        waiting--;
                        bool ok = answer && strncmp(answer, "OK ", 3) == 0;
                        /* One that failed may be an earlier reload's,
                         * stopping still: the one that took over says OK. */
                        if (!ok && (!answer || strncmp(answer, "FAIL ", 5) != 0 || r == 0))
                                continue;
                        free(*reply);
                        *reply = TAKE_PTR(answer);
                        r = 0;
                        by = asked[i];
                        if (ok) {
                                waiting = 0;
                                break;
                        }
                }
        }
        for (size_t i = 1; p && i < n; i++)
                safe_close(p[i].fd);
        free(p);
        free(asked);
        if (r == 0)
                say("handoff pid %d exited before it answered; the reload ended in its next handoff, pid %d.\n",
                    (int) pid, (int) by);
        return r;
}

/* Runs one request, following FOLLOW/JOIN replies across a handover. */
static int request(pid_t pid, const char *what, size_t len, usec_t deadline, char **reply) {
        bool reload = strncmp(what, "STATUS", 6) != 0;
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return EXIT_CLIENT_UNREACHABLE;
        _cleanup_close_ int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sigfd < 0)
                return EXIT_CLIENT_UNREACHABLE;
        /* The first pid's uid, which those it sends us on to must have. */
        uid_t uid = (uid_t) -1;
        for (int hop = 0; hop < MAX_HOPS; hop++) {
                /* Read while pid lives, for OUTCOME should it die: no
                 * start time, no OUTCOME. */
                ProcStat st = {};
                bool known = reload && proc_stat_read(pid, &st) == 0 && st.start_time > 0;
                int r = ask(pid, &uid, what, len, deadline, sigfd, reply);
                if (r == -ECONNRESET && known)
                        r = ask_next_handoff(pid, st.start_time, deadline, sigfd, reply);
                if (r == -ECONNRESET) {
                        say("handoff pid %d closed the connection without an answer.\n", (int) pid);
                        return EXIT_CLIENT_UNREACHABLE;
                }
                if (r != 0)
                        return r;
                pid_t next;
                if (strncmp(*reply, "FOLLOW ", 7) == 0 && parse_pid(*reply + 7, &next) == 0)
                        pid = next;
                else if (strncmp(*reply, "JOIN ", 5) == 0 && parse_pid(*reply + 5, &next) == 0) {
                        pid = next;
                        what = "JOIN";
                        len = strlen(what);
                } else
                        return 0;
        }
        say("sent on more than %d times; giving up.\n", MAX_HOPS);
        return EXIT_CLIENT_UNREACHABLE;
}

/* A reload's new command line is checked here first, so that a typo fails
 * "systemctl reload" with the reason on its stderr (the journal) and nothing
 * is asked of the running handoff. It is checked as handoff will: its wire
 * form, parsed by the same reload_config_parse(). */
static int check_command_line(int n, char **args, char **ret, size_t *ret_len) {
        if (n == 0) {
                say("nothing after \"--\"; a new command line is: %s reload -- [OPTIONS] -- COMMAND [ARG...]\n", prog);
                return -EINVAL;
        }
        int r = reload_config_encode(args, (size_t) n, ret, ret_len);
        if (r < 0)
                return r;
        if (*ret_len > CONTROL_MAX_REQUEST) {
                say("the new command line is too long for a reload request (%zu bytes; at most "
                                "%d)\n", *ret_len, CONTROL_MAX_REQUEST);
                return -E2BIG;
        }
        size_t head = strlen("RELOAD");
        char why[320];
        ReloadConfig *c = NULL;
        r = reload_config_parse("handoff", *ret + head, *ret_len - head, &c, why, sizeof why);
        reload_config_free(c);
        if (r == -EINVAL)
                say("%s\n", why);
        return r;
}

int client_main(const char *program, int argc, char **argv) {
        static const struct option longopts[] = {
                { "pid", required_argument, NULL, 'p' },
                { "timeout", required_argument, NULL, 't' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *verb = argv[0];
        bool reload = strcmp(verb, "reload") == 0, json = false;
        const char *pid_arg = getenv("MAINPID");
        const char *last_value = NULL;
        usec_t timeout = 120 * USEC_PER_SEC;
        int c;

        prog = program;
        options_set_program(program); /* a new command line's messages are the option parser's */
        optind = 0;
        argv[0] = (char *) prog; /* getopt's messages start with it, as ours do */
        while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) >= 0) {
                last_value = optarg;
                switch (c) {
                case 'p':
                        pid_arg = optarg;
                        break;
                case 't':
                        if (parse_duration(optarg, &timeout) < 0) {
                                say("invalid --timeout: \"%s\"\n", optarg);
                                return EXIT_CLIENT_USAGE;
                        }
                        /* As handoff's own --start-timeout=0 and systemd's
                         * TimeoutSec=0: no timeout. */
                        if (timeout == 0)
                                timeout = USEC_INFINITY;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        help(verb);
                        return 0;
                default:
                        fprintf(stderr, "Try '%s %s --help' for more information.\n", prog, verb);
                        return EXIT_CLIENT_USAGE;
                }
        }
        /* "reload -- OPTIONS -- COMMAND": a new command line. */
        bool command_line = reload && optind > 0 && optind <= argc && strcmp(argv[optind - 1], "--") == 0 &&
                            argv[optind - 1] != last_value;
        if (optind < argc && !command_line) {
                say("unexpected argument \"%s\"; try '%s %s --help'.\n", argv[optind], prog, verb);
                return EXIT_CLIENT_USAGE;
        }
        if (json && reload) {
                say("unexpected argument \"--json\"; try '%s reload --help'.\n", prog);
                return EXIT_CLIENT_USAGE;
        }
        pid_t pid;
        if (!pid_arg && pid1_is_handoff())
                pid_arg = "1";
        if (parse_pid(pid_arg, &pid) < 0) {
                if (pid_arg)
                        say("invalid pid \"%s\".\n", pid_arg);
                else
                        say("no --pid given and no $MAINPID set (and pid 1 is no handoff).\n");
                return EXIT_CLIENT_USAGE;
        }

        _cleanup_free_ char *what = NULL;
        size_t len = 0;
        int r = command_line ? check_command_line(argc - optind, argv + optind, &what, &len)
                             : (what = strdup(reload ? "RELOAD" : json ? "STATUS json" : "STATUS")) ? 0 : -ENOMEM;
        if (r == -ENOMEM)
                say("out of memory\n");
        if (r == -ECANCELED) {
                /* No command line to reload with: exit 0 would tell
                 * ExecReload= (HANDOFF_OPTIONS=--version in a unit's
                 * configuration, say) that a reload succeeded. */
                say("the new command line asks for --help or --version; nothing was reloaded.\n");
                return EXIT_CLIENT_USAGE;
        }
        if (r < 0)
                return r == -ENOMEM ? EXIT_CLIENT_UNREACHABLE : EXIT_CLIENT_USAGE;
        if (!command_line)
                len = strlen(what);

        _cleanup_free_ char *reply = NULL;
        /* Saturating: a finite timeout that runs past the clock's range is "infinity". */
        usec_t deadline = usec_add(now_monotonic(), timeout);
        r = request(pid, what, len, deadline, &reply);
        if (r != 0)
                return r;
        if (strncmp(reply, "OK ", 3) == 0) {
                printf("%s\n", reply + 3);
                return 0;
        }
        if (strncmp(reply, "FAIL ", 5) == 0) {
                say("%s\n", reply + 5);
                return EXIT_CLIENT_FAILED;
        }
        say("%s\n", strncmp(reply, "ERROR ", 6) == 0 ? reply + 6 : reply);
        return EXIT_CLIENT_UNREACHABLE;
}
