/* SPDX-License-Identifier: MIT */
/* control_parse_request(): one request on the control socket ("handoff
 * reload", "handoff status", or anyone of our uid with socat).
 *
 * Properties:
 *  - the buffer is read as len bytes, never as a C string: it is passed in
 *    a heap block of exactly len bytes without a NUL (AddressSanitizer sees
 *    any read past it);
 *  - accepted exactly: "RELOAD", "JOIN", "STATUS", "STATUS json", each
 *    optionally followed by one newline, with the matching kind; "OUTCOME ",
 *    a pid (1 to 10 decimal digits, 1 to INT32_MAX), one blank and a start
 *    time (1 to 20 decimal digits, a u64), the same, with those; "RELOAD"
 *    followed by a NUL and anything (a new command line) as a reload whose
 *    arguments are exactly the rest of the buffer; anything else -EBADMSG
 *    with the output untouched;
 *  - a command line is taken apart without reading past it, and parses to
 *    a configuration or -EINVAL/-ECANCELED/-ENOMEM with a reason. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "control.h"
#include "fuzz.h"
#include "reload-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const struct {
                const char *text;
                RequestKind kind;
        } known[] = {
                { "RELOAD", REQUEST_RELOAD },
                { "JOIN", REQUEST_JOIN },
                { "STATUS", REQUEST_STATUS },
                { "STATUS json", REQUEST_STATUS_JSON },
        };
        char *buf = malloc(size ? size : 1);
        if (!buf)
                abort();
        if (size)
                memcpy(buf, data, size);

        size_t len = size;
        if (len > 0 && buf[len - 1] == '\n')
                len--;
        int want = -1;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                if (strlen(known[i].text) == len && memcmp(buf, known[i].text, len) == 0)
                        want = (int) i;
        /* "OUTCOME <pid> <start time>": 1 to 10 digits that give a pid, one
         * blank, 1 to 20 digits that give a u64 (no overflow), nothing else. */
        bool outcome = len > 8 && memcmp(buf, "OUTCOME ", 8) == 0;
        uint64_t pid = 0, start_time = 0;
        size_t i = 8, n = 0;
        for (; outcome && i < len && buf[i] >= '0' && buf[i] <= '9'; i++, n++)
                pid = n < 10 ? pid * 10 + (uint64_t) (buf[i] - '0') : pid;
        outcome = outcome && n >= 1 && n <= 10 && pid > 0 && pid <= INT32_MAX && i < len && buf[i] == ' ';
        bool overflow = false;
        for (i++, n = 0; outcome && i < len && buf[i] >= '0' && buf[i] <= '9'; i++, n++) {
                unsigned d = (unsigned) (buf[i] - '0');
                overflow = overflow || start_time > (UINT64_MAX - d) / 10;
                start_time = start_time * 10 + d;
        }
        outcome = outcome && n >= 1 && n <= 20 && !overflow && i == len;

        bool with_args = size > 7 && memcmp(buf, "RELOAD", 7) == 0;
        ControlRequest req = { .kind = (RequestKind) 0x5a5a };
        int r = control_parse_request(buf, size, &req);
        if (with_args) {
                FUZZ_ASSERT(r == 0 && req.kind == REQUEST_RELOAD && req.args == buf + 6 && req.args_len == size - 6,
                            "a reload with a command line: returned %d kind %d", r, (int) req.kind);
                ReloadConfig *c = NULL;
                char why[128] = "";
                int k = reload_config_parse("handoff", req.args, req.args_len, &c, why, sizeof why);
                FUZZ_ASSERT(k == 0 ? c != NULL : (k == -EINVAL || k == -ECANCELED || k == -ENOMEM) && why[0] != '\0',
                            "reload_config_parse returned %d", k);
                if (c)
                        FUZZ_ASSERT(c->opt.command && c->opt.command[0], "a configuration without a command");
                reload_config_free(c);
        } else if (outcome)
                FUZZ_ASSERT(r == 0 && req.kind == REQUEST_OUTCOME && (uint64_t) req.pid == pid &&
                            req.start_time == start_time && req.args_len == 0,
                            "an outcome request: returned %d kind %d pid %d start time %llu", r, (int) req.kind,
                            (int) req.pid, (unsigned long long) req.start_time);
        else if (want >= 0)
                FUZZ_ASSERT(r == 0 && req.kind == known[want].kind && req.args_len == 0,
                            "\"%s\": returned %d kind %d", known[want].text, r, (int) req.kind);
        else {
                FUZZ_ASSERT(r == -EBADMSG, "a request of %zu bytes that is none of ours: returned %d", size, r);
                FUZZ_ASSERT(req.kind == (RequestKind) 0x5a5a, "output written for a refused request");
        }
        free(buf);
        return 0;
}
