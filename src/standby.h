/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A standby: the next handoff, started ahead of the reload that needs it.
 *
 * A handover reload waits for a whole process start of the next handoff:
 * exec, then the dynamic loader mapping and relocating libsystemd and the
 * six libraries it pulls in, most of the 3-5 ms it takes. A standby pays
 * that while the service is idle. It is started as a cold next handoff is
 * (a sibling under the service manager, its "PID" report first on the
 * channel), but with only the channel, at fd 3, and $HANDOFF_STANDBY set.
 * It blocks in recvmsg() until the reload sends it "GO": the argv, the
 * environment and the fds that an exec now would have given it. It puts
 * the fds where the exec would have (3.., the channel right after them),
 * takes the environment as its own and runs main() from there: from then
 * on it is a next handoff started cold, on the same channel. While it
 * waits its name (/proc/PID/comm, ps -o comm) is "handoff-standby".
 *
 * It is used only while it runs what a start now would: the file now at
 * handoff's path (a package upgrade replaces it), and no library mapped
 * from a file since deleted (an upgrade of one of them); and only for the
 * command line it was started with (a reload may bring a new one), which
 * its /proc/PID/cmdline shows for good. Otherwise, or when it has died or
 * is stopped (it would not read GO), the reload starts the next handoff
 * cold and the standby is stopped. One still loading when the reload
 * comes is used: it reads GO once it gets there, sooner than a new process
 * would. End of file on its channel makes it exit.
 *
 *   standby -> old:  "PID <n>" with a pidfd of itself (spawn.c)
 *   old -> standby:  "GO <argc> <envc>", a NUL, then argc + envc strings
 *                    each ending in a NUL; the fds in SCM_RIGHTS. */

#define STANDBY_ENV "HANDOFF_STANDBY"
#define STANDBY_MAX_GO (64 * 1024)
#define STANDBY_MAX_FDS 253 /* the kernel's SCM_MAX_FD */

typedef struct Standby Standby;

/* Starts one from exe with argv (for ps; its real argv comes with GO). */
int standby_start(const char *exe, char *const *argv, Standby **ret);

pid_t standby_pid(const Standby *s);

/* Whether it is alive and not stopped, runs what a start from exe now
 * would, and was started with argv (its /proc/PID/cmdline, which ps shows,
 * stays the one it was started with). If not, why (for a log line) is set. */
bool standby_usable(const Standby *s, const char *exe, char *const *argv, const char **ret_why);

/* Sends it GO: argv and envp as exec would take them (envp's pid
 * placeholders are filled in here with its pid), and fds for 3... On
 * success the standby is freed and its pid, pidfd and channel are the
 * caller's; on failure it is stopped and freed. Either way *s is NULL. */
int standby_go(Standby **s, char *const *argv, char **envp, char *listen_pid_entry, char *watchdog_pid_entry,
               const int *fds, size_t n_fds, pid_t *ret_pid, int *ret_pidfd, int *ret_channel);

/* GO's payload for argv and envp, newly allocated: -E2BIG beyond
 * STANDBY_MAX_GO. */
int standby_encode(char *const *argv, char *const *envp, char **ret, size_t *ret_size);

/* Parses GO's payload (n bytes of buf; the strings stay in buf): -EBADMSG
 * for anything but exactly argc (at least 1) and envc strings. *ret_argv
 * and *ret_envp are new NULL-terminated arrays. */
int standby_parse(char *buf, size_t n, char ***ret_argv, char ***ret_envp);

/* Stops it: SIGKILL (an idle standby holds nothing but its end of the
 * channel). standby_stop() also waits, up to 1 s, until it has exited: for
 * the service's stop, which must leave nothing behind. */
Standby *standby_free(Standby *s);
Standby *standby_stop(Standby *s);

/* The standby's side, first thing in main(). Without $HANDOFF_STANDBY,
 * returns 0. Otherwise waits for GO, lays out the fds, sets environ and
 * returns 1 with the argv to run; at end of file (no reload came) it exits
 * 0; a GO it cannot use is logged and it exits 1, which the old main sees
 * as a next handoff that failed. */
int standby_wait(int *ret_argc, char ***ret_argv);
