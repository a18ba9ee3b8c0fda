/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The handover channel: a SOCK_SEQPACKET pair between the old main and the
 * next handoff it starts in handover mode. The next handoff gets its end
 * after the listening and stored fds, announced in HANDOFF_CONTROL_FD.
 *
 *   next -> old:  "PID <n>" with a pidfd of itself, first of all
 *                 (sent between fork and exec, by spawn.c)
 *                 "FEATURES <word> ..."  what it understands beyond the
 *                                  first version: "stop" (STOP, DRAINED),
 *                                  "unlinks" (UNLINKS); an older handoff
 *                                  ignores the message
 *                 "APP <pid>"      its candidate generation's main pid, with a
 *                                  pidfd of it (none from an older one)
 *                 "STATUS <text>"  that generation's own STATUS=, while it starts
 *                 "EXTEND <usec>"  its EXTEND_TIMEOUT_USEC=, while it starts: the
 *                                  old main relays it, and waits that much longer
 *                 "READY"          that generation is ready; commit me
 *                 "FAILED <why>"   it failed; I am exiting
 *   old -> next:  "UNLINKS"        the unix socket files the service created,
 *                                  to remove at the final stop if each is
 *                                  still the file I bound: in a memfd that
 *                                  comes with it, "<dev> <ino> <path>" each
 *                                  (that file's st_dev and st_ino when bound,
 *                                  decimal, no leading zero) followed by a
 *                                  NUL (to one that said "unlinks")
 *                 "UNLINK <path>"  one of them, a message each (to an older
 *                                  one: at most CHANNEL_MAX_UNLINK), which
 *                                  takes the file at path when it reads this
 *                 "NAMED <signal> <usec> <number> <started> <ready> <group> [<cgroup>]"
 *                                  MAINPID= naming you goes to the service
 *                                  manager next (with none: TAKEOVER
 *                                  follows at once); with a pidfd of my
 *                                  serving generation's main process (none
 *                                  when I have none), the stop signal and
 *                                  drain timeout it retires with (usec:
 *                                  18446744073709551615 for never), its
 *                                  number, start and readiness (CLOCK_MONOTONIC
 *                                  usec, the same in both of us), and its
 *                                  process group (its main's pid, while its
 *                                  main leads it; 0: not) (all 0 when I have
 *                                  none), and with a delegated cgroup its
 *                                  cgroup's leaf ("gen-1"; an older one sends
 *                                  none). Decimal, no leading zero; fields
 *                                  after these, a space apart, are a later
 *                                  version's, ignored. An older next handoff
 *                                  ignores the message (one that knew it with
 *                                  five fields too: they were never released).
 *                                  A number with no pidfd: the kernel dropped
 *                                  it on its way (MSG_CTRUNC: the next handoff
 *                                  was out of fds); it opens one of group's
 *                                  main then, if that started by ready
 *                 "UNNAMED"        after NAMED: MAINPID= could not be sent
 *                                  after all, I am main still (an abort
 *                                  follows)
 *                 "TAKEOVER <0|1>" you are main now (1: a reload was asked
 *                                  for meanwhile: run it)
 *                 "STOP"           after TAKEOVER, to one that said "stop" in
 *                                  FEATURES: the service manager's stop
 *                                  reached me, not you (it took no MAINPID=
 *                                  while stopping, or signals only the main
 *                                  it knew): stop, and I exit after you
 *                 "DRAINED"        after STOP: my generations are gone; do
 *                                  not wait for my end of file
 *
 * End of file on either side before TAKEOVER means "abort", except the old
 * main's after NAMED (and no UNNAMED): it died (SIGKILL, the OOM killer)
 * with the service manager naming the next handoff main, which then takes
 * over by itself and retires the old generation through the pidfd (as
 * TAKEOVER 0 would have, and as the old main would have). NAMED goes
 * before MAINPID=, not after: killed between the two, the old main would
 * leave the service manager naming a next handoff that took its end of
 * file for an abort, and stopped. Killed before its MAINPID=, it leaves
 * the manager naming a dead main: the service fails whatever the next
 * handoff does. After TAKEOVER, the old
 * main's end of file means it has finished draining, or was killed while
 * it drained: the next handoff keeps NAMED's pidfd from TAKEOVER on and
 * holds that generation to its drain deadline itself (retiree.h).
 *
 * After NAMED the next handoff waits for TAKEOVER (or UNNAMED, or the end
 * of file) with no deadline of its own. An old main stopped meanwhile
 * (SIGSTOP, a debugger) holds it there until it runs again: the bounds on
 * MAINPID= and systemd's barrier (5 s each, handover.c) are timers of the
 * old main's loop, due at once then. Giving up would be worse: whether
 * MAINPID= reached the service manager the next handoff cannot tell, and
 * if it did, its exit ends the service, while waiting leaves both
 * generations serving. The service's stop still ends the wait: the
 * manager follows its SIGTERM with SIGCONT, to whichever of us it takes
 * for main (the next handoff, named, reports FAILED and stops), and
 * SIGKILLs what is left at its stop timeout at the latest.
 *
 * The old main may not read for a while (stopped, starved of CPU) while the
 * next handoff's STATUS lines fill its end: the next handoff's reports wait
 * in an outbox then (outbox.h), and READY, FAILED and APP still arrive.
 *
 * The other way, the old main says a few short messages over the channel's
 * whole life, each at most once (the standby's GO, which it reads before it
 * starts, aside): UNLINKS, NAMED, UNNAMED, TAKEOVER, STOP and DRAINED. The
 * buffer holds them all with nothing read (some 270 short messages fit the
 * default 208 KiB), so they are sent without waiting, and none is lost
 * however long the next handoff does not read, nor after the old main has
 * exited. What grows with the service (its unix socket files: there may be
 * thousands) goes in a memfd, not in messages of its own: a message a path
 * filled the buffer, and NAMED or UNNAMED behind them was lost. */

#define HANDOFF_CONTROL_FD_ENV "HANDOFF_CONTROL_FD"
#define CHANNEL_MAX_MESSAGE 4200
/* The reports that must arrive are a few per reload. */
#define CHANNEL_MAX_QUEUED 32
/* UNLINK messages to a next handoff that takes no UNLINKS: they leave room
 * for the messages that follow them. */
#define CHANNEL_MAX_UNLINK 64

typedef enum {
        CHANNEL_PID,
        CHANNEL_APP,
        CHANNEL_READY,
        CHANNEL_FAILED,
        CHANNEL_STATUS,
        CHANNEL_EXTEND,
        CHANNEL_UNLINK,
        CHANNEL_TAKEOVER,
        CHANNEL_FEATURES,
        CHANNEL_STOP,
        CHANNEL_DRAINED,
        CHANNEL_NAMED,
        CHANNEL_UNNAMED,
        CHANNEL_UNLINKS,
} ChannelKind;

/* NAMED's news of the old main's serving generation. */
typedef struct ChannelNamed {
        int stop_signal;        /* 1 .. 64 */
        uint64_t drain_timeout; /* usec; UINT64_MAX: never */
        unsigned number;        /* 0: none serves */
        uint64_t started;       /* CLOCK_MONOTONIC usec */
        uint64_t ready;         /* CLOCK_MONOTONIC usec */
        pid_t group;            /* its process group, led by its main when NAMED went; 0: none */
        char cgroup[32];        /* its cgroup's leaf below the delegated root ("gen-1"); "": none */
} ChannelNamed;

typedef struct ChannelMessage {
        ChannelKind kind;
        pid_t pid;              /* PID, APP */
        bool reload_pending;    /* TAKEOVER */
        ChannelNamed named;     /* NAMED */
        uint64_t usec;          /* EXTEND */
        const char *text;       /* FAILED: why; STATUS: the text; UNLINK: the path; FEATURES: the words
                                 * (points into the buffer) */
} ChannelMessage;

/* Parses one NUL-terminated message. -EBADMSG for anything else. */
int channel_parse(const char *buf, ChannelMessage *ret);

/* An entry of UNLINKS's file: a unix socket file, and which file it was
 * when bound. */
typedef struct ChannelUnlink {
        uint64_t dev, ino;
        const char *path;       /* absolute (points into the entry) */
} ChannelUnlink;

/* Parses one NUL-terminated entry of UNLINKS's file. -EINVAL for anything
 * else. */
int channel_parse_unlink(const char *entry, ChannelUnlink *ret);

/* Sends UNLINKS, with a memfd of the n paths and the files they are. */
int channel_send_unlinks(int fd, char *const *paths, const dev_t *devs, const ino_t *inos, size_t n);
/* Calls cb with each entry in the file of an UNLINKS message (which stays
 * the caller's) that parses: 0, or -errno when it cannot be read (the
 * entries before that were given). */
int channel_read_unlinks(int fd, void (*cb)(const ChannelUnlink *u, void *userdata), void *userdata);

/* Sends NAMED, with pidfd (none when it is negative). */
int channel_send_named(int fd, int pidfd, const ChannelNamed *n);

/* Sends one message. */
int channel_send(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ... with a copy of passed along (none when it is negative). */
int channel_send_fd(int fd, int passed, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Receives one message into buf (NUL-terminated), without blocking. The
 * first fd that came with it is returned in *ret_fd (others are closed).
 * Returns its length, 0 at end of file, -EAGAIN when there is none,
 * -EBADMSG for one that is none of ours (a NUL inside, or no bytes: not
 * the end of file, which reads as a message of none; see end_of_file()). */
ssize_t channel_receive(int fd, char *buf, size_t size, int *ret_fd);

/* Receives and parses one message, dropping any fd that came with it.
 * Returns 1 with *ret (pointing into buf), -EBADMSG for a message that is
 * none of ours (buf holds it, for a log line), -EAGAIN when there is none,
 * 0 at end of file (or when the channel failed: the same to the reader). */
int channel_read(int fd, char *buf, size_t size, ChannelMessage *ret);
/* The same, keeping the first fd that came with a message of ours in
 * *ret_fd (-EBADF: none) when it returns 1, the caller's to close. */
int channel_read_fd(int fd, char *buf, size_t size, ChannelMessage *ret, int *ret_fd);

/* Receives the "PID <n>" report a next handoff (or a standby) sends with a
 * pidfd of itself before it execs (spawn.c): once spawn_generation() has
 * returned, it is first in the queue. Returns 0 with both, or -EPROTO. */
int channel_receive_pid(int fd, pid_t *ret_pid, int *ret_pidfd);

/* Parses a decimal pid (1 .. 4194304). */
int parse_pid(const char *s, pid_t *ret);
