/*
 * spawn-floor: the idle reload figures of bench/reload-under-load, and the
 * floors they are compared with, all timed by this one small program so that
 * both sides of each comparison are measured the same way (the same clock,
 * the same notify socket, no Python in between).
 *
 *   spawn-floor floor N -- APP [ARG...]
 *       N times back to back: vfork + exec APP with a listening socket at
 *       fd 3 (LISTEN_FDS=1, LISTEN_PID = its pid) and NOTIFY_SOCKET here;
 *       time until its READY=1 arrives; then SIGTERM the previous one (reaped
 *       whenever it has exited), as a supervisor would. The floor of a
 *       reload.
 *   spawn-floor reload N -- HANDOFF [ARG...]
 *       Start HANDOFF (supervise mode) with NOTIFY_SOCKET here; once READY=1,
 *       N times back to back: SIGHUP, time until its next READY=1. Also its
 *       CPU time (/proc/PID/schedstat), /proc/PID/smaps_rollup (Private_Dirty, Pss)
 *       and open fds at the start, after 10 reloads and at the end.
 *   spawn-floor paired N -- HANDOFF [ARG...] -- APP [ARG...]
 *       The reloads of `reload`, in 20 blocks, each after a block of bare
 *       starts of APP (the app of HANDOFF's command line, after its "--")
 *       as `floor` times them: 3 for every 10 reloads. Per block: both
 *       p50s, handoff's CPU per reload (up to its settling after the last
 *       one) and this program's own per bare start, and the block's
 *       reloads per second. So each ratio is of two figures taken a second
 *       apart, and the machine's drift over a run, which on a VM can be
 *       larger than what is measured, moves both alike.
 *       Each block also reloads the relay (below) as many times as
 *       handoff, before handoff in even blocks and after it in odd ones:
 *       what any supervisor in the middle pays, next to what handoff does.
 *   spawn-floor relay 1 -- APP [ARG...]
 *       The least a supervisor that stays in the middle can do, to compare
 *       handoff with: a listener at fd 3, one notify socket for all its
 *       generations, an epoll loop over a signalfd and that socket. Starts
 *       APP as `floor` does; on SIGHUP sends RELOADING=1 up and starts the
 *       next one; on its READY=1 sends READY=1 up and SIGTERMs the one
 *       before; reaps on SIGCHLD; on SIGTERM stops its generations, waits
 *       for them and exits. No logging, no bookkeeping, no checks.
 *       With SPAWN_FLOOR_RELAY_SPIN_US=U in its environment it spins U
 *       microseconds on the CPU after each spawn: how much of a
 *       supervisor's CPU time after it starts the app shows in the reload
 *       latency (bench/README.md).
 *   spawn-floor handover N -- HANDOFF [ARG...]
 *       The same in handover mode, this process being the service manager:
 *       a child subreaper that answers BARRIER=1 (closes the fd). Times
 *       SIGHUP to the main handoff -> its MAINPID= datagram; then waits for
 *       the old main to exit, and for the service to be idle (the new main
 *       in epoll_wait, its standby blocked waiting for its start) before the next
 *       reload. At the end, the standby's Private_Dirty and Pss too.
 *   spawn-floor start N -- PROGRAM [ARG...]
 *       N times: vfork + exec PROGRAM (stdout to /dev/null) until it exits.
 *   spawn-floor wake N -- -
 *       What waking a sleeping process costs here: N round trips of one
 *       byte between this process and a child, each blocked in recv() on
 *       a socketpair (SOCK_SEQPACKET: the child sees the end), 2 ms apart
 *       (so that each wakes a process that has slept, as a supervisor
 *       sleeps while its app starts); one wake-up is half a round trip. A
 *       supervisor in the middle adds two to a reload: the signal, and the
 *       relayed READY=1.
 *
 * Prints one JSON object. Every wait has a deadline (exit 1 when one passes).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEADLINE_US (10 * 1000000LL)

static int notify_fd = -1;
static char notify_name[64];

__attribute__((noreturn)) static void die(const char *what)
{
	fprintf(stderr, "spawn-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void notify_open(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(notify_name, sizeof notify_name, "@spawn-floor/%d", (int)getpid());
	size_t l = strlen(notify_name);
	memcpy(sun.sun_path, notify_name, l);
	sun.sun_path[0] = '\0';
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0 || bind(notify_fd, (struct sockaddr *)&sun, offsetof(struct sockaddr_un, sun_path) + l) < 0)
		die("notify socket");
	/* Out of the way of the listener that run_floor() puts at fd 3. */
	int high = fcntl(notify_fd, F_DUPFD_CLOEXEC, 10);
	if (high < 0)
		die("F_DUPFD_CLOEXEC");
	close(notify_fd);
	notify_fd = high;
	int one = 1;
	if (setsockopt(notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
		die("SO_PASSCRED");
}

/* Reads one datagram that is waiting; closes any fds that came with it,
 * which answers BARRIER=1 as systemd does. Returns its sender. */
static pid_t notify_read(char *buf, size_t size)
{
	union {
		struct cmsghdr align;
		char raw[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 16)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
			     .msg_controllen = sizeof control };
	ssize_t n = recvmsg(notify_fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		die("recvmsg");
	buf[n] = '\0';
	pid_t sender = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred u;
			memcpy(&u, CMSG_DATA(c), sizeof u);
			sender = u.pid;
		} else if (c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
				close(fd);
			}
		}
	}
	return sender;
}

/* Receives one datagram (deadline: DEADLINE_US from now). */
static pid_t notify_receive(char *buf, size_t size)
{
	struct pollfd p = { .fd = notify_fd, .events = POLLIN };
	int r = poll(&p, 1, (int)(DEADLINE_US / 1000));
	if (r == 0) {
		fprintf(stderr, "spawn-floor: no notification within %lld s\n", DEADLINE_US / 1000000);
		exit(1);
	}
	if (r < 0)
		die("poll");
	return notify_read(buf, size);
}

/* The value of KEY= in a notify datagram, or NULL. */
static const char *field(const char *msg, const char *key, char *out, size_t size)
{
	size_t kl = strlen(key);
	for (const char *line = msg; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t ll = end ? (size_t)(end - line) : strlen(line);
		if (ll > kl && strncmp(line, key, kl) == 0 && line[kl] == '=') {
			snprintf(out, size, "%.*s", (int)(ll - kl - 1), line + kl + 1);
			return out;
		}
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

/* Waits for a datagram from pid (any sender: pid 0) that has KEY=; returns
 * its value in out. */
static void wait_field(pid_t pid, const char *key, char *out, size_t size)
{
	char buf[4096];
	for (;;) {
		pid_t sender = notify_receive(buf, sizeof buf);
		if ((pid == 0 || sender == pid) && field(buf, key, out, size))
			return;
	}
}

/* The environment for a child: ours minus what belongs to our own manager,
 * plus NOTIFY_SOCKET and, with a listener, LISTEN_FDS/LISTEN_PID. *pid_slot
 * points at the digits of LISTEN_PID, filled in the child. */
static char **child_env(bool listener, char **pid_slot)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 5, sizeof *env);
	static char notify[96], listen_pid[32] = "LISTEN_PID=";
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0 && strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
			env[k++] = environ[i];
	snprintf(notify, sizeof notify, "NOTIFY_SOCKET=%s", notify_name);
	env[k++] = notify;
	if (listener) {
		env[k++] = (char *)"LISTEN_FDS=1";
		env[k++] = listen_pid;
		*pid_slot = listen_pid + strlen("LISTEN_PID=");
	}
	env[k] = NULL;
	return env;
}

/* Async-signal-safe decimal, for the vfork child. */
static void put_pid(char *dst, long v)
{
	char tmp[24];
	int n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < 23);
	while (n)
		*dst++ = tmp[--n];
	*dst = '\0';
}

/* Set in the relay, which blocks the signals its signalfd reads: its
 * children start with none blocked, as handoff's do. */
static bool unblock_in_child;

static pid_t spawn(char **argv, char **env, char *pid_slot, bool quiet)
{
	pid_t pid = vfork();
	if (pid < 0)
		die("vfork");
	if (pid == 0) {
		if (unblock_in_child) {
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
		}
		if (pid_slot)
			put_pid(pid_slot, (long)syscall(SYS_getpid));
		if (quiet) {
			int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
			if (devnull >= 0)
				dup2(devnull, 1);
		}
		execve(argv[0], argv, env);
		_exit(127);
	}
	return pid;
}

/* waitpid with a deadline, through a pidfd. Notifications that arrive
 * meanwhile are read and dropped (their fds closed): an old main handoff
 * waits for the answer to its BARRIER=1 before it exits. */
static int wait_exit(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	long long deadline = now_us() + DEADLINE_US;
	while (pidfd >= 0) {
		struct pollfd p[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = notify_fd, .events = POLLIN } };
		long long left = deadline - now_us();
		int r = left > 0 ? poll(p, 2, (int)(left / 1000) + 1) : 0;
		if (r == 0) {
			fprintf(stderr, "spawn-floor: pid %d did not exit within %lld s\n", (int)pid,
				DEADLINE_US / 1000000);
			exit(1);
		}
		if (r < 0 && errno != EINTR)
			die("poll");
		if (r > 0 && (p[1].revents & POLLIN)) {
			char buf[4096];
			(void)notify_receive(buf, sizeof buf);
		}
		if (r > 0 && (p[0].revents & POLLIN)) {
			close(pidfd);
			break;
		}
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static void print_spread(const char *name, long long *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_ll);
	int p99 = (int)((n - 1) * 0.99 + 0.5);
	printf("\"%s\": {\"n\": %d, \"min_us\": %lld, \"p50_us\": %lld, \"p99_us\": %lld, \"max_us\": %lld}", name, n,
	       v[0], v[n / 2], v[p99], v[n - 1]);
}

typedef struct {
	long private_dirty_kb, pss_kb, fds;
	double cpu_s;
} Sample;

/* The children of pid (of its main thread), at most max of them; -1 when
 * they cannot be read. */
static int children_of(pid_t pid, pid_t *out, int max)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	int k = 0;
	for (char *t = strtok(buf, " \n"); t && k < max; t = strtok(NULL, " \n"))
		out[k++] = (pid_t)atoi(t);
	return k;
}

/* The system call a sleeping pid is blocked in (/proc/PID/syscall), or -1. */
static long blocked_in(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
	FILE *f = fopen(path, "re");
	long nr = -1;
	if (f) {
		if (fscanf(f, "%ld", &nr) != 1)
			nr = -1;
		fclose(f);
	}
	return nr;
}

/* True while pid sits in epoll_wait() with exactly one child (its serving
 * generation): nothing retiring, nothing half done. */
static bool settled(pid_t pid)
{
	pid_t kids[2];
	if (children_of(pid, kids, 2) != 1)
		return false;
	long nr = blocked_in(pid);
#ifdef SYS_epoll_wait
	if (nr == SYS_epoll_wait)
		return true;
#endif
	return nr == SYS_epoll_pwait;
}

/* A standby waiting for its start: blocked in the recv() that peeks at the
 * size of the start message (recvfrom), or in recvmsg(). */
static bool waiting_for_go(pid_t pid)
{
	long nr = blocked_in(pid);
	return nr == SYS_recvfrom || nr == SYS_recvmsg;
}

/* Handover mode: the standby (the next handoff started ahead), i.e. a child
 * of ours that is not the main, or 0; *idle says whether every such child is
 * waiting for its reload. */
static pid_t standby_of(pid_t main_pid, bool *idle)
{
	pid_t kids[64], standby = 0;
	int n = children_of(getpid(), kids, 64);
	*idle = n >= 0;
	for (int i = 0; i < n; i++)
		if (kids[i] != main_pid) {
			if (!standby)
				standby = kids[i];
			if (!waiting_for_go(kids[i]))
				*idle = false;
		}
	return standby;
}

/* Waits (deadline: 2 s) until pid has settled, so that each sample sees the
 * same state: one generation, the loop idle. */
static void wait_settled(pid_t pid)
{
	long long deadline = now_us() + 2000000;
	while (!settled(pid) && now_us() < deadline) {
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

/* A process's CPU time in seconds: the scheduler's own count in
 * /proc/PID/schedstat (nanoseconds on a CPU), not utime + stime, which are
 * sampled at clock ticks (10 ms here: too coarse for 0.1 ms per reload).
 * Both count the main thread; handoff and this program have no other.
 * Without schedstat (CONFIG_SCHED_INFO off), utime + stime it is, and the
 * run fails if neither can be read: a CPU figure of 0 would pass its
 * check unmeasured. */
static double cpu_s_of(pid_t pid)
{
	char path[64], line[512];
	unsigned long long ns = 0;
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", &ns) != 1)
			ns = 0;
		fclose(f);
	}
	if (ns)
		return (double)ns / 1e9;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	unsigned long ut, st;
	char *p = f && fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
	if (f)
		fclose(f);
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		die("CPU time of the process (neither /proc/PID/schedstat nor /proc/PID/stat)");
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void smaps_of(pid_t pid, Sample *s)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof line, f)) {
			sscanf(line, "Private_Dirty: %ld kB", &s->private_dirty_kb);
			sscanf(line, "Pss: %ld kB", &s->pss_kb);
		}
		fclose(f);
	}
}

static Sample sample(pid_t pid)
{
	wait_settled(pid);
	Sample s = { -1, -1, 0, -1 };
	char path[64];
	smaps_of(pid, &s);
	s.cpu_s = cpu_s_of(pid);
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				s.fds++;
		closedir(d);
	} else
		s.fds = -1;
	return s;
}

static void print_sample(const char *name, Sample s)
{
	printf(", \"%s\": {\"private_dirty_kb\": %ld, \"pss_kb\": %ld, \"fds\": %ld, \"cpu_s\": %.6f}", name,
	       s.private_dirty_kb, s.pss_kb, s.fds, s.cpu_s);
}

static double self_cpu_s(void)
{
	return cpu_s_of(getpid());
}

/* The listener the bare starts get at fd 3, not CLOEXEC. */
static void floor_listener(void)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(l, SOMAXCONN) < 0)
		die("listener");
	if (l != 3 && (dup2(l, 3) < 0 || close(l) < 0))
		die("dup2");
}

/* n bare starts back to back, each timed into t[]: vfork + exec of the app
 * until its READY=1, then SIGTERM to the one before (reaped whenever it has
 * exited), as a supervisor retires the old generation. The last one is
 * stopped and waited for at the end. Returns the seconds from the first
 * start to the last READY=1 (as reload_block() counts its reloads). */
static double floor_block(char **argv, char **env, char *slot, int n, long long *t)
{
	char v[32];
	pid_t prev = 0;
	long long start = now_us();
	for (int i = 0; i < n; i++) {
		long long t0 = now_us();
		pid_t pid = spawn(argv, env, slot, false);
		wait_field(pid, "READY", v, sizeof v);
		t[i] = now_us() - t0;
		if (prev > 0)
			kill(prev, SIGTERM);
		prev = pid;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	double secs = (double)(now_us() - start) / 1e6;
	kill(prev, SIGTERM);
	wait_exit(prev);
	return secs;
}

static int run_floor(int n, char **argv)
{
	floor_listener();
	char *slot = NULL;
	char **env = child_env(true, &slot);
	long long *t = calloc((size_t)n, sizeof *t);
	double cpu0 = self_cpu_s();
	floor_block(argv, env, slot, n, t);
	while (waitpid(-1, NULL, 0) > 0)
		;
	/* This program's own CPU time per start (vfork, READY=1, kill, reap):
	 * what a bare spawner costs on this machine, next to handoff's. */
	printf("{\"mode\": \"floor\", \"cpu_ms_per_spawn\": %.3f, ", 1000 * (self_cpu_s() - cpu0) / n);
	print_spread("spawn_to_ready", t, n);
	printf("}\n");
	return 0;
}

static int run_start(int n, char **argv)
{
	char **env = child_env(false, NULL);
	long long *t = calloc((size_t)n, sizeof *t);
	for (int i = 0; i < n; i++) {
		long long t0 = now_us();
		int status = wait_exit(spawn(argv, env, NULL, true));
		t[i] = now_us() - t0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "spawn-floor: %s exited with status 0x%x\n", argv[0], status);
			return 1;
		}
	}
	printf("{\"mode\": \"start\", ");
	print_spread("start_to_exit", t, n);
	printf("}\n");
	return 0;
}

static int run_wake(int n)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	struct timeval tv = { .tv_sec = DEADLINE_US / 1000000 };
	if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
		die("SO_RCVTIMEO");
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		/* Echoes until the other end closes (also when the parent
		 * dies); the deadline covers a parent that hangs. */
		char b;
		close(sv[0]);
		if (setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
			_exit(1);
		while (recv(sv[1], &b, 1, 0) == 1)
			if (send(sv[1], &b, 1, MSG_NOSIGNAL) != 1)
				_exit(1);
		_exit(0);
	}
	close(sv[1]);
	long long *t = calloc((size_t)n, sizeof *t);
	if (!t)
		die("calloc");
	for (int i = 0; i < n; i++) {
		struct timespec pause = { .tv_nsec = 2000000 };
		nanosleep(&pause, NULL);
		struct timespec a, z;
		char b = 'x';
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (send(sv[0], &b, 1, MSG_NOSIGNAL) != 1 || recv(sv[0], &b, 1, 0) != 1)
			die("round trip");
		clock_gettime(CLOCK_MONOTONIC, &z);
		t[i] = (z.tv_sec - a.tv_sec) * 1000000000LL + (z.tv_nsec - a.tv_nsec);
	}
	close(sv[0]);
	wait_exit(child);
	qsort(t, (size_t)n, sizeof *t, cmp_ll);
	int p99 = (int)((n - 1) * 0.99 + 0.5);
	printf("{\"mode\": \"wake\", \"one_wake_up\": {\"n\": %d, \"p50_us\": %.1f, \"p99_us\": %.1f}}\n", n,
	       t[n / 2] / 2000.0, t[p99] / 2000.0);
	return 0;
}

/* The next reload finds an idle service, as one a person reloads: its
 * main in epoll_wait, and its standby, if it keeps one, started, loaded and
 * waiting in recvmsg(). Deadline: 2 s. */
static void wait_idle(pid_t main_pid, bool standby)
{
	long long deadline = now_us() + 2000000;
	for (;;) {
		bool idle;
		pid_t sb = standby_of(main_pid, &idle);
		if ((settled(main_pid) && idle && (!standby || sb > 0)) || now_us() >= deadline)
			break;
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

/* Starts HANDOFF with NOTIFY_SOCKET here and waits for its READY=1. */
static pid_t start_service(char **argv)
{
	char v[64];
	pid_t pid = spawn(argv, child_env(false, NULL), NULL, false);
	wait_field(pid, "READY", v, sizeof v);
	return pid;
}

/* One reload: SIGHUP to the main handoff, timed until its next datagram
 * with KEY= (whose value goes into v). Microseconds. */
static long long timed_sighup(pid_t main_pid, const char *key, char *v, size_t size)
{
	long long t0 = now_us();
	if (kill(main_pid, SIGHUP) < 0)
		die("kill");
	wait_field(main_pid, key, v, size);
	return now_us() - t0;
}

static void print_samples(Sample s0, Sample s10, Sample s1)
{
	print_sample("start", s0);
	print_sample("after10", s10);
	print_sample("end", s1);
}

/* Stops the service and reaps what is ours. */
static void finish_service(pid_t main_pid)
{
	kill(main_pid, SIGTERM);
	wait_exit(main_pid);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static int run_reload(int n, char **argv, bool handover)
{
	if (handover && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("PR_SET_CHILD_SUBREAPER");
	char v[64];
	pid_t main_pid = start_service(argv);
	/* A handoff that keeps a standby starts it once it serves; one that
	 * does not (an older build) is compared without. */
	bool standby = false;
	for (long long until = now_us() + 500000; handover && !standby && now_us() < until;) {
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
		bool idle;
		standby = standby_of(main_pid, &idle) > 0;
	}
	if (handover)
		wait_idle(main_pid, standby);
	Sample s0 = sample(main_pid), s10 = s0;
	long long *t = calloc((size_t)n, sizeof *t);
	long long start = now_us();
	for (int i = 0; i < n; i++) {
		if (i == 10)
			s10 = sample(main_pid);
		t[i] = timed_sighup(main_pid, handover ? "MAINPID" : "READY", v, sizeof v);
		if (!handover)
			continue;
		pid_t next = (pid_t)atoi(v);
		/* The old main retires its generation and exits; it is our child
		 * (the first one, or started as its predecessor's sibling). */
		wait_exit(main_pid);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		main_pid = next;
		wait_idle(main_pid, standby);
	}
	double secs = (double)(now_us() - start) / 1e6;
	Sample s1 = sample(main_pid);
	printf("{\"mode\": \"%s\", \"pid\": %d, \"seconds\": %.3f, \"per_s\": %.1f, ", handover ? "handover" : "reload",
	       (int)main_pid, secs, n / secs);
	print_spread(handover ? "sighup_to_mainpid" : "sighup_to_ready", t, n);
	print_samples(s0, s10, s1);
	/* What the standby costs besides: its own memory (it is idle). */
	bool idle;
	pid_t sb = handover ? standby_of(main_pid, &idle) : 0;
	if (sb > 0) {
		Sample ss = { -1, -1, 0, -1 };
		smaps_of(sb, &ss);
		printf(", \"standby\": {\"pid\": %d, \"private_dirty_kb\": %ld, \"pss_kb\": %ld}", (int)sb,
		       ss.private_dirty_kb, ss.pss_kb);
	}
	printf("}\n");
	fflush(stdout);
	finish_service(main_pid);
	return 0;
}

/* Sends one datagram to the manager's NOTIFY_SOCKET (path or abstract). */
static void send_up(int fd, const char *msg)
{
	if (send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		die("send to NOTIFY_SOCKET");
}

static int connect_up(void)
{
	const char *up = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t l = up ? strlen(up) : 0;
	if (l == 0 || l >= sizeof sun.sun_path) {
		fprintf(stderr, "spawn-floor: relay: no usable NOTIFY_SOCKET\n");
		exit(2);
	}
	memcpy(sun.sun_path, up, l);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, offsetof(struct sockaddr_un, sun_path) + l) < 0)
		die("connect to NOTIFY_SOCKET");
	return fd;
}

static int run_relay(char **app)
{
	floor_listener();
	int up = connect_up();
	char *slot = NULL;
	char **env = child_env(true, &slot);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		die("sigprocmask");
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event es = { .events = EPOLLIN, .data.fd = sfd }, en = { .events = EPOLLIN, .data.fd = notify_fd };
	if (sfd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &es) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, notify_fd, &en) < 0)
		die("signalfd, epoll");
	const char *spin_env = getenv("SPAWN_FLOOR_RELAY_SPIN_US");
	long long spin_us = spin_env ? atoll(spin_env) : 0;
	unblock_in_child = true;
	pid_t serving = 0, candidate = spawn(app, env, slot, false);
	for (bool stopping = false;;) {
		struct epoll_event ev;
		int r = epoll_wait(ep, &ev, 1, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("epoll_wait");
		if (ev.data.fd == notify_fd) {
			/* epoll has just said a datagram waits: no poll first. */
			char buf[4096], v[8];
			pid_t sender = notify_read(buf, sizeof buf);
			if (candidate && sender == candidate && field(buf, "READY", v, sizeof v)) {
				send_up(up, "READY=1");
				if (serving)
					kill(serving, SIGTERM);
				serving = candidate;
				candidate = 0;
			}
			continue;
		}
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof si) == sizeof si) {
			if (si.ssi_signo == SIGHUP && !candidate && !stopping) {
				send_up(up, "RELOADING=1");
				candidate = spawn(app, env, slot, false);
				for (long long until = now_us() + spin_us; spin_us > 0 && now_us() < until;)
					;
			} else if (si.ssi_signo == SIGTERM && !stopping) {
				stopping = true;
				if (serving)
					kill(serving, SIGTERM);
				if (candidate)
					kill(candidate, SIGTERM);
			}
		}
		pid_t pid;
		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
			if (pid == serving)
				serving = 0;
			if (pid == candidate)
				candidate = 0;
		}
		if (stopping && pid < 0 && errno == ECHILD)
			return 0;
	}
}

/* The median of n figures, sorted in place (a block's order is not used
 * after: the run's spread sorts them all again). */
static long long p50_of(long long *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_ll);
	return v[n / 2];
}

#define PAIRED_BLOCKS 20

/* One block of n back-to-back reloads of the service at pid, timed into
 * t[]; its CPU per reload in *cpu_ms, up to its settling after the last
 * one (the last old generation retired and reaped: part of the reload).
 * The sample taken after 10 reloads of handoff is not part of the block's
 * time. Returns the block's seconds. */
static double reload_block(pid_t pid, int n, long long *t, double *cpu_ms, int sample_at, Sample *s10)
{
	char v[64];
	wait_settled(pid);
	double cpu0 = cpu_s_of(pid);
	long long start = now_us();
	for (int i = 0; i < n; i++) {
		if (i == sample_at) {
			long long pause = now_us();
			*s10 = sample(pid);
			start += now_us() - pause;
		}
		t[i] = timed_sighup(pid, "READY", v, sizeof v);
	}
	double secs = (double)(now_us() - start) / 1e6;
	wait_settled(pid);
	*cpu_ms = 1000 * (cpu_s_of(pid) - cpu0) / n;
	return secs;
}

static int run_paired(int n, char **argv)
{
	char **app = NULL;
	for (char **a = argv + 1; *a && !app; a++)
		if (strcmp(*a, "--") == 0)
			app = a + 1;
	if (!app || !*app) {
		fprintf(stderr, "spawn-floor: paired: no app after the handoff command's \"--\"\n");
		return 2;
	}
	int per_block = n / PAIRED_BLOCKS > 0 ? n / PAIRED_BLOCKS : 1;
	int floor_per_block = per_block * 3 / 10 > 3 ? per_block * 3 / 10 : 3;
	n = per_block * PAIRED_BLOCKS;

	pid_t main_pid = start_service(argv);
	/* The relay: this program again, with the same app. */
	size_t napp = 0;
	while (app[napp])
		napp++;
	char **relay_argv = calloc(napp + 5, sizeof *relay_argv);
	relay_argv[0] = (char *)"/proc/self/exe";
	relay_argv[1] = (char *)"relay";
	relay_argv[2] = (char *)"1";
	relay_argv[3] = (char *)"--";
	memcpy(relay_argv + 4, app, napp * sizeof *app);
	pid_t relay_pid = start_service(relay_argv);
	/* Both are started: the listener at fd 3 is the bare starts' alone. */
	floor_listener();
	char *slot = NULL;
	char **floor_env = child_env(true, &slot);

	Sample s0 = sample(main_pid), s10 = s0, r0 = sample(relay_pid), unused;
	long long *t = calloc((size_t)n, sizeof *t), *rt = calloc((size_t)n, sizeof *rt);
	long long *ft = calloc((size_t)(floor_per_block * PAIRED_BLOCKS), sizeof *ft);
	double reload_s = 0;
	printf("{\"mode\": \"paired\", \"pid\": %d, \"relay_pid\": %d, \"per_block\": %d, \"floor_per_block\": %d, "
	       "\"blocks\": [",
	       (int)main_pid, (int)relay_pid, per_block, floor_per_block);
	for (int b = 0; b < PAIRED_BLOCKS; b++) {
		long long *fb = ft + b * floor_per_block, *hb = t + b * per_block, *rb = rt + b * per_block;
		double fcpu0 = self_cpu_s();
		double fsecs = floor_block(app, floor_env, slot, floor_per_block, fb);
		double fcpu = self_cpu_s() - fcpu0;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		/* handoff and the relay take turns at going first. */
		double cpu, rcpu, secs;
		int at = 10 - b * per_block;
		if (b % 2)
			secs = reload_block(main_pid, per_block, hb, &cpu, at, &s10);
		double rsecs = reload_block(relay_pid, per_block, rb, &rcpu, -1, &unused);
		if (b % 2 == 0)
			secs = reload_block(main_pid, per_block, hb, &cpu, at, &s10);
		reload_s += secs;
		long long fp = p50_of(fb, floor_per_block), hp = p50_of(hb, per_block), rp = p50_of(rb, per_block);
		printf("%s{\"floor_p50_us\": %lld, \"reload_p50_us\": %lld, \"ratio\": %.4f, \"cpu_ms\": %.4f, "
		       "\"floor_cpu_ms\": %.4f, \"per_s\": %.1f, \"relay_p50_us\": %lld, \"relay_ratio\": %.4f, "
		       "\"relay_cpu_ms\": %.4f, \"floor_per_s\": %.1f, \"relay_per_s\": %.1f}",
		       b ? ", " : "", fp, hp, (double)hp / (double)fp, cpu, 1000 * fcpu / floor_per_block,
		       per_block / secs, rp, (double)rp / (double)fp, rcpu, floor_per_block / fsecs, per_block / rsecs);
	}
	Sample s1 = sample(main_pid), r1 = sample(relay_pid);
	printf("], \"seconds\": %.3f, \"per_s\": %.1f, ", reload_s, n / reload_s);
	print_spread("sighup_to_ready", t, n);
	printf(", ");
	print_spread("relay", rt, n);
	printf(", ");
	print_spread("floor", ft, floor_per_block * PAIRED_BLOCKS);
	printf(", \"relay_cpu_s\": %.6f", r1.cpu_s - r0.cpu_s);
	print_samples(s0, s10, s1);
	printf("}\n");
	fflush(stdout);
	kill(relay_pid, SIGTERM);
	wait_exit(relay_pid);
	finish_service(main_pid);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: spawn-floor floor|reload|paired|handover|relay|start|wake N -- COMMAND [ARG...]\n");
		return 2;
	}
	int n = atoi(argv[2]);
	if (n < 1)
		return 2;
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	notify_open();
	char **cmd = argv + 4;
	if (strcmp(argv[1], "floor") == 0)
		return run_floor(n, cmd);
	if (strcmp(argv[1], "start") == 0)
		return run_start(n, cmd);
	if (strcmp(argv[1], "reload") == 0)
		return run_reload(n, cmd, false);
	if (strcmp(argv[1], "handover") == 0)
		return run_reload(n, cmd, true);
	if (strcmp(argv[1], "paired") == 0)
		return run_paired(n, cmd);
	if (strcmp(argv[1], "relay") == 0)
		return run_relay(cmd);
	if (strcmp(argv[1], "wake") == 0)
		return run_wake(n);
	return 2;
}
