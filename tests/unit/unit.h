/* SPDX-License-Identifier: MIT */
#pragma once

/* The end of every unit test's main(): run the suite, exit 0 only when
 * every check passed. */

#include <check.h>
#include <stdlib.h>

static inline int unit_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
