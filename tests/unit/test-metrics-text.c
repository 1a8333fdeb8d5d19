/* metrics-text.h: label values escaped as Prometheus's text format wants,
 * which is not JSON's. */
#include "tests.h"

#include <stdlib.h>
#include <string.h>

#include "metrics-text.h"
#include "util.h"

/* What metrics_label_put() writes for s (the caller frees). */
static char *label(const char *s) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        assert_non_null(f);
        metrics_label_put(f, s);
        assert_int_equal(fclose(f), 0);
        return text;
}

#define assert_label(s, want)                            \
        do {                                             \
                _cleanup_free_ char *got_ = label(s);    \
                assert_string_equal(got_, want);         \
        } while (0)

static void test_label_escapes(void **state) {
        (void) state;
        assert_label("a:8080", "\"a:8080\"");
        assert_label("say \"hi\"", "\"say \\\"hi\\\"\"");
        assert_label("C:\\dir", "\"C:\\\\dir\"");
        assert_label("two\nlines", "\"two\\nlines\"");
        /* JSON would write \t, \u00e9 and \/: the text format only the three. */
        assert_label("tab\there", "\"tab\there\"");
        assert_label("caf\xc3\xa9", "\"caf\xc3\xa9\"");
        assert_label("a/b", "\"a/b\"");
        assert_label("\\\"\n", "\"\\\\\\\"\\n\"");
}

static void test_label_never_empty(void **state) {
        (void) state;
        assert_label(NULL, "\"none\"");
        assert_label("", "\"none\"");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_label_escapes),
                cmocka_unit_test(test_label_never_empty),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
