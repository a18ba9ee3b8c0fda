/* SPDX-License-Identifier: MIT */
#pragma once

/* Room for what signal_to_string() writes: "SIGRTMIN+30", "SIGSTKFLT", or a
 * number. */
#define SIGNAL_NAME_MAX 16

/* A signal as systemd's KillSignal= and ReloadSignal= take it
 * (signal_from_string() in its src/basic/signal-util.c): a number from 1 to
 * _NSIG-1; a name, with or without "SIG" ("TERM", "SIGIO"); or a real-time
 * signal, "RTMIN", "RTMIN+N", "RTMAX-N" or "RTMAX", counted as systemd
 * counts them, from glibc's SIGRTMIN and SIGRTMAX (34 and 64 on Linux, not
 * the kernel's 32: glibc keeps the first two). Unlike systemd, in any case
 * ("sigterm"). Returns the signal or -EINVAL. */
int signal_from_string(const char *s);

/* sig as signal_from_string() reads it back: "SIGTERM", "SIGRTMIN+2" (as
 * systemd writes it), or the number for a signal without a name (those
 * glibc keeps below SIGRTMIN). Returns buf, SIGNAL_NAME_MAX bytes. */
const char *signal_to_string(int sig, char *buf);

/* signal_to_string() into a buffer that lives as long as the enclosing
 * block, for a log line: log_info("sent %s", SIGNAL_NAME(sig)). */
#define SIGNAL_NAME(sig) signal_to_string((sig), (char[SIGNAL_NAME_MAX]){})
