/* Reboot windows of rollouts: parsing "HH:MM-HH:MM", the wait until a
 * window opens (also across midnight), and window selectors. */
#include "tests.h"

#include "coordinator.h"
#include "util.h"

static void test_parse(void **state) {
        int a, b;
        (void) state;

        assert_int_equal(window_parse("02:00-05:30", &a, &b), 0);
        assert_int_equal(a, 120);
        assert_int_equal(b, 330);
        assert_int_equal(window_parse("22:00-04:00", &a, &b), 0);
        assert_int_equal(a, 1320);
        assert_int_equal(b, 240);
        static const char *const bad[] = { "", "2:00-05:00", "02:00-05:00 ", "02:00 05:00", "24:00-01:00",
                                           "01:60-02:00", "03:00-03:00", "aa:bb-cc:dd", "02:00-05:0x", NULL };
        for (size_t i = 0; bad[i]; i++)
                assert_int_equal(window_parse(bad[i], &a, &b), -EINVAL);
        assert_int_equal(window_parse(NULL, &a, &b), -EINVAL);
}

static void test_wait(void **state) {
        const uint64_t day = 20000 * 86400ULL; /* a midnight, UTC */
        (void) state;

        /* 02:00-05:00 */
        assert_int_equal(window_wait(120, 300, day + 3 * 3600), 0);
        assert_int_equal(window_wait(120, 300, day + 2 * 3600), 0);
        assert_int_equal(window_wait(120, 300, day + 5 * 3600), 21 * 3600);
        assert_int_equal(window_wait(120, 300, day + 3600), 3600);
        assert_int_equal(window_wait(120, 300, day + 23 * 3600), 3 * 3600);
        /* 22:00-04:00, across midnight */
        assert_int_equal(window_wait(1320, 240, day + 23 * 3600), 0);
        assert_int_equal(window_wait(1320, 240, day + 3600), 0);
        assert_int_equal(window_wait(1320, 240, day + 4 * 3600), 18 * 3600);
        assert_int_equal(window_wait(1320, 240, day + 21 * 3600 + 1800), 1800);
}

static void test_selector(void **state) {
        (void) state;
        assert_true(coord_selector_valid("rack"));
        assert_true(coord_selector_valid("rack=r12"));
        assert_false(coord_selector_valid(""));
        assert_false(coord_selector_valid("rack="));
        assert_false(coord_selector_valid("=r1"));
        assert_false(coord_selector_valid("rack=r 1"));
        assert_false(coord_selector_valid(NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_wait),
                cmocka_unit_test(test_selector),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
