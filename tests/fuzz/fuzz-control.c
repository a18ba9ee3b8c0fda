/* SPDX-License-Identifier: MIT */
/* control_parse_request(): one request on the control socket ("handoff
 * reload", "handoff status", or anyone of our uid with socat).
 *
 * Properties:
 *  - the buffer is read as len bytes, never as a C string: it is passed in
 *    a heap block of exactly len bytes without a NUL (AddressSanitizer sees
 *    any read past it);
 *  - accepted exactly: "RELOAD", "JOIN", "STATUS", "STATUS json", each
 *    optionally followed by one newline, with the matching kind; anything
 *    else -EBADMSG with the output untouched. */
#include <errno.h>
#include <stdbool.h>

#include "control.h"
#include "fuzz.h"

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

        RequestKind kind = (RequestKind) 0x5a5a;
        int r = control_parse_request(buf, size, &kind);
        if (want >= 0)
                FUZZ_ASSERT(r == 0 && kind == known[want].kind, "\"%s\": returned %d kind %d", known[want].text, r,
                            (int) kind);
        else {
                FUZZ_ASSERT(r == -EBADMSG, "a request of %zu bytes that is none of ours: returned %d", size, r);
                FUZZ_ASSERT(kind == (RequestKind) 0x5a5a, "output written for a refused request");
        }
        free(buf);
        return 0;
}
