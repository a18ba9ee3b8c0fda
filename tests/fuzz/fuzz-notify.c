/* SPDX-License-Identifier: MIT */
/* notify_parse(), notify_relay_text() and notify_escape(): one datagram as a
 * generation (an untrusted process) sends it to its private NOTIFY_SOCKET.
 *
 * The model is a reference reader of its own, not notify.c's: a plain port
 * of how systemd 252's manager reads a datagram (manager_dispatch_notify_fd(),
 * then strv_split_newlines(), that is extract_first_word() with the
 * separators "\n\r" and no flags) into a list of unescaped lines, or drops it.
 *
 * Properties:
 *  - acceptance is exactly the reference's: at most NOTIFY_MAX_LEN bytes, no
 *    NUL but one at the very end, no lone backslash at the end (what is
 *    left after that NUL); the empty datagram, runs of \n and \r and lines
 *    without '=' are fine;
 *  - as systemd reads a datagram: of READY=1, RELOADING=1 and STOPPING=1
 *    the last such line sets its flag, and only it; WATCHDOG=1 or
 *    WATCHDOG=trigger is the first WATCHDOG= line; another flag is set iff
 *    some line is exactly its line (FDSTORE=1, ...), a field is the rest of the
 *    first line that starts with its KEY= (STATUS of the first STATUS= line,
 *    ...; a STATUS= that is not UTF-8 as systemd's utf8_is_valid() has it,
 *    noncharacters out, is an empty one), and n_unknown counts the lines that start with no known KEY=; the
 *    value pointers point into the buffer (the values may hold \n, \r and
 *    backslashes, from escapes);
 *  - the relayed text holds only what may be relayed: read by the reference,
 *    its lines are exactly STATUS= with the server's STATUS bytes (escaped),
 *    WATCHDOG=1, WATCHDOG=trigger, and numeric WATCHDOG_USEC (0 too: it turns
 *    the watchdog off), EXTEND_TIMEOUT_USEC and ERRNO (or an errno name) as sent, so that no
 *    line but STATUS= carries the server's text; never READY, RELOADING,
 *    STOPPING, MAINPID, BARRIER or the fd store's FDSTORE, FDSTOREREMOVE,
 *    FDNAME and FDPOLL (handoff keeps the store itself); notify_parse() reads
 *    it back to the same message (the same STATUS bytes: the escape round
 *    trip); it fits in input length + 2 bytes, and fails cleanly (-ENOBUFS,
 *    nothing written out of bounds) in any smaller buffer;
 *  - as the supervisor relays it (STATUS= replaced by handoff's summary, of
 *    either shape, at its longest once escaped, into a NOTIFY_MAX_LEN
 *    buffer), everything relayable gets through, and so a WATCHDOG=1 ping of
 *    the serving generation always reaches systemd;
 *  - notify_escape() of the input (as a C string), into a buffer of a size
 *    its last two bytes choose and into one with room for it all: the output
 *    is NUL-terminated within the size, a prefix of the full escaping that
 *    never ends in an odd run of backslashes, cut only where the next
 *    character (or escape pair) does not fit, and, for valid UTF-8, only
 *    between characters; read back by notify_parse() as "STATUS=" + output,
 *    it is exactly the prefix of the input it stands for. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "notify.h"
#include "results.h"
#include "util.h"

static void *xmalloc(size_t size) {
        void *p = malloc(size);
        if (!p)
                abort();
        return p;
}

static bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The lines of a datagram as the reference reads them: unescaped, each
 * NUL-terminated, one after the other in text. */
typedef struct Lines {
        char *text;
        char **line;
        size_t n;
} Lines;

static void lines_free(Lines *l) {
        free(l->text);
        free(l->line);
}

static bool is_separator(char c) {
        return c == '\n' || c == '\r'; /* NEWLINE, the separators of strv_split_newlines() */
}

/* systemd 252's extract_first_word(p, &word, "\n\r", 0), for a text that
 * ends at end rather than at a NUL (the caller made sure it holds none):
 * separators before a word are skipped however many there are, a backslash
 * takes the next byte as it is (no flag asks for C escapes), and a
 * separator ends the word. Returns 1 with the word in word, 0 when no word
 * is left, -EINVAL for a backslash with nothing after it. */
static int extract_first_word(const char **p, const char *end, char *word) {
        size_t sz = 0;
        bool backslash = false;

        for (;; (*p)++) {
                if (*p == end)
                        return 0;
                if (!is_separator(**p))
                        break;
        }
        for (;; (*p)++) {
                if (*p == end) {
                        if (backslash)
                                return -EINVAL;
                        break;
                }
                char c = **p;
                if (backslash) {
                        word[sz++] = c;
                        backslash = false;
                } else if (c == '\\')
                        backslash = true;
                else if (is_separator(c)) {
                        (*p)++;
                        break;
                } else
                        word[sz++] = c;
        }
        word[sz] = '\0';
        return 1;
}

/* The reference reader. As manager_dispatch_notify_fd(): one trailing NUL
 * is permitted, any other drops the datagram. As strv_split_newlines():
 * words until there are none (it drops a last empty one, which
 * extract_first_word() without flags never returns), and an error drops
 * the datagram (manager_invoke_notify_message() gets no tags). Returns
 * false for a dropped datagram. The size limit is not checked here: it is
 * the receive buffer's, and relayed text is read with this too. */
static bool split_lines(const char *data, size_t len, Lines *ret) {
        if (len > 0 && data[len - 1] == '\0')
                len--;
        if (memchr(data, '\0', len))
                return false;
        /* n words take at least n - 1 separators: their bytes and NULs fit
         * in len + 1. */
        Lines l = { .text = xmalloc(len + 1), .line = xmalloc(((len + 1) / 2 + 1) * sizeof(char *)) };
        size_t used = 0;
        for (const char *p = data, *end = data + len;;) {
                char *word = l.text + used;
                int r = extract_first_word(&p, end, word);
                if (r < 0) {
                        lines_free(&l);
                        return false;
                }
                if (r == 0)
                        break;
                l.line[l.n++] = word;
                used += strlen(word) + 1;
        }
        *ret = l;
        return true;
}

static bool lines_has(const Lines *l, const char *line) {
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->line[i], line) == 0)
                        return true;
        return false;
}

/* line starts with "KEY=": the value after it, or NULL. */
static const char *startswith_key(const char *line, const char *key) {
        size_t kl = strlen(key);
        return strncmp(line, key, kl) == 0 && line[kl] == '=' ? line + kl + 1 : NULL;
}

/* The value of the first line that starts with "KEY=" (strv_find_startswith()),
 * or NULL. */
static const char *lines_first_value(const Lines *l, const char *key) {
        for (size_t i = 0; i < l->n; i++) {
                const char *v = startswith_key(l->line[i], key);
                if (v)
                        return v;
        }
        return NULL;
}

/* The keys parse_line() in notify.c acts on. A key added there and not here
 * fails the n_unknown property at once: add it here, with a property. */
static const char *const known_keys[] = {
        "READY",   "RELOADING", "STOPPING", "WATCHDOG",            "BARRIER", "FDSTORE",
        "FDSTOREREMOVE", "FDNAME", "STATUS", "EXTEND_TIMEOUT_USEC", "ERRNO",   "MAINPID",
        "WATCHDOG_USEC", "FDPOLL",
};

/* Lines that start with none of the known "KEY=" (a line without '=' too). */
static unsigned lines_count_unknown(const Lines *l) {
        unsigned k = 0;
        for (size_t i = 0; i < l->n; i++) {
                bool known = false;
                for (size_t j = 0; j < sizeof known_keys / sizeof known_keys[0]; j++)
                        known = known || startswith_key(l->line[i], known_keys[j]);
                k += !known;
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

/* A value notify_parse() returned lies in the buffer, NUL and all. */
/* UTF-8 as systemd's utf8_is_valid() takes it, by another road: the
 * well-formed byte sequences of RFC 3629's table, less the noncharacters
 * (U+FDD0..U+FDEF, and U+xxFFFE and U+xxFFFF in every plane). */
static bool utf8_well_formed(const char *text) {
        const unsigned char *s = (const unsigned char *) text;
        while (*s) {
                unsigned char b = s[0];
                size_t n;
                unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
                if (b <= 0x7f)
                        n = 1;
                else if (b >= 0xc2 && b <= 0xdf)
                        n = 2;
                else if (b >= 0xe0 && b <= 0xef) {
                        n = 3;
                        lo = b == 0xe0 ? 0xa0 : 0x80;
                        hi = b == 0xed ? 0x9f : 0xbf;
                } else if (b >= 0xf0 && b <= 0xf4) {
                        n = 4;
                        lo = b == 0xf0 ? 0x90 : 0x80;
                        hi = b == 0xf4 ? 0x8f : 0xbf;
                } else
                        return false;
                if (n > 1 && (s[1] < lo || s[1] > hi))
                        return false;
                for (size_t i = 2; i < n; i++)
                        if (s[i] < 0x80 || s[i] > 0xbf)
                                return false;
                uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1fu) : n == 3 ? (b & 0x0fu) : (b & 0x07u);
                for (size_t i = 1; i < n; i++)
                        c = c << 6 | (s[i] & 0x3fu);
                if ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xffff) >= 0xfffe)
                        return false;
                s += n;
        }
        return true;
}

static void check_field(const char *name, const char *v, const char *buf, size_t size) {
        if (!v)
                return;
        FUZZ_ASSERT(v >= buf && v <= buf + size && strlen(v) <= (size_t) (buf + size - v),
                    "%s points outside the buffer", name);
}

/* Relays m into a heap block of exactly size bytes: ASan catches any write
 * past it. Returns what notify_relay_text() returned; *ret gets the text. */
static int relay_into(const NotifyMessage *m, size_t size, char **ret) {
        char *out = xmalloc(size);
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

static char *concat(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        char *s = xmalloc(la + lb + 1);
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
        return s;
}

/* An errno name handoff relays: 'E', then 1 to 19 capitals or digits. */
static bool errno_name(const char *s) {
        size_t n = strlen(s);
        if (n < 2 || n > 20 || s[0] != 'E')
                return false;
        for (size_t i = 1; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

static void check_relay_text(const NotifyMessage *m, const char *text, size_t len) {
        FUZZ_ASSERT(len == 0 || text[len - 1] == '\n', "relayed text does not end in a newline");

        /* Read as systemd reads it, the lines are exactly the ones handoff
         * means to send: the server's STATUS bytes, whatever they hold, stay
         * in the STATUS= line, and every other line is handoff's own, with
         * a number at most. */
        char *want[6];
        size_t n_want = 0;
        if (m->status)
                want[n_want++] = concat("STATUS=", m->status);
        if (m->watchdog)
                want[n_want++] = concat("WATCHDOG=", "1");
        if (m->watchdog_trigger)
                want[n_want++] = concat("WATCHDOG=", "trigger");
        bool want_wd = usec_number(m->watchdog_usec);
        if (want_wd)
                want[n_want++] = concat("WATCHDOG_USEC=", m->watchdog_usec);
        bool want_ext = usec_number(m->extend_timeout_usec);
        if (want_ext)
                want[n_want++] = concat("EXTEND_TIMEOUT_USEC=", m->extend_timeout_usec);
        bool want_errno = m->errno_value && (all_digits(m->errno_value) || errno_name(m->errno_value));
        if (want_errno)
                want[n_want++] = concat("ERRNO=", m->errno_value);

        Lines got;
        FUZZ_ASSERT(split_lines(text, len, &got), "systemd would drop the relayed text");
        /* The wanted lines have different keys: as many lines, each of them
         * there, is the same set. */
        FUZZ_ASSERT(got.n == n_want, "%zu lines relayed, expected %zu", got.n, n_want);
        for (size_t i = 0; i < n_want; i++) {
                char repr[256];
                FUZZ_ASSERT(lines_has(&got, want[i]), "line %s not relayed as it was",
                            fuzz_repr(want[i], repr, sizeof repr));
                free(want[i]);
        }
        lines_free(&got);

        /* More than a datagram: systemd would not take it, and the supervisor
         * relays into a NOTIFY_MAX_LEN buffer (check_supervisor_relay()). */
        if (len == 0 || len > NOTIFY_MAX_LEN)
                return;
        /* handoff's own parser reads back the same message and nothing more. */
        char *copy = xmalloc(len + 1);
        memcpy(copy, text, len);
        NotifyMessage back;
        int r = notify_parse(copy, len, &back);
        FUZZ_ASSERT(r == 0, "relayed text does not parse back (%d)", r);
        FUZZ_ASSERT(!back.ready && !back.reloading && !back.stopping && !back.barrier && !back.mainpid &&
                            !back.fdstore && !back.fdstoreremove && !back.fdname && !back.fdpoll_off,
                    "relayed text parses to a message with handoff's own keys");
        FUZZ_ASSERT(back.n_unknown == 0, "relayed text has %u unknown lines", back.n_unknown);
        FUZZ_ASSERT(back.watchdog == m->watchdog && back.watchdog_trigger == m->watchdog_trigger,
                    "watchdog flags changed through the relay");
        FUZZ_ASSERT(streq_null(back.status, m->status), "STATUS changed through the relay");
        FUZZ_ASSERT(streq_null(back.watchdog_usec, want_wd ? m->watchdog_usec : NULL),
                    "WATCHDOG_USEC changed through the relay");
        FUZZ_ASSERT(streq_null(back.extend_timeout_usec, want_ext ? m->extend_timeout_usec : NULL),
                    "EXTEND_TIMEOUT_USEC changed through the relay");
        FUZZ_ASSERT(streq_null(back.errno_value, want_errno ? m->errno_value : NULL), "ERRNO changed through the relay");
        free(copy);
}

/* The supervisor replaces STATUS= by its own summary before relaying
 * (on_gen_message() in supervisor.c), made in st[NOTIFY_MAX_LEN / 2] and
 * relayed into a NOTIFY_MAX_LEN buffer. Both shapes, at their longest once
 * escaped: every byte that comes from elsewhere a backslash. */
static const char *supervisor_summary(bool starting) {
        static char serving[NOTIFY_MAX_LEN / 2], first[NOTIFY_MAX_LEN / 2];
        if (!serving[0]) {
                /* results_status_line(): "Serving generation %u (pid %d); %u
                 * reloads, %u failed; last: <544 bytes>; app: <255 bytes>":
                 * the longest last result is results_failed_text()'s. */
                static char last[RESULTS_CAUSE_MAX + 32 + 1];
                memset(last, '\\', sizeof last - 1);
                Results res = { .reloads_ok = UINT_MAX, .reloads_failed = UINT_MAX, .app_status_gen = UINT_MAX,
                                .last_result = last };
                memset(res.app_status, '\\', sizeof res.app_status - 1);
                results_status_line(&res, UINT_MAX, INT_MAX, serving, sizeof serving);

                /* The first generation, starting: "Starting generation %u (pid
                 * %d, <duration>): " and 1024 bytes of its own STATUS=; the
                 * duration is format_duration()'s into a char[32]. */
                char app[1025], d[32];
                memset(app, '\\', sizeof app - 1);
                app[sizeof app - 1] = '\0';
                memset(d, '9', sizeof d - 1);
                d[sizeof d - 1] = '\0';
                snprintf(first, sizeof first, "Starting generation %u (pid %d, %s): %.*s", UINT_MAX, INT_MAX, d,
                         (int) utf8_prefix(app, 1024), app);
        }
        return starting ? first : serving;
}

static void check_supervisor_relay(const NotifyMessage *m) {
        for (int starting = 0; starting <= 1; starting++) {
                NotifyMessage out = *m;
                if (m->status)
                        out.status = supervisor_summary(starting);
                char *text = NULL;
                int r = relay_into(&out, NOTIFY_MAX_LEN, &text);
                /* A keep-alive ping must never be lost because another field
                 * of the same datagram is odd: systemd would kill the service
                 * as hung. */
                if (m->watchdog) {
                        Lines got;
                        FUZZ_ASSERT(r > 0 && split_lines(text, (size_t) r, &got) && lines_has(&got, "WATCHDOG=1"),
                                    "WATCHDOG=1 from the serving generation was not relayed (%s summary, relay returned %d)",
                                    starting ? "starting" : "serving", r);
                        lines_free(&got);
                }
                /* Nor anything else that may be relayed: the summary and every
                 * relayable field fit together, and say what they said. */
                FUZZ_ASSERT(r >= 0, "the supervisor's relay (%s summary) failed: %d", starting ? "starting" : "serving", r);
                check_relay_text(&out, text, (size_t) r);
                free(text);
        }
}

/* Strict UTF-8 (RFC 3629), as systemd's utf8_is_valid(): no overlong form,
 * no surrogate, nothing past U+10FFFF. */
static bool utf8_valid(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;
        while (p < end) {
                unsigned char c = *p;
                size_t len = c < 0x80                ? 1
                             : c >= 0xc2 && c <= 0xdf ? 2
                             : c >= 0xe0 && c <= 0xef ? 3
                             : c >= 0xf0 && c <= 0xf4 ? 4
                                                      : 0;
                if (len == 0 || (size_t) (end - p) < len)
                        return false;
                uint32_t u = len == 1 ? c : c & (0x7fu >> len);
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        u = u << 6 | (p[i] & 0x3f);
                }
                if (len == 3 && (u < 0x800 || (u >= 0xd800 && u <= 0xdfff)))
                        return false;
                if (len == 4 && (u < 0x10000 || u > 0x10ffff))
                        return false;
                p += len;
        }
        return true;
}

/* The reference escaping: a backslash before every backslash, \n and \r,
 * the bytes extract_first_word() would otherwise take for an escape or the
 * end of the line. */
static char *escape_all(const char *text) {
        char *out = xmalloc(2 * strlen(text) + 1), *o = out;
        for (const char *p = text; *p; p++) {
                if (*p == '\\' || is_separator(*p))
                        *o++ = '\\';
                *o++ = *p;
        }
        *o = '\0';
        return out;
}

/* Length of the unit at s in an escaping of valid UTF-8: an escape pair,
 * or one whole character. */
static size_t unit_len(const char *s) {
        unsigned char c = (unsigned char) *s;
        if (c == '\\')
                return 2;
        return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

static void check_escape(const char *text, const char *full, size_t size) {
        size_t full_len = strlen(full);
        char *out = xmalloc(size); /* exactly: ASan sees a write past it */
        memset(out, 'X', size);
        size_t n = notify_escape(text, out, size);
        FUZZ_ASSERT(n < size && strlen(out) == n, "escaped %zu bytes into %zu, text length %zu", n, size, strlen(out));
        FUZZ_ASSERT(memcmp(out, full, n) == 0, "escaped text is not a prefix of the full escaping");
        FUZZ_ASSERT(size <= full_len || n == full_len, "escaped text cut though all of it fits in %zu bytes", size);
        size_t run = 0;
        while (run < n && out[n - 1 - run] == '\\')
                run++;
        FUZZ_ASSERT(run % 2 == 0, "escaped text ends in a lone backslash (cut inside an escape)");
        if (utf8_valid(text, strlen(text))) {
                FUZZ_ASSERT(utf8_valid(out, n), "escaped text cut inside a UTF-8 character");
                FUZZ_ASSERT(n == full_len || n + unit_len(full + n) + 1 > size,
                            "escaped text cut at %zu bytes, though the next character fits in %zu", n, size);
        }

        /* Read back (as systemd would), it is a prefix of the text: as many
         * bytes as out has escape pairs and other bytes. */
        if (n + sizeof "STATUS=" - 1 <= NOTIFY_MAX_LEN) {
                size_t k = 0;
                for (size_t i = 0; i < n; i += out[i] == '\\' ? 2 : 1)
                        k++;
                char *dgram = concat("STATUS=", out);
                NotifyMessage m;
                int r = notify_parse(dgram, strlen(dgram), &m);
                FUZZ_ASSERT(r == 0, "\"STATUS=\" + escaped text does not parse (%d)", r);
                /* (A text that is not UTF-8 reads back as no status.) */
                char *prefix = fuzz_strndup((const uint8_t *) text, k);
                if (utf8_well_formed(prefix))
                        FUZZ_ASSERT(m.status && strlen(m.status) == k && memcmp(m.status, text, k) == 0,
                                    "escaped text does not read back as the first %zu bytes of the text", k);
                else
                        FUZZ_ASSERT(m.status && !m.status[0] && m.status_not_utf8,
                                    "a STATUS= that is not UTF-8 was read as text");
                free(prefix);
                free(dgram);
        }
        free(out);
}

/* The input as a C string, escaped into a buffer of a size from its last two
 * bytes (1 up to what a STATUS= datagram can carry back: enough to cut
 * anywhere), and into one with room for all of it. */
static void check_escape_input(const uint8_t *data, size_t size) {
        char *text = fuzz_strndup(data, size);
        char *full = escape_all(text);
        size_t full_len = strlen(full);
        size_t choice = size >= 2 ? (size_t) data[size - 2] << 8 | data[size - 1] : 0;
        size_t room = NOTIFY_MAX_LEN - (sizeof "STATUS=" - 1);
        check_escape(text, full, 1 + choice % (full_len + 1 < room ? full_len + 1 : room));
        check_escape(text, full, full_len + 1);
        free(full);
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        check_escape_input(data, size);

        /* notify_receive() hands over buf with room for the NUL at buf[len]. */
        char *buf = xmalloc(size + 1);
        if (size > 0)
                memcpy(buf, data, size);

        NotifyMessage m;
        memset(&m, 0xAA, sizeof m);
        int r = notify_parse(buf, size, &m);
        Lines ref;
        bool accept = size <= NOTIFY_MAX_LEN && split_lines((const char *) data, size, &ref);
        FUZZ_ASSERT((r == 0) == accept, "notify_parse() returned %d, expected %s", r, accept ? "0" : "-EBADMSG");
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG, "notify_parse() failed with %d, expected -EBADMSG", r);
                free(buf);
                return 0;
        }

        /* As service_notify_message(): of READY=1, RELOADING=1 and
         * STOPPING=1 the last line counts (STRV_FOREACH_BACKWARDS), of
         * WATCHDOG= the first; the other flags are set by any line
         * (strv_contains()), a field is its first line. */
        const char *state = NULL;
        for (size_t i = ref.n; i > 0 && !state; i--)
                if (strcmp(ref.line[i - 1], "READY=1") == 0 || strcmp(ref.line[i - 1], "RELOADING=1") == 0 ||
                    strcmp(ref.line[i - 1], "STOPPING=1") == 0)
                        state = ref.line[i - 1];
        FUZZ_ASSERT(m.ready == streq_null(state, "READY=1") && m.reloading == streq_null(state, "RELOADING=1") &&
                            m.stopping == streq_null(state, "STOPPING=1"),
                    "ready/reloading/stopping %d/%d/%d, the last such line is %s", m.ready, m.reloading, m.stopping,
                    state ? state : "none");
        const char *watchdog = lines_first_value(&ref, "WATCHDOG");
        FUZZ_ASSERT(m.watchdog == streq_null(watchdog, "1") && m.watchdog_trigger == streq_null(watchdog, "trigger"),
                    "watchdog/trigger %d/%d, the first WATCHDOG= line says %s", m.watchdog, m.watchdog_trigger,
                    watchdog ? watchdog : "nothing");
        FUZZ_ASSERT(m.n_lines == ref.n, "%u lines, expected %zu", m.n_lines, ref.n);
        static const struct {
                const char *line;
                size_t offset;
        } flags[] = {
                { "BARRIER=1", offsetof(NotifyMessage, barrier) },
                { "FDSTORE=1", offsetof(NotifyMessage, fdstore) },
                { "FDSTOREREMOVE=1", offsetof(NotifyMessage, fdstoreremove) },
                { "FDPOLL=0", offsetof(NotifyMessage, fdpoll_off) },
        };
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
                FUZZ_ASSERT(*(const bool *) ((const char *) &m + flags[i].offset) == lines_has(&ref, flags[i].line),
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
                const char *want = lines_first_value(&ref, fields[i].key);
                /* A STATUS= that is not UTF-8 is an empty one: systemd
                 * clears the status for it. */
                bool not_utf8 = strcmp(fields[i].key, "STATUS") == 0 && want && !utf8_well_formed(want);
                if (not_utf8)
                        want = "";
                FUZZ_ASSERT(streq_null(v, want), "%s is not the first such line", fields[i].key);
                if (strcmp(fields[i].key, "STATUS") == 0)
                        FUZZ_ASSERT(m.status_not_utf8 == not_utf8, "status_not_utf8 %d, expected %d",
                                    m.status_not_utf8, not_utf8);
                check_field(fields[i].key, v, buf, size);
        }
        FUZZ_ASSERT(m.n_unknown == lines_count_unknown(&ref), "%u unknown lines, expected %u", m.n_unknown,
                    lines_count_unknown(&ref));
        lines_free(&ref);

        /* Relayed text is never longer than the datagram plus a final
         * newline. Each relayed line stands for a line of the datagram of its
         * own and is no longer: a byte the relay escapes in STATUS= was an
         * escape pair in the datagram too (an unescaped backslash or line
         * end cannot be part of a value), and numbers go out as sent (digits,
         * no leading zero). n lines take n - 1 separators between them in the
         * datagram, n newlines relayed: one more, and the NUL. */
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
        free(buf);
        return 0;
}
