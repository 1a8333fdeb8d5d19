#include <fcntl.h>

#include "tests.h"

#include "process.h"
#include "util.h"

static void test_parse_size(void **state) {
        uint64_t v;
        (void) state;
        assert_int_equal(parse_size("512", &v), 0);
        assert_int_equal(v, 512);
        assert_int_equal(parse_size("64M", &v), 0);
        assert_int_equal(v, 64ULL << 20);
        assert_int_equal(parse_size("2G", &v), 0);
        assert_int_equal(v, 2ULL << 30);
        assert_int_equal(parse_size("1KiB", &v), 0);
        assert_int_equal(v, 1024);
        assert_int_equal(parse_size("4k", &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(parse_size("", &v), -EINVAL);
        assert_int_equal(parse_size("M", &v), -EINVAL);
        assert_int_equal(parse_size("12X", &v), -EINVAL);
        assert_int_equal(parse_size("-1", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
        assert_int_equal(parse_size("17179869184T", &v), -ERANGE);
}

static void test_safe_ato(void **state) {
        uint64_t u;
        int i;
        (void) state;
        assert_int_equal(safe_atou64("42", &u), 0);
        assert_int_equal(u, 42);
        assert_int_equal(safe_atou64("42x", &u), -EINVAL);
        assert_int_equal(safe_atou64(" 42", &u), -EINVAL);
        assert_int_equal(safe_atoi("-7", &i), 0);
        assert_int_equal(i, -7);
        assert_int_equal(safe_atoi("3000000000", &i), -ERANGE);
}

static void test_strv(void **state) {
        _cleanup_strv_free_ char **l = strv_split_words("  b a,c\tb  ");
        (void) state;
        assert_non_null(l);
        assert_int_equal(strv_length(l), 4);
        assert_int_equal(strv_sort_unique(l), 3);
        assert_string_equal(l[0], "a");
        assert_string_equal(l[1], "b");
        assert_string_equal(l[2], "c");
        assert_null(l[3]);
        assert_true(strv_contains(l, "c"));
        assert_false(strv_contains(l, "d"));
}

static void test_array_push(void **state) {
        struct { int a; char *s; } *l = NULL, *e;
        size_t n = 0, cap = 0;
        (void) state;
        for (int i = 0; i < 100; i++) {
                e = ARRAY_PUSH(l, n, cap);
                assert_non_null(e);
                /* zeroed, the last one, and n counts it */
                assert_int_equal(e->a, 0);
                assert_null(e->s);
                assert_ptr_equal(e, &l[n - 1]);
                assert_int_equal(n, i + 1);
                assert_true(cap >= n);
                e->a = i;
        }
        for (int i = 0; i < 100; i++)
                assert_int_equal(l[i].a, i);
        assert_int_equal(cap, 128);
        free(l);
}

static void test_json_escape(void **state) {
        _cleanup_free_ char *s = json_escape_string("a\"b\\c\nd\001");
        (void) state;
        assert_string_equal(s, "\"a\\\"b\\\\c\\nd\\u0001\"");
}

static void test_path_join(void **state) {
        _cleanup_free_ char *a = path_join("/x/", "/y"), *b = path_join("x", "y/z");
        (void) state;
        assert_string_equal(a, "/x/y");
        assert_string_equal(b, "x/y/z");
}

static void test_hex(void **state) {
        const uint8_t in[] = { 0x00, 0xab, 0xff };
        char out[7];
        (void) state;
        hex_encode(in, 3, out);
        assert_string_equal(out, "00abff");
        assert_true(sha256_hex_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        assert_false(sha256_hex_valid("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
        assert_false(sha256_hex_valid("e3b0"));
}

static void test_source_date_epoch(void **state) {
        uint64_t v;
        (void) state;
        unsetenv("SOURCE_DATE_EPOCH");
        assert_int_equal(source_date_epoch(&v), -ENOENT);
        setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
        assert_int_equal(source_date_epoch(&v), 0);
        assert_int_equal(v, 1700000000);
        setenv("SOURCE_DATE_EPOCH", "soon", 1);
        assert_int_equal(source_date_epoch(&v), -EINVAL);
        unsetenv("SOURCE_DATE_EPOCH");
}

/* A child gets fds 0 to 2 only, even when we hold one without O_CLOEXEC
 * (as a shell's background job may leave us). */
static void test_spawn_fds(void **state) {
        int fd = open("/dev/null", O_RDONLY);
        (void) state;
        assert_true(fd >= 0);
        assert_int_equal(dup2(fd, 37), 37);
        assert_int_equal(spawn_capture((char *const[]) { "sh", "-c", "test ! -e /proc/self/fd/37", NULL }, NULL,
                                       NULL, NULL),
                         0);
        assert_int_equal(spawn_capture((char *const[]) { "sh", "-c", "test -e /proc/self/fd/2", NULL }, NULL, NULL,
                                       NULL),
                         0);
        close(37);
        close(fd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_parse_size), test_in_dir(test_safe_ato),
                test_in_dir(test_strv),       test_in_dir(test_array_push), test_in_dir(test_json_escape),
                test_in_dir(test_path_join),  test_in_dir(test_hex),
                test_in_dir(test_source_date_epoch), test_in_dir(test_spawn_fds),
        };
        return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
