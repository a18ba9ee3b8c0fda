/* SPDX-License-Identifier: MIT */
/* status.c: the whole status, of any size (issue 18: it was cut at the
 * control reply's 4088 bytes), and the JSON for tools (issue 16): valid,
 * escaped, with listener objects of every family and both clocks. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "status.h"
#include "util.h"
#include "unit.h"

static bool json_valid(const char *s, size_t n);

static char names[STATUS_MAX_SOCKETS][256];

static void fill(ServiceStatus *st) {
        *st = (ServiceStatus) { .pid = 42, .version = "1", .mode = "supervise", .state = "serving",
                                .last_result = "ok \"quoted\"\n" };
        for (size_t i = 0; i < STATUS_MAX_GENS; i++)
                st->gens[st->n_gens++] = (StatusGeneration) { .number = (unsigned) i + 1, .pid = 100 + (pid_t) i,
                                                              .role = "retiring", .kill_in = USEC_INFINITY };
        for (size_t i = 0; i < STATUS_MAX_SOCKETS; i++) {
                memset(names[i], 'n', 255);
                names[i][255] = '\0';
                names[i][0] = (char) ('a' + i);
                StatusSocket *k = &st->sockets[st->n_sockets++];
                k->fd = 3 + (int) i;
                k->name = names[i];
                snprintf(k->address, sizeof k->address, "unix /run/%0100zu", i);
                k->family = AF_UNIX;
                k->type = SOCK_STREAM;
                k->path_len = (size_t) snprintf(k->path, sizeof k->path, "/run/%0100zu", i);
        }
}

START_TEST(test_alloc_json_whole) {
        ServiceStatus st;
        fill(&st);
        char small[4088];
        ck_assert_int_eq(status_format_json(&st, small, sizeof small), -ENOBUFS);

        _cleanup_free_ char *s = NULL;
        int n = status_format_alloc(&st, true, &s);
        ck_assert_int_gt(n, 4096);
        ck_assert_uint_eq(strlen(s), (size_t) n);
        ck_assert_int_eq(s[0], '{');
        ck_assert_int_eq(s[n - 1], '}');
        /* Every socket's name, and what comes after the last one. */
        for (size_t i = 0; i < STATUS_MAX_SOCKETS; i++)
                ck_assert_ptr_nonnull(strstr(s, names[i]));
        ck_assert_ptr_nonnull(strstr(s, "\"last_result\":\"ok \\\"quoted\\\"\\u000a\",\"last_reload\":null}"));
        ck_assert(json_valid(s, (size_t) n));
        /* Exactly what a large enough buffer gives. */
        char *big = malloc((size_t) n + 1);
        ck_assert_int_eq(status_format_json(&st, big, (size_t) n + 1), n);
        ck_assert_str_eq(big, s);
        free(big);
}
END_TEST

START_TEST(test_alloc_text_whole) {
        ServiceStatus st;
        fill(&st);
        _cleanup_free_ char *s = NULL;
        int n = status_format_alloc(&st, false, &s);
        ck_assert_int_gt(n, 4096);
        ck_assert_ptr_nonnull(strstr(s, "\nreloads   0 ok, 0 failed; last: ok"));
}
END_TEST

START_TEST(test_alloc_small) {
        ServiceStatus st = { .pid = 1, .version = "1", .mode = "handover", .state = "serving" };
        _cleanup_free_ char *s = NULL;
        int n = status_format_alloc(&st, true, &s);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(s, "{\"schema_version\":1,\"version\":\"1\",\"pid\":1,\"mode\":\"handover\","
                            "\"state\":\"serving\",\"timestamp\":null,\"timestamp_monotonic\":null,"
                            "\"start_timestamp\":null,\"start_timestamp_monotonic\":null,\"handed_over_to\":0,"
                            "\"handed_over_to_exited\":null,\"predecessor_draining\":false,\"standby_pid\":null,"
                            "\"generations\":[],\"listeners\":[],\"sockets\":[],"
                            "\"reloads_ok\":0,\"reloads_failed\":0,\"last_result\":\"\",\"last_reload\":null}");
}
END_TEST


/* ---- a strict JSON checker (RFC 8259), enough to tell valid from not --- */

typedef struct Json {
        const char *p, *end;
        int depth;
} Json;

static bool json_value(Json *j);

static void json_ws(Json *j) {
        while (j->p < j->end && strchr(" \t\r\n", *j->p))
                j->p++;
}

static bool json_lit(Json *j, const char *lit) {
        size_t n = strlen(lit);
        if ((size_t) (j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
                return false;
        j->p += n;
        return true;
}

static bool json_string(Json *j) {
        if (j->p >= j->end || *j->p != '"')
                return false;
        for (j->p++; j->p < j->end; j->p++) {
                unsigned char c = (unsigned char) *j->p;
                if (c == '"') {
                        j->p++;
                        return true;
                }
                if (c < 0x20)
                        return false; /* control characters must be escaped */
                if (c == '\\') {
                        if (++j->p >= j->end)
                                return false;
                        if (*j->p == 'u') {
                                for (int i = 0; i < 4; i++)
                                        if (++j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p))
                                                return false;
                        } else if (!strchr("\"\\/bfnrt", *j->p))
                                return false;
                }
        }
        return false;
}

static bool json_number(Json *j) {
        const char *s = j->p;
        if (j->p < j->end && *j->p == '-')
                j->p++;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
                j->p++;
        return j->p > s && j->p[-1] != '-';
}

static bool json_members(Json *j, char close, bool object) {
        j->p++;
        json_ws(j);
        if (j->p < j->end && *j->p == close) {
                j->p++;
                return true;
        }
        for (;;) {
                json_ws(j);
                if (object) {
                        if (!json_string(j))
                                return false;
                        json_ws(j);
                        if (j->p >= j->end || *j->p++ != ':')
                                return false;
                }
                if (!json_value(j))
                        return false;
                json_ws(j);
                if (j->p >= j->end)
                        return false;
                if (*j->p == close) {
                        j->p++;
                        return true;
                }
                if (*j->p++ != ',')
                        return false;
        }
}

static bool json_value(Json *j) {
        bool ok;
        json_ws(j);
        if (j->p >= j->end || ++j->depth > 32)
                return false;
        switch (*j->p) {
        case '{':
                ok = json_members(j, '}', true);
                break;
        case '[':
                ok = json_members(j, ']', false);
                break;
        case '"':
                ok = json_string(j);
                break;
        case 't':
                ok = json_lit(j, "true");
                break;
        case 'f':
                ok = json_lit(j, "false");
                break;
        case 'n':
                ok = json_lit(j, "null");
                break;
        default:
                ok = json_number(j);
        }
        j->depth--;
        return ok;
}

static bool json_valid(const char *s, size_t n) {
        Json j = { s, s + n, 0 };
        if (!json_value(&j))
                return false;
        json_ws(&j);
        return j.p == j.end;
}

START_TEST(test_checker_itself) {
        const char *good[] = { "{}", "[]", "{\"a\":[1,-2,true,false,null,\"x\\u0000\\\"\"]}", " {\"a\" : {}} " };
        const char *bad[] = { "{", "{\"a\":}", "{\"a\":1,}", "[1 2]", "\"\x01\"", "{\"a\":\"\\x\"}", "{} {}", "-" };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++)
                ck_assert_msg(json_valid(good[i], strlen(good[i])), "%s", good[i]);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                ck_assert_msg(!json_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
}
END_TEST

/* ---- the members --------------------------------------------------------- */

#define NOW ((usec_t) 1000 * USEC_PER_SEC)
/* 2026-12-04T13:16:45.250000Z */
#define NOW_REALTIME ((usec_t) 1796390205 * USEC_PER_SEC + 250 * USEC_PER_MSEC)

START_TEST(test_timestamp) {
        char buf[64];
        ck_assert_str_eq(status_format_timestamp(buf, sizeof buf, NOW, NOW, NOW_REALTIME), "2026-12-04T13:16:45.250000Z");
        ck_assert_str_eq(status_format_timestamp(buf, sizeof buf, NOW - 2 * USEC_PER_SEC - 1, NOW, NOW_REALTIME),
                         "2026-12-04T13:16:43.249999Z");
        ck_assert_str_eq(status_format_timestamp(buf, sizeof buf, NOW + 3600 * USEC_PER_SEC, NOW, NOW_REALTIME),
                         "2026-12-04T14:16:45.250000Z");
}
END_TEST

static void add_inet(ServiceStatus *st, const char *name, const char *ip, unsigned port, int type) {
        StatusSocket *k = &st->sockets[st->n_sockets];
        k->fd = 3 + (int) st->n_sockets++;
        k->name = name;
        if (strchr(ip, ':')) {
                struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t) port) };
                ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
                status_socket_from_sockaddr(k, (struct sockaddr *) &in6, sizeof in6, type);
        } else {
                struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
                ck_assert_int_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
                status_socket_from_sockaddr(k, (struct sockaddr *) &in, sizeof in, type);
        }
}

/* path: a file name, or (abstract) the name after the NUL, n bytes of it. */
static void add_unix(ServiceStatus *st, const char *name, const char *path, size_t n, bool abstract, int type) {
        StatusSocket *k = &st->sockets[st->n_sockets];
        k->fd = 3 + (int) st->n_sockets++;
        k->name = name;
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        size_t off = abstract ? 1 : 0;
        memcpy(un.sun_path + off, path, n);
        /* As getsockname() gives them: a path with its NUL, an abstract
         * name with exactly its bytes. */
        socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + off + n + (abstract ? 0 : 1));
        status_socket_from_sockaddr(k, (struct sockaddr *) &un, len, type);
}

static ServiceStatus sample(void) {
        ServiceStatus st = { .pid = 42, .version = "0.1.0", .mode = "supervise", .state = "baking", .now = NOW,
                             .now_realtime = NOW_REALTIME, .started = NOW - 60 * USEC_PER_SEC, .reloads_ok = 1,
                             .last_result = "reload to generation 2 ok in 120ms", .last_reload_generation = 2,
                             .last_reload_ok = true, .last_reload_ended = NOW - 10 * USEC_PER_SEC,
                             .last_reload_duration = 120 * USEC_PER_MSEC };
        st.gens[st.n_gens++] = (StatusGeneration) { .number = 2, .pid = 20, .role = "serving", .age = 10 * USEC_PER_SEC,
                                                    .started = NOW - 10 * USEC_PER_SEC,
                                                    .ready = NOW - 10 * USEC_PER_SEC + 120 * USEC_PER_MSEC,
                                                    .kill_in = USEC_INFINITY, .processes = 3, .memory = 1048576 };
        st.gens[st.n_gens++] = (StatusGeneration) { .number = 3, .pid = 30, .role = "baking", .age = USEC_PER_SEC,
                                                    .started = NOW - USEC_PER_SEC, .ready = NOW - USEC_PER_SEC / 2,
                                                    .kill_in = USEC_INFINITY, .processes = 1, .memory = UINT64_MAX };
        st.gens[st.n_gens++] = (StatusGeneration) { .number = 1, .pid = 11, .role = "retiring", .age = 70 * USEC_PER_SEC,
                                                    .started = NOW - 70 * USEC_PER_SEC,
                                                    .kill_in = 5 * USEC_PER_SEC, .main_exited = true, .processes = 2,
                                                    .memory = UINT64_MAX };
        add_inet(&st, "web", "127.0.0.1", 8080, SOCK_STREAM);
        add_inet(&st, "dns", "::", 53, SOCK_DGRAM);
        add_unix(&st, "admin", "/run/app/admin.sock", strlen("/run/app/admin.sock"), false, SOCK_STREAM);
        add_unix(&st, "abs", "app\0x", 5, true, SOCK_SEQPACKET);
        return st;
}

static char *json_of(const ServiceStatus *st) {
        char *s = NULL;
        int n = status_format_alloc(st, true, &s);
        ck_assert_int_gt(n, 0);
        ck_assert_msg(json_valid(s, (size_t) n), "invalid JSON: %s", s);
        return s;
}

#define ck_assert_has(hay, needle) ck_assert_msg(strstr(hay, needle), "no %s in %s", needle, hay)

START_TEST(test_json_top_level) {
        ServiceStatus st = sample();
        _cleanup_free_ char *s = json_of(&st);
        ck_assert_has(s, "{\"schema_version\":1,\"version\":\"0.1.0\",\"pid\":42,\"mode\":\"supervise\","
                         "\"state\":\"baking\",\"timestamp\":\"2026-12-04T13:16:45.250000Z\","
                         "\"timestamp_monotonic\":1000000000,"
                         "\"start_timestamp\":\"2026-12-04T13:15:45.250000Z\",\"start_timestamp_monotonic\":940000000,"
                         "\"handed_over_to\":0,\"handed_over_to_exited\":null,\"predecessor_draining\":false,"
                         "\"standby_pid\":null,"
                         "\"generations\":[{");
        ck_assert_has(s, "\"reloads_ok\":1,\"reloads_failed\":0,"
                         "\"last_result\":\"reload to generation 2 ok in 120ms\","
                         "\"last_reload\":{\"generation\":2,\"result\":\"ok\","
                         "\"end_timestamp\":\"2026-12-04T13:16:35.250000Z\",\"end_timestamp_monotonic\":990000000,"
                         "\"duration_usec\":120000}}");
        st.last_reload_ok = false;
        free(s);
        s = json_of(&st);
        ck_assert_has(s, "\"result\":\"failed\"");
        /* None yet: null, not absent. */
        st.last_reload_ended = 0;
        st.started = 0;
        free(s);
        s = json_of(&st);
        ck_assert_has(s, "\"start_timestamp\":null,\"start_timestamp_monotonic\":null,");
        ck_assert_has(s, "\"last_reload\":null}");
}
END_TEST

START_TEST(test_json_generations) {
        ServiceStatus st = sample();
        _cleanup_free_ char *s = json_of(&st);
        ck_assert_has(s, "{\"number\":2,\"role\":\"serving\",\"pid\":20,\"ready\":true,\"main_exited\":false,"
                         "\"previous_handoff\":false,\"orphaned\":false,\"processes\":3,\"memory_bytes\":1048576,"
                         "\"start_timestamp\":\"2026-12-04T13:16:35.250000Z\",\"start_timestamp_monotonic\":990000000,"
                         "\"ready_timestamp\":\"2026-12-04T13:16:35.370000Z\",\"ready_timestamp_monotonic\":990120000,"
                         "\"age_ms\":10000,\"kill_in_ms\":null}");
        ck_assert_has(s, "{\"number\":3,\"role\":\"baking\",\"pid\":30,\"ready\":true,");
        ck_assert_has(s, "{\"number\":1,\"role\":\"retiring\",\"pid\":11,\"ready\":false,\"main_exited\":true,"
                         "\"previous_handoff\":false,\"orphaned\":false,\"processes\":2,\"memory_bytes\":null,");
        ck_assert_has(s, "\"ready_timestamp\":null,\"ready_timestamp_monotonic\":null,\"age_ms\":70000,"
                         "\"kill_in_ms\":5000}]");
}
END_TEST

START_TEST(test_json_listeners) {
        ServiceStatus st = sample();
        _cleanup_free_ char *s = json_of(&st);
        ck_assert_has(s, "\"listeners\":[{\"fd\":3,\"name\":\"web\",\"family\":\"inet\",\"type\":\"stream\","
                         "\"address\":\"127.0.0.1\",\"port\":8080,\"path\":null,\"abstract\":null},");
        ck_assert_has(s, "{\"fd\":4,\"name\":\"dns\",\"family\":\"inet6\",\"type\":\"dgram\","
                         "\"address\":\"::\",\"port\":53,\"path\":null,\"abstract\":null},");
        ck_assert_has(s, "{\"fd\":5,\"name\":\"admin\",\"family\":\"unix\",\"type\":\"stream\","
                         "\"address\":null,\"port\":null,\"path\":\"/run/app/admin.sock\",\"abstract\":false},");
        /* An abstract name's NUL is escaped, not an end. */
        ck_assert_has(s, "{\"fd\":6,\"name\":\"abs\",\"family\":\"unix\",\"type\":\"seqpacket\","
                         "\"address\":null,\"port\":null,\"path\":\"app\\u0000x\",\"abstract\":true}]");
        /* The old form stays. */
        ck_assert_has(s, "\"sockets\":[{\"fd\":3,\"name\":\"web\",\"address\":\"tcp 127.0.0.1:8080\"},"
                         "{\"fd\":4,\"name\":\"dns\",\"address\":\"udp [::]:53\"},"
                         "{\"fd\":5,\"name\":\"admin\",\"address\":\"unix /run/app/admin.sock\"},");
}
END_TEST

START_TEST(test_json_escaping) {
        ServiceStatus st = sample();
        /* Quotes, backslashes, control characters, DEL; UTF-8 kept, bytes
         * that are not UTF-8 replaced. */
        st.version = "1\"2\\3\t\x01\x7f";
        st.last_result = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad:\xff\xc3(\xed\xa0\x80\xc0\xaf";
        st.sockets[0].name = "</script>\n";
        _cleanup_free_ char *s = json_of(&st);
        ck_assert_has(s, "\"version\":\"1\\\"2\\\\3\\u0009\\u0001\\u007f\"");
        ck_assert_has(s, "\"last_result\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad:\\ufffd\\ufffd("
                         "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
        ck_assert_has(s, "\"name\":\"</script>\\u000a\"");
        /* A unix path that is not UTF-8, and a cut-short sequence at its end. */
        st.n_sockets = 0;
        add_unix(&st, "p", "/tmp/\xe2\x82", 7, false, SOCK_DGRAM);
        free(s);
        s = json_of(&st);
        ck_assert_has(s, "\"type\":\"dgram\",\"address\":null,\"port\":null,\"path\":\"/tmp/\\ufffd\\ufffd\"");
}
END_TEST

START_TEST(test_json_many_generations) {
        ServiceStatus st;
        fill(&st);
        st.now = NOW;
        st.now_realtime = NOW_REALTIME;
        for (size_t i = 0; i < st.n_gens; i++)
                st.gens[i].started = NOW - i * USEC_PER_SEC;
        _cleanup_free_ char *s = json_of(&st);
        /* Every one of them, in order, each a whole object. */
        const char *p = s;
        for (size_t i = 0; i < STATUS_MAX_GENS; i++) {
                char want[64];
                snprintf(want, sizeof want, "{\"number\":%zu,\"role\":\"retiring\",\"pid\":%zu,", i + 1, 100 + i);
                p = strstr(p, want);
                ck_assert_msg(p, "generation %zu missing", i + 1);
        }
        /* Every listener too, in both forms. */
        for (size_t i = 0; i < STATUS_MAX_SOCKETS; i++) {
                char want[160];
                snprintf(want, sizeof want, "\"path\":\"/run/%0100zu\"", i);
                ck_assert_has(s, want);
        }
}
END_TEST

START_TEST(test_text_one_line_per_generation) {
        ServiceStatus st = sample();
        _cleanup_free_ char *s = NULL;
        ck_assert_int_gt(status_format_alloc(&st, false, &s), 0);
        ck_assert_str_eq(s, "handoff 0.1.0, pid 42, supervise mode, baking\n"
                            "serving   generation 2, pid 20, for 10s, 3 processes, 1.0 MiB\n"
                            "baking    generation 3, pid 30, for 1s, 1 process\n"
                            "retiring  generation 1, pid 11 (exited), for 1min 10s, 2 processes, SIGKILL in 5s\n"
                            "socket    fd 3, name web, tcp 127.0.0.1:8080\n"
                            "socket    fd 4, name dns, udp [::]:53\n"
                            "socket    fd 5, name admin, unix /run/app/admin.sock\n"
                            "socket    fd 6, name abs, unix @app\n"
                            "reloads   1 ok, 0 failed; last: reload to generation 2 ok in 120ms");
}
END_TEST

/* An old main whose new main has exited says so, in both forms: the pid
 * alone may be another process's by now. */
START_TEST(test_handed_over_to_exited) {
        ServiceStatus st = { .pid = 42, .version = "1", .mode = "handover", .state = "stopping",
                             .handed_over_to = 43 };
        _cleanup_free_ char *t = NULL, *j = NULL;
        ck_assert_int_gt(status_format_alloc(&st, false, &t), 0);
        ck_assert_has(t, "\nhanded over to handoff pid 43\n");
        j = json_of(&st);
        ck_assert_has(j, "\"handed_over_to\":43,\"handed_over_to_exited\":false,");
        st.handed_over_exited = true;
        free(t);
        t = NULL;
        ck_assert_int_gt(status_format_alloc(&st, false, &t), 0);
        ck_assert_has(t, "\nhanded over to handoff pid 43 (exited)\n");
        free(j);
        j = json_of(&st);
        ck_assert_has(j, "\"handed_over_to\":43,\"handed_over_to_exited\":true,");
}
END_TEST

/* A role longer than the column (a next handoff told to stop) widens it for
 * every line, so that the lines stay aligned. */
START_TEST(test_text_column_fits_the_longest_role) {
        ServiceStatus st = { .pid = 42, .version = "1", .mode = "handover", .state = "serving", .standby = 77,
                             .now = NOW, .now_realtime = NOW_REALTIME };
        st.gens[st.n_gens++] = (StatusGeneration) { .number = 2, .pid = 20, .role = "serving", .age = USEC_PER_SEC,
                                                    .kill_in = USEC_INFINITY, .processes = 1, .memory = UINT64_MAX };
        st.gens[st.n_gens++] = (StatusGeneration) { .number = 3, .pid = 30, .role = "next-handoff-stopping",
                                                    .age = USEC_PER_SEC, .kill_in = 5 * USEC_PER_SEC,
                                                    .processes = 1, .memory = UINT64_MAX };
        add_inet(&st, "web", "127.0.0.1", 8080, SOCK_STREAM);
        _cleanup_free_ char *s = NULL;
        ck_assert_int_gt(status_format_alloc(&st, false, &s), 0);
        ck_assert_str_eq(s, "handoff 1, pid 42, handover mode, serving\n"
                            "standby               handoff pid 77, started ahead for the next reload\n"
                            "serving               generation 2, pid 20, for 1s, 1 process\n"
                            "next-handoff-stopping generation 3, pid 30, for 1s, 1 process, SIGKILL in 5s\n"
                            "socket                fd 3, name web, tcp 127.0.0.1:8080\n"
                            "reloads               0 ok, 0 failed");
}
END_TEST

/* A main in handover mode serving generation number (pid) for 1s, 1
 * process: where the two tests below start. */
static ServiceStatus handover_serving(unsigned number, pid_t pid) {
        ServiceStatus st = { .pid = 42, .version = "1", .mode = "handover", .state = "serving", .now = NOW,
                             .now_realtime = NOW_REALTIME };
        st.gens[st.n_gens++] = (StatusGeneration) { .number = number, .pid = pid, .role = "serving",
                                                    .age = USEC_PER_SEC, .kill_in = USEC_INFINITY, .processes = 1,
                                                    .memory = UINT64_MAX };
        return st;
}

/* Adds a generation retiring for age (started then, not ready, 1 process),
 * SIGKILLed in kill_in; returns it, for the test to say whose it is. */
static StatusGeneration *add_retiring(ServiceStatus *st, unsigned number, pid_t pid, usec_t age, usec_t kill_in) {
        StatusGeneration *g = &st->gens[st->n_gens++];
        *g = (StatusGeneration) { .number = number, .pid = pid, .role = "retiring", .age = age, .started = NOW - age,
                                  .kill_in = kill_in, .processes = 1, .memory = UINT64_MAX };
        return g;
}

/* A new main in handover mode that holds (or retires) the previous
 * handoff's generation: a retiring line of its own, marked as such. */
START_TEST(test_previous_handoffs_generation) {
        ServiceStatus st = handover_serving(2, 20);
        st.predecessor_draining = true;
        StatusGeneration *g = add_retiring(&st, 1, 11, 70 * USEC_PER_SEC, 11 * USEC_PER_SEC);
        g->ready = NOW - 69 * USEC_PER_SEC;
        g->previous_handoff = true;
        _cleanup_free_ char *text = NULL;
        ck_assert_int_gt(status_format_alloc(&st, false, &text), 0);
        ck_assert_str_eq(text, "handoff 1, pid 42, handover mode, serving\n"
                               "previous handoff still draining\n"
                               "serving   generation 2, pid 20, for 1s, 1 process\n"
                               "retiring  generation 1 (the previous handoff's), pid 11, for 1min 10s, 1 process, "
                               "SIGKILL in 11s\n"
                               "reloads   0 ok, 0 failed");
        _cleanup_free_ char *json = json_of(&st);
        ck_assert_has(json, "{\"number\":1,\"role\":\"retiring\",\"pid\":11,\"ready\":true,\"main_exited\":false,"
                            "\"previous_handoff\":true,\"orphaned\":false,\"processes\":1,\"memory_bytes\":null,"
                            "\"start_timestamp\":\"2026-12-04T13:15:35.250000Z\",\"start_timestamp_monotonic\":930000000,"
                            "\"ready_timestamp\":\"2026-12-04T13:15:36.250000Z\",\"ready_timestamp_monotonic\":931000000,"
                            "\"age_ms\":70000,\"kill_in_ms\":11000}]");
}
END_TEST

/* The old main retires the generation of a next handoff that died before
 * it stopped it: a retiring line, marked as that. */
START_TEST(test_orphaned_generation) {
        ServiceStatus st = handover_serving(1, 10);
        add_retiring(&st, 2, 21, 2 * USEC_PER_SEC, 28 * USEC_PER_SEC)->orphaned = true;
        _cleanup_free_ char *text = NULL;
        ck_assert_int_gt(status_format_alloc(&st, false, &text), 0);
        ck_assert_str_eq(text, "handoff 1, pid 42, handover mode, serving\n"
                               "serving   generation 1, pid 10, for 1s, 1 process\n"
                               "retiring  generation 2 (a dead next handoff's), pid 21, for 2s, 1 process, "
                               "SIGKILL in 28s\n"
                               "reloads   0 ok, 0 failed");
        _cleanup_free_ char *json = json_of(&st);
        ck_assert_has(json, "{\"number\":2,\"role\":\"retiring\",\"pid\":21,\"ready\":false,\"main_exited\":false,"
                            "\"previous_handoff\":false,\"orphaned\":true,\"processes\":1,");
}
END_TEST

START_TEST(test_add_generation_stops_at_the_limit) {
        ServiceStatus st = { 0 };
        for (size_t i = 0; i < STATUS_MAX_GENS; i++) {
                StatusGeneration *g = status_add_generation(&st);
                ck_assert_ptr_eq(g, &st.gens[i]);
        }
        ck_assert_ptr_null(status_add_generation(&st));
        ck_assert_uint_eq(st.n_gens, STATUS_MAX_GENS);
}
END_TEST

START_TEST(test_time_left) {
        ck_assert_uint_eq(status_time_left(USEC_INFINITY, 5), USEC_INFINITY);
        ck_assert_uint_eq(status_time_left(7, 5), 2);
        ck_assert_uint_eq(status_time_left(5, 5), 0);
        ck_assert_uint_eq(status_time_left(4, 5), 0);
}
END_TEST

START_TEST(test_standby) {
        ServiceStatus st = { .pid = 42, .version = "1", .mode = "handover", .state = "serving", .standby = 77 };
        _cleanup_free_ char *text = NULL;
        ck_assert_int_gt(status_format_alloc(&st, false, &text), 0);
        ck_assert_has(text, "\nstandby   handoff pid 77, started ahead for the next reload\n");
        _cleanup_free_ char *json = json_of(&st);
        ck_assert_has(json, "\"predecessor_draining\":false,\"standby_pid\":77,\"generations\":[]");
}
END_TEST

static Suite *status_suite(void) {
        Suite *s = suite_create("status");
        TCase *tc = tcase_create("format");
        tcase_add_test(tc, test_alloc_json_whole);
        tcase_add_test(tc, test_alloc_text_whole);
        tcase_add_test(tc, test_alloc_small);
        tcase_add_test(tc, test_add_generation_stops_at_the_limit);
        tcase_add_test(tc, test_time_left);
        tcase_add_test(tc, test_standby);
        tcase_add_test(tc, test_previous_handoffs_generation);
        tcase_add_test(tc, test_orphaned_generation);
        tcase_add_test(tc, test_checker_itself);
        tcase_add_test(tc, test_timestamp);
        tcase_add_test(tc, test_json_top_level);
        tcase_add_test(tc, test_json_generations);
        tcase_add_test(tc, test_json_listeners);
        tcase_add_test(tc, test_json_escaping);
        tcase_add_test(tc, test_json_many_generations);
        tcase_add_test(tc, test_text_one_line_per_generation);
        tcase_add_test(tc, test_text_column_fits_the_longest_role);
        tcase_add_test(tc, test_handed_over_to_exited);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(status_suite());
}
