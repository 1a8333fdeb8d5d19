/* common/error.h: the one error type that carries a message. */
#include "tests.h"

#include "error.h"
#include "util.h"

static void check_format(const Error *e, const char *want) {
        _cleanup_free_ char *got = error_format(e);

        assert_non_null(got);
        assert_string_equal(got, want);
}

static void test_set_format_clear(void **state) {
        _cleanup_error_ Error e = {};
        (void) state;

        assert_int_equal(error_set_at(&e, -EINVAL, "tiny.conf", 3, "unknown key '%s'", "colour"), -EINVAL);
        assert_int_equal(e.code, -EINVAL);
        assert_string_equal(e.message, "unknown key 'colour'");
        assert_string_equal(e.file, "tiny.conf");
        assert_int_equal(e.line, 3);
        check_format(&e, "tiny.conf:3: unknown key 'colour'");

        /* A new error replaces the old one, place and all. */
        assert_int_equal(error_set(&e, -ENOENT, "cannot open '%s': %m", "x"), -ENOENT);
        assert_null(e.file);
        assert_int_equal(e.line, 0);
        check_format(&e, "cannot open 'x': No such file or directory");

        /* The whole file, no line. */
        error_set_at(&e, -EBADMSG, "nul.conf", 0, "contains a NUL byte");
        check_format(&e, "nul.conf: contains a NUL byte");

        error_clear(&e);
        assert_int_equal(e.code, 0);
        assert_null(e.message);
        assert_null(e.file);
        error_clear(&e);
        error_clear(NULL);
}

/* Context goes in front of the message an inner call made. */
static void test_context(void **state) {
        _cleanup_error_ Error e = {};
        (void) state;

        error_set_at(&e, -EKEYREJECTED, "m.json", 0, "bad signature");
        error_set_at(&e, e.code, e.file, e.line, "image 3b1c: %s", e.message);
        assert_int_equal(e.code, -EKEYREJECTED);
        check_format(&e, "m.json: image 3b1c: bad signature");
}

/* Without an Error the code still comes back; without a message the
 * format says what the code means. */
static void test_no_error_no_message(void **state) {
        Error e = { .code = -EIO };
        (void) state;

        assert_int_equal(error_set(NULL, -ENOSPC, "full"), -ENOSPC);
        check_format(&e, "Input/output error");
        e.file = (char *) "t.conf";
        e.line = 7;
        check_format(&e, "t.conf:7: Input/output error");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_set_format_clear),
                cmocka_unit_test(test_context),
                cmocka_unit_test(test_no_error_no_message),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
