/* SPDX-License-Identifier: MIT */
/* The sd_notify protocol in notify.c: parsing, what is relayed, and the
 * private receiving socket with real datagrams. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "close-async.h"
#include "notify.h"
#include "unit.h"

/* ---- notify_parse ----------------------------------------------------- */

static char pbuf[NOTIFY_MAX_LEN + 64];

static int parse_n(const char *text, size_t len, NotifyMessage *m) {
        ck_assert_uint_lt(len, sizeof pbuf);
        memcpy(pbuf, text, len);
        memset(m, 0xaa, sizeof *m); /* poison: must be overwritten on success */
        return notify_parse(pbuf, len, m);
}

static int parse(const char *text, NotifyMessage *m) {
        return parse_n(text, strlen(text), m);
}

START_TEST(test_parse_ready) {
        NotifyMessage m;
        ck_assert_int_eq(parse("READY=1", &m), 0);
        ck_assert(m.ready);
        ck_assert(!m.reloading);
        ck_assert(!m.stopping);
        ck_assert(!m.watchdog);
        ck_assert(!m.watchdog_trigger);
        ck_assert(!m.barrier);
        ck_assert_ptr_null(m.status);
        ck_assert_ptr_null(m.extend_timeout_usec);
        ck_assert_ptr_null(m.errno_value);
        ck_assert_ptr_null(m.mainpid);
        ck_assert_uint_eq(m.n_unknown, 0);
}
END_TEST

START_TEST(test_parse_values_must_be_exact) {
        NotifyMessage m;
        ck_assert_int_eq(parse("READY=0", &m), 0);
        ck_assert(!m.ready);
        ck_assert_int_eq(parse("READY=11", &m), 0);
        ck_assert(!m.ready);
        ck_assert_int_eq(parse("READY=", &m), 0);
        ck_assert(!m.ready);
        ck_assert_int_eq(parse("READY=1 ", &m), 0);
        ck_assert(!m.ready);
        /* Keys are case-sensitive and whole. */
        ck_assert_int_eq(parse("ready=1", &m), 0);
        ck_assert(!m.ready);
        ck_assert_uint_eq(m.n_unknown, 1);
        ck_assert_int_eq(parse("READYX=1", &m), 0);
        ck_assert(!m.ready);
        ck_assert_uint_eq(m.n_unknown, 1);
        ck_assert_int_eq(parse("XREADY=1", &m), 0);
        ck_assert(!m.ready);
        ck_assert_uint_eq(m.n_unknown, 1);
}
END_TEST

START_TEST(test_parse_multiline) {
        NotifyMessage m;
        ck_assert_int_eq(parse("READY=1\nSTATUS=Serving 3 clients\nWATCHDOG=1\nEXTEND_TIMEOUT_USEC=5000000\n"
                               "ERRNO=2\nMAINPID=42\nBARRIER=1\nRELOADING=1\nSTOPPING=1",
                               &m),
                         0);
        /* Of READY=1, RELOADING=1 and STOPPING=1 the last counts. */
        ck_assert(!m.ready);
        ck_assert(!m.reloading);
        ck_assert(m.stopping);
        ck_assert(m.watchdog);
        ck_assert(!m.watchdog_trigger);
        ck_assert(m.barrier);
        ck_assert_str_eq(m.status, "Serving 3 clients");
        ck_assert_str_eq(m.extend_timeout_usec, "5000000");
        ck_assert_str_eq(m.errno_value, "2");
        ck_assert_str_eq(m.mainpid, "42");
        ck_assert_uint_eq(m.n_unknown, 0);
        ck_assert_uint_eq(m.n_lines, 9);
        /* Values point into the parsed buffer. */
        ck_assert(m.status > pbuf && m.status < pbuf + sizeof pbuf);
}
END_TEST

START_TEST(test_parse_trailing_newline) {
        NotifyMessage m;
        ck_assert_int_eq(parse("READY=1\n", &m), 0);
        ck_assert(m.ready);
        ck_assert_int_eq(parse("STATUS=x\n", &m), 0);
        ck_assert_str_eq(m.status, "x"); /* no newline in the value */
        ck_assert_int_eq(parse("READY=1\n\nSTATUS=y\n\n", &m), 0);
        ck_assert(m.ready);
        ck_assert_str_eq(m.status, "y");
}
END_TEST

START_TEST(test_parse_status_with_equals) {
        NotifyMessage m;
        ck_assert_int_eq(parse("STATUS=a=b, c=d", &m), 0);
        ck_assert_str_eq(m.status, "a=b, c=d");
        ck_assert_int_eq(parse("STATUS=", &m), 0);
        ck_assert_str_eq(m.status, "");
}
END_TEST

START_TEST(test_parse_watchdog_trigger) {
        NotifyMessage m;
        ck_assert_int_eq(parse("WATCHDOG=trigger", &m), 0);
        ck_assert(m.watchdog_trigger);
        ck_assert(!m.watchdog);
        ck_assert_int_eq(parse("WATCHDOG=1", &m), 0);
        ck_assert(m.watchdog);
        ck_assert(!m.watchdog_trigger);
}
END_TEST

/* As systemd 252's service_notify_message(): of READY=1, RELOADING=1 and
 * STOPPING=1 the last line counts (another value names no state); of
 * WATCHDOG=, the first line; BARRIER=1, FDSTORE=1 and FDSTOREREMOVE=1 on
 * any line. */
START_TEST(test_parse_flags_as_systemd) {
        NotifyMessage m;
        ck_assert_int_eq(parse("READY=1\nWATCHDOG=1\nWATCHDOG=trigger\nREADY=0", &m), 0);
        ck_assert(m.ready);
        ck_assert(m.watchdog);
        ck_assert(!m.watchdog_trigger);
        ck_assert_int_eq(parse("WATCHDOG=trigger\nWATCHDOG=0\nWATCHDOG=1\nWATCHDOG=", &m), 0);
        ck_assert(!m.watchdog && m.watchdog_trigger);
        ck_assert_int_eq(parse("WATCHDOG=x\nWATCHDOG=1", &m), 0);
        ck_assert(!m.watchdog && !m.watchdog_trigger);
        ck_assert_int_eq(parse("RELOADING=1\nRELOADING=0\nSTOPPING=1\nSTOPPING=x", &m), 0);
        ck_assert(!m.reloading && m.stopping);
        ck_assert_int_eq(parse("READY=1\nSTOPPING=1", &m), 0);
        ck_assert(!m.ready && m.stopping);
        ck_assert_int_eq(parse("STOPPING=1\nRELOADING=1\nREADY=1\nREADY=0", &m), 0);
        ck_assert(m.ready && !m.reloading && !m.stopping);
        ck_assert_int_eq(parse("BARRIER=1\nBARRIER=0\nFDSTORE=1\nFDSTORE=\nFDSTOREREMOVE=1\nFDSTOREREMOVE=0", &m),
                         0);
        ck_assert(m.barrier && m.fdstore && m.fdstoreremove);
        ck_assert_int_eq(parse("READY=0\nREADY=2\nWATCHDOG=2", &m), 0);
        ck_assert(!m.ready && !m.watchdog && !m.watchdog_trigger);
        ck_assert_uint_eq(m.n_unknown, 0);
}
END_TEST

START_TEST(test_parse_first_value_counts) {
        /* As systemd 252's strv_find_startswith(): the first line of a key. */
        NotifyMessage m;
        ck_assert_int_eq(parse("STATUS=one\nFDNAME=a\nSTATUS=two\nFDNAME=b\nEXTEND_TIMEOUT_USEC=5\n"
                               "EXTEND_TIMEOUT_USEC=9\nERRNO=1\nERRNO=2\nMAINPID=3\nMAINPID=4\n"
                               "WATCHDOG_USEC=10\nWATCHDOG_USEC=20",
                               &m),
                         0);
        ck_assert_str_eq(m.status, "one");
        ck_assert_str_eq(m.fdname, "a");
        ck_assert_str_eq(m.extend_timeout_usec, "5");
        ck_assert_str_eq(m.errno_value, "1");
        ck_assert_str_eq(m.mainpid, "3");
        ck_assert_str_eq(m.watchdog_usec, "10");
}
END_TEST

START_TEST(test_parse_watchdog_usec) {
        NotifyMessage m;
        uint64_t v = 7;
        ck_assert_int_eq(parse("WATCHDOG_USEC=20000000\nWATCHDOG=1", &m), 0);
        ck_assert_str_eq(m.watchdog_usec, "20000000");
        ck_assert(m.watchdog);
        ck_assert_uint_eq(m.n_unknown, 0);
        ck_assert(notify_watchdog_usec(&m, &v));
        ck_assert_uint_eq(v, 20000000);
        /* WATCHDOG_USEC is a key of its own, not a value of WATCHDOG. */
        ck_assert_int_eq(parse("WATCHDOG_USEC=1", &m), 0);
        ck_assert(!m.watchdog);
        ck_assert_int_eq(parse("READY=1", &m), 0);
        ck_assert_ptr_null(m.watchdog_usec);
        ck_assert(!notify_watchdog_usec(&m, &v));
        /* 0 turns the watchdog off (systemd's service_override_watchdog_timeout()). */
        ck_assert_int_eq(parse("WATCHDOG_USEC=0", &m), 0);
        ck_assert(notify_watchdog_usec(&m, &v));
        ck_assert_uint_eq(v, 0);
        /* Not a number, too large, or one systemd reads otherwise (its
         * strtoull() base 0: "010" is 8, "0x10" 16, " 5" 5): ignored. */
        static const char *const bad[] = { "", "-1", "5s", " 5", "0x10", "010", "18446744073709551616" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                m = (NotifyMessage) { .watchdog_usec = bad[i] };
                v = 7;
                ck_assert(!notify_watchdog_usec(&m, &v));
                ck_assert_uint_eq(v, 7);
        }
}
END_TEST

START_TEST(test_parse_unknown_keys_counted) {
        NotifyMessage m;
        ck_assert_int_eq(parse("FOO=1\nREADY=1\nBAR=\nFDSTORE=1\nX_CUSTOM=value", &m), 0);
        ck_assert(m.ready);
        ck_assert(m.fdstore);
        ck_assert_uint_eq(m.n_unknown, 3);
}
END_TEST

START_TEST(test_parse_fdstore_keys) {
        NotifyMessage m;
        ck_assert_int_eq(parse("FDSTORE=1\nFDNAME=state", &m), 0);
        ck_assert(m.fdstore && !m.fdstoreremove);
        ck_assert_str_eq(m.fdname, "state");
        /* FDSTORE must not match FDSTOREREMOVE's prefix, nor the reverse. */
        ck_assert_int_eq(parse("FDSTOREREMOVE=1\nFDNAME=conn", &m), 0);
        ck_assert(m.fdstoreremove && !m.fdstore);
        ck_assert_str_eq(m.fdname, "conn");
        ck_assert_int_eq(parse("FDSTORE=0", &m), 0);
        ck_assert(!m.fdstore);
        /* An empty FDNAME= is a name (""), not its absence. */
        ck_assert_int_eq(parse("FDSTORE=1\nFDNAME=", &m), 0);
        ck_assert_ptr_nonnull(m.fdname);
        ck_assert_str_eq(m.fdname, "");
        /* As systemd: FDPOLL=0 on any line turns the watch off; no other value does. */
        ck_assert_int_eq(parse("FDSTORE=1\nFDPOLL=0\nFDPOLL=1", &m), 0);
        ck_assert(m.fdstore && m.fdpoll_off);
        ck_assert_uint_eq(m.n_unknown, 0);
        ck_assert_int_eq(parse("FDSTORE=1\nFDPOLL=no", &m), 0);
        ck_assert(!m.fdpoll_off);
}
END_TEST

START_TEST(test_parse_rejects) {
        NotifyMessage m;
        /* An embedded NUL; only a trailing one is allowed. */
        ck_assert_int_eq(parse_n("READY=1\0STATUS=x", 16, &m), -EBADMSG);
        ck_assert_int_eq(parse_n("\0READY=1", 8, &m), -EBADMSG);
        ck_assert_int_eq(parse_n("READY=1\0\0", 9, &m), -EBADMSG);
        /* A lone backslash at the end: systemd drops the whole datagram. */
        ck_assert_int_eq(parse("READY=1\nSTATUS=x\\", &m), -EBADMSG);
        ck_assert_int_eq(parse("\\", &m), -EBADMSG);
        ck_assert_int_eq(parse_n("READY=1\\\0", 9, &m), -EBADMSG);
}
END_TEST

/* What systemd 252's manager accepts, read as it reads it
 * (strv_split_newlines() in manager_dispatch_notify_fd()). */
START_TEST(test_parse_as_systemd) {
        NotifyMessage m;
        /* The terminator counted in (sizeof "READY=1"). */
        ck_assert_int_eq(parse_n("READY=1\0", 8, &m), 0);
        ck_assert(m.ready);
        ck_assert_int_eq(parse_n("\0", 1, &m), 0);
        ck_assert(!m.ready);
        /* Empty: a message that says nothing. */
        ck_assert_int_eq(parse_n("", 0, &m), 0);
        ck_assert(!m.ready && !m.status);
        ck_assert_uint_eq(m.n_unknown, 0);
        /* Lines end at \r as at \n; empty lines are skipped. */
        ck_assert_int_eq(parse("STATUS=up\r\nREADY=1\r\n", &m), 0);
        ck_assert(m.ready);
        ck_assert_str_eq(m.status, "up");
        ck_assert_int_eq(parse("\r\r\n\nREADY=1\rERRNO=2", &m), 0);
        ck_assert(m.ready);
        ck_assert_str_eq(m.errno_value, "2");
        ck_assert_uint_eq(m.n_unknown, 0);
        /* A line without '=' is ignored, not the datagram. */
        ck_assert_int_eq(parse("garbage\nREADY=1\nSTATUS x", &m), 0);
        ck_assert(m.ready);
        ck_assert_ptr_null(m.status);
        ck_assert_uint_eq(m.n_unknown, 2);
        /* A backslash takes the next character as it is: "\\" is one, an
         * escaped line end is part of the line, and escaping works in keys too. */
        ck_assert_int_eq(parse("STATUS=C:\\\\srv\\\\\nREADY=1", &m), 0);
        ck_assert(m.ready);
        ck_assert_str_eq(m.status, "C:\\srv\\");
        ck_assert_int_eq(parse("STATUS=one\\\ntwo\\\rthree\\x", &m), 0);
        ck_assert_str_eq(m.status, "one\ntwo\rthreex");
        /* A STATUS= that is not UTF-8 is an empty one, as systemd clears
         * the status for it. */
        ck_assert_int_eq(parse("STATUS=caf\xe9\nREADY=1", &m), 0);
        ck_assert(m.ready && m.status && !m.status[0] && m.status_not_utf8);
        ck_assert_int_eq(parse("STATUS=caf\xc3\xa9", &m), 0);
        ck_assert(m.status && !m.status_not_utf8);
        ck_assert_int_eq(parse("RE\\ADY=\\1", &m), 0);
        ck_assert(m.ready);
        /* An escaped line end does not end the line: no READY=1 here. */
        ck_assert_int_eq(parse("STATUS=x\\\nREADY=1", &m), 0);
        ck_assert(!m.ready);
        ck_assert_str_eq(m.status, "x\nREADY=1");
        /* The values point at their own unescaped lines. */
        ck_assert_int_eq(parse("STATUS=a\\\\b\nFDSTORE=1\nFDNAME=c\\d", &m), 0);
        ck_assert_str_eq(m.status, "a\\b");
        ck_assert_str_eq(m.fdname, "cd");
}
END_TEST

START_TEST(test_parse_size_limit) {
        static char big[NOTIFY_MAX_LEN + 2];
        NotifyMessage m;
        memcpy(big, "STATUS=", 7);
        memset(big + 7, 'x', sizeof big - 7);

        /* Exactly NOTIFY_MAX_LEN bytes: accepted. */
        ck_assert_int_eq(parse_n(big, NOTIFY_MAX_LEN, &m), 0);
        ck_assert_uint_eq(strlen(m.status), NOTIFY_MAX_LEN - 7);
        /* One more: rejected. */
        ck_assert_int_eq(parse_n(big, NOTIFY_MAX_LEN + 1, &m), -EBADMSG);
}
END_TEST

/* ---- notify_relay_text ------------------------------------------------ */

START_TEST(test_relay_only_forwardable) {
        char buf[256];
        NotifyMessage m = {
                .ready = true,
                .reloading = true,
                .stopping = true,
                .barrier = true,
                .mainpid = "1",
                .n_unknown = 3,
        };
        memset(buf, 'z', sizeof buf);
        ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "");

        m.status = "Up";
        ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 10);
        ck_assert_str_eq(buf, "STATUS=Up\n");

        m = (NotifyMessage) {
                .status = "Serving",
                .watchdog = true,
                .extend_timeout_usec = "5000000",
                .errno_value = "2",
                .ready = true,
                .mainpid = "1",
        };
        const char *want = "STATUS=Serving\nWATCHDOG=1\nEXTEND_TIMEOUT_USEC=5000000\nERRNO=2\n";
        ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), (int) strlen(want));
        ck_assert_str_eq(buf, want);
        ck_assert_ptr_null(strstr(buf, "READY"));
        ck_assert_ptr_null(strstr(buf, "MAINPID"));

        m = (NotifyMessage) { .watchdog_trigger = true };
        ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 17);
        ck_assert_str_eq(buf, "WATCHDOG=trigger\n");
}
END_TEST

/* A STATUS= text holding what the manager reads as escapes or line ends is
 * sent escaped, and reads back as it was. */
START_TEST(test_relay_escapes_status) {
        char buf[256];
        NotifyMessage m = { .status = "C:\\srv\\", .watchdog = true };
        ck_assert_int_gt(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "STATUS=C:\\\\srv\\\\\nWATCHDOG=1\n");
        NotifyMessage back;
        ck_assert_int_eq(parse(buf, &back), 0);
        ck_assert_str_eq(back.status, "C:\\srv\\");
        ck_assert(back.watchdog);

        m = (NotifyMessage) { .status = "one\ntwo\rREADY=1" };
        ck_assert_int_gt(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "STATUS=one\\\ntwo\\\rREADY=1\n");
        ck_assert_int_eq(parse(buf, &back), 0);
        ck_assert_str_eq(back.status, "one\ntwo\rREADY=1");
        ck_assert(!back.ready);

        /* Escaped, it no longer fits: not relayed cut. "STATUS=" + 4 + "\n"
         * is 12 bytes, and 13 with the NUL. */
        m = (NotifyMessage) { .status = "ab\\c" };
        ck_assert_int_eq(notify_relay_text(&m, buf, 13), -ENOBUFS);
        ck_assert_int_eq(notify_relay_text(&m, buf, 14), 13);
        /* The escape is what does not fit ("abc" and the "\n" would): -ENOBUFS,
         * not the text cut before it. */
        m = (NotifyMessage) { .status = "abc\\" };
        ck_assert_int_eq(notify_relay_text(&m, buf, 12), -ENOBUFS);
}
END_TEST

START_TEST(test_escape_cuts_whole) {
        char buf[8];
        /* Room for 7 bytes: "abcde\\\\" is 7. */
        ck_assert_uint_eq(notify_escape("abcde\\", buf, sizeof buf), 7);
        ck_assert_str_eq(buf, "abcde\\\\");
        /* "abcdef" and then no room for both bytes of an escape: it is left out. */
        ck_assert_uint_eq(notify_escape("abcdef\\x", buf, sizeof buf), 6);
        ck_assert_str_eq(buf, "abcdef");
        ck_assert_uint_eq(notify_escape("abcdef\n", buf, sizeof buf), 6);
        ck_assert_str_eq(buf, "abcdef");
        /* Nor a part of a UTF-8 character ("é" is 2 bytes). */
        ck_assert_uint_eq(notify_escape("abcdef\xc3\xa9", buf, sizeof buf), 6);
        ck_assert_str_eq(buf, "abcdef");
        ck_assert_uint_eq(notify_escape("", buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "");
        ck_assert_uint_eq(notify_escape("x", buf, 1), 0);
        ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_relay_numbers_only) {
        static const char *const bad_numbers[] = { "", "5s", "-1", " 5", "5 ", "0x10", "1\nREADY=1", "1.5", "010",
                                                   "00" };
        char buf[256];
        for (size_t i = 0; i < sizeof bad_numbers / sizeof bad_numbers[0]; i++) {
                NotifyMessage m = { .extend_timeout_usec = bad_numbers[i] };
                ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 0);
                ck_assert_str_eq(buf, "");
                m = (NotifyMessage) { .errno_value = bad_numbers[i] };
                ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 0);
                ck_assert_str_eq(buf, "");
        }
        NotifyMessage m = { .extend_timeout_usec = "0", .errno_value = "0" };
        ck_assert_int_gt(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "EXTEND_TIMEOUT_USEC=0\nERRNO=0\n");
        /* ERRNO= may name the error, as systemd's parse_errno() takes it. */
        m = (NotifyMessage) { .errno_value = "ENOENT" };
        ck_assert_int_gt(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "ERRNO=ENOENT\n");
        static const char *const bad_names[] = { "E", "enoent", "Enoent", "ENOENT ", "ENO-ENT", "EIO\nREADY=1",
                                                 "EXXXXXXXXXXXXXXXXXXXX" };
        for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
                m = (NotifyMessage) { .errno_value = bad_names[i] };
                ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 0);
        }
}
END_TEST

START_TEST(test_relay_watchdog_usec) {
        char buf[256];
        NotifyMessage m = { .watchdog = true, .watchdog_usec = "30000000" };
        ck_assert_int_gt(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "WATCHDOG=1\nWATCHDOG_USEC=30000000\n");
        m.watchdog_usec = "0";
        ck_assert_int_gt(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "WATCHDOG=1\nWATCHDOG_USEC=0\n");
        m.watchdog_usec = "5s";
        ck_assert_int_gt(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "WATCHDOG=1\n");
        m = (NotifyMessage) { .watchdog_usec = "1\nREADY=1" };
        ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_relay_buffer_too_small) {
        NotifyMessage m = { .status = "x" }; /* "STATUS=x\n": 9 bytes + NUL */
        char buf[64];
        ck_assert_int_eq(notify_relay_text(&m, buf, 10), 9);
        ck_assert_str_eq(buf, "STATUS=x\n");
        ck_assert_int_eq(notify_relay_text(&m, buf, 9), -ENOBUFS);
        ck_assert_int_eq(notify_relay_text(&m, buf, 1), -ENOBUFS);

        m.watchdog = true; /* second line does not fit */
        ck_assert_int_eq(notify_relay_text(&m, buf, 12), -ENOBUFS);
        ck_assert_int_eq(notify_relay_text(&m, buf, 21), 20);
}
END_TEST

START_TEST(test_parse_then_relay) {
        NotifyMessage m;
        char buf[256];
        ck_assert_int_eq(parse("READY=1\nSTATUS=Up\nMAINPID=1\nRELOADING=1\nSTOPPING=1\nFOO=bar\n", &m), 0);
        ck_assert_int_eq(notify_relay_text(&m, buf, sizeof buf), 10);
        ck_assert_str_eq(buf, "STATUS=Up\n");
}
END_TEST

/* ---- the socket ------------------------------------------------------- */

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

static socklen_t address_to_sockaddr(const char *address, struct sockaddr_un *sa) {
        ck_assert_int_eq(address[0], '@');
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        size_t l = strlen(address + 1);
        ck_assert_uint_lt(l, sizeof sa->sun_path);
        memcpy(sa->sun_path + 1, address + 1, l);
        return (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + l);
}

/* Sends len bytes to the abstract "@name" address, with fds attached. */
static ssize_t send_notify(const char *address, const void *data, size_t len, const int *fds, size_t n_fds) {
        struct sockaddr_un sa;
        socklen_t sl = address_to_sockaddr(address, &sa);
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(s, 0);

        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * 16)];
        } control = {};
        struct iovec iov = { .iov_base = (void *) data, .iov_len = len };
        struct msghdr mh = { .msg_name = &sa, .msg_namelen = sl, .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                ck_assert_uint_le(n_fds, 16);
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        ssize_t k = sendmsg(s, &mh, 0);
        int e = errno;
        close(s);
        return k < 0 ? -e : k;
}

typedef struct {
        int fd;
        char address[108];
} NotifySocket;

static NotifySocket open_notify(void) {
        NotifySocket n = { .fd = -1 };
        ck_assert_int_eq(notify_socket_open(20, n.address, sizeof n.address, &n.fd), 0);
        return n;
}

START_TEST(test_socket_open) {
        NotifySocket n = open_notify();
        ck_assert_int_ge(n.fd, 20);
        ck_assert(fcntl(n.fd, F_GETFD) & FD_CLOEXEC);
        ck_assert(fcntl(n.fd, F_GETFL) & O_NONBLOCK);

        int v = 0;
        socklen_t l = sizeof v;
        ck_assert_int_eq(getsockopt(n.fd, SOL_SOCKET, SO_PASSCRED, &v, &l), 0);
        ck_assert_int_eq(v, 1);
        l = sizeof v;
        ck_assert_int_eq(getsockopt(n.fd, SOL_SOCKET, SO_TYPE, &v, &l), 0);
        ck_assert_int_eq(v, SOCK_DGRAM);

        char prefix[64];
        snprintf(prefix, sizeof prefix, "@handoff/%d/", (int) getpid());
        ck_assert_msg(strncmp(n.address, prefix, strlen(prefix)) == 0, "address \"%s\"", n.address);
        ck_assert_uint_eq(strlen(n.address), strlen(prefix) + 16);

        /* Bound to exactly that abstract name. */
        struct sockaddr_un want, got;
        socklen_t wl = address_to_sockaddr(n.address, &want), gl = sizeof got;
        ck_assert_int_eq(getsockname(n.fd, (struct sockaddr *) &got, &gl), 0);
        ck_assert_uint_eq(gl, wl);
        ck_assert(memcmp(&got, &want, wl) == 0);

        /* Every call gets its own name. */
        NotifySocket n2 = open_notify();
        ck_assert_str_ne(n.address, n2.address);
        close(n.fd);
        close(n2.fd);
}
END_TEST

START_TEST(test_socket_open_small_buffer) {
        char address[16];
        int fd = -1;
        unsigned before = count_fds();
        ck_assert_int_eq(notify_socket_open(3, address, sizeof address, &fd), -ENOBUFS);
        ck_assert_int_eq(fd, -1);
        ck_assert_uint_eq(count_fds(), before);
}
END_TEST

START_TEST(test_receive_own_pid) {
        NotifySocket n = open_notify();
        char buf[NOTIFY_MAX_LEN + 1];
        pid_t pid = 0;
        uid_t uid = (uid_t) -1;
        int rfds[NOTIFY_MAX_FDS];
        size_t nrfds = 0;
        const char *reason = NULL;

        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), -EAGAIN);

        ck_assert_int_eq(send_notify(n.address, "READY=1\nSTATUS=hi", 17, NULL, 0), 17);
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 17);
        ck_assert_int_eq(pid, getpid());
        ck_assert_int_eq(uid, getuid());
        ck_assert(notify_uid_is_ours(uid));
        ck_assert(memcmp(buf, "READY=1\nSTATUS=hi", 17) == 0);

        /* The received bytes parse. */
        NotifyMessage m;
        ck_assert_int_eq(notify_parse(buf, 17, &m), 0);
        ck_assert(m.ready);
        ck_assert_str_eq(m.status, "hi");

        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), -EAGAIN);
        close(n.fd);
}
END_TEST

/* READY=1 to n's abstract address from a child (as uid, unless it is -1),
 * which has exited when this returns its pid. */
static pid_t ready_from_child(const NotifySocket *n, uid_t uid) {
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                if (uid != (uid_t) -1 && (setgid(uid) < 0 || setuid(uid) < 0))
                        _exit(2);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                size_t l = strlen(n->address + 1);
                memcpy(sa.sun_path + 1, n->address + 1, l);
                int s = socket(AF_UNIX, SOCK_DGRAM, 0);
                ssize_t k = sendto(s, "READY=1", 7, 0, (struct sockaddr *) &sa,
                                   (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + l));
                _exit(k == 7 ? 0 : 1);
        }
        int status;
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child could not send (status %d)", status);
        return child;
}

START_TEST(test_receive_child_pid) {
        NotifySocket n = open_notify();
        pid_t child = ready_from_child(&n, (uid_t) -1);

        char buf[64];
        pid_t pid = 0;
        uid_t uid = (uid_t) -1;
        int rfds[NOTIFY_MAX_FDS];
        size_t nrfds = 0;
        const char *reason = NULL;
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 7);
        ck_assert_int_eq(pid, child);
        close(n.fd);
}
END_TEST

START_TEST(test_receive_hands_over_passed_fds) {
        NotifySocket n = open_notify();
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        int fds[3] = { p[0], p[1], p[0] };

        unsigned before = count_fds();
        ck_assert_int_eq(send_notify(n.address, "READY=1", 7, fds, 3), 7);
        ck_assert_uint_eq(count_fds(), before); /* in flight, not ours yet */

        char buf[64];
        pid_t pid = 0;
        uid_t uid = (uid_t) -1;
        int rfds[NOTIFY_MAX_FDS];
        size_t nrfds = 0;
        const char *reason = NULL;
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 7);
        ck_assert_int_eq(pid, getpid());
        /* The caller gets them (to store for FDSTORE=1, or to close). */
        ck_assert_uint_eq(nrfds, 3);
        ck_assert_uint_eq(count_fds(), before + 3);
        for (size_t i = 0; i < nrfds; i++)
                close(rfds[i]);
        ck_assert_msg(count_fds() == before, "%u fds after closing, %u before", count_fds(), before);

        /* Our originals are untouched: the pipe still works. */
        ck_assert_int_eq(write(p[1], "x", 1), 1);
        ck_assert_int_eq(read(p[0], buf, 1), 1);

        /* After the last copy of the write end is gone, a reader sees EOF: the
         * received duplicate was really closed, not just hidden. */
        close(p[1]);
        ck_assert_int_eq(read(p[0], buf, 1), 0);
        close(p[0]);
        close(n.fd);
}
END_TEST

typedef struct Asked {
        pid_t pid;
        uid_t uid;
        bool answer;
} Asked;

static bool ask(pid_t pid, uid_t uid, void *userdata) {
        Asked *a = userdata;
        a->pid = pid;
        a->uid = uid;
        return a->answer;
}

START_TEST(test_receive_refused_sender_passes_no_fds) {
        ck_assert_int_eq(close_async_setup(), 0); /* its queue's fds, counted from here on */
        NotifySocket n = open_notify();
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        unsigned before = count_fds();
        ck_assert_int_eq(send_notify(n.address, "READY=1", 7, &p[1], 1), 7);
        close(p[1]); /* the datagram holds the write end alone */

        char buf[64];
        pid_t pid = 0;
        uid_t uid = (uid_t) -1;
        int rfds[NOTIFY_MAX_FDS];
        size_t nrfds = 99;
        const char *reason = NULL;
        Asked a = { .answer = false };
        ck_assert_int_eq(notify_receive(n.fd, ask, &a, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 7);
        ck_assert_int_eq(a.pid, getpid());
        ck_assert_int_eq(a.uid, getuid());
        ck_assert_int_eq(pid, getpid());
        ck_assert(memcmp(buf, "READY=1", 7) == 0);
        /* Its text is ours, its fds never were: a closer took the datagram
         * off the socket and released them. */
        ck_assert_uint_eq(nrfds, 0);
        ck_assert_uint_eq(count_fds(), before - 1);
        struct pollfd pfd = { .fd = p[0], .events = POLLIN };
        ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
        ck_assert_int_eq(read(p[0], buf, 1), 0);
        ck_assert(!close_async_saturated()); /* told before it closes them */
        ck_assert_int_eq(notify_receive(n.fd, ask, &a, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), -EAGAIN);

        /* One without fds is received as any other; one whose sender may
         * pass them, with them. */
        ck_assert_int_eq(send_notify(n.address, "STATUS=a", 8, NULL, 0), 8);
        ck_assert_int_eq(notify_receive(n.fd, ask, &a, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 8);
        ck_assert_uint_eq(nrfds, 0);
        a.answer = true;
        ck_assert_int_eq(send_notify(n.address, "FDSTORE=1", 9, &p[0], 1), 9);
        ck_assert_int_eq(notify_receive(n.fd, ask, &a, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 9);
        ck_assert_uint_eq(nrfds, 1);
        close(rfds[0]);
        close(p[0]);
        close(n.fd);
}
END_TEST

START_TEST(test_receive_oversized) {
        NotifySocket n = open_notify();
        static char big[5000];
        memset(big, 'x', sizeof big);
        memcpy(big, "STATUS=", 7);
        char buf[NOTIFY_MAX_LEN + 1];
        pid_t pid = 0;
        uid_t uid = (uid_t) -1;
        int rfds[NOTIFY_MAX_FDS];
        size_t nrfds = 0;
        const char *reason = NULL;

        ck_assert_int_eq(send_notify(n.address, big, sizeof big, NULL, 0), (ssize_t) sizeof big);
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds),
                         -EBADMSG);
        ck_assert_ptr_nonnull(reason);

        /* Boundary: size - 1 bytes fit, size bytes do not. */
        ck_assert_int_eq(send_notify(n.address, big, sizeof buf - 1, NULL, 0), (ssize_t) sizeof buf - 1);
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds),
                         (int) sizeof buf - 1);
        ck_assert_int_eq(send_notify(n.address, big, sizeof buf, NULL, 0), (ssize_t) sizeof buf);
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds),
                         -EBADMSG);

        /* An oversized one carrying an fd: dropped, and the fd still closed. */
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        unsigned before = count_fds();
        ck_assert_int_eq(send_notify(n.address, big, sizeof big, &p[1], 1), (ssize_t) sizeof big);
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds),
                         -EBADMSG);
        ck_assert_uint_eq(count_fds(), before);
        close(p[0]);
        close(p[1]);

        /* A dropped datagram does not block the next. */
        ck_assert_int_eq(send_notify(n.address, "READY=1", 7, NULL, 0), 7);
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 7);
        ck_assert_int_eq(pid, getpid());
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), -EAGAIN);
        close(n.fd);
}
END_TEST

START_TEST(test_receive_other_uid) {
        if (geteuid() != 0) {
                fprintf(stderr, "note: not root, foreign-uid sender not tested\n");
                return;
        }
        NotifySocket n = open_notify();
        pid_t child = ready_from_child(&n, 65534);

        char buf[64];
        pid_t pid = 0;
        uid_t uid = (uid_t) -1;
        int rfds[NOTIFY_MAX_FDS];
        size_t nrfds = 0;
        const char *reason = NULL;
        /* Read, with its uid: whether another uid's sender counts is the
         * generation's to judge, by its pid, as systemd judges. */
        ck_assert_int_eq(notify_receive(n.fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, rfds, &nrfds), 7);
        ck_assert_int_eq(pid, child);
        ck_assert_int_eq(uid, 65534);
        ck_assert(!notify_uid_is_ours(uid));
        ck_assert(notify_uid_is_ours(0));
        close(n.fd);
}
END_TEST

/* ---- option values and path sockets ---------------------------------- */

START_TEST(test_mode_strings) {
        NotifySocketMode m = NOTIFY_SOCKET_PATH;
        ck_assert_int_eq(notify_socket_mode_from_string("auto", &m), 0);
        ck_assert_int_eq(m, NOTIFY_SOCKET_AUTO);
        ck_assert_int_eq(notify_socket_mode_from_string("abstract", &m), 0);
        ck_assert_int_eq(m, NOTIFY_SOCKET_ABSTRACT);
        ck_assert_int_eq(notify_socket_mode_from_string("path", &m), 0);
        ck_assert_int_eq(m, NOTIFY_SOCKET_PATH);
        ck_assert_int_eq(notify_socket_mode_from_string("PATH", &m), -EINVAL);
        ck_assert_int_eq(notify_socket_mode_from_string("", &m), -EINVAL);
        ck_assert_int_eq(m, NOTIFY_SOCKET_PATH); /* untouched on failure */
        for (NotifySocketMode i = NOTIFY_SOCKET_AUTO; i <= NOTIFY_SOCKET_PATH; i++) {
                ck_assert_int_eq(notify_socket_mode_from_string(notify_socket_mode_to_string(i), &m), 0);
                ck_assert_int_eq(m, i);
        }

        NotifyAccess a = NOTIFY_ACCESS_ALL;
        ck_assert_int_eq(notify_access_from_string("main", &a), 0);
        ck_assert_int_eq(a, NOTIFY_ACCESS_MAIN);
        ck_assert_int_eq(notify_access_from_string("all", &a), 0);
        ck_assert_int_eq(a, NOTIFY_ACCESS_ALL);
        ck_assert_int_eq(notify_access_from_string("none", &a), -EINVAL);
        ck_assert_int_eq(notify_access_from_string("all ", &a), -EINVAL);
        ck_assert_int_eq(a, NOTIFY_ACCESS_ALL);
        ck_assert_str_eq(notify_access_to_string(NOTIFY_ACCESS_MAIN), "main");
        ck_assert_str_eq(notify_access_to_string(NOTIFY_ACCESS_ALL), "all");
}
END_TEST

static char tmpdir[64];

static void make_tmpdir(void) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/test-notify-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* dir is 0700; then it and tmpdir are removed (both empty). */
static void check_0700_and_remove(const char *dir) {
        struct stat st;
        ck_assert_int_eq(lstat(dir, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        ck_assert_int_eq(rmdir(dir), 0);
        ck_assert_int_eq(rmdir(tmpdir), 0);
}

START_TEST(test_runtime_dir) {
        char buf[108];
        make_tmpdir();
        /* $RUNTIME_DIRECTORY first, its first entry only, used as it is. */
        char rd[200];
        snprintf(rd, sizeof rd, "%s:/elsewhere", tmpdir);
        setenv("RUNTIME_DIRECTORY", rd, 1);
        ck_assert_int_eq(notify_runtime_dir(buf, sizeof buf), 0);
        ck_assert_str_eq(buf, tmpdir);

        /* One that others may write is refused (someone could swap our
         * private directory for theirs). */
        char open_dir[128];
        snprintf(open_dir, sizeof open_dir, "%s/open", tmpdir);
        ck_assert_int_eq(mkdir(open_dir, 0700), 0);
        ck_assert_int_eq(chmod(open_dir, 0777), 0);
        setenv("RUNTIME_DIRECTORY", open_dir, 1);
        ck_assert_int_eq(notify_runtime_dir(buf, sizeof buf), -EPERM);
        ck_assert_int_eq(chmod(open_dir, 0755), 0);
        ck_assert_int_eq(notify_runtime_dir(buf, sizeof buf), 0);
        rmdir(open_dir);

        /* Too long for "<dir>/notify.<pid>/<n>" in sun_path. */
        char longdir[200];
        memset(longdir, 'x', sizeof longdir - 1);
        longdir[0] = '/';
        longdir[95] = '\0';
        setenv("RUNTIME_DIRECTORY", longdir, 1);
        ck_assert_int_eq(notify_runtime_dir(buf, sizeof buf), -ENAMETOOLONG);

        /* Without it, a user's $XDG_RUNTIME_DIR/handoff (made 0700); root's
         * /run/handoff. */
        unsetenv("RUNTIME_DIRECTORY");
        setenv("XDG_RUNTIME_DIR", tmpdir, 1);
        int r = notify_runtime_dir(buf, sizeof buf);
        if (geteuid() == 0) {
                if (r == 0)
                        ck_assert_str_eq(buf, "/run/handoff");
        } else {
                char want[128];
                snprintf(want, sizeof want, "%s/handoff", tmpdir);
                ck_assert_int_eq(r, 0);
                ck_assert_str_eq(buf, want);
                struct stat st;
                ck_assert_int_eq(stat(want, &st), 0);
                ck_assert_uint_eq(st.st_mode & 07777, 0700);
                rmdir(want);
                unsetenv("XDG_RUNTIME_DIR");
                ck_assert_int_eq(notify_runtime_dir(buf, sizeof buf), -ENOENT);
        }
        unsetenv("XDG_RUNTIME_DIR");
        rmdir(tmpdir);
}
END_TEST

START_TEST(test_path_socket_lifecycle) {
        char dir[108], address[108];
        int fd = -1;
        make_tmpdir();
        mode_t old_umask = umask(0);
        ck_assert_int_eq(notify_private_dir(tmpdir, 4242, dir, sizeof dir), 0);
        char want[128];
        snprintf(want, sizeof want, "%s/notify.4242", tmpdir);
        ck_assert_str_eq(dir, want);
        struct stat st;
        ck_assert_int_eq(lstat(dir, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        /* Again (a stale one of an earlier process with this pid): reused. */
        ck_assert_int_eq(notify_private_dir(tmpdir, 4242, dir, sizeof dir), 0);

        ck_assert_int_eq(notify_socket_open_path(dir, "1", 20, address, sizeof address, &fd), 0);
        snprintf(want, sizeof want, "%s/notify.4242/1", tmpdir);
        ck_assert_str_eq(address, want);
        ck_assert_int_ge(fd, 20);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
        int v = 0;
        socklen_t l = sizeof v;
        ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &v, &l), 0);
        ck_assert_int_eq(v, 1);
        ck_assert_int_eq(lstat(address, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0600); /* whatever the umask */

        /* A datagram to the path arrives with our credentials. */
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", address);
        ck_assert_int_eq(sendto(s, "READY=1", 7, 0, (struct sockaddr *) &sa, sizeof sa), 7);
        close(s);
        char buf[NOTIFY_MAX_LEN + 1];
        int fds[NOTIFY_MAX_FDS];
        size_t n_fds = 99;
        pid_t pid = 0;
        uid_t uid = (uid_t) -1;
        const char *reason = NULL;
        ck_assert_int_eq(notify_receive(fd, NULL, NULL, buf, sizeof buf, &pid, &uid, &reason, fds, &n_fds), 7);
        ck_assert_int_eq(pid, getpid());

        /* A second socket in the same directory keeps it alive. */
        char address2[108];
        int fd2 = -1;
        ck_assert_int_eq(notify_socket_open_path(dir, "2", 3, address2, sizeof address2, &fd2), 0);
        close(fd);
        notify_socket_unlink(address);
        ck_assert_int_eq(lstat(address, &st), -1);
        ck_assert_int_eq(lstat(dir, &st), 0);
        close(fd2);
        notify_socket_unlink(address2);
        ck_assert_int_eq(lstat(dir, &st), -1); /* the last one takes the directory */
        notify_socket_unlink("@handoff/1/2");   /* abstract: nothing to do */
        notify_socket_unlink("");
        ck_assert_int_eq(rmdir(tmpdir), 0);
        umask(old_umask);
}
END_TEST

START_TEST(test_path_socket_mode_under_owner_umask) {
        /* A umask that takes the owner's own bits: the socket is 0600 all
         * the same (writable by our uid, or nothing could send to it), and
         * the umask is what it was afterwards. */
        char dir[108], address[108];
        int fd = -1;
        make_tmpdir();
        ck_assert_int_eq(mkdir(strcat(strcpy(dir, tmpdir), "/d"), 0700), 0);
        mode_t old_umask = umask(0277);
        ck_assert_int_eq(notify_socket_open_path(dir, "1", 3, address, sizeof address, &fd), 0);
        ck_assert_uint_eq(umask(old_umask), 0277);
        struct stat st;
        ck_assert_int_eq(lstat(address, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        close(fd);
        notify_socket_unlink(address);
        ck_assert_int_eq(rmdir(tmpdir), 0);
}
END_TEST

START_TEST(test_private_dir_mode_under_owner_umask) {
        /* A umask that takes the owner's own bits: the private directory
         * is 0700 all the same, or a handoff that is not root could not
         * bind its notify sockets in it. */
        char dir[108];
        make_tmpdir();
        mode_t old_umask = umask(0277);
        ck_assert_int_eq(notify_private_dir(tmpdir, 4243, dir, sizeof dir), 0);
        ck_assert_uint_eq(umask(old_umask), 0277);
        check_0700_and_remove(dir);
}
END_TEST

START_TEST(test_private_dir_left_without_owner_bits_is_made_0700) {
        /* Left 0500 by a handoff that made it under umask 0277 before it
         * set the mode itself (and exited, or was killed), and met again
         * by one with its pid: ours and private, so reused, and 0700. */
        char dir[108], path[128];
        make_tmpdir();
        snprintf(path, sizeof path, "%s/notify.4244", tmpdir);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_eq(chmod(path, 0500), 0);
        ck_assert_int_eq(notify_private_dir(tmpdir, 4244, dir, sizeof dir), 0);
        ck_assert_str_eq(dir, path);
        check_0700_and_remove(dir);
}
END_TEST

START_TEST(test_private_dir_refuses_foreign) {
        char dir[108];
        make_tmpdir();
        /* Someone else's (here: too open) directory of that name is not ours. */
        char path[128];
        snprintf(path, sizeof path, "%s/notify.77", tmpdir);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        chmod(path, 0755);
        ck_assert_int_eq(notify_private_dir(tmpdir, 77, dir, sizeof dir), -EPERM);
        rmdir(path);
        /* Nor is a symlink to one. */
        ck_assert_int_eq(symlink("/tmp", path), 0);
        ck_assert_int_eq(notify_private_dir(tmpdir, 77, dir, sizeof dir), -EPERM);
        unlink(path);
        rmdir(tmpdir);
}
END_TEST

START_TEST(test_private_dir_remove_stale) {
        /* What a killed process with pid 4343 left: a socket nobody has
         * bound any more goes; one still bound (the pid reused by a live
         * handoff) stays, and so does the directory, until it is gone too. */
        char dir[108], live[108], stale[108];
        int live_fd = -1, stale_fd = -1;
        make_tmpdir();
        setenv("RUNTIME_DIRECTORY", tmpdir, 1);
        ck_assert_int_eq(notify_private_dir(tmpdir, 4343, dir, sizeof dir), 0);
        ck_assert_int_eq(notify_socket_open_path(dir, "1", 3, stale, sizeof stale, &stale_fd), 0);
        ck_assert_int_eq(notify_socket_open_path(dir, "2", 3, live, sizeof live, &live_fd), 0);
        close(stale_fd);
        struct stat st;
        ck_assert(!notify_private_dir_remove_stale(4343));
        ck_assert_int_eq(lstat(stale, &st), -1);
        ck_assert_int_eq(lstat(live, &st), 0);
        ck_assert_int_eq(lstat(dir, &st), 0);
        close(live_fd);
        ck_assert(notify_private_dir_remove_stale(4343));
        ck_assert_int_eq(lstat(dir, &st), -1);
        ck_assert(!notify_private_dir_remove_stale(4343)); /* nothing there: nothing done */

        /* Not ours to clean: a directory others may read, or a symlink. */
        char path[128], file[160];
        snprintf(path, sizeof path, "%s/notify.77", tmpdir);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_eq(chmod(path, 0755), 0);
        ck_assert_int_eq(notify_socket_open_path(path, "1", 3, stale, sizeof stale, &stale_fd), 0);
        close(stale_fd);
        ck_assert(!notify_private_dir_remove_stale(77));
        ck_assert_int_eq(lstat(stale, &st), 0);
        unlink(stale);
        rmdir(path);
        snprintf(file, sizeof file, "%s/target", tmpdir);
        ck_assert_int_eq(mkdir(file, 0700), 0);
        ck_assert_int_eq(notify_socket_open_path(file, "1", 3, stale, sizeof stale, &stale_fd), 0);
        close(stale_fd);
        ck_assert_int_eq(symlink(file, path), 0);
        ck_assert(!notify_private_dir_remove_stale(77));
        ck_assert_int_eq(lstat(stale, &st), 0); /* not followed */
        unlink(stale);
        unlink(path);
        rmdir(file);
        unsetenv("RUNTIME_DIRECTORY");
        ck_assert_int_eq(rmdir(tmpdir), 0);
}
END_TEST

static Suite *notify_suite(void) {
        Suite *s = suite_create("notify");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_parse_ready);
        tcase_add_test(tc, test_parse_values_must_be_exact);
        tcase_add_test(tc, test_parse_multiline);
        tcase_add_test(tc, test_parse_trailing_newline);
        tcase_add_test(tc, test_parse_status_with_equals);
        tcase_add_test(tc, test_parse_watchdog_trigger);
        tcase_add_test(tc, test_parse_flags_as_systemd);
        tcase_add_test(tc, test_parse_first_value_counts);
        tcase_add_test(tc, test_parse_watchdog_usec);
        tcase_add_test(tc, test_parse_unknown_keys_counted);
        tcase_add_test(tc, test_parse_fdstore_keys);
        tcase_add_test(tc, test_parse_rejects);
        tcase_add_test(tc, test_parse_as_systemd);
        tcase_add_test(tc, test_parse_size_limit);
        suite_add_tcase(s, tc);

        tc = tcase_create("relay");
        tcase_add_test(tc, test_relay_only_forwardable);
        tcase_add_test(tc, test_relay_escapes_status);
        tcase_add_test(tc, test_escape_cuts_whole);
        tcase_add_test(tc, test_relay_numbers_only);
        tcase_add_test(tc, test_relay_watchdog_usec);
        tcase_add_test(tc, test_relay_buffer_too_small);
        tcase_add_test(tc, test_parse_then_relay);
        suite_add_tcase(s, tc);

        tc = tcase_create("socket");
        tcase_add_test(tc, test_socket_open);
        tcase_add_test(tc, test_socket_open_small_buffer);
        tcase_add_test(tc, test_receive_own_pid);
        tcase_add_test(tc, test_receive_child_pid);
        tcase_add_test(tc, test_receive_hands_over_passed_fds);
        tcase_add_test(tc, test_receive_refused_sender_passes_no_fds);
        tcase_add_test(tc, test_receive_oversized);
        tcase_add_test(tc, test_receive_other_uid);
        suite_add_tcase(s, tc);

        tc = tcase_create("path");
        tcase_add_test(tc, test_mode_strings);
        tcase_add_test(tc, test_runtime_dir);
        tcase_add_test(tc, test_path_socket_lifecycle);
        tcase_add_test(tc, test_path_socket_mode_under_owner_umask);
        tcase_add_test(tc, test_private_dir_mode_under_owner_umask);
        tcase_add_test(tc, test_private_dir_left_without_owner_bits_is_made_0700);
        tcase_add_test(tc, test_private_dir_refuses_foreign);
        tcase_add_test(tc, test_private_dir_remove_stale);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(notify_suite());
}
