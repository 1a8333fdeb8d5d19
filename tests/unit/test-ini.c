#include "tests.h"

#include "error.h"
#include "fileio.h"
#include "ini.h"
#include "util.h"

typedef struct Seen {
        char buf[1024];
        unsigned last_line;
} Seen;

static int collect(const char *file, unsigned line, const char *section, const char *key, const char *value,
                   void *userdata, Error *error) {
        Seen *s = userdata;
        size_t n = strlen(s->buf);
        if (streq(key, "fail"))
                return error_set_at(error, -ENOTSUP, file, line, "'%s' fails", key);
        if (streq(key, "quiet-fail"))
                return -ENOTSUP;
        snprintf(s->buf + n, sizeof(s->buf) - n, "[%s]%s=%s;", section, key, value);
        s->last_line = line;
        return 0;
}

static void test_parse(void **state) {
        Seen s = {};
        (void) state;
        assert_int_equal(ini_parse_string("t", "# comment\n; other\n\ntop = 1\n[image]\n name = tiny \n"
                                               "[repo   sample]\nbaseurl = file:///x = y\n",
                                          collect, &s, NULL),
                         0);
        assert_string_equal(s.buf, "[]top=1;[image]name=tiny;[repo sample]baseurl=file:///x = y;");
        assert_int_equal(s.last_line, 8);
}

/* Comments after a value: a '#' that follows a blank starts one, "\\#" keeps
 * a '#', ';' only comments out a whole line. */
static void test_trailing_comments(void **state) {
        static const struct {
                const char *line, *want;
        } cases[] = {
                { "a = 1 # one", "[]a=1;" },
                { "a = 1\t# after a tab", "[]a=1;" },
                { "a = 1    #", "[]a=1;" },
                { "a = # nothing but a comment", "[]a=;" },
                { "a = x#y", "[]a=x#y;" },
                { "baseurl = http://mirror/repo/#frag # the mirror", "[]baseurl=http://mirror/repo/#frag;" },
                { "a =#x", "[]a=#x;" },
                { "a = x \\# y", "[]a=x # y;" },
                { "a = \\#", "[]a=#;" },
                { "a = \\#1 # and a comment", "[]a=#1;" },
                { "a = x\\\\#y", "[]a=x\\#y;" },
                { "a = back\\slash\\", "[]a=back\\slash\\;" },
                { "a = sync ; reboot", "[]a=sync ; reboot;" },
                { "a = 1 ; # a '#' after a blank, after a ';'", "[]a=1 ;;" },
                { "[repo x] # a section\nk = v", "[repo x]k=v;" },
                { "   # an indented comment line\nk = v", "[]k=v;" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Seen s = {};

                print_message("%s\n", cases[i].line);
                assert_int_equal(ini_parse_string("t", cases[i].line, collect, &s, NULL), 0);
                assert_string_equal(s.buf, cases[i].want);
        }
}

/* A comment cut off a line leaves what is before it to the usual rules. */
static void test_trailing_comment_errors(void **state) {
        Seen s = {};
        (void) state;
        /* no blank before '#': the header does not end at ']' */
        assert_int_equal(ini_parse_string("t", "[image]#x\n", collect, &s, NULL), -EBADMSG);
        /* a comment that swallows the '=' leaves no key = value */
        assert_int_equal(ini_parse_string("t", "name # = tiny\n", collect, &s, NULL), -EBADMSG);
        /* line numbers count comment lines */
        assert_int_equal(ini_parse_string("t", "# one\na = 1 # two\n  # three\nb = 4\n", collect, &s, NULL), 0);
        assert_string_equal(s.buf, "[]a=1;[]b=4;");
        assert_int_equal(s.last_line, 4);
}

/* Each error is one Error naming the file and the line; nothing is logged. */
static void check_error(const char *text, int code, const char *want) {
        _cleanup_error_ Error e = {};
        _cleanup_free_ char *got = NULL;
        Seen s = {};

        print_message("%s", text);
        assert_int_equal(ini_parse_string("t.conf", text, collect, &s, &e), code);
        assert_int_equal(e.code, code);
        got = error_format(&e);
        assert_non_null(got);
        assert_string_equal(got, want);
}

static void test_errors(void **state) {
        Seen s = {};
        (void) state;
        check_error("[image\n", -EBADMSG, "t.conf:1: malformed section header '[image'");
        check_error("a = 1\n[]\n", -EBADMSG, "t.conf:2: bad section name");
        check_error("novalue\n", -EBADMSG, "t.conf:1: expected 'key = value', got 'novalue'");
        check_error("\n = v\n", -EBADMSG, "t.conf:2: empty key");
        /* The handler's error stops parsing and is returned as is. */
        check_error("a = 1\nfail = 1\nb = 2\n", -ENOTSUP, "t.conf:2: 'fail' fails");
        assert_int_equal(ini_parse_string("t", "a = 1\nfail = 1\nb = 2\n", collect, &s, NULL), -ENOTSUP);
        assert_null(strstr(s.buf, "b=2"));
        /* One that does not say why still gets its place. */
        check_error("[x]\n\nquiet-fail = 1\n", -ENOTSUP, "t.conf:3: Operation not supported");
}

static void test_file(void **state) {
        _cleanup_error_ Error e = {};
        _cleanup_free_ char *msg = NULL;
        Seen s = {};
        (void) state;
        assert_int_equal(write_file_atomic("x.conf", "[a]\nk = v\n", 10, 0644), 0);
        assert_int_equal(ini_parse_file("x.conf", collect, &s, NULL), 0);
        assert_string_equal(s.buf, "[a]k=v;");
        assert_int_equal(ini_parse_file("missing.conf", collect, &s, &e), -ENOENT);
        msg = error_format(&e);
        assert_string_equal(msg, "cannot open 'missing.conf': No such file or directory");
        free(msg);
        assert_int_equal(write_file_atomic("nul.conf", "[a]\0k=v\n", 8, 0644), 0);
        assert_int_equal(ini_parse_file("nul.conf", collect, &s, &e), -EBADMSG);
        msg = error_format(&e);
        assert_string_equal(msg, "nul.conf: contains a NUL byte");
}

static void test_boolean(void **state) {
        (void) state;
        assert_int_equal(parse_boolean("yes"), 1);
        assert_int_equal(parse_boolean("On"), 1);
        assert_int_equal(parse_boolean("0"), 0);
        assert_int_equal(parse_boolean("maybe"), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_parse),
                test_in_dir(test_trailing_comments),
                test_in_dir(test_trailing_comment_errors),
                test_in_dir(test_errors),
                test_in_dir(test_file),
                test_in_dir(test_boolean),
        };
        return cmocka_run_group_tests_name("ini", tests, NULL, NULL);
}
