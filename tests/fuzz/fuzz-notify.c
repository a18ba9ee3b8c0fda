/* SPDX-License-Identifier: MIT */
/* notify_parse() and notify_relay_text(): one datagram as a generation (an
 * untrusted process) sends it to its private NOTIFY_SOCKET.
 *
 * Properties:
 *  - acceptance is exactly the documented rule: 1..NOTIFY_MAX_LEN bytes, no
 *    NUL, every non-empty line has a '=';
 *  - as systemd 252 reads a datagram: a flag is set iff any line sets it
 *    (READY is set iff some line is exactly READY=1), and a field is the
 *    value of the first line with its key (STATUS of the first STATUS=
 *    line, ...); unknown keys are counted, and the value pointers point into
 *    the buffer, at strings without a newline;
 *  - the relayed text holds only what may be relayed (STATUS, WATCHDOG,
 *    numeric WATCHDOG_USEC (0 too: it turns the watchdog off),
 *    EXTEND_TIMEOUT_USEC and ERRNO),
 *    never READY, RELOADING,
 *    STOPPING, MAINPID, BARRIER or the fd store's FDSTORE, FDSTOREREMOVE,
 *    FDNAME and FDPOLL (handoff keeps the store itself); it parses back to the
 *    same message, fits in input length + 2 bytes, and fails cleanly
 *    (-ENOBUFS, nothing written out of bounds) in any smaller buffer;
 *  - as the supervisor relays it (STATUS= replaced by handoff's summary, at
 *    most ~550 bytes, into a NOTIFY_MAX_LEN buffer), a WATCHDOG=1 ping of the
 *    serving generation always reaches systemd. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "notify.h"

static bool has_line(const char *text, size_t len, const char *line) {
        size_t l = strlen(line);
        for (const char *p = text, *end = text + len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                if (n == l && memcmp(p, line, l) == 0)
                        return true;
                p += n + 1;
        }
        return false;
}

static bool has_line_prefix(const char *text, size_t len, const char *prefix) {
        size_t l = strlen(prefix);
        for (const char *p = text, *end = text + len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                if (n >= l && memcmp(p, prefix, l) == 0)
                        return true;
                p += n + 1;
        }
        return false;
}

/* "KEY=" + value is one of the input's lines. */
static bool is_value_of(const char *text, size_t len, const char *key, const char *value) {
        size_t kl = strlen(key), vl = strlen(value);
        char *line = malloc(kl + 1 + vl + 1);
        if (!line)
                abort();
        memcpy(line, key, kl);
        line[kl] = '=';
        memcpy(line + kl + 1, value, vl + 1);
        bool r = has_line(text, len, line);
        free(line);
        return r;
}

static bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The keys parse_line() in notify.c acts on. A key added there and not here
 * fails the n_unknown property at once: add it here, with a property. */
static const char *const known_keys[] = {
        "READY",   "RELOADING", "STOPPING", "WATCHDOG",            "BARRIER", "FDSTORE",
        "FDSTOREREMOVE", "FDNAME", "STATUS", "EXTEND_TIMEOUT_USEC", "ERRNO",   "MAINPID",
        "WATCHDOG_USEC", "FDPOLL",
};

/* The value of the first line "KEY=..." (the key is what precedes the first
 * '='), copied into buf; NULL when no line has that key. */
static const char *first_value(const char *text, size_t len, const char *key, char *buf, size_t size) {
        size_t kl = strlen(key);
        for (const char *p = text, *end = text + len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                if (n > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
                        if (n - kl - 1 >= size)
                                return NULL;
                        memcpy(buf, p + kl + 1, n - kl - 1);
                        buf[n - kl - 1] = '\0';
                        return buf;
                }
                p += n + 1;
        }
        return NULL;
}

/* Non-empty lines whose key (before the first '=') is none of ours. */
static unsigned count_unknown(const char *text, size_t len) {
        unsigned k = 0;
        for (const char *p = text, *end = text + len; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                const char *eq = memchr(p, '=', n);
                if (n > 0 && eq) {
                        bool known = false;
                        for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
                                known = known || ((size_t) (eq - p) == strlen(known_keys[i]) &&
                                                  memcmp(p, known_keys[i], strlen(known_keys[i])) == 0);
                        k += !known;
                }
                p += n + 1;
        }
        return k;
}

/* A number handoff relays: 1 to 20 digits (no 64-bit number has more, and
 * systemd rejects longer ones too), no leading zero (systemd's base 0 would
 * read "010" as octal). */
static bool all_digits(const char *s) {
        size_t n = 0;
        for (; s[n]; n++)
                if (s[n] < '0' || s[n] > '9')
                        return false;
        return n > 0 && n <= 20 && (s[0] != '0' || n == 1);
}

/* ... and, for a number of microseconds, one that fits 64 bits. */
static bool usec_number(const char *s) {
        if (!s || !all_digits(s))
                return false;
        errno = 0;
        (void) strtoull(s, NULL, 10);
        return errno == 0;
}

static bool expected_accept(const uint8_t *data, size_t size) {
        if (size == 0 || size > NOTIFY_MAX_LEN || memchr(data, '\0', size))
                return false;
        for (const char *p = (const char *) data, *end = p + size; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                if (n > 0 && !memchr(p, '=', n))
                        return false;
                p += n + 1;
        }
        return true;
}

static void check_field(const char *name, const char *v, const char *buf, size_t size, const char *orig) {
        if (!v)
                return;
        FUZZ_ASSERT(v >= buf && v <= buf + size, "%s points outside the buffer", name);
        FUZZ_ASSERT(!strchr(v, '\n'), "%s holds a newline", name);
        FUZZ_ASSERT(is_value_of(orig, size, name, v), "%s=%s is not a line of the input", name, v);
}

/* Relays m into a heap block of exactly size bytes: ASan catches any write
 * past it. Returns what notify_relay_text() returned; *ret gets the text. */
static int relay_into(const NotifyMessage *m, size_t size, char **ret) {
        char *out = malloc(size);
        if (!out)
                abort();
        int r = notify_relay_text(m, out, size);
        if (r >= 0) {
                FUZZ_ASSERT((size_t) r < size, "returned length %d does not fit size %zu", r, size);
                FUZZ_ASSERT(strlen(out) == (size_t) r, "returned length %d, text length %zu", r, strlen(out));
        } else
                FUZZ_ASSERT(r == -ENOBUFS, "relay failed with %d, expected only -ENOBUFS", r);
        if (ret)
                *ret = out;
        else
                free(out);
        return r;
}

static void check_relay_text(const NotifyMessage *m, const char *text, size_t len) {
        /* Only relayable lines, each ending in a newline. */
        FUZZ_ASSERT(len == 0 || text[len - 1] == '\n', "relayed text does not end in a newline");
        static const char *const forbidden[] = { "READY=",   "RELOADING=",     "STOPPING=", "MAINPID=",
                                                 "BARRIER=", "FDSTORE=", "FDSTOREREMOVE=", "FDNAME=",
                                                 "FDPOLL=" };
        for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
                FUZZ_ASSERT(!has_line_prefix(text, len, forbidden[i]), "relayed text holds %s", forbidden[i]);

        FUZZ_ASSERT(has_line(text, len, "WATCHDOG=1") == m->watchdog, "WATCHDOG=1 relayed iff sent");
        FUZZ_ASSERT(has_line(text, len, "WATCHDOG=trigger") == m->watchdog_trigger, "WATCHDOG=trigger relayed iff sent");
        bool want_ext = usec_number(m->extend_timeout_usec);
        bool want_errno = m->errno_value && all_digits(m->errno_value);
        FUZZ_ASSERT(has_line_prefix(text, len, "EXTEND_TIMEOUT_USEC=") == want_ext, "EXTEND_TIMEOUT_USEC relayed iff a 64-bit number, no leading zero");
        FUZZ_ASSERT(has_line_prefix(text, len, "ERRNO=") == want_errno, "ERRNO relayed iff a number of at most 20 digits, no leading zero");
        FUZZ_ASSERT(has_line_prefix(text, len, "STATUS=") == (m->status != NULL), "STATUS relayed iff sent");
        uint64_t wd = 0;
        bool want_wd = notify_watchdog_usec(m, &wd);
        FUZZ_ASSERT(has_line_prefix(text, len, "WATCHDOG_USEC=") == want_wd, "WATCHDOG_USEC relayed iff a number");

        if (len == 0)
                return;
        /* What handoff sends systemd is itself a valid datagram that says the
         * same thing and nothing more. */
        char *copy = malloc(len + 1);
        if (!copy)
                abort();
        memcpy(copy, text, len);
        NotifyMessage back;
        int r = notify_parse(copy, len, &back);
        if (len <= NOTIFY_MAX_LEN) {
                FUZZ_ASSERT(r == 0, "relayed text does not parse back (%d)", r);
                FUZZ_ASSERT(!back.ready && !back.reloading && !back.stopping && !back.barrier && !back.mainpid &&
                                    !back.fdstore && !back.fdstoreremove && !back.fdname && !back.fdpoll_off,
                            "relayed text parses to a message with handoff's own keys");
                FUZZ_ASSERT(back.n_unknown == 0, "relayed text has %u unknown keys", back.n_unknown);
                FUZZ_ASSERT(back.watchdog == m->watchdog && back.watchdog_trigger == m->watchdog_trigger,
                            "watchdog flags changed through the relay");
                uint64_t wd_back = 0;
                FUZZ_ASSERT(notify_watchdog_usec(&back, &wd_back) == want_wd && wd_back == wd,
                            "WATCHDOG_USEC changed through the relay");
                uint64_t ext = 0, ext_back = 0;
                FUZZ_ASSERT(!want_ext || (notify_parse_usec(m->extend_timeout_usec, &ext) >= 0 &&
                                          notify_parse_usec(back.extend_timeout_usec, &ext_back) >= 0 && ext == ext_back),
                            "EXTEND_TIMEOUT_USEC changed through the relay");
                FUZZ_ASSERT((back.status == NULL) == (m->status == NULL) &&
                                    (!m->status || strcmp(back.status, m->status) == 0),
                            "STATUS changed through the relay");
        }
        free(copy);
}

/* The supervisor replaces STATUS= by its own summary before relaying:
 * "Serving generation %u (pid %d); %u reloads, %u failed; last: <191>; app: <255>"
 * (status_text() in supervisor.c), so at most about 550 bytes. */
static void check_supervisor_relay(const NotifyMessage *m) {
        static char summary[560];
        if (!summary[0]) {
                int k = snprintf(summary, sizeof summary,
                                 "Serving generation 4294967295 (pid 2147483647); 4294967295 reloads, 4294967295 failed; last: ");
                memset(summary + k, 'r', 191);
                k += 191;
                k += snprintf(summary + k, sizeof summary - (size_t) k, "; app: ");
                memset(summary + k, 'a', 255);
                summary[k + 255] = '\0';
        }
        NotifyMessage out = *m;
        if (m->status)
                out.status = summary;
        char *text = NULL;
        int r = relay_into(&out, NOTIFY_MAX_LEN, &text);
        /* A keep-alive ping must never be lost because another field of the
         * same datagram is odd: systemd would kill the service as hung. */
        if (m->watchdog)
                FUZZ_ASSERT(r > 0 && has_line(text, (size_t) r, "WATCHDOG=1"),
                            "WATCHDOG=1 from the serving generation was not relayed (relay returned %d)", r);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* notify_receive() hands over buf with room for the NUL at buf[len]. */
        char *buf = malloc(size + 1);
        char *orig = malloc(size + 1);
        if (!buf || !orig)
                abort();
        if (size > 0) {
                memcpy(buf, data, size);
                memcpy(orig, data, size);
        }
        orig[size] = '\0';

        static char lv[NOTIFY_MAX_LEN + 1];
        NotifyMessage m;
        memset(&m, 0xAA, sizeof m);
        int r = notify_parse(buf, size, &m);
        bool accept = expected_accept(data, size);
        FUZZ_ASSERT((r == 0) == accept, "notify_parse() returned %d, expected %s", r, accept ? "0" : "-EBADMSG");
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG, "notify_parse() failed with %d, expected -EBADMSG", r);
                goto out;
        }

        /* As systemd: a flag is set by any line, a field is its first line. */
        static const struct {
                const char *line;
                size_t offset;
        } flags[] = {
                { "READY=1", offsetof(NotifyMessage, ready) },
                { "RELOADING=1", offsetof(NotifyMessage, reloading) },
                { "STOPPING=1", offsetof(NotifyMessage, stopping) },
                { "BARRIER=1", offsetof(NotifyMessage, barrier) },
                { "WATCHDOG=1", offsetof(NotifyMessage, watchdog) },
                { "WATCHDOG=trigger", offsetof(NotifyMessage, watchdog_trigger) },
                { "FDSTORE=1", offsetof(NotifyMessage, fdstore) },
                { "FDSTOREREMOVE=1", offsetof(NotifyMessage, fdstoreremove) },
                { "FDPOLL=0", offsetof(NotifyMessage, fdpoll_off) },
        };
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
                FUZZ_ASSERT(*(const bool *) ((const char *) &m + flags[i].offset) == has_line(orig, size, flags[i].line),
                            "flag vs a line %s", flags[i].line);
        static const struct {
                const char *key;
                size_t offset;
        } fields[] = {
                { "FDNAME", offsetof(NotifyMessage, fdname) },
                { "STATUS", offsetof(NotifyMessage, status) },
                { "EXTEND_TIMEOUT_USEC", offsetof(NotifyMessage, extend_timeout_usec) },
                { "ERRNO", offsetof(NotifyMessage, errno_value) },
                { "MAINPID", offsetof(NotifyMessage, mainpid) },
                { "WATCHDOG_USEC", offsetof(NotifyMessage, watchdog_usec) },
        };
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
                const char *v = *(const char *const *) ((const char *) &m + fields[i].offset);
                FUZZ_ASSERT(streq_null(v, first_value(orig, size, fields[i].key, lv, sizeof lv)),
                            "%s is not the first such line", fields[i].key);
                check_field(fields[i].key, v, buf, size, orig);
        }
        FUZZ_ASSERT(m.n_unknown == count_unknown(orig, size), "%u unknown assignments, expected %u", m.n_unknown,
                    count_unknown(orig, size));

        /* Relayed text is never longer than the datagram plus a final newline. */
        char *text = NULL;
        int n = relay_into(&m, size + 2, &text);
        FUZZ_ASSERT(n >= 0, "relay into a buffer of input size + 2 (%zu) failed: %d", size + 2, n);
        check_relay_text(&m, text, (size_t) n);
        free(text);

        /* Any smaller buffer: -ENOBUFS, and no write outside it. */
        if (n > 0) {
                FUZZ_ASSERT(relay_into(&m, (size_t) n, NULL) == -ENOBUFS, "relay into %d bytes did not fail", n);
                FUZZ_ASSERT(relay_into(&m, (size_t) n / 2 + 1, NULL) == -ENOBUFS, "relay into %d bytes did not fail", n / 2 + 1);
                FUZZ_ASSERT(relay_into(&m, 1, NULL) == -ENOBUFS, "relay into 1 byte did not fail");
        }

        check_supervisor_relay(&m);
out:
        free(buf);
        free(orig);
        return 0;
}
