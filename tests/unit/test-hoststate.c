/* The host states agent and server share (common/hoststate.h). */
#include "tests.h"

#include "hoststate.h"
#include "util.h"

/* Every state docs/api.md lists, in its order, and whether it means an
 * installed disk. */
static void test_names(void **state) {
        static const struct {
                const char *name;
                bool installed;
        } states[] = {
                { "registered", false }, { "installing", false }, { "installed", true },
                { "staging", true },     { "staged", true },      { "rebooting", true },
                { "healthy", true },     { "unhealthy", true },   { "rolled-back", true },
                { "failed", false },
        };
        (void) state;

        assert_int_equal(ELEMENTSOF(states), _HOST_STATE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(states); i++) {
                HostState s = host_state_from_string(states[i].name);
                assert_int_equal(s, (HostState) i);
                assert_string_equal(host_state_to_string(s), states[i].name);
                assert_int_equal(host_state_is_installed(s), states[i].installed);
        }
}

static void test_invalid(void **state) {
        (void) state;

        assert_int_equal(host_state_from_string(NULL), _HOST_STATE_INVALID);
        assert_int_equal(host_state_from_string(""), _HOST_STATE_INVALID);
        assert_int_equal(host_state_from_string("Healthy"), _HOST_STATE_INVALID);
        assert_int_equal(host_state_from_string("healthy "), _HOST_STATE_INVALID);
        assert_int_equal(host_state_from_string("rolled_back"), _HOST_STATE_INVALID);
        assert_null(host_state_to_string(_HOST_STATE_INVALID));
        assert_null(host_state_to_string(_HOST_STATE_MAX));
        assert_false(host_state_is_installed(_HOST_STATE_INVALID));
        assert_false(host_state_is_installed(_HOST_STATE_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_invalid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
