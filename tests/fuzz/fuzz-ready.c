/* SPDX-License-Identifier: MIT */
/* parse_ready(): --ready=notify|delay:DUR.
 *
 * Properties:
 *  - "notify" exactly: success, not by delay, delay 0;
 *  - "delay:" + DUR: success exactly when parse_duration(DUR) succeeds
 *    with a value whose end, counted from now, is before the end of the
 *    clock (not infinity, nor a finite one past it: no timer would end
 *    it), which is then the delay; "now" is between the clock read before
 *    and after the call, either answer is right for a DUR ending between;
 *  - anything else: -EINVAL, and neither output is written. */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "options.h"
#include "time-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char repr[1024];
        char *s = fuzz_strndup(data, size);

        bool by_delay = true;
        usec_t delay = 777;
        usec_t before = now_monotonic();
        int r = parse_ready(s, &by_delay, &delay);
        usec_t after = now_monotonic();
        fuzz_repr(s, repr, sizeof repr);

        if (strcmp(s, "notify") == 0) {
                FUZZ_ASSERT(r == 0 && !by_delay && delay == 0, "\"%s\": %d %d %llu", repr, r, by_delay,
                            (unsigned long long) delay);
        } else if (strncmp(s, "delay:", 6) == 0) {
                usec_t d = 0;
                bool parsed = parse_duration(s + 6, &d) == 0;
                bool ok = parsed && usec_add(after, d) != USEC_INFINITY;
                bool maybe = parsed && usec_add(before, d) != USEC_INFINITY;
                if (ok || !maybe)
                        FUZZ_ASSERT((r == 0) == ok, "\"%s\": parse_ready() = %d, parse_duration() ok = %d", repr,
                                    r, ok);
                if (r == 0)
                        FUZZ_ASSERT(by_delay && delay == d, "\"%s\": by_delay %d delay %llu, expected %llu", repr,
                                    by_delay, (unsigned long long) delay, (unsigned long long) d);
        } else
                FUZZ_ASSERT(r == -EINVAL, "\"%s\": parse_ready() = %d, expected -EINVAL", repr, r);

        if (r < 0) {
                FUZZ_ASSERT(r == -EINVAL, "\"%s\": error %d", repr, r);
                FUZZ_ASSERT(by_delay && delay == 777, "\"%s\": outputs written despite failing", repr);
        }
        free(s);
        return 0;
}
