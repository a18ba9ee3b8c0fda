/*
 * server-shim: the one launcher every contender of bench/reload-under-load
 * runs the fixture server through, so that the very same server runs
 * everywhere.
 *
 *   server-shim [--events PATH] [--from-server-starter] -- PROGRAM [ARG...]
 *
 * --from-server-starter   Server::Starter's start_server passes its listening
 *                         sockets as SERVER_STARTER_PORT="host:port=FD;...".
 *                         Move those fds to 3, 4, ... and set LISTEN_FDS,
 *                         LISTEN_PID (this pid: exec keeps it) and
 *                         LISTEN_FDNAMES, i.e. speak sd_listen_fds(3), which
 *                         is what the fixture server (and handoff) expect.
 * --events PATH           Before exec, send one datagram to the AF_UNIX
 *                         socket PATH: "exec pid=P ppid=Q t=US gen=G", with
 *                         t in CLOCK_MONOTONIC microseconds. The benchmark
 *                         uses it to time reloads (trigger -> new generation
 *                         started) and to find the supervising process.
 *                         Best effort: a failed send is ignored.
 *
 * Without options it is a plain exec. It costs one exec (about 1 ms), the
 * same for every contender. It leaves its own command line in
 * SERVER_SHIM_ARGV (arguments joined by 0x1f), for a server that restarts
 * itself (the fixture's --self-reexec) to run the same way again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 16

static void die(const char *what)
{
	fprintf(stderr, "server-shim: %s: %s\n", what, strerror(errno));
	exit(127);
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void send_event(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sun.sun_path)
		return;
	strcpy(sun.sun_path, path);
	const char *gen = getenv("HANDOFF_GENERATION");
	if (!gen)
		gen = getenv("SERVER_STARTER_GENERATION");
	char msg[256];
	int n = snprintf(msg, sizeof msg, "exec pid=%d ppid=%d t=%lld gen=%s", (int)getpid(), (int)getppid(),
			 now_us(), gen ? gen : "-");
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
}

/* SERVER_STARTER_PORT="127.0.0.1:8080=5;/tmp/sock=6" -> fds at 3.., LISTEN_* set. */
static void from_server_starter(void)
{
	const char *spec = getenv("SERVER_STARTER_PORT");
	if (!spec || !*spec) {
		errno = EINVAL;
		die("SERVER_STARTER_PORT is not set");
	}
	int fds[MAX_FDS], n = 0;
	char names[1024] = "";
	char *copy = strdup(spec), *save = NULL;
	for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
		char *eq = strrchr(item, '=');
		if (!eq || n == MAX_FDS) {
			errno = EINVAL;
			die("bad SERVER_STARTER_PORT");
		}
		/* Park every fd above the target range first, so that moving one
		 * to 3+i never overwrites another we still need. */
		int fd = fcntl(atoi(eq + 1), F_DUPFD_CLOEXEC, 3 + MAX_FDS);
		if (fd < 0)
			die("SERVER_STARTER_PORT fd");
		close(atoi(eq + 1));
		fds[n++] = fd;
		size_t used = strlen(names);
		snprintf(names + used, sizeof names - used, "%sserver-starter", n > 1 ? ":" : "");
	}
	free(copy);
	for (int i = 0; i < n; i++) {
		if (dup2(fds[i], 3 + i) < 0) /* dup2 leaves the new fd without CLOEXEC */
			die("dup2");
		close(fds[i]);
	}
	char buf[32];
	snprintf(buf, sizeof buf, "%d", n);
	setenv("LISTEN_FDS", buf, 1);
	snprintf(buf, sizeof buf, "%d", (int)getpid());
	setenv("LISTEN_PID", buf, 1);
	setenv("LISTEN_FDNAMES", names, 1);
}

int main(int argc, char **argv)
{
	const char *events = NULL;
	int i = 1, ss = 0;
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
			events = argv[++i];
		else if (strcmp(argv[i], "--from-server-starter") == 0)
			ss = 1;
		else {
			fprintf(stderr, "usage: server-shim [--events PATH] [--from-server-starter] -- PROGRAM [ARG...]\n");
			return 127;
		}
	}
	if (i + 1 >= argc) {
		fprintf(stderr, "server-shim: missing -- PROGRAM\n");
		return 127;
	}
	if (ss)
		from_server_starter();
	if (events)
		send_event(events);
	size_t len = 1;
	for (int k = 0; k < argc; k++)
		len += strlen(argv[k]) + 1;
	char *joined = calloc(1, len);
	if (!joined)
		die("calloc");
	for (int k = 0; k < argc; k++) {
		if (k)
			strcat(joined, "\x1f");
		strcat(joined, argv[k]);
	}
	setenv("SERVER_SHIM_ARGV", joined, 1);
	free(joined);
	execv(argv[i + 1], argv + i + 1);
	die(argv[i + 1]);
}
