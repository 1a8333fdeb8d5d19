/* common/log.h: plain lines, and JSON lines with their fields. */
#include "tests.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "util.h"

/* Runs the logging of body with stderr sent to the file "err", and reads
 * what it wrote into *ret (the caller frees). */
#define CAPTURE(ret, body)                                                                 \
        do {                                                                               \
                int saved_ = dup(STDERR_FILENO);                                           \
                int fd_ = open("err", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);     \
                assert_true(saved_ >= 0 && fd_ >= 0);                                      \
                fflush(stderr);                                                            \
                assert_true(dup2(fd_, STDERR_FILENO) >= 0);                                \
                body;                                                                      \
                fflush(stderr);                                                            \
                assert_true(dup2(saved_, STDERR_FILENO) >= 0);                             \
                close(fd_);                                                                \
                close(saved_);                                                             \
                assert_int_equal(read_full_file("err", 1 << 20, &(ret), NULL), 0);         \
        } while (0)

/* The one JSON object of a line. */
static json_t *parse_line(const char *s) {
        json_error_t e;
        json_t *o = json_loads(s, 0, &e);

        if (!o)
                fail_msg("not JSON (%s): %s", e.text, s);
        assert_non_null(strchr(s, '\n'));
        assert_ptr_equal(strchr(s, '\n'), s + strlen(s) - 1);
        return o;
}

static const char *field(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static void test_text_unchanged(void **state) {
        _cleanup_free_ char *out = NULL;
        (void) state;

        log_set_program("slipwayd");
        log_set_json(false);
        log_set_field("instance", "a");
        CAPTURE(out, {
                log_info("serving on %s", "x");
                log_warning("careful");
                log_error_errno(-ENOENT, "cannot open '%s': %m", "f");
        });
        assert_string_equal(out, "serving on x\nslipwayd: warning: careful\n"
                                 "slipwayd: cannot open 'f': No such file or directory\n");
        log_set_field("instance", NULL);
}

static void test_json_fields(void **state) {
        _cleanup_free_ char *out = NULL;
        json_t *o;
        const char *ts;
        (void) state;

        log_set_program("slipwayd");
        log_set_json(true);
        log_set_field("instance", "a:8080");
        log_context_set("request", "7");
        log_context_set("host", "h-1");
        CAPTURE(out, log_error_errno(-ENOENT, "cannot open \"%s\"\tnow: %m", "f\n"));
        o = parse_line(out);
        ts = field(o, "ts");
        /* 2026-12-05T12:01:04.271Z */
        assert_non_null(ts);
        assert_int_equal(strlen(ts), 24);
        assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
        assert_string_equal(field(o, "level"), "error");
        assert_string_equal(field(o, "prog"), "slipwayd");
        assert_string_equal(field(o, "msg"), "cannot open \"f\n\"\tnow: No such file or directory");
        assert_string_equal(field(o, "error"), "No such file or directory");
        assert_string_equal(field(o, "instance"), "a:8080");
        assert_string_equal(field(o, "request"), "7");
        assert_string_equal(field(o, "host"), "h-1");
        assert_int_equal(json_object_size(o), 8);
        json_decref(o);

        /* A field set again is replaced; NULL or "" removes it; the context
         * goes with log_context_clear(); no error, no field. */
        free(out);
        log_context_set("host", "h-2");
        log_context_set("request", "");
        CAPTURE(out, log_info("one"));
        o = parse_line(out);
        assert_string_equal(field(o, "host"), "h-2");
        assert_null(json_object_get(o, "request"));
        assert_null(json_object_get(o, "error"));
        assert_string_equal(field(o, "level"), "info");
        json_decref(o);

        free(out);
        log_context_clear();
        log_set_field("instance", NULL);
        CAPTURE(out, log_warning("two"));
        o = parse_line(out);
        assert_int_equal(json_object_size(o), 4);
        assert_string_equal(field(o, "level"), "warning");
        json_decref(o);
        log_set_json(false);
}

/* Values are cut at 127 bytes; more than 8 fields are dropped, not
 * written half. */
static void test_json_caps(void **state) {
        static const char *const keys[] = { "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9" };
        _cleanup_free_ char *out = NULL;
        char big[300];
        json_t *o;
        (void) state;

        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        log_set_json(true);
        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                log_context_set(keys[k], big);
        CAPTURE(out, log_info("capped"));
        o = parse_line(out);
        assert_int_equal(strlen(field(o, "k0")), 127);
        assert_non_null(json_object_get(o, "k7"));
        assert_null(json_object_get(o, "k8"));
        assert_null(json_object_get(o, "k9"));
        json_decref(o);
        log_context_clear();
        log_set_json(false);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_text_unchanged),
                test_in_dir(test_json_fields),
                test_in_dir(test_json_caps),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
