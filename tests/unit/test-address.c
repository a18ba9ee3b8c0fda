/* SPDX-License-Identifier: MIT */
/* listen_address_parse(), fdname_is_valid() and listen_address_open() from
 * address.c. The open tests use real sockets: unix ones in a temporary
 * directory, inet ones on 127.0.0.1 with a port that was just free. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "address.h"
#include "unit.h"

/* ---- parsing ---------------------------------------------------------- */

typedef struct {
        const char *spec;
        AddressKind kind;
        const char *host; /* NULL: any */
        const char *port;
        const char *path;
        bool abstract;
        const char *name;
} ParseCase;

static void check_str(const char *spec, const char *field, const char *got, const char *want) {
        if (!want)
                ck_assert_msg(!got, "\"%s\": %s is \"%s\", expected NULL", spec, field, got);
        else {
                ck_assert_msg(got, "\"%s\": %s is NULL, expected \"%s\"", spec, field, want);
                ck_assert_msg(strcmp(got, want) == 0, "\"%s\": %s is \"%s\", expected \"%s\"", spec, field, got, want);
        }
}

static const ParseCase good[] = {
        { "localhost:80", ADDR_TCP, "localhost", "80", NULL, false, "unknown" },
        { "127.0.0.1:80", ADDR_TCP, "127.0.0.1", "80", NULL, false, "unknown" },
        { "0.0.0.0:65535", ADDR_TCP, "0.0.0.0", "65535", NULL, false, "unknown" },
        { "[::1]:8080", ADDR_TCP, "::1", "8080", NULL, false, "unknown" },
        { "[::]:80", ADDR_TCP, "::", "80", NULL, false, "unknown" },
        { "[fe80::1%lo]:1", ADDR_TCP, "fe80::1%lo", "1", NULL, false, "unknown" },
        { "8080", ADDR_TCP, NULL, "8080", NULL, false, "unknown" },
        { "1", ADDR_TCP, NULL, "1", NULL, false, "unknown" },
        { "tcp:8080", ADDR_TCP, NULL, "8080", NULL, false, "unknown" },
        { "tcp:127.0.0.1:80", ADDR_TCP, "127.0.0.1", "80", NULL, false, "unknown" },
        { "tcp:[::1]:443=https", ADDR_TCP, "::1", "443", NULL, false, "https" },
        { "udp:53", ADDR_UDP, NULL, "53", NULL, false, "unknown" },
        { "udp:127.0.0.1:5353", ADDR_UDP, "127.0.0.1", "5353", NULL, false, "unknown" },
        { "udp:[::1]:53=dns", ADDR_UDP, "::1", "53", NULL, false, "dns" },
        { "unix:/run/x.sock", ADDR_UNIX_STREAM, NULL, NULL, "/run/x.sock", false, "unknown" },
        { "unix:/", ADDR_UNIX_STREAM, NULL, NULL, "/", false, "unknown" },
        { "unix:@name", ADDR_UNIX_STREAM, NULL, NULL, "name", true, "unknown" },
        { "unix:@a/b", ADDR_UNIX_STREAM, NULL, NULL, "a/b", true, "unknown" },
        { "unix-dgram:/p", ADDR_UNIX_DGRAM, NULL, NULL, "/p", false, "unknown" },
        { "unix-dgram:@log=syslog", ADDR_UNIX_DGRAM, NULL, NULL, "log", true, "syslog" },
        { "8080=web", ADDR_TCP, NULL, "8080", NULL, false, "web" },
        { "127.0.0.1:80=http", ADDR_TCP, "127.0.0.1", "80", NULL, false, "http" },
        { "unix:/run/a.sock=admin", ADDR_UNIX_STREAM, NULL, NULL, "/run/a.sock", false, "admin" },
        { "unix:/run/a=b.sock=admin", ADDR_UNIX_STREAM, NULL, NULL, "/run/a=b.sock", false, "admin" },
        { "/run/x.sock", ADDR_UNIX_STREAM, NULL, NULL, "/run/x.sock", false, "unknown" }, /* as ListenStream= */
        { "@name=ctl", ADDR_UNIX_STREAM, NULL, NULL, "name", true, "ctl" },
        { "8080=with space", ADDR_TCP, NULL, "8080", NULL, false, "with space" },
        { "00080", ADDR_TCP, NULL, "00080", NULL, false, "unknown" },
};

START_TEST(test_parse_good) {
        const ParseCase *c = &good[_i];
        ListenAddress a = {};
        const char *err = NULL;
        int r = listen_address_parse(c->spec, &a, &err);
        ck_assert_msg(r == 0, "\"%s\": parse failed with %d (%s)", c->spec, r, err ? err : "no message");
        ck_assert_msg(a.kind == c->kind, "\"%s\": kind %d, expected %d", c->spec, a.kind, c->kind);
        check_str(c->spec, "host", a.host, c->host);
        check_str(c->spec, "port", a.port, c->port);
        check_str(c->spec, "path", a.path, c->path);
        ck_assert_msg(a.abstract == c->abstract, "\"%s\": abstract %d, expected %d", c->spec, a.abstract, c->abstract);
        check_str(c->spec, "name", a.name, c->name);
        listen_address_done(&a);
        ck_assert_ptr_null(a.host);
        ck_assert_ptr_null(a.name);
}
END_TEST

static const char *const bad[] = {
        "",
        "=name",
        "localhost",            /* no port: taken as a bare, non-numeric port */
        "localhost:",
        "127.0.0.1:",
        ":80",                  /* empty host */
        "[]:80",
        "0",
        "127.0.0.1:0",
        "65536",
        "127.0.0.1:65536",
        "99999",
        "123456",
        "http",
        "127.0.0.1:http",
        "80a",
        "-80",
        "+80",
        " 80",
        "::1:80",               /* IPv6 without brackets */
        "::1",
        "fe80::1:8080",
        "[::1]",
        "[::1]80",
        "[::1]:",
        "[::1:80",
        "tcp:",
        "udp:",
        "udp:0",
        "unix:",
        "unix:relative/path",
        "unix:./x.sock",
        "unix:@",
        "@",
        "unix-dgram:",
        "unix-dgram:x",
        "8080=",                /* empty name */
        "8080=a:b",             /* ':' in name */
        "8080=x\\",             /* '\\' in name */
        "unix:/x=",
        "8080=tab\there",
        "8080=\x7f",
};

START_TEST(test_parse_bad) {
        const char *spec = bad[_i];
        ListenAddress a = { .kind = ADDR_UDP, .port = (char *) "untouched" };
        const char *err = NULL;
        int r = listen_address_parse(spec, &a, &err);
        ck_assert_msg(r == -EINVAL, "\"%s\": expected -EINVAL, got %d", spec, r);
        ck_assert_msg(err && *err, "\"%s\": no error message", spec);
        /* *ret is not written on failure. */
        ck_assert_msg(a.kind == ADDR_UDP && a.port && strcmp(a.port, "untouched") == 0, "\"%s\": ret written", spec);
}
END_TEST

/* Which of the two messages a colon too many gets: a type that is none of
 * ours is named as such, an IPv6 address without brackets as that. */
START_TEST(test_parse_unknown_type) {
        static const struct {
                const char *spec, *error;
        } cases[] = {
                { "sctp:127.0.0.1:80", "unknown address type" },
                { "http://localhost:80", "unknown address type" },
                { "Unix-Seqpacket:/x:1", "unknown address type" },
                { "::1:80", "must be in brackets" },
                { "dead:beef::1:80", "must be in brackets" },
                { "fe80::1:80", "must be in brackets" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                ListenAddress a = {};
                const char *err = NULL;
                ck_assert_int_eq(listen_address_parse(cases[i].spec, &a, &err), -EINVAL);
                ck_assert_msg(err && strstr(err, cases[i].error), "\"%s\": \"%s\", expected \"%s\"", cases[i].spec,
                              err ? err : "(none)", cases[i].error);
        }
}
END_TEST

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);
        ck_assert_ptr_nonnull(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

START_TEST(test_parse_unix_path_length) {
        /* sun_path is 108 bytes: 107 characters and a NUL fit, 108 do not. */
        ListenAddress a = {};
        const char *err = NULL;
        char spec[300];

        char *p = repeat('x', 106);
        snprintf(spec, sizeof spec, "unix:/%s", p); /* 107 bytes with the '/' */
        ck_assert_int_eq(listen_address_parse(spec, &a, &err), 0);
        ck_assert_uint_eq(strlen(a.path), 107);
        listen_address_done(&a);

        snprintf(spec, sizeof spec, "unix:/%sx", p); /* 108 */
        ck_assert_int_eq(listen_address_parse(spec, &a, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "too long"));

        snprintf(spec, sizeof spec, "unix:/%sxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", p);
        ck_assert_int_eq(listen_address_parse(spec, &a, &err), -EINVAL);

        /* Abstract: a leading NUL and at most 107 name bytes. */
        snprintf(spec, sizeof spec, "unix:@%sx", p); /* 107-byte name */
        ck_assert_int_eq(listen_address_parse(spec, &a, &err), 0);
        ck_assert_uint_eq(strlen(a.path), 107);
        ck_assert(a.abstract);
        listen_address_done(&a);

        snprintf(spec, sizeof spec, "unix:@%sxx", p); /* 108 */
        ck_assert_int_eq(listen_address_parse(spec, &a, &err), -EINVAL);
        free(p);
}
END_TEST

START_TEST(test_fdname_is_valid) {
        ck_assert(fdname_is_valid("a"));
        ck_assert(fdname_is_valid("http"));
        ck_assert(fdname_is_valid("web-1.socket"));
        ck_assert(fdname_is_valid("with space"));
        ck_assert(fdname_is_valid("~!@#$%^&*()=+"));

        ck_assert(fdname_is_valid("")); /* as systemd's: FDNAME= stores under "" */
        ck_assert(!fdname_is_valid(":"));
        ck_assert(!fdname_is_valid("a:b"));
        ck_assert(!fdname_is_valid("a\\b")); /* an escape to sd_listen_fds_with_names() */
        ck_assert(!fdname_is_valid("x\\"));
        ck_assert(!fdname_is_valid("tab\t"));
        ck_assert(!fdname_is_valid("nl\n"));
        ck_assert(!fdname_is_valid("\x7f"));
        ck_assert(!fdname_is_valid("caf\xc3\xa9")); /* non-ASCII */

        char *s = repeat('n', 255);
        ck_assert(fdname_is_valid(s));
        free(s);
        s = repeat('n', 256);
        ck_assert(!fdname_is_valid(s));
        free(s);
}
END_TEST

/* ---- opening ---------------------------------------------------------- */

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

static int sockopt_int(int fd, int level, int opt) {
        int v = -1;
        socklen_t l = sizeof v;
        ck_assert_int_eq(getsockopt(fd, level, opt, &v, &l), 0);
        return v;
}

static bool is_cloexec(int fd) {
        int flags = fcntl(fd, F_GETFD);
        ck_assert_int_ge(flags, 0);
        return flags & FD_CLOEXEC;
}

static int open_spec(const char *spec, int *ret_fd, char **ret_created) {
        ListenAddress a = {};
        const char *err = NULL;
        int r = listen_address_parse(spec, &a, &err);
        ck_assert_msg(r == 0, "parse \"%s\": %d %s", spec, r, err ? err : "");
        *ret_fd = -1;
        *ret_created = (char *) "poison";
        r = listen_address_open(&a, spec, ret_fd, ret_created);
        listen_address_done(&a);
        return r;
}

static int unix_connect(const char *path, int type, int flags) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | flags, 0);
        ck_assert_int_ge(fd, 0);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

START_TEST(test_open_unix_stream) {
        make_tmpdir();
        char path[128], spec[160];
        snprintf(path, sizeof path, "%s/s.sock", tmpdir);
        snprintf(spec, sizeof spec, "unix:%s=admin", path);

        int fd;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_ptr_nonnull(created);
        ck_assert_str_eq(created, path);
        free(created);

        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
        ck_assert(is_cloexec(fd));
        ck_assert(!(fcntl(fd, F_GETFL) & O_NONBLOCK)); /* shared with generations: blocking */

        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));

        struct sockaddr_un sa;
        socklen_t l = sizeof sa;
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        ck_assert_int_eq(sa.sun_family, AF_UNIX);
        ck_assert_str_eq(sa.sun_path, path);

        /* A client gets through. */
        int c = unix_connect(path, SOCK_STREAM, 0);
        ck_assert_int_ge(c, 0);
        int s = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(s, 0);
        close(s);
        close(c);

        /* The path is live: a second open must refuse, and leave it alone. */
        int fd2;
        ck_assert_int_eq(open_spec(spec, &fd2, &created), -EADDRINUSE);
        ck_assert_int_eq(lstat(path, &st), 0);
        c = unix_connect(path, SOCK_STREAM, 0);
        ck_assert_msg(c >= 0, "the live socket was broken by the second open: %s", strerror(-c));
        close(c);

        /* Once nothing listens, the file is stale and is replaced. */
        close(fd);
        ck_assert_int_eq(unix_connect(path, SOCK_STREAM, 0), -ECONNREFUSED);
        ck_assert_int_eq(open_spec(spec, &fd2, &created), 0);
        ck_assert_ptr_nonnull(created);
        ck_assert_str_eq(created, path);
        free(created);
        ck_assert_int_eq(sockopt_int(fd2, SOL_SOCKET, SO_ACCEPTCONN), 1);
        c = unix_connect(path, SOCK_STREAM, 0);
        ck_assert_int_ge(c, 0);
        close(c);
        close(fd2);
        remove_tmpdir();
}
END_TEST

START_TEST(test_open_unix_live_other_type) {
        /* A live stream socket on the path; opening a datagram socket there
         * must fail with "address in use" and leave the live one alone. */
        make_tmpdir();
        char path[128], spec[160];
        snprintf(path, sizeof path, "%s/mixed.sock", tmpdir);
        snprintf(spec, sizeof spec, "unix:%s", path);

        int fd, fd2;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        free(created);

        snprintf(spec, sizeof spec, "unix-dgram:%s", path);
        int r = open_spec(spec, &fd2, &created);
        int c = unix_connect(path, SOCK_STREAM, 0);
        close(fd);
        remove_tmpdir();
        ck_assert_msg(c >= 0, "the live stream socket was removed");
        close(c);
        ck_assert_msg(r == -EADDRINUSE, "opening unix-dgram over a live stream socket returned %d (%s), expected -EADDRINUSE",
                      r, strerror(-r));
}
END_TEST

START_TEST(test_open_unix_regular_file_is_not_removed) {
        make_tmpdir();
        char path[128], spec[160];
        snprintf(path, sizeof path, "%s/file", tmpdir);
        snprintf(spec, sizeof spec, "unix:%s", path);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("data", f);
        fclose(f);

        int fd;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), -EADDRINUSE);
        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(st.st_size, 4);
        remove_tmpdir();
}
END_TEST

START_TEST(test_open_unix_missing_directory) {
        int fd;
        char *created;
        ck_assert_int_eq(open_spec("unix:/nonexistent-handoff-dir/x.sock", &fd, &created), -ENOENT);
}
END_TEST

START_TEST(test_open_unix_dgram) {
        make_tmpdir();
        char path[128], spec[160];
        snprintf(path, sizeof path, "%s/d.sock", tmpdir);
        snprintf(spec, sizeof spec, "unix-dgram:%s", path);

        int fd, fd2;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_str_eq(created, path);
        free(created);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
        ck_assert(is_cloexec(fd));

        int c = unix_connect(path, SOCK_DGRAM, 0);
        ck_assert_int_ge(c, 0);
        ck_assert_int_eq(send(c, "hi", 2, 0), 2);
        char buf[8];
        ck_assert_int_eq(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 2);
        close(c);

        ck_assert_int_eq(open_spec(spec, &fd2, &created), -EADDRINUSE);
        close(fd);
        ck_assert_int_eq(open_spec(spec, &fd2, &created), 0); /* stale: replaced */
        free(created);
        close(fd2);
        remove_tmpdir();
}
END_TEST

START_TEST(test_open_unix_abstract) {
        char spec[128], name[100];
        snprintf(name, sizeof name, "handoff-unit/%d/%ld", (int) getpid(), (long) random());
        snprintf(spec, sizeof spec, "unix:@%s", name);

        int fd, fd2;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_ptr_null(created); /* nothing to unlink */
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);

        struct sockaddr_un sa;
        socklen_t l = sizeof sa;
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        ck_assert_uint_eq(l, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
        ck_assert_int_eq(sa.sun_path[0], '\0');
        ck_assert(memcmp(sa.sun_path + 1, name, strlen(name)) == 0);

        ck_assert_int_eq(open_spec(spec, &fd2, &created), -EADDRINUSE);
        close(fd);
}
END_TEST

START_TEST(test_open_unix_longest_path) {
        make_tmpdir();
        char path[128], spec[160];
        size_t dl = strlen(tmpdir);
        memcpy(path, tmpdir, dl);
        path[dl] = '/';
        memset(path + dl + 1, 'p', 107 - dl - 1);
        path[107] = '\0';
        ck_assert_uint_eq(strlen(path), 107);
        snprintf(spec, sizeof spec, "unix:%s", path);

        int fd;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_str_eq(created, path);
        free(created);
        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        close(fd);
        remove_tmpdir();
}
END_TEST

START_TEST(test_open_unix_backlog) {
        /* listen(fd, 1) would refuse the third pending nonblocking client
         * with EAGAIN; SOMAXCONN takes all of these. */
        make_tmpdir();
        char path[128], spec[160];
        snprintf(path, sizeof path, "%s/b.sock", tmpdir);
        snprintf(spec, sizeof spec, "unix:%s", path);
        int fd;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        free(created);

        int clients[32];
        for (size_t i = 0; i < 32; i++) {
                clients[i] = unix_connect(path, SOCK_STREAM, SOCK_NONBLOCK);
                ck_assert_msg(clients[i] >= 0, "pending client %zu refused (%s): backlog too small", i,
                              strerror(-clients[i]));
        }
        for (size_t i = 0; i < 32; i++)
                close(clients[i]);
        close(fd);
        remove_tmpdir();
}
END_TEST

/* A port that was free a moment ago on 127.0.0.1. */
static unsigned free_port(int type) {
        int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        socklen_t l = sizeof sa;
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        close(fd);
        return ntohs(sa.sin_port);
}

static unsigned local_port(int fd, int *ret_family) {
        struct sockaddr_storage ss;
        socklen_t l = sizeof ss;
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &ss, &l), 0);
        *ret_family = ss.ss_family;
        if (ss.ss_family == AF_INET)
                return ntohs(((struct sockaddr_in *) &ss)->sin_port);
        ck_assert_int_eq(ss.ss_family, AF_INET6);
        return ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
}

static int tcp_connect4(unsigned port) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c, 0);
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons((uint16_t) port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        if (connect(c, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int e = errno;
                close(c);
                return -e;
        }
        return c;
}

/* The listen backlog of a TCP socket, as "ss -l" shows it (Send-Q), from
 * sock_diag. -1 when the kernel does not tell. */
static int tcp_listen_backlog(unsigned port) {
        int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (nl < 0)
                return -1;
        struct {
                struct nlmsghdr nlh;
                struct inet_diag_req_v2 req;
        } msg = {
                .nlh = {
                        .nlmsg_len = sizeof msg,
                        .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                        .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                },
                .req = {
                        .sdiag_family = AF_INET,
                        .sdiag_protocol = IPPROTO_TCP,
                        .idiag_states = 1U << TCP_LISTEN,
                },
        };
        int result = -1;
        if (send(nl, &msg, sizeof msg, 0) < 0)
                goto out;
        for (;;) {
                static char buf[32768];
                ssize_t n = recv(nl, buf, sizeof buf, 0);
                if (n <= 0)
                        goto out;
                for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK(h, (size_t) n); h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
                                goto out;
                        struct inet_diag_msg *d = NLMSG_DATA(h);
                        if (ntohs(d->id.idiag_sport) == port)
                                result = (int) d->idiag_wqueue;
                }
        }
out:
        close(nl);
        return result;
}

START_TEST(test_open_tcp_loopback) {
        unsigned port = free_port(SOCK_STREAM);
        char spec[64];
        snprintf(spec, sizeof spec, "127.0.0.1:%u=web", port);

        int fd, fd2, family;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_ptr_null(created);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
        ck_assert(is_cloexec(fd));
        ck_assert_uint_eq(local_port(fd, &family), port);
        ck_assert_int_eq(family, AF_INET);

        int c = tcp_connect4(port);
        ck_assert_int_ge(c, 0);
        int s = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(s, 0);
        close(s);
        close(c);

        int backlog = tcp_listen_backlog(port);
        if (backlog < 0)
                fprintf(stderr, "note: sock_diag unavailable, listen backlog not checked\n");
        else
                ck_assert_msg(backlog >= 128, "listen backlog is %d, expected SOMAXCONN", backlog);

        /* SO_REUSEADDR must not let a second listener onto the same port. */
        ck_assert_int_eq(open_spec(spec, &fd2, &created), -EADDRINUSE);
        close(fd);

        /* But the connection above, whose server end closed first and now
         * waits in TIME_WAIT, must not keep a restarted service off its
         * port: that is what SO_REUSEADDR is for. */
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_ptr_null(created);
        close(fd);
}
END_TEST

START_TEST(test_open_tcp_any) {
        /* No host: the IPv6 wildcard (dual-stack unless bindv6only) or the
         * IPv4 one; either way an IPv4 loopback client gets through. */
        unsigned port = free_port(SOCK_STREAM);
        char spec[64];
        snprintf(spec, sizeof spec, "%u", port);
        int fd, family;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_ptr_null(created);
        ck_assert_uint_eq(local_port(fd, &family), port);

        bool v6only = false;
        if (family == AF_INET6)
                v6only = sockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY);
        if (!v6only) {
                int c = tcp_connect4(port);
                ck_assert_msg(c >= 0, "IPv4 client refused on \"%s\": %s", spec, strerror(-c));
                close(c);
        }
        close(fd);
}
END_TEST

START_TEST(test_open_tcp_v6_loopback) {
        int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        if (probe < 0 || bind(probe, (struct sockaddr *) &sa, sizeof sa) < 0) {
                fprintf(stderr, "note: no IPv6 loopback, [::1] not tested\n");
                if (probe >= 0)
                        close(probe);
                return;
        }
        socklen_t l = sizeof sa;
        ck_assert_int_eq(getsockname(probe, (struct sockaddr *) &sa, &l), 0);
        unsigned port = ntohs(sa.sin6_port);
        close(probe);

        char spec[64];
        snprintf(spec, sizeof spec, "[::1]:%u", port);
        int fd, family;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_uint_eq(local_port(fd, &family), port);
        ck_assert_int_eq(family, AF_INET6);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
        close(fd);
}
END_TEST

START_TEST(test_open_udp_loopback) {
        unsigned port = free_port(SOCK_DGRAM);
        char spec[64];
        snprintf(spec, sizeof spec, "udp:127.0.0.1:%u", port);

        int fd, family;
        char *created;
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert_ptr_null(created);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
        ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
        ck_assert(is_cloexec(fd));
        ck_assert_uint_eq(local_port(fd, &family), port);
        ck_assert_int_eq(family, AF_INET);

        int c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c, 0);
        struct sockaddr_in to = {
                .sin_family = AF_INET,
                .sin_port = htons((uint16_t) port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        ck_assert_int_eq(sendto(c, "ping", 4, 0, (struct sockaddr *) &to, sizeof to), 4);
        char buf[16];
        ck_assert_int_eq(recv(fd, buf, sizeof buf, 0), 4);
        ck_assert(memcmp(buf, "ping", 4) == 0);
        close(c);
        close(fd);
}
END_TEST

/* Whether spec asks for fd (parsed here). */
static bool spec_matches(const char *spec, int fd) {
        ListenAddress a = {};
        const char *err = NULL;
        ck_assert_msg(listen_address_parse(spec, &a, &err) == 0, "parse \"%s\": %s", spec, err ? err : "");
        bool r = listen_address_matches(&a, fd);
        listen_address_done(&a);
        return r;
}

/* A socket recovered from systemd's fd store is reused for a --listen only
 * if it is what that --listen asks for now. */
START_TEST(test_matches) {
        unsigned port = free_port(SOCK_STREAM), other = free_port(SOCK_STREAM);
        char spec[160];
        int fd;
        char *created;

        snprintf(spec, sizeof spec, "127.0.0.1:%u", port);
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert(spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "tcp:localhost:%u=web", port);
        ck_assert(spec_matches(spec, fd));
        /* A name is not looked up (no DNS at a restart): its port decides. */
        snprintf(spec, sizeof spec, "no-such-host.invalid:%u", port);
        ck_assert(spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "no-such-host.invalid:%u", other);
        ck_assert(!spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "[::1]:%u", port); /* a numeric host of the other family */
        ck_assert(!spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "127.0.0.1:%u", other);
        ck_assert(!spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "%u", port); /* the wildcard, not loopback */
        ck_assert(!spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "udp:127.0.0.1:%u", port);
        ck_assert(!spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "unix:%s/x.sock", "/tmp");
        ck_assert(!spec_matches(spec, fd));
        close(fd);

        snprintf(spec, sizeof spec, "%u", port);
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert(spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "127.0.0.1:%u", port);
        ck_assert(!spec_matches(spec, fd));
        close(fd);

        make_tmpdir();
        char path[128];
        snprintf(path, sizeof path, "%s/s.sock", tmpdir);
        snprintf(spec, sizeof spec, "unix:%s", path);
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        free(created);
        ck_assert(spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "unix-dgram:%s", path);
        ck_assert(!spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "unix:%s/t.sock", tmpdir);
        ck_assert(!spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "unix:@%s", path);
        ck_assert(!spec_matches(spec, fd));
        close(fd);
        remove_tmpdir();

        snprintf(spec, sizeof spec, "unix:@handoff-unit-match-%d", (int) getpid());
        ck_assert_int_eq(open_spec(spec, &fd, &created), 0);
        ck_assert(spec_matches(spec, fd));
        snprintf(spec, sizeof spec, "unix:@handoff-unit-match-%d2", (int) getpid());
        ck_assert(!spec_matches(spec, fd));
        close(fd);
}
END_TEST

static Suite *address_suite(void) {
        Suite *s = suite_create("address");
        TCase *tc = tcase_create("parse");
        tcase_add_loop_test(tc, test_parse_good, 0, (int) (sizeof good / sizeof good[0]));
        tcase_add_loop_test(tc, test_parse_bad, 0, (int) (sizeof bad / sizeof bad[0]));
        tcase_add_test(tc, test_parse_unix_path_length);
        tcase_add_test(tc, test_parse_unknown_type);
        tcase_add_test(tc, test_fdname_is_valid);
        suite_add_tcase(s, tc);

        tc = tcase_create("open");
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, test_open_unix_stream);
        tcase_add_test(tc, test_open_unix_live_other_type);
        tcase_add_test(tc, test_open_unix_regular_file_is_not_removed);
        tcase_add_test(tc, test_open_unix_missing_directory);
        tcase_add_test(tc, test_open_unix_dgram);
        tcase_add_test(tc, test_open_unix_abstract);
        tcase_add_test(tc, test_open_unix_longest_path);
        tcase_add_test(tc, test_open_unix_backlog);
        tcase_add_test(tc, test_open_tcp_loopback);
        tcase_add_test(tc, test_open_tcp_any);
        tcase_add_test(tc, test_open_tcp_v6_loopback);
        tcase_add_test(tc, test_open_udp_loopback);
        tcase_add_test(tc, test_matches);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        srandom((unsigned) getpid());
        return unit_run(address_suite());
}
