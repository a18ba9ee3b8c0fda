/* SPDX-License-Identifier: MIT */
/* channel_parse(): one message on the handover channel, from the other
 * handoff process (the next handoff, or its predecessor); and
 * channel_parse_unlink(): the same input as an entry of UNLINKS's file.
 *
 * Properties:
 *  - the input is read as a C string in a heap block of exactly its size;
 *  - a refused message returns -EBADMSG and leaves the output untouched;
 *  - PID/APP: the pid is 1..4194304 and printing it back gives the input;
 *  - READY, TAKEOVER 0|1, UNLINKS: the input is exactly that;
 *  - FAILED/STATUS/UNLINK: the text points into the input, right after the word
 *    (UNLINK: an absolute path);
 *  - EXTEND: the rest of the input is digits only, and their value is usec;
 *  - NAMED: a signal 1..64, a number that fits an unsigned and a group
 *    0..4194304, and printing the six fields back gives the input, or its
 *    beginning, followed by a space and more (a later version's fields);
 *    a cgroup read is the seventh field whole, "gen-N" or "gen-N.K";
 *  - an UNLINKS entry: an absolute path at the end of the input, after a dev
 *    and an inode number that printed back give what is before it; a
 *    refused one returns -EINVAL and leaves the output untouched. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>

#include "channel.h"
#include "fuzz.h"

/* digits (the end of buf) are digits only, and their value is usec:
 * computed without strtoull(), the same number, not overflowed. */
static void check_usec(const char *buf, const char *digits, uint64_t usec) {
        FUZZ_ASSERT(*digits && strspn(digits, "0123456789") == strlen(digits), "\"%s\": not digits at the end",
                    buf);
        uint64_t v = 0;
        bool over = false;
        for (const char *p = digits; *p; p++) {
                over = over || v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        FUZZ_ASSERT(!over && v == usec, "\"%s\" read as %llu", buf, (unsigned long long) usec);
}

static void check_unlink(const char *buf) {
        ChannelUnlink u = { .dev = 7, .path = buf };
        char again[64];
        int r = channel_parse_unlink(buf, &u);
        if (r < 0) {
                FUZZ_ASSERT(r == -EINVAL, "entry refused with %d", r);
                FUZZ_ASSERT(u.dev == 7 && u.path == buf, "output written for a refused entry");
                return;
        }
        FUZZ_ASSERT(r == 0, "entry returned %d", r);
        int n = snprintf(again, sizeof again, "%" PRIu64 " %" PRIu64 " ", u.dev, u.ino);
        FUZZ_ASSERT(n > 0 && (size_t) n < sizeof again && u.path == buf + n && strncmp(buf, again, (size_t) n) == 0 &&
                            u.path[0] == '/',
                    "\"%s\": UNLINKS entry read as \"%s\" and \"%s\"", buf, again, u.path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *buf = fuzz_strndup(data, size);
        ChannelMessage m = { .kind = (ChannelKind) 0x5a, .pid = -7 };
        char again[128];
        check_unlink(buf);
        int r = channel_parse(buf, &m);

        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG, "refused with %d", r);
                FUZZ_ASSERT(m.kind == (ChannelKind) 0x5a && m.pid == -7, "output written for a refused message");
                free(buf);
                return 0;
        }
        FUZZ_ASSERT(r == 0, "returned %d", r);
        switch (m.kind) {
        case CHANNEL_PID:
        case CHANNEL_APP:
                FUZZ_ASSERT(m.pid >= 1 && m.pid <= 4194304, "pid %d out of range", (int) m.pid);
                snprintf(again, sizeof again, "%s %d", m.kind == CHANNEL_PID ? "PID" : "APP", (int) m.pid);
                FUZZ_ASSERT(strcmp(again, buf) == 0, "\"%s\" read as %s", buf, again);
                break;
        case CHANNEL_READY:
                FUZZ_ASSERT(strcmp(buf, "READY") == 0, "\"%s\" read as READY", buf);
                break;
        case CHANNEL_TAKEOVER:
                FUZZ_ASSERT(strcmp(buf, m.reload_pending ? "TAKEOVER 1" : "TAKEOVER 0") == 0, "\"%s\" read as TAKEOVER %d",
                            buf, m.reload_pending);
                break;
        case CHANNEL_FAILED:
                FUZZ_ASSERT(strncmp(buf, "FAILED ", 7) == 0 && m.text == buf + 7, "FAILED text misplaced");
                break;
        case CHANNEL_STATUS:
                FUZZ_ASSERT(strncmp(buf, "STATUS ", 7) == 0 && m.text == buf + 7, "STATUS text misplaced");
                break;
        case CHANNEL_EXTEND: {
                const char *digits = buf + 7;
                FUZZ_ASSERT(strncmp(buf, "EXTEND ", 7) == 0, "\"%s\" read as EXTEND", buf);
                check_usec(buf, digits, m.usec);
                break;
        }
        case CHANNEL_NAMED: {
                const ChannelNamed *g = &m.named;
                FUZZ_ASSERT(g->stop_signal >= 1 && g->stop_signal <= 64, "signal %d out of range", g->stop_signal);
                FUZZ_ASSERT(g->group >= 0 && g->group <= 4194304, "group %d out of range", (int) g->group);
                int n = snprintf(again, sizeof again, "NAMED %d %" PRIu64 " %u %" PRIu64 " %" PRIu64 " %d",
                                 g->stop_signal, g->drain_timeout, g->number, g->started, g->ready, (int) g->group);
                FUZZ_ASSERT(n > 0 && (size_t) n < sizeof again && strncmp(buf, again, (size_t) n) == 0 &&
                                    (buf[n] == '\0' || (buf[n] == ' ' && buf[n + 1] != '\0')),
                            "\"%s\" read as \"%s\"", buf, again);
                /* A cgroup, if any: the seventh field whole, a leaf's name. */
                size_t c = strnlen(g->cgroup, sizeof g->cgroup);
                FUZZ_ASSERT(c < sizeof g->cgroup, "cgroup not terminated");
                if (c > 0) {
                        const char *d = g->cgroup + 4 + strspn(g->cgroup + 4, "0123456789");
                        if (*d == '.')
                                d += 1 + strspn(d + 1, "0123456789");
                        FUZZ_ASSERT(strncmp(g->cgroup, "gen-", 4) == 0 && *d == '\0' &&
                                            strncmp(buf + n + 1, g->cgroup, c) == 0 &&
                                            (buf[n + 1 + c] == '\0' || buf[n + 1 + c] == ' '),
                                    "\"%s\": cgroup read as \"%s\"", buf, g->cgroup);
                }
                break;
        }
        case CHANNEL_UNLINK:
                FUZZ_ASSERT(strncmp(buf, "UNLINK /", 8) == 0 && m.text == buf + 7 && m.text[0] == '/',
                            "UNLINK path misplaced");
                break;
        case CHANNEL_FEATURES:
                FUZZ_ASSERT(strncmp(buf, "FEATURES ", 9) == 0 && m.text == buf + 9, "FEATURES words misplaced");
                break;
        case CHANNEL_STOP:
                FUZZ_ASSERT(strcmp(buf, "STOP") == 0, "\"%s\" read as STOP", buf);
                break;
        case CHANNEL_DRAINED:
                FUZZ_ASSERT(strcmp(buf, "DRAINED") == 0, "\"%s\" read as DRAINED", buf);
                break;
        case CHANNEL_UNNAMED:
                FUZZ_ASSERT(strcmp(buf, "UNNAMED") == 0, "\"%s\" read as UNNAMED", buf);
                break;
        case CHANNEL_UNLINKS:
                FUZZ_ASSERT(strcmp(buf, "UNLINKS") == 0, "\"%s\" read as UNLINKS", buf);
                break;
        default:
                FUZZ_ASSERT(false, "unknown kind %d", (int) m.kind);
        }
        free(buf);
        return 0;
}
