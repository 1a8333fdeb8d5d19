/* Shared by the unit tests: each test runs in a fresh directory below the
 * runner's temporary directory (kept when the binary fails). */
#pragma once

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

static char test_top_dir[PATH_MAX];

static inline int test_dir_setup(void **state) {
        char t[] = "t.XXXXXX";
        (void) state;
        if (!test_top_dir[0] && !getcwd(test_top_dir, sizeof(test_top_dir)))
                return -1;
        if (chdir(test_top_dir) < 0 || !mkdtemp(t) || chdir(t) < 0)
                return -1;
        return 0;
}

static inline int test_dir_teardown(void **state) {
        (void) state;
        return chdir(test_top_dir) < 0 ? -1 : 0;
}

#define test_in_dir(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, test_dir_teardown)
