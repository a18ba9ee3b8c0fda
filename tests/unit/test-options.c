/* SPDX-License-Identifier: MIT */
/* Command line parsing (options.c). options_parse() prints to stderr on
 * errors; that output is expected here. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "signal-util.h"

/* Runs options_parse() on {"handoff", args..., NULL}, starting from the
 * defaults. The argv array stays valid until the next call. */
static char *argv_buf[64];
static int argc_buf;

static int parse_argv(Options *o, const char *const *args) {
        argc_buf = 0;
        argv_buf[argc_buf++] = (char *) "handoff";
        for (; *args; args++) {
                ck_assert_int_lt(argc_buf, 62);
                argv_buf[argc_buf++] = (char *) *args;
        }
        argv_buf[argc_buf] = NULL;
        *o = OPTIONS_DEFAULT;
        return options_parse(argc_buf, argv_buf, o);
}

#define PARSE(o, ...) parse_argv((o), (const char *const[]) { __VA_ARGS__, NULL })

START_TEST(test_defaults) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--", "server"), 1);
        ck_assert_uint_eq(o.start_timeout, 90 * USEC_PER_SEC);
        ck_assert_uint_eq(o.drain_timeout, 30 * USEC_PER_SEC);
        ck_assert_int_eq(o.stop_signal, SIGTERM);
        ck_assert(!o.ready_by_delay);
        ck_assert_int_eq(o.mode, MODE_AUTO);
        ck_assert_ptr_null(o.pid_file);
        ck_assert(!o.verbose);
        ck_assert_uint_eq(o.n_listen, 0);
        ck_assert_ptr_null(o.listen);
        ck_assert_ptr_eq(o.command, argv_buf + 2);
        ck_assert_str_eq(o.command[0], "server");
        ck_assert_ptr_null(o.command[1]);
        options_done(&o);
}
END_TEST

START_TEST(test_every_option) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--listen=8080", "-l", "unix:/run/x.sock=admin", "--listen", "udp:53",
                               "--ready=delay:200ms", "--start-timeout=2min", "--stop-signal=QUIT",
                               "--drain-timeout", "infinity", "--mode=supervise", "--pid-file=/run/h.pid", "-v",
                               "--", "server", "arg"),
                         1);
        ck_assert_uint_eq(o.n_listen, 3);
        ck_assert_str_eq(o.listen[0], "8080");
        ck_assert_str_eq(o.listen[1], "unix:/run/x.sock=admin");
        ck_assert_str_eq(o.listen[2], "udp:53");
        ck_assert_ptr_null(o.listen[3]);
        ck_assert(o.ready_by_delay);
        ck_assert_uint_eq(o.ready_delay, 200 * USEC_PER_MSEC);
        ck_assert_uint_eq(o.start_timeout, 120 * USEC_PER_SEC);
        ck_assert_int_eq(o.stop_signal, SIGQUIT);
        ck_assert_uint_eq(o.drain_timeout, USEC_INFINITY);
        ck_assert_int_eq(o.mode, MODE_SUPERVISE);
        ck_assert_str_eq(o.pid_file, "/run/h.pid");
        ck_assert(o.verbose);
        ck_assert_str_eq(o.command[0], "server");
        ck_assert_str_eq(o.command[1], "arg");
        ck_assert_ptr_null(o.command[2]);
        options_done(&o);
        ck_assert_ptr_null(o.listen);
        ck_assert_ptr_null(o.pid_file);
}
END_TEST

START_TEST(test_short_options_combined) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "-vl8080", "--", "s"), 1);
        ck_assert(o.verbose);
        ck_assert_uint_eq(o.n_listen, 1);
        ck_assert_str_eq(o.listen[0], "8080");
        options_done(&o);
}
END_TEST

START_TEST(test_later_option_wins) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--pid-file=/a", "--pid-file=/b", "--ready=delay:1s", "--ready=notify",
                               "--mode=supervise", "--mode=auto", "--", "s"),
                         1);
        ck_assert_str_eq(o.pid_file, "/b");
        ck_assert(!o.ready_by_delay);
        ck_assert_uint_eq(o.ready_delay, 0);
        ck_assert_int_eq(o.mode, MODE_AUTO);
        options_done(&o);
}
END_TEST

START_TEST(test_command_args_untouched) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--", "server", "-l", "x", "--verbose", "--", "-h"), 1);
        ck_assert_uint_eq(o.n_listen, 0);
        ck_assert(!o.verbose);
        ck_assert_ptr_eq(o.command, argv_buf + 2);
        ck_assert_str_eq(o.command[0], "server");
        ck_assert_str_eq(o.command[1], "-l");
        ck_assert_str_eq(o.command[2], "x");
        ck_assert_str_eq(o.command[3], "--verbose");
        ck_assert_str_eq(o.command[4], "--");
        ck_assert_str_eq(o.command[5], "-h");
        ck_assert_ptr_null(o.command[6]);
        options_done(&o);

        /* A command that looks like an option. */
        ck_assert_int_eq(PARSE(&o, "-v", "--", "--weird-name"), 1);
        ck_assert_str_eq(o.command[0], "--weird-name");
        options_done(&o);
}
END_TEST

START_TEST(test_missing_separator) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "server"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-l", "8080", "server", "-l", "x"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-v", "server", "--", "x"), -EINVAL);
        options_done(&o);
}
END_TEST

START_TEST(test_no_command) {
        Options o;
        char *argv0[] = { (char *) "handoff", NULL };
        o = OPTIONS_DEFAULT;
        ck_assert_int_eq(options_parse(1, argv0, &o), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-v", "--"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-v"), -EINVAL);
        options_done(&o);
}
END_TEST

START_TEST(test_unknown_option) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--bogus", "--", "s"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-x", "--", "s"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--verbose=yes", "--", "s"), -EINVAL);
        options_done(&o);
        /* A required argument missing. */
        ck_assert_int_eq(PARSE(&o, "--listen"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-l"), -EINVAL);
        options_done(&o);
}
END_TEST

START_TEST(test_getopt_state_is_reset) {
        /* A failing parse in the middle of argv, then a good one: the second
         * must start from argv[1] again. */
        Options o;
        ck_assert_int_eq(PARSE(&o, "-v", "-v", "--bogus", "--", "s"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-l", "1", "--", "s"), 1);
        ck_assert_uint_eq(o.n_listen, 1);
        ck_assert_str_eq(o.command[0], "s");
        options_done(&o);
        /* Half-way through a group of short options. */
        ck_assert_int_eq(PARSE(&o, "-vx", "--", "s"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-l", "2", "--", "t"), 1);
        ck_assert_uint_eq(o.n_listen, 1);
        ck_assert_str_eq(o.listen[0], "2");
        ck_assert(!o.verbose);
        options_done(&o);
}
END_TEST

START_TEST(test_bad_durations) {
        static const char *const bad[] = {
                "--start-timeout=", "--start-timeout=abc", "--start-timeout=-1", "--start-timeout=5x",
                "--drain-timeout=1..2s", "--drain-timeout=", "--drain-timeout=99999999999999999999d",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                Options o;
                ck_assert_msg(PARSE(&o, bad[i], "--", "s") == -EINVAL, "%s accepted", bad[i]);
                options_done(&o);
        }
        Options o;
        ck_assert_int_eq(PARSE(&o, "--start-timeout=1ms", "--drain-timeout=1.5s", "--", "s"), 1);
        ck_assert_uint_eq(o.start_timeout, USEC_PER_MSEC);
        ck_assert_uint_eq(o.drain_timeout, 1500 * USEC_PER_MSEC);
        options_done(&o);
        /* As systemd's TimeoutStartSec=0 / TimeoutStopSec=0: 0 is no timeout. */
        ck_assert_int_eq(PARSE(&o, "--start-timeout=0", "--drain-timeout=0ms", "--", "s"), 1);
        ck_assert_uint_eq(o.start_timeout, USEC_INFINITY);
        ck_assert_uint_eq(o.drain_timeout, USEC_INFINITY);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--start-timeout=infinity", "--", "s"), 1);
        ck_assert_uint_eq(o.start_timeout, USEC_INFINITY);
        options_done(&o);
}
END_TEST

/* A bake without end is refused: infinity, and a finite one that would
 * end past the clock (infinity to systemd's usec_add()); a long one is
 * still a bake of that length. */
START_TEST(test_bake) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--bake=100y", "--", "s"), 1);
        ck_assert_uint_eq(o.bake, 100 * 31557600ULL * USEC_PER_SEC);
        options_done(&o);
        static const char *const bad[] = { "--bake=infinity", "--bake=18446744073709551609us", "--bake=-1s" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ck_assert_msg(PARSE(&o, bad[i], "--", "s") == -EINVAL, "%s accepted", bad[i]);
                options_done(&o);
        }
}
END_TEST

START_TEST(test_stop_signal) {
        const struct {
                const char *arg;
                int sig;
        } good[] = {
                { "TERM", SIGTERM }, { "SIGTERM", SIGTERM }, { "SIGQUIT", SIGQUIT }, { "QUIT", SIGQUIT },
                { "sigint", SIGINT }, { "int", SIGINT },     { "SigHup", SIGHUP },   { "9", SIGKILL },
                { "KILL", SIGKILL },  { "USR1", SIGUSR1 },   { "WINCH", SIGWINCH },  { "1", 1 },
                { "64", 64 },
                /* Real-time signals as systemd's KillSignal= takes them,
                 * from glibc's SIGRTMIN (34), not the kernel's 32. */
                { "SIGRTMIN+2", SIGRTMIN + 2 }, { "RTMIN+2", SIGRTMIN + 2 }, { "RTMIN", SIGRTMIN },
                { "sigrtmin+0", SIGRTMIN },     { "SIGRTMAX-1", SIGRTMAX - 1 }, { "RTMAX-1", SIGRTMAX - 1 },
                { "RTMAX", SIGRTMAX },          { "RTMIN+30", SIGRTMAX },     { "RTMAX-30", SIGRTMIN },
                { "RTMIN+02", SIGRTMIN + 2 },   { "IO", SIGIO },              { "SIGPOLL", SIGIO },
                /* Numbers as systemd's safe_atoi() reads them: C's octal
                 * and hexadecimal, 0o and 0b, a sign, leading blanks;
                 * KillSignal=010 is SIGFPE, not SIGUSR1. */
                { "010", 8 },                   { "0x1f", 31 },               { "0X0F", 15 },
                { "0o17", 15 },                 { "0B11", 3 },                { "+15", 15 },
                { " 9", 9 },                    { "\t 015", 13 },             { "RTMIN+010", SIGRTMIN + 8 },
                { "RTMIN+0x1e", SIGRTMAX },     { "RTMAX-010", SIGRTMAX - 8 }, { "RTMAX-0", SIGRTMAX },
        };
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                char arg[64];
                snprintf(arg, sizeof arg, "--stop-signal=%s", good[i].arg);
                Options o;
                ck_assert_msg(PARSE(&o, arg, "--", "s") == 1, "%s rejected", arg);
                ck_assert_msg(o.stop_signal == good[i].sig, "%s gave %d, expected %d", arg, o.stop_signal, good[i].sig);
                options_done(&o);
        }

        static const char *const bad[] = { "FOO", "0", "65", "-1", "", "SIG", "9x", "9 ", "SIGSIGTERM", "TERM ",
                                           "1000000000000000000000", "RTMIN+31", "RTMAX-31", "RTMIN-1",
                                           "RTMAX+1", "RTMIN+", "RTMAX-", "RTMIN+ 2", "RTMIN++2", "RTMIN+-2",
                                           "RTMIN2", "RTMINX", "SIGRTMIN+2 ", "RTMIN+99999999999999999999", "SIG15",
                                           /* systemd refuses these too: no octal 8, no digits, no
                                            * 0b after a sign, no blank inside. */
                                           "08", "019", "0x", "0b", "0b2", "-0", "+0", "+0b1", " TERM", "SIG 15",
                                           "RTMIN+08", "RTMIN+0b1", "RTMAX-0x1f", "RTMAX- 1", "0x41" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                char arg[64];
                snprintf(arg, sizeof arg, "--stop-signal=%s", bad[i]);
                Options o;
                ck_assert_msg(PARSE(&o, arg, "--", "s") == -EINVAL, "%s accepted", arg);
                ck_assert_int_eq(o.stop_signal, SIGTERM);
                options_done(&o);
        }
}
END_TEST

START_TEST(test_signal_from_string) {
        ck_assert_int_eq(signal_from_string("TERM"), SIGTERM);
        ck_assert_int_eq(signal_from_string("SIGTERM"), SIGTERM);
        ck_assert_int_eq(signal_from_string("15"), SIGTERM);
        ck_assert_int_eq(signal_from_string(NULL), -EINVAL);
        ck_assert_int_eq(signal_from_string(""), -EINVAL);
        ck_assert_int_eq(signal_from_string("0"), -EINVAL);
        ck_assert_int_eq(signal_from_string("65"), -EINVAL);
}
END_TEST

/* Every signal is written as handoff reads it back, as systemd writes it. */
START_TEST(test_signal_to_string) {
        ck_assert_str_eq(SIGNAL_NAME(SIGTERM), "SIGTERM");
        /* systemd's name for 29 (status=29/IO), where glibc's is POLL. */
        ck_assert_str_eq(SIGNAL_NAME(SIGIO), "SIGIO");
        ck_assert_str_eq(SIGNAL_NAME(SIGRTMIN), "SIGRTMIN+0");
        ck_assert_str_eq(SIGNAL_NAME(SIGRTMIN + 2), "SIGRTMIN+2");
        ck_assert_str_eq(SIGNAL_NAME(SIGRTMAX), "SIGRTMIN+30");
        /* glibc's own, below SIGRTMIN: no name but their number. */
        ck_assert_str_eq(SIGNAL_NAME(32), "32");
        ck_assert_str_eq(SIGNAL_NAME(0), "0");
        for (int sig = 1; sig < _NSIG; sig++)
                ck_assert_msg(signal_from_string(SIGNAL_NAME(sig)) == sig, "%d written as %s", sig, SIGNAL_NAME(sig));
}
END_TEST

/* A delay that never ends is refused, infinity and, as --bake's, a finite
 * one that would end past the clock (no timer is armed then, and with a
 * delay --start-timeout does not apply: a generation never ready); a long
 * one is still a delay of that length. */
START_TEST(test_ready) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--ready=delay:100y", "--", "s"), 1);
        ck_assert_uint_eq(o.ready_delay, 100 * 31557600ULL * USEC_PER_SEC);
        options_done(&o);

        ck_assert_int_eq(PARSE(&o, "--ready=delay:200ms", "--", "s"), 1);
        ck_assert(o.ready_by_delay);
        ck_assert_uint_eq(o.ready_delay, 200 * USEC_PER_MSEC);
        options_done(&o);

        ck_assert_int_eq(PARSE(&o, "--ready=delay:0", "--", "s"), 1);
        ck_assert(o.ready_by_delay);
        ck_assert_uint_eq(o.ready_delay, 0);
        options_done(&o);

        ck_assert_int_eq(PARSE(&o, "--ready=notify", "--", "s"), 1);
        ck_assert(!o.ready_by_delay);
        options_done(&o);

        static const char *const bad[] = { "--ready=", "--ready=Notify", "--ready=delay", "--ready=delay:",
                                           "--ready=delay:abc", "--ready=delay:infinity", "--ready=200ms",
                                           "--ready=notify:1s", "--ready=delay:-1s",
                                           "--ready=delay:18446744073709551609us" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ck_assert_msg(PARSE(&o, bad[i], "--", "s") == -EINVAL, "%s accepted", bad[i]);
                options_done(&o);
        }
}
END_TEST

/* An empty --pid-file was taken, and the start failed later (exit 1,
 * "Failed to write pid file : No such file or directory"): a usage error. */
START_TEST(test_empty_pid_file) {
        Options o = OPTIONS_DEFAULT;
        ck_assert_int_eq(PARSE(&o, "--pid-file=", "--", "s"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--pid-file", "", "--", "s"), -EINVAL);
        options_done(&o);
}
END_TEST

START_TEST(test_parse_ready_direct) {
        bool by_delay = true;
        usec_t d = 5;
        ck_assert_int_eq(parse_ready("notify", &by_delay, &d), 0);
        ck_assert(!by_delay);
        ck_assert_uint_eq(d, 0);
        ck_assert_int_eq(parse_ready("delay:2min 30s", &by_delay, &d), 0);
        ck_assert(by_delay);
        ck_assert_uint_eq(d, 150 * USEC_PER_SEC);
        by_delay = false;
        d = 7;
        ck_assert_int_eq(parse_ready("delay:x", &by_delay, &d), -EINVAL);
        ck_assert(!by_delay); /* untouched on failure */
        ck_assert_uint_eq(d, 7);
}
END_TEST

START_TEST(test_mode) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--mode=auto", "--", "s"), 1);
        ck_assert_int_eq(o.mode, MODE_AUTO);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--mode=supervise", "--", "s"), 1);
        ck_assert_int_eq(o.mode, MODE_SUPERVISE);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--mode=handover", "--", "s"), 1);
        ck_assert_int_eq(o.mode, MODE_HANDOVER);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--mode", "supervise", "--", "s"), 1);
        ck_assert_int_eq(o.mode, MODE_SUPERVISE);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--mode=", "--", "s"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--mode=Auto", "--", "s"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--mode=bogus", "--", "s"), -EINVAL);
        options_done(&o);
}
END_TEST

START_TEST(test_notify_socket) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--", "s"), 1);
        ck_assert_int_eq(o.notify_socket, NOTIFY_SOCKET_AUTO);
        ck_assert_int_eq(o.notify_access, NOTIFY_ACCESS_MAIN);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--notify-socket=path", "--", "s"), 1);
        ck_assert_int_eq(o.notify_socket, NOTIFY_SOCKET_PATH);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--notify-socket", "abstract", "--", "s"), 1);
        ck_assert_int_eq(o.notify_socket, NOTIFY_SOCKET_ABSTRACT);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--notify-socket=abstract", "--notify-socket=auto", "--", "s"), 1);
        ck_assert_int_eq(o.notify_socket, NOTIFY_SOCKET_AUTO);
        options_done(&o);
        const char *bad[] = { "", "Path", "paths", "@", "/run/x", "abstract ", NULL };
        for (const char **b = bad; *b; b++) {
                char arg[64];
                snprintf(arg, sizeof arg, "--notify-socket=%s", *b);
                ck_assert_msg(PARSE(&o, arg, "--", "s") == -EINVAL, "accepted \"%s\"", *b);
                options_done(&o);
        }
}
END_TEST

START_TEST(test_notify_access) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--notify-access=all", "--", "s"), 1);
        ck_assert_int_eq(o.notify_access, NOTIFY_ACCESS_ALL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--notify-access", "main", "--", "s"), 1);
        ck_assert_int_eq(o.notify_access, NOTIFY_ACCESS_MAIN);
        options_done(&o);
        /* systemd's none and exec mean nothing for a generation: refused. */
        const char *bad[] = { "", "none", "exec", "ALL", "main,all", NULL };
        for (const char **b = bad; *b; b++) {
                char arg[64];
                snprintf(arg, sizeof arg, "--notify-access=%s", *b);
                ck_assert_msg(PARSE(&o, arg, "--", "s") == -EINVAL, "accepted \"%s\"", *b);
                options_done(&o);
        }
        /* The option's value is never taken from the command. */
        ck_assert_int_eq(PARSE(&o, "--", "s", "--notify-access=bogus"), 1);
        ck_assert_int_eq(o.notify_access, NOTIFY_ACCESS_MAIN);
        options_done(&o);
}
END_TEST

START_TEST(test_non_blocking) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--", "server"), 1);
        ck_assert(!o.non_blocking);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--non-blocking=yes", "--", "server"), 1);
        ck_assert(o.non_blocking);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--non-blocking=yes", "--non-blocking", "no", "--", "server"), 1);
        ck_assert(!o.non_blocking);
        options_done(&o);
        /* yes or no only, as --cgroup; a value is required. */
        ck_assert_int_eq(PARSE(&o, "--non-blocking=true", "--", "server"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--non-blocking=", "--", "server"), -EINVAL);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--non-blocking", "--", "server"), -EINVAL);
        options_done(&o);
}
END_TEST

START_TEST(test_help_and_version) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "--help"), 0);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "-h", "--", "s"), 0);
        options_done(&o);
        ck_assert_int_eq(PARSE(&o, "--version"), 0);
        options_done(&o);
        fflush(stdout);
}
END_TEST

START_TEST(test_environment_file) {
        Options o;
        /* Repeatable, in order, "-" kept for the reader (env-file.h). */
        ck_assert_int_eq(PARSE(&o, "--environment-file=/etc/a.conf", "--environment-file", "-/etc/b/*.conf", "--",
                               "s"),
                         1);
        ck_assert_uint_eq(o.n_environment_files, 2);
        ck_assert_str_eq(o.environment_files[0], "/etc/a.conf");
        ck_assert_str_eq(o.environment_files[1], "-/etc/b/*.conf");
        ck_assert_ptr_null(o.environment_files[2]);
        options_done(&o);
        ck_assert_ptr_null(o.environment_files);
        ck_assert_int_eq(PARSE(&o, "--", "s"), 1);
        ck_assert_ptr_null(o.environment_files);
        for (const char *const *bad = (const char *const[]) { "--environment-file=a.conf", "--environment-file=-",
                                                               "--environment-file=", "--environment-file=--/x",
                                                               NULL };
             *bad; bad++) {
                ck_assert_int_eq(PARSE(&o, *bad, "--", "s"), -EINVAL);
                options_done(&o);
        }
}
END_TEST

START_TEST(test_options_done_twice) {
        Options o;
        ck_assert_int_eq(PARSE(&o, "-l", "1", "--pid-file=/x", "--", "s"), 1);
        options_done(&o);
        options_done(&o); /* everything was reset: harmless */
        ck_assert_ptr_null(o.listen);
        ck_assert_uint_eq(o.n_listen, 0);
}
END_TEST

static Suite *options_suite(void) {
        Suite *s = suite_create("options");
        TCase *tc = tcase_create("options");
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_every_option);
        tcase_add_test(tc, test_short_options_combined);
        tcase_add_test(tc, test_later_option_wins);
        tcase_add_test(tc, test_command_args_untouched);
        tcase_add_test(tc, test_missing_separator);
        tcase_add_test(tc, test_no_command);
        tcase_add_test(tc, test_unknown_option);
        tcase_add_test(tc, test_getopt_state_is_reset);
        tcase_add_test(tc, test_bad_durations);
        tcase_add_test(tc, test_bake);
        tcase_add_test(tc, test_stop_signal);
        tcase_add_test(tc, test_signal_from_string);
        tcase_add_test(tc, test_signal_to_string);
        tcase_add_test(tc, test_ready);
        tcase_add_test(tc, test_empty_pid_file);
        tcase_add_test(tc, test_parse_ready_direct);
        tcase_add_test(tc, test_mode);
        tcase_add_test(tc, test_notify_socket);
        tcase_add_test(tc, test_notify_access);
        tcase_add_test(tc, test_non_blocking);
        tcase_add_test(tc, test_help_and_version);
        tcase_add_test(tc, test_environment_file);
        tcase_add_test(tc, test_options_done_twice);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(options_suite());
        /* No fork: all tests share one getopt state, as repeated calls in one
         * process would; options_parse() must reset it. */
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
