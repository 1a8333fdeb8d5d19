/* common/loaderentry.h: the names and bodies of the boot entries
 * slipway-build and the agent write. */
#include "tests.h"

#include "loaderentry.h"
#include "manifest.h"
#include "util.h"

static void test_ids(void **state) {
        _cleanup_free_ char *id = loader_entry_id(7, "1.2.3");
        (void) state;

        assert_string_equal(id, "slipway-7-1.2.3");
        assert_null(loader_entry_id(0, "1.0"));
        assert_null(loader_entry_id(1, ""));
        assert_null(loader_entry_id(1, NULL));
        assert_null(loader_entry_id(1, "1.0+git"));
        assert_null(loader_entry_id(1, "1/0"));
        assert_null(loader_entry_id(1, ".."));
        assert_null(loader_entry_id(1, "-1"));
        assert_null(loader_entry_id(1, "1 0"));
        assert_null(loader_entry_id(1, ".hidden"));
        assert_null(loader_entry_id(1, "1234567890123456789012345678901234567890123456789012345678901234X"));
        assert_true(image_version_valid("2024.05-1~rc2^p1_x"));
        assert_true(image_version_valid("_1"));
        assert_true(image_version_valid("~rc1"));
}

static void test_file_names(void **state) {
        static const struct {
                int left, done;
                const char *want;
        } cases[] = {
                { -1, 0, "slipway-2-1.0.conf" },     { -1, 5, "slipway-2-1.0.conf" },
                { 3, 0, "slipway-2-1.0+3.conf" },    { 2, 1, "slipway-2-1.0+2-1.conf" },
                { 0, 3, "slipway-2-1.0+0-3.conf" }, { 0, 0, "slipway-2-1.0+0.conf" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *f = loader_entry_file_name("slipway-2-1.0", cases[i].left, cases[i].done);
                assert_string_equal(f, cases[i].want);
        }
}

static void test_paths(void **state) {
        _cleanup_free_ char *k = loader_kernel_path("2.1~rc1"), *i = loader_initrd_path("2.1~rc1");
        (void) state;

        assert_string_equal(k, "/slipway/2.1~rc1/vmlinuz");
        assert_string_equal(i, "/slipway/2.1~rc1/initrd");
        assert_null(loader_kernel_path("../x"));
        assert_null(loader_initrd_path(NULL));
}

/* One body for both writers. slipway-build's disk entry said "title tiny
 * 1.0 (slot A)" and the agent's "title Slipway 1.0 (slot A)": the image's
 * name is what tells a menu's entries apart, so both say it now. */
static void test_body(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        (void) state;

        assert_int_equal(loader_entry_body("tiny", "1.0", 'a', "console=ttyS0 quiet", &a), 0);
        assert_string_equal(a, "title tiny 1.0 (slot A)\n"
                               "version 1.0\n"
                               "linux /slipway/1.0/vmlinuz\n"
                               "initrd /slipway/1.0/initrd\n"
                               "options console=ttyS0 quiet slipway.slot=a\n");
        assert_int_equal(loader_entry_body("tiny", "2.0", 'b', NULL, &b), 0);
        assert_string_equal(b, "title tiny 2.0 (slot B)\n"
                               "version 2.0\n"
                               "linux /slipway/2.0/vmlinuz\n"
                               "initrd /slipway/2.0/initrd\n"
                               "options slipway.slot=b\n");
}

static void test_body_refusals(void **state) {
        char *body = (char *) "untouched";
        (void) state;

        assert_int_equal(loader_entry_body("tiny", "1.0", 'c', NULL, &body), -EINVAL);
        assert_int_equal(loader_entry_body("tiny", "1.0+1", 'a', NULL, &body), -EINVAL);
        assert_int_equal(loader_entry_body("tiny", NULL, 'a', NULL, &body), -EINVAL);
        assert_int_equal(loader_entry_body("ti ny", "1.0", 'a', NULL, &body), -EINVAL);
        assert_int_equal(loader_entry_body("tiny\nlinux /evil", "1.0", 'a', NULL, &body), -EINVAL);
        assert_int_equal(loader_entry_body("tiny", "1.0", 'a', "quiet\ninitrd /evil", &body), -EINVAL);
        assert_int_equal(loader_entry_body("tiny", "1.0", 'a', "quiet\r", &body), -EINVAL);
        assert_int_equal(loader_entry_body("tiny", "1.0", 'a', "quiet slipway.slot=b", &body), -EINVAL);
        assert_string_equal(body, "untouched");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ids),
                cmocka_unit_test(test_file_names),
                cmocka_unit_test(test_paths),
                cmocka_unit_test(test_body),
                cmocka_unit_test(test_body_refusals),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
