/* SPDX-License-Identifier: MIT */
/* spawn.c: finding the executable and starting a generation for real, with
 * /bin/sh scripts that report what the child got. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env.h"
#include "spawn.h"
#include "util.h"
#include "unit.h"

extern char **environ;

static char tmpdir[64];

static void make_tmpdir(void) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/handoff-unit-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        (void) remove(path);
        return 0;
}

/* Without rm(1): some tests change PATH. */
static void remove_tmpdir(void) {
        (void) nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_file(const char *path, const char *content, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        close(fd);
        ck_assert_int_eq(chmod(path, mode), 0);
}

/* ---- find_executable -------------------------------------------------- */

START_TEST(test_find_in_path) {
        setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
        char *p = NULL;
        ck_assert_int_eq(find_executable("sh", &p), 0);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(p[0] == '/' && strcmp(strrchr(p, '/'), "/sh") == 0, "found \"%s\"", p);
        ck_assert_int_eq(access(p, X_OK), 0);
        free(p);
}
END_TEST

START_TEST(test_find_with_slash) {
        char *p = NULL;
        ck_assert_int_eq(find_executable("/bin/sh", &p), 0);
        ck_assert_str_eq(p, "/bin/sh");
        free(p);

        /* Names with a '/' are not looked up in PATH. */
        setenv("PATH", "/bin", 1);
        p = NULL;
        ck_assert_int_eq(find_executable("./sh", &p), -ENOENT);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(find_executable("/nonexistent/sh", &p), -ENOENT);
        ck_assert_int_eq(find_executable("/bin/sh/x", &p), -ENOTDIR);
}
END_TEST

START_TEST(test_find_not_found) {
        setenv("PATH", "/usr/bin:/bin", 1);
        char *p = NULL;
        ck_assert_int_eq(find_executable("no-such-cmd-handoff", &p), -ENOENT);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(find_executable("", &p), -ENOENT);
        ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_find_not_executable) {
        make_tmpdir();
        char file[128], dir[128], path[256];
        snprintf(file, sizeof file, "%s/data", tmpdir);
        make_file(file, "#!/bin/sh\n", 0644);
        snprintf(dir, sizeof dir, "%s/subdir", tmpdir);
        ck_assert_int_eq(mkdir(dir, 0755), 0);

        char *p = NULL;
        ck_assert_int_eq(find_executable(file, &p), -EACCES);
        ck_assert_ptr_null(p);
        int r = find_executable(dir, &p);
        ck_assert_msg(r == -EISDIR || r == -EACCES, "a directory gave %d", r);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(find_executable("/tmp", &p) < 0, 1);

        /* In PATH: found but not executable beats not found. */
        snprintf(path, sizeof path, "/nonexistent:%s", tmpdir);
        setenv("PATH", path, 1);
        ck_assert_int_eq(find_executable("data", &p), -EACCES);
        ck_assert_int_eq(find_executable("subdir", &p), -EACCES);
        ck_assert_int_eq(find_executable("nothing", &p), -ENOENT);
        ck_assert_ptr_null(p);

        /* ... and an executable later in PATH beats both, as with execvp. */
        char shadow[128];
        snprintf(shadow, sizeof shadow, "%s/sh", tmpdir);
        make_file(shadow, "not a program\n", 0644);
        snprintf(path, sizeof path, "%s:/bin", tmpdir);
        setenv("PATH", path, 1);
        ck_assert_int_eq(find_executable("sh", &p), 0);
        ck_assert_str_eq(p, "/bin/sh");
        free(p);
        remove_tmpdir();
}
END_TEST

START_TEST(test_find_first_in_path_wins) {
        make_tmpdir();
        char a[128], b[128], pa[160], pb[160], path[300];
        snprintf(a, sizeof a, "%s/a", tmpdir);
        snprintf(b, sizeof b, "%s/b", tmpdir);
        ck_assert_int_eq(mkdir(a, 0755), 0);
        ck_assert_int_eq(mkdir(b, 0755), 0);
        snprintf(pa, sizeof pa, "%s/prog", a);
        snprintf(pb, sizeof pb, "%s/prog", b);
        make_file(pa, "#!/bin/sh\n", 0755);
        make_file(pb, "#!/bin/sh\n", 0755);

        snprintf(path, sizeof path, "%s:%s", b, a);
        setenv("PATH", path, 1);
        char *p = NULL;
        ck_assert_int_eq(find_executable("prog", &p), 0);
        ck_assert_str_eq(p, pb);
        free(p);
        remove_tmpdir();
}
END_TEST

START_TEST(test_find_empty_path_element_is_cwd) {
        /* An empty PATH element (leading, trailing or "::") means the current
         * directory, as for execvp and the shell. */
        make_tmpdir();
        char prog[128];
        snprintf(prog, sizeof prog, "%s/handoff-unit-prog", tmpdir);
        make_file(prog, "#!/bin/sh\n", 0755);
        char cwd[PATH_MAX];
        ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
        ck_assert_int_eq(chdir(tmpdir), 0);

        static const char *const paths[] = { ":", "/nonexistent:", ":/nonexistent", "/nonexistent::/nonexistent2" };
        int results[4];
        char found[4][PATH_MAX];
        for (size_t i = 0; i < 4; i++) {
                setenv("PATH", paths[i], 1);
                char *p = NULL;
                results[i] = find_executable("handoff-unit-prog", &p);
                found[i][0] = '\0';
                if (results[i] == 0 && !realpath(p, found[i]))
                        snprintf(found[i], sizeof found[i], "(realpath of \"%s\" failed)", p);
                free(p);
        }
        ck_assert_int_eq(chdir(cwd), 0);
        char real_prog[PATH_MAX];
        ck_assert_ptr_nonnull(realpath(prog, real_prog));
        remove_tmpdir();

        for (size_t i = 0; i < 4; i++) {
                ck_assert_msg(results[i] == 0, "PATH=\"%s\": program in the current directory not found (%d)",
                              paths[i], results[i]);
                ck_assert_msg(strcmp(found[i], real_prog) == 0, "PATH=\"%s\": found %s, expected %s", paths[i],
                              found[i], real_prog);
        }
}
END_TEST

START_TEST(test_find_empty_path_element_not_root) {
        /* The empty element must not turn into "/": "/bin" must not be found
         * as the program "bin" (EISDIR there would report EACCES). */
        char cwd[PATH_MAX];
        ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
        make_tmpdir();
        ck_assert_int_eq(chdir(tmpdir), 0);
        setenv("PATH", ":", 1);
        char *p = NULL;
        int r = find_executable("bin", &p);
        ck_assert_int_eq(chdir(cwd), 0);
        remove_tmpdir();
        ck_assert_msg(r == -ENOENT, "PATH=\":\" with an empty cwd: find_executable(\"bin\") = %d, expected -ENOENT", r);
}
END_TEST

START_TEST(test_exec_error_exit_code) {
        ck_assert_int_eq(exec_error_exit_code(ENOENT), 127);
        ck_assert_int_eq(exec_error_exit_code(ENOTDIR), 127);
        ck_assert_int_eq(exec_error_exit_code(EACCES), 126);
        ck_assert_int_eq(exec_error_exit_code(EISDIR), 126);
        ck_assert_int_eq(exec_error_exit_code(ENOEXEC), 126);
        ck_assert_int_eq(exec_error_exit_code(EPERM), 126);
        ck_assert_int_eq(exec_error_exit_code(E2BIG), 126);
}
END_TEST

/* ---- spawn_generation ------------------------------------------------- */

typedef struct {
        char **envp;
        char *listen_pid;
        char *watchdog_pid;
} Env;

static Env make_env(size_t n_fds, const char *fdnames, unsigned generation, uint64_t watchdog_usec) {
        Env e = {};
        EnvParams p = {
                .n_fds = n_fds,
                .fdnames = fdnames,
                .notify_socket = "@handoff/unit",
                .generation = generation,
                .watchdog_usec = watchdog_usec,
        };
        ck_assert_int_eq(env_build(environ, &p, &e.envp, &e.listen_pid, &e.watchdog_pid), 0);
        return e;
}

/* The members every spawn here sets: the command, and the environment
 * make_env() built (whose pid placeholders the child fills in). */
static SpawnParams spawn_params(const char *path, char *const *argv, const Env *e) {
        return (SpawnParams) {
                .path = path,
                .argv = argv,
                .envp = e->envp,
                .listen_pid_entry = e->listen_pid,
                .watchdog_pid_entry = e->watchdog_pid,
        };
}

/* The shell script every spawn test runs: it reports its environment, the
 * fds it has (by stat(), which opens nothing), its process group and signal
 * state, then writes a byte to each listener fd. */
static const char report_script[] =
        "exec >\"$OUT\" 2>&1\n"
        "echo \"env $LISTEN_FDS $LISTEN_PID $$ $LISTEN_FDNAMES $HANDOFF_GENERATION ${WATCHDOG_PID-unset} "
        "${WATCHDOG_USEC-unset} $NOTIFY_SOCKET\"\n"
        "i=0\n"
        "while [ $i -le 300 ]; do [ -e /proc/$$/fd/$i ] && echo \"fd $i\"; i=$((i+1)); done\n"
        "read -r a b c d pgrp rest </proc/$$/stat\n"
        "echo \"pgrp $pgrp\"\n"
        "while read -r k v; do case $k in SigBlk:|SigIgn:) echo \"$k $v\";; esac; done </proc/$$/status\n"
        "n=3\n"
        "while [ $n -lt $((3 + LISTEN_FDS)) ]; do eval \"echo $n >&$n\"; n=$((n+1)); done\n"
        "echo end\n";

typedef struct {
        char env_line[512];
        bool fd_open[301];
        long pgrp;
        unsigned long long sigblk, sigign;
        bool complete;
} Report;

static void read_report(const char *path, Report *r) {
        *r = (Report) { .pgrp = -1 };
        FILE *f = fopen(path, "re");
        ck_assert_msg(f, "no report at %s", path);
        char line[512];
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\n")] = '\0';
                int n;
                if (strncmp(line, "env ", 4) == 0)
                        snprintf(r->env_line, sizeof r->env_line, "%s", line + 4);
                else if (sscanf(line, "fd %d", &n) == 1 && n >= 0 && n <= 300)
                        r->fd_open[n] = true;
                else if (sscanf(line, "pgrp %ld", &r->pgrp) == 1)
                        ;
                else if (strncmp(line, "SigBlk:", 7) == 0)
                        r->sigblk = strtoull(line + 7, NULL, 16);
                else if (strncmp(line, "SigIgn:", 7) == 0)
                        r->sigign = strtoull(line + 7, NULL, 16);
                else if (strcmp(line, "end") == 0)
                        r->complete = true;
        }
        fclose(f);
}

/* Spawns report_script with the given listener fds and waits for it. */
static int spawn_report(const int *fds, size_t n_fds, Env *e, const char *out, pid_t *ret_pid, int *ret_status) {
        (void) out; /* reaches the script as $OUT: set before make_env() */
        char *const argv[] = { (char *) "sh", (char *) "-c", (char *) report_script, NULL };
        SpawnParams p = spawn_params("/bin/sh", argv, e);
        p.fds = fds;
        p.n_fds = n_fds;
        pid_t pid = 0;
        int r = spawn_generation(&p, &pid, NULL);
        if (r < 0)
                return r;
        *ret_pid = pid;
        ck_assert_int_eq(waitpid(pid, ret_status, 0), pid);
        return 0;
}

static unsigned count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        unsigned n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void read_exactly(int fd, const char *want) {
        char buf[64] = {};
        size_t l = strlen(want);
        ssize_t k = read(fd, buf, l);
        ck_assert_msg(k == (ssize_t) l && memcmp(buf, want, l) == 0, "read \"%.*s\" (%zd), expected \"%s\"",
                      (int) (k > 0 ? k : 0), buf, k, want);
}

static void check_only_fds(const Report *r, int n_fds) {
        for (int i = 3; i <= 300; i++) {
                bool expected = i < 3 + n_fds;
                ck_assert_msg(r->fd_open[i] == expected, "fd %d is %s in the child, expected %s", i,
                              r->fd_open[i] ? "open" : "closed", expected ? "open" : "closed");
        }
}

START_TEST(test_spawn_fds_env_and_state) {
        make_tmpdir();
        char out[128];
        snprintf(out, sizeof out, "%s/report", tmpdir);
        setenv("OUT", out, 1);

        /* Two listeners at arbitrary high numbers, CLOEXEC as handoff keeps
         * them, and a non-CLOEXEC canary that must not leak. */
        int a[2], b[2];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
        int fds[2] = { fcntl(a[1], F_DUPFD_CLOEXEC, 40), fcntl(b[1], F_DUPFD_CLOEXEC, 50) };
        ck_assert_int_ge(fds[0], 40);
        ck_assert_int_ge(fds[1], 50);
        int canary = fcntl(a[1], F_DUPFD, 200); /* no CLOEXEC */
        ck_assert_int_ge(canary, 200);
        close(a[1]);
        close(b[1]);

        /* Handoff's own signal state must not reach the generation. */
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR1);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
        signal(SIGUSR2, SIG_IGN);

        Env e = make_env(2, "web:admin", 5, 0);
        unsigned before = count_fds();
        pid_t pid = 0;
        int status = -1;
        ck_assert_int_eq(spawn_report(fds, 2, &e, out, &pid, &status), 0);
        ck_assert_uint_eq(count_fds(), before); /* no error pipe left behind */
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "script failed: status 0x%x", status);

        Report r;
        read_report(out, &r);
        ck_assert_msg(r.complete, "the report is incomplete");
        char want[512];
        snprintf(want, sizeof want, "2 %d %d web:admin 5 unset unset @handoff/unit", (int) pid, (int) pid);
        ck_assert_str_eq(r.env_line, want);
        check_only_fds(&r, 2);
        ck_assert_int_eq(r.pgrp, pid); /* its own process group */
        ck_assert_msg(r.sigblk == 0, "blocked signals in the child: %llx", r.sigblk);
        ck_assert_msg(!(r.sigign & (1ULL << (SIGUSR2 - 1))), "SIGUSR2 ignored in the child: %llx", r.sigign);

        /* fd 3 is the first listener, fd 4 the second. */
        read_exactly(a[0], "3\n");
        read_exactly(b[0], "4\n");

        /* The parent's fds are as they were. */
        ck_assert(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
        ck_assert(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);

        close(canary);
        close(fds[0]);
        close(fds[1]);
        close(a[0]);
        close(b[0]);
        free(e.envp);
        remove_tmpdir();
}
END_TEST

START_TEST(test_spawn_fds_already_in_place_swapped) {
        /* The listeners sit at 4 and 3, in the wrong order for the child:
         * the copies must not overwrite each other. Fds 3 and 4 may belong
         * to the test framework, so they are saved and restored, and the
         * checks come after that. */
        make_tmpdir();
        char out[128];
        snprintf(out, sizeof out, "%s/report", tmpdir);

        int a[2], b[2];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
        setenv("OUT", out, 1);
        Env e = make_env(2, "a:b", 1, 0);

        int saved[2];
        for (int i = 0; i < 2; i++)
                saved[i] = fcntl(3 + i, F_DUPFD_CLOEXEC, 100); /* -1 if not open */
        int r1 = dup3(a[1], 4, O_CLOEXEC), r2 = dup3(b[1], 3, O_CLOEXEC);
        int fds[2] = { 4, 3 };
        pid_t pid = 0;
        int status = -1;
        int r = (r1 == 4 && r2 == 3) ? spawn_report(fds, 2, &e, out, &pid, &status) : -EBADF;
        for (int i = 0; i < 2; i++) {
                if (saved[i] >= 0) {
                        dup2(saved[i], 3 + i);
                        close(saved[i]);
                } else
                        close(3 + i);
        }
        close(a[1]);
        close(b[1]);

        ck_assert_int_eq(r, 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "script failed: status 0x%x", status);
        Report rep;
        read_report(out, &rep);
        ck_assert(rep.complete);
        check_only_fds(&rep, 2);
        /* fds[0] (our 4, pipe a) became the child's 3. */
        read_exactly(a[0], "3\n");
        read_exactly(b[0], "4\n");
        close(a[0]);
        close(b[0]);
        free(e.envp);
        remove_tmpdir();
}
END_TEST

START_TEST(test_spawn_fds_some_already_in_place) {
        /* The first and third listeners sit at their numbers (3 and 5, as
         * systemd passes them), the second far above: the ones in place
         * are inherited as they are, the other is copied between them, and
         * nothing else is left open. Fds 3 to 5 may belong to the test
         * framework, so they are saved and restored, and the checks come
         * after that. */
        make_tmpdir();
        char out[128];
        snprintf(out, sizeof out, "%s/report", tmpdir);

        int a[2], b[2], c[2];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(c, O_CLOEXEC), 0);
        setenv("OUT", out, 1);
        Env e = make_env(3, "a:b:c", 1, 0);

        int saved[3];
        for (int i = 0; i < 3; i++)
                saved[i] = fcntl(3 + i, F_DUPFD_CLOEXEC, 100); /* -1 if not open */
        int r1 = dup3(a[1], 3, O_CLOEXEC), r3 = dup3(c[1], 5, O_CLOEXEC);
        int high = fcntl(b[1], F_DUPFD_CLOEXEC, 60);
        int fds[3] = { 3, high, 5 };
        pid_t pid = 0;
        int status = -1;
        int r = (r1 == 3 && r3 == 5 && high >= 60) ? spawn_report(fds, 3, &e, out, &pid, &status) : -EBADF;
        /* The parent's fds in place keep FD_CLOEXEC: only the child's lost it. */
        bool cloexec = (fcntl(3, F_GETFD) & FD_CLOEXEC) && (fcntl(5, F_GETFD) & FD_CLOEXEC);
        for (int i = 0; i < 3; i++) {
                if (saved[i] >= 0) {
                        dup2(saved[i], 3 + i);
                        close(saved[i]);
                } else
                        close(3 + i);
        }
        close(high);
        close(a[1]);
        close(b[1]);
        close(c[1]);

        ck_assert_int_eq(r, 0);
        ck_assert(cloexec);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "script failed: status 0x%x", status);
        Report rep;
        read_report(out, &rep);
        ck_assert(rep.complete);
        check_only_fds(&rep, 3);
        read_exactly(a[0], "3\n");
        read_exactly(b[0], "4\n");
        read_exactly(c[0], "5\n");
        close(a[0]);
        close(b[0]);
        close(c[0]);
        free(e.envp);
        remove_tmpdir();
}
END_TEST

START_TEST(test_spawn_watchdog_pid) {
        make_tmpdir();
        char out[128];
        snprintf(out, sizeof out, "%s/report", tmpdir);
        setenv("OUT", out, 1);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        Env e = make_env(1, "x", 12, 2500000);
        pid_t pid = 0;
        int status = -1;
        ck_assert_int_eq(spawn_report(&p[1], 1, &e, out, &pid, &status), 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        Report r;
        read_report(out, &r);
        char want[512];
        snprintf(want, sizeof want, "1 %d %d x 12 %d 2500000 @handoff/unit", (int) pid, (int) pid, (int) pid);
        ck_assert_str_eq(r.env_line, want);
        check_only_fds(&r, 1);
        read_exactly(p[0], "3\n");
        close(p[0]);
        close(p[1]);
        free(e.envp);
        remove_tmpdir();
}
END_TEST

START_TEST(test_spawn_no_fds) {
        make_tmpdir();
        char out[128];
        snprintf(out, sizeof out, "%s/report", tmpdir);
        setenv("OUT", out, 1);
        Env e = make_env(0, "", 2, 0);
        pid_t pid = 0;
        int status = -1;
        ck_assert_int_eq(spawn_report(NULL, 0, &e, out, &pid, &status), 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        Report r;
        read_report(out, &r);
        ck_assert(r.complete);
        char want[512];
        snprintf(want, sizeof want, "0 %d %d  2 unset unset @handoff/unit", (int) pid, (int) pid);
        ck_assert_str_eq(r.env_line, want);
        check_only_fds(&r, 0);
        free(e.envp);
        remove_tmpdir();
}
END_TEST

/* The signals this process catches, from /proc/self/status (SigCgt). */
static uint64_t caught_signals(void) {
        FILE *f = fopen("/proc/self/status", "re");
        ck_assert_ptr_nonnull(f);
        char line[256];
        uint64_t mask = UINT64_MAX;
        while (fgets(line, sizeof line, f))
                if (strncmp(line, "SigCgt:", 7) == 0)
                        mask = strtoull(line + 7, NULL, 16);
        fclose(f);
        return mask;
}

/* libcheck catches SIGALRM, SIGINT and SIGTERM in each forked test (its
 * runner, not the test, enforces the timeout): set every handler back to
 * SIG_DFL, so that this process has none, as handoff has none, and
 * spawn_generation() takes the path it takes in handoff. */
static void drop_handlers(void) {
        for (int sig = 1; sig < NSIG; sig++) {
                struct sigaction sa;
                if (sigaction(sig, NULL, &sa) < 0)
                        continue; /* glibc's own, SIGKILL, SIGSTOP */
                if ((sa.sa_flags & SA_SIGINFO) || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN))
                        (void) signal(sig, SIG_DFL);
        }
        ck_assert_msg(caught_signals() == 0, "signals still caught: %llx", (unsigned long long) caught_signals());
}

/* Spawns the report script with SIGUSR2 blocked (as handoff blocks what its
 * signalfd takes) and checks that the child starts with an empty mask and
 * SIGUSR1 not ignored, and that our own mask is as it was. */
static void check_signal_state(void) {
        make_tmpdir();
        char out[128];
        snprintf(out, sizeof out, "%s/report", tmpdir);
        setenv("OUT", out, 1);
        sigset_t block, before, after;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR2);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, NULL, &before), 0);

        Env e = make_env(0, "", 3, 0);
        pid_t pid = 0;
        int status = -1;
        ck_assert_int_eq(spawn_report(NULL, 0, &e, out, &pid, &status), 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "script failed: status 0x%x", status);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, NULL, &after), 0);
        for (int sig = 1; sig < NSIG; sig++)
                ck_assert_int_eq(sigismember(&after, sig), sigismember(&before, sig));
        Report r;
        read_report(out, &r);
        ck_assert(r.complete);
        ck_assert_msg(r.sigblk == 0, "blocked signals in the child: %llx", r.sigblk);
        ck_assert_msg(!(r.sigign & (1ULL << (SIGUSR1 - 1))), "SIGUSR1 ignored in the child: %llx", r.sigign);
        free(e.envp);
        remove_tmpdir();
}

START_TEST(test_spawn_without_handlers) {
        /* As in handoff: no handler, so no mask change around the clone. */
        drop_handlers();
        check_signal_state();
}
END_TEST

static volatile sig_atomic_t handled;
static void on_usr1(int sig) {
        (void) sig;
        handled++;
}

START_TEST(test_spawn_with_a_handler) {
        /* A process with a handler (ASan's, say) blocks everything across
         * the clone, and restores its mask after: the child is the same,
         * and the handler is still ours. */
        drop_handlers();
        struct sigaction sa = { .sa_handler = on_usr1 };
        ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
        check_signal_state();
        ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
        ck_assert_int_eq(handled, 1);
}
END_TEST

static int spawn_path(const char *path, pid_t *ret_pid) {
        Env e = make_env(0, "", 1, 0);
        char *const argv[] = { (char *) path, NULL };
        SpawnParams p = spawn_params(path, argv, &e);
        int r = spawn_generation(&p, ret_pid, NULL);
        free(e.envp);
        return r;
}

START_TEST(test_spawn_exec_errors) {
        make_tmpdir();
        char file[128];
        snprintf(file, sizeof file, "%s/not-executable", tmpdir);
        make_file(file, "#!/bin/sh\n", 0644);

        unsigned before = count_fds();
        pid_t pid = 0;
        ck_assert_int_eq(spawn_path("/nonexistent/handoff-no-such-program", &pid), -ENOENT);
        ck_assert_int_eq(pid, 0);
        ck_assert_int_eq(spawn_path(file, &pid), -EACCES);
        ck_assert_int_eq(spawn_path(tmpdir, &pid), -EACCES); /* a directory */
        ck_assert_int_eq(pid, 0);
        ck_assert_uint_eq(count_fds(), before);

        /* The failed children were reaped: none is left. */
        errno = 0;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);
        remove_tmpdir();
}
END_TEST

START_TEST(test_spawn_returns_after_exec) {
        /* spawn_generation() returns once the child has exec'd: a program
         * that exits at once is still a successful spawn, with its status
         * left for the caller to reap. */
        char *const argv[] = { (char *) "sh", (char *) "-c", (char *) "exit 3", NULL };
        Env e = make_env(0, "", 1, 0);
        SpawnParams p = spawn_params("/bin/sh", argv, &e);
        pid_t pid = 0;
        ck_assert_int_eq(spawn_generation(&p, &pid, NULL), 0);
        ck_assert_int_gt(pid, 0);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 3);
        free(e.envp);
}
END_TEST

/* The child changes to the working directory before exec, each time by
 * its path: a relative command is found there, and a symlink switched
 * between two starts is followed. One that is not there fails the start
 * with systemd's EXIT_CHDIR, reaped. */
START_TEST(test_spawn_working_directory) {
        make_tmpdir();
        char a[PATH_MAX], b[PATH_MAX], link[PATH_MAX], prog[PATH_MAX + 16], cwd[PATH_MAX], real[PATH_MAX];
        snprintf(a, sizeof a, "%s/release-a", tmpdir);
        snprintf(b, sizeof b, "%s/release-b", tmpdir);
        snprintf(link, sizeof link, "%s/current", tmpdir);
        const char *releases[] = { a, b };
        for (size_t i = 0; i < 2; i++) {
                ck_assert_int_eq(mkdir(releases[i], 0755), 0);
                snprintf(prog, sizeof prog, "%s/server", releases[i]);
                /* Stays until the test has read its cwd. */
                make_file(prog, "#!/bin/sh\nexec sleep 30\n", 0755);
        }
        char *const argv[] = { (char *) "./server", NULL };
        Env e = make_env(0, "", 1, 0);
        SpawnParams p = spawn_params("./server", argv, &e);
        p.working_directory = link;
        for (size_t i = 0; i < 2; i++) {
                (void) unlink(link);
                ck_assert_int_eq(symlink(releases[i], link), 0);
                pid_t pid = 0;
                SpawnStep step = SPAWN_EXEC;
                ck_assert_int_eq(spawn_generation(&p, &pid, &step), 0);
                char proc[64];
                snprintf(proc, sizeof proc, "/proc/%d/cwd", (int) pid);
                ssize_t n = readlink(proc, cwd, sizeof cwd - 1);
                ck_assert_int_gt(n, 0);
                cwd[n] = '\0';
                ck_assert_ptr_nonnull(realpath(releases[i], real));
                ck_assert_str_eq(cwd, real);
                kill(pid, SIGKILL);
                ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        }

        /* A bare name found through a relative $PATH element: from there. */
        char *saved = strdup(getenv("PATH") ?: ""), *found = NULL;
        ck_assert_int_eq(setenv("PATH", "/nonexistent:.", 1), 0);
        ck_assert_int_eq(find_executable_from("server", link, &found), 0);
        ck_assert_str_eq(found, "./server");
        free(found);
        ck_assert_int_eq(find_executable_from("server", NULL, &found), -ENOENT);
        ck_assert_int_eq(setenv("PATH", saved, 1), 0);
        free(saved);

        unsigned before = count_fds();
        ck_assert_int_eq(unlink(link), 0);
        pid_t pid = 0;
        SpawnStep step = SPAWN_EXEC;
        ck_assert_int_eq(spawn_generation(&p, &pid, &step), -ENOENT);
        ck_assert_int_eq(step, SPAWN_CHDIR);
        ck_assert_int_eq(spawn_exit_status(step, ENOENT), 200);
        ck_assert_int_eq(pid, 0);
        ck_assert_uint_eq(count_fds(), before);
        errno = 0;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);
        free(e.envp);
        remove_tmpdir();
}
END_TEST

/* ---- a failed step before exec ---------------------------------------- */

/* Each step on the child's way to exec fails with its own errno and is
 * named in *ret_step, so that handoff's log says which one it was, and the
 * child exits with systemd's status for it. Run in a helper child, which
 * the set-up changes for good (a seccomp filter, a lower limit, no
 * CAP_SYS_RESOURCE). */
static int spawn_step_in_helper(void (*setup)(void), SpawnParams *p, SpawnStep *ret_step) {
        int out[2];
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        pid_t helper = fork();
        ck_assert_int_ge(helper, 0);
        if (helper == 0) {
                if (setup)
                        setup();
                pid_t pid = 0;
                SpawnStep step = SPAWN_EXEC;
                p->parent_pid = getpid();
                int res[2] = { spawn_generation(p, &pid, &step), (int) step };
                _exit(write(out[1], res, sizeof res) == sizeof res && pid == 0 ? 0 : 1);
        }
        close(out[1]);
        int res[2], status;
        ssize_t n = read(out[0], res, sizeof res);
        close(out[0]);
        ck_assert_int_eq(waitpid(helper, &status, 0), helper);
        if (n == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 77)
                return 1; /* the set-up cannot be had here */
        ck_assert_int_eq(n, sizeof res);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "helper: status %#x", status);
        *ret_step = (SpawnStep) res[1];
        return res[0];
}

/* p's start fails with -error at step want. A set-up this machine cannot
 * give (no seccomp filter, a low hard RLIMIT_NOFILE) leaves that step
 * untried, and says so. */
static void check_failed_step(void (*setup)(void), SpawnParams *p, int error, SpawnStep want) {
        SpawnStep step;
        int r = spawn_step_in_helper(setup, p, &step);
        if (r == 1) {
                fprintf(stderr, "test_spawn_failed_steps: step %d cannot be made to fail here\n", (int) want);
                return;
        }
        ck_assert_int_eq(r, -error);
        ck_assert_int_eq(step, want);
}

/* prctl(PR_SET_PDEATHSIG) refused, as a seccomp filter can (the argument's
 * low word: this runs on little-endian machines). */
static void refuse_pdeathsig(void) {
        struct sock_filter filter[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_prctl, 0, 3),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_PDEATHSIG, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
                _exit(77);
}

/* handoff's original RLIMIT_NOFILE (the hard limit, here) no longer to be
 * had: the hard limit was lowered since, and raising it takes
 * CAP_SYS_RESOURCE, which root gives up here. */
static void lower_nofile(void) {
        struct rlimit rl;
        if (rlimit_nofile_raise() < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max < 128)
                _exit(77);
        rl.rlim_cur = rl.rlim_max = rl.rlim_max / 2;
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || syscall(SYS_capget, &h, d) < 0)
                _exit(77);
        d[0].effective &= ~(1U << CAP_SYS_RESOURCE);
        if (syscall(SYS_capset, &h, d) < 0)
                _exit(77);
}

START_TEST(test_spawn_failed_steps) {
        Env e = make_env(1, "", 1, 0);
        char *const argv[] = { (char *) "/bin/true", NULL };
        int pipe_fds[2];
        ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC), 0);

        SpawnParams p = spawn_params("/bin/true", argv, &e);
        p.die_with_parent = true;
        check_failed_step(refuse_pdeathsig, &p, EPERM, SPAWN_DEATHSIG);

        int full = open("/dev/full", O_WRONLY | O_CLOEXEC); /* a cgroup.procs that refuses */
        ck_assert_int_ge(full, 0);
        p = spawn_params("/bin/true", argv, &e);
        p.into_cgroup = true;
        p.cgroup_procs_fd = full;
        check_failed_step(NULL, &p, ENOSPC, SPAWN_CGROUP);
        close(full);

        int closed = 999; /* not open here, nor in the helper */
        ck_assert_int_eq(fcntl(closed, F_GETFD), -1);
        p = spawn_params("/bin/true", argv, &e);
        p.fds = &closed;
        p.n_fds = 1;
        check_failed_step(NULL, &p, EBADF, SPAWN_FDS);

        p = spawn_params("/bin/true", argv, &e);
        p.fds = &pipe_fds[1];
        p.n_fds = 1;
        p.as = SPAWN_ORPHAN; /* reports on fds[0], a pipe: no socket */
        check_failed_step(NULL, &p, ENOTSOCK, SPAWN_REPORT);
        close(pipe_fds[0]);
        close(pipe_fds[1]);

        p = spawn_params("/bin/true", argv, &e);
        check_failed_step(lower_nofile, &p, EPERM, SPAWN_LIMITS);

        p = spawn_params("/bin/true", argv, &e);
        p.working_directory = "/nonexistent/handoff-no-such-directory";
        check_failed_step(NULL, &p, ENOENT, SPAWN_CHDIR);

        p = spawn_params("/nonexistent/handoff-no-such-program", argv, &e);
        check_failed_step(NULL, &p, ENOENT, SPAWN_EXEC);
        free(e.envp);
}
END_TEST

/* The status the child exits with: systemd's for its step. */
START_TEST(test_spawn_exit_status) {
        ck_assert_int_eq(spawn_exit_status(SPAWN_CHDIR, ENOENT), 200);   /* EXIT_CHDIR */
        ck_assert_int_eq(spawn_exit_status(SPAWN_FDS, EBADF), 202);      /* EXIT_FDS */
        ck_assert_int_eq(spawn_exit_status(SPAWN_LIMITS, EPERM), 205);   /* EXIT_LIMITS */
        ck_assert_int_eq(spawn_exit_status(SPAWN_CGROUP, EACCES), 219);  /* EXIT_CGROUP */
        ck_assert_int_eq(spawn_exit_status(SPAWN_EXEC, ENOENT), 127);
        ck_assert_int_eq(spawn_exit_status(SPAWN_EXEC, EACCES), 126);
        ck_assert_int_eq(spawn_exit_status(SPAWN_DEATHSIG, EPERM), EXIT_FAILURE);
        ck_assert_int_eq(spawn_exit_status(SPAWN_REPORT, ENOTSOCK), EXIT_FAILURE);
        ck_assert_int_eq(spawn_exit_status(SPAWN_FORK, EAGAIN), EXIT_FAILURE);
}
END_TEST

/* Receives the sibling's "PID <n>" message and its pidfd. */
static pid_t receive_pid_report(int fd, int *ret_pidfd) {
        char buf[64] = {};
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof control };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        ck_assert_msg(n > 0, "no PID report: %s", n < 0 ? strerror(errno) : "EOF");
        *ret_pidfd = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        memcpy(ret_pidfd, CMSG_DATA(c), sizeof(int));
        int pid = 0;
        ck_assert_msg(sscanf(buf, "PID %d", &pid) == 1, "bad PID report \"%s\"", buf);
        ck_assert_str_eq(buf + 4, strchr(buf, ' ') + 1);
        return pid;
}

/* Calls spawn_generation() in a helper child, as handoff calls it under its
 * service manager: a sibling is then this process's child, as the next
 * handoff is systemd's. Returns what it returned; *ret_pid gets its pid. */
static int spawn_from_helper(const SpawnParams *p, pid_t *ret_pid) {
        int out[2];
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        pid_t helper = fork();
        ck_assert_int_ge(helper, 0);
        if (helper == 0) {
                pid_t pid = -7;
                int res[2] = { spawn_generation(p, &pid, NULL), 0 };
                res[1] = (int) pid;
                _exit(write(out[1], res, sizeof res) == sizeof res ? 0 : 1);
        }
        close(out[1]);
        int res[2], status;
        ck_assert_int_eq(read(out[0], res, sizeof res), sizeof res);
        close(out[0]);
        ck_assert_int_eq(waitpid(helper, &status, 0), helper);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        *ret_pid = res[1];
        return res[0];
}

/* A next handoff, which is not our child: it reports its pid with a pidfd
 * over fds[report_index], runs with the same fds, environment and process
 * group as a generation, and is waitable here. As SPAWN_SIBLING it is
 * started from a helper (whose parent we are, as systemd is handoff's); as
 * SPAWN_ORPHAN by us, made a subreaper so that the orphan becomes our child,
 * as it becomes init's. */
static void check_not_ours(SpawnAs as) {
        if (as == SPAWN_ORPHAN)
                ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        make_tmpdir();
        char out[128];
        snprintf(out, sizeof out, "%s/report", tmpdir);
        setenv("OUT", out, 1);

        int a[2], chan[2];
        ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);
        int fds[2] = { a[1], chan[1] };
        Env e = make_env(2, "l:control", 9, 0);
        char *const argv[] = { (char *) "sh", (char *) "-c", (char *) report_script, NULL };
        SpawnParams p = spawn_params("/bin/sh", argv, &e);
        p.fds = fds;
        p.n_fds = 2;
        p.as = as;
        p.report_index = 1;
        pid_t ret_pid = -7;
        if (as == SPAWN_SIBLING)
                ck_assert_int_eq(spawn_from_helper(&p, &ret_pid), 0);
        else {
                ck_assert_int_eq(spawn_generation(&p, &ret_pid, NULL), 0);
                ck_assert_int_eq(ret_pid, -7); /* not set for an orphan */
        }
        close(a[1]);
        close(chan[1]);

        int pidfd;
        pid_t pid = receive_pid_report(chan[0], &pidfd);
        ck_assert_int_gt(pid, 0);
        if (as == SPAWN_SIBLING)
                ck_assert_int_eq(pid, ret_pid);
        ck_assert_int_ge(pidfd, 0);

        /* Ours, not the helper's nor the intermediate's. */
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "script failed: status 0x%x", status);
        /* The pidfd refers to that process: readable once it has exited. */
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
        ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
        close(pidfd);

        Report r;
        read_report(out, &r);
        ck_assert(r.complete);
        char want[512];
        snprintf(want, sizeof want, "2 %d %d l:control 9 unset unset @handoff/unit", (int) pid, (int) pid);
        ck_assert_str_eq(r.env_line, want);
        check_only_fds(&r, 2);
        ck_assert_int_eq(r.pgrp, pid);
        read_exactly(a[0], "3\n");
        /* The report fd is also the child's fd 4. */
        char buf[16] = {};
        ck_assert_int_eq(recv(chan[0], buf, sizeof buf, MSG_DONTWAIT), 2);
        ck_assert_str_eq(buf, "4\n");

        /* No other child left behind (the helper, or the intermediate, was
         * reaped). */
        errno = 0;
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);

        close(a[0]);
        close(chan[0]);
        free(e.envp);
        remove_tmpdir();
}

START_TEST(test_spawn_sibling) {
        /* Under a service manager: the parent's child (CLONE_PARENT). */
        drop_handlers();
        check_not_ours(SPAWN_SIBLING);
}
END_TEST

START_TEST(test_spawn_orphan) {
        /* Without one: a double fork (which blocks all signals across its
         * clones even without a handler). */
        drop_handlers();
        check_not_ours(SPAWN_ORPHAN);
}
END_TEST

START_TEST(test_spawn_sibling_exec_error) {
        int chan[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);
        Env e = make_env(1, "control", 1, 0);
        char *const argv[] = { (char *) "x", NULL };
        SpawnParams p = spawn_params("/nonexistent/handoff-no-such-program", argv, &e);
        p.fds = &chan[1];
        p.n_fds = 1;
        p.as = SPAWN_SIBLING;
        pid_t ret_pid = -7;
        ck_assert_int_eq(spawn_from_helper(&p, &ret_pid), -ENOENT);
        ck_assert_int_eq(ret_pid, -7);

        /* The sibling exited 127, and is ours to reap, not the helper's. */
        int pidfd;
        pid_t pid = receive_pid_report(chan[0], &pidfd);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 127);
        if (pidfd >= 0)
                close(pidfd);
        close(chan[0]);
        close(chan[1]);
        free(e.envp);
}
END_TEST

static Suite *spawn_suite(void) {
        Suite *s = suite_create("spawn");
        TCase *tc = tcase_create("find");
        tcase_add_test(tc, test_find_in_path);
        tcase_add_test(tc, test_find_with_slash);
        tcase_add_test(tc, test_find_not_found);
        tcase_add_test(tc, test_find_not_executable);
        tcase_add_test(tc, test_find_first_in_path_wins);
        tcase_add_test(tc, test_find_empty_path_element_is_cwd);
        tcase_add_test(tc, test_find_empty_path_element_not_root);
        tcase_add_test(tc, test_exec_error_exit_code);
        suite_add_tcase(s, tc);

        tc = tcase_create("spawn");
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, test_spawn_fds_env_and_state);
        tcase_add_test(tc, test_spawn_fds_already_in_place_swapped);
        tcase_add_test(tc, test_spawn_fds_some_already_in_place);
        tcase_add_test(tc, test_spawn_watchdog_pid);
        tcase_add_test(tc, test_spawn_no_fds);
        tcase_add_test(tc, test_spawn_without_handlers);
        tcase_add_test(tc, test_spawn_with_a_handler);
        tcase_add_test(tc, test_spawn_exec_errors);
        tcase_add_test(tc, test_spawn_returns_after_exec);
        tcase_add_test(tc, test_spawn_working_directory);
        tcase_add_test(tc, test_spawn_failed_steps);
        tcase_add_test(tc, test_spawn_exit_status);
        tcase_add_test(tc, test_spawn_sibling);
        tcase_add_test(tc, test_spawn_sibling_exec_error);
        tcase_add_test(tc, test_spawn_orphan);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(spawn_suite());
}
