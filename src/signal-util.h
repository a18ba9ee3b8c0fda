/* SPDX-License-Identifier: MIT */
#pragma once

/* Room for what signal_to_string() writes: "SIGRTMIN+30", "SIGSTKFLT", or a
 * number. */
#define SIGNAL_NAME_MAX 16

/* A signal as systemd's KillSignal= and ReloadSignal= take it
 * (signal_from_string() in its src/basic/signal-util.c), to the same
 * signal: a number from 1 to _NSIG-1 as its safe_atoi() reads it (C's
 * "010" is 8, "0x1f" 31, "0b11" 3; a sign, leading blanks); a name, with or
 * without "SIG" ("TERM", "SIGIO"); or a real-time signal, "RTMIN",
 * "RTMIN+N", "RTMAX-N" or "RTMAX" (N read as such a number, sign
 * included), counted as systemd counts them, from glibc's SIGRTMIN and
 * SIGRTMAX (34 and 64 on Linux, not the kernel's 32: glibc keeps the first
 * two). Unlike systemd, in any case ("sigterm"), and POLL, glibc's name for
 * SIGIO: what systemd refuses, and this takes, means no other signal.
 * Returns the signal or -EINVAL. */
int signal_from_string(const char *s);

/* sig as signal_from_string() reads it back, by systemd's name for it with
 * "SIG" before: "SIGTERM", "SIGIO" (glibc's SIGPOLL), "SIGRTMIN+2"; or the
 * number for a signal without a name (those glibc keeps below SIGRTMIN).
 * Returns buf, SIGNAL_NAME_MAX bytes. */
const char *signal_to_string(int sig, char *buf);

/* signal_to_string() into a buffer that lives as long as the enclosing
 * block, for a log line: log_info("sent %s", SIGNAL_NAME(sig)). */
#define SIGNAL_NAME(sig) signal_to_string((sig), (char[SIGNAL_NAME_MAX]){})
