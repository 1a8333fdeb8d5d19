/* Module streams: which are active for enable, disable, the modules'
 * defaults and the streams' requirements on other modules. (The packages
 * dnf picks with them are compared in tests/integration/dnf-oracle.sh.) */
#include "tests.h"

#include "fileio.h"
#include "log.h"
#include "modules.h"
#include "util.h"

/* A stream document; deps is the YAML of its "dependencies" or "". */
static char *stream_doc(const char *name, const char *stream, const char *deps) {
        return strdup_printf("---\ndocument: modulemd\nversion: 2\ndata:\n  name: %s\n  stream: \"%s\"\n"
                             "  version: 1\n  context: c0ffee42\n  arch: noarch\n  summary: s\n  description: d\n"
                             "  license:\n    module: [MIT]\n%s  artifacts:\n    rpms:\n      - %s-0:%s-1.noarch\n...\n",
                             name, stream, deps, name, stream);
}

static char *default_doc(const char *name, const char *stream) {
        return strdup_printf("---\ndocument: modulemd-defaults\nversion: 1\ndata:\n  module: %s\n  stream: \"%s\"\n...\n",
                             name, stream);
}

/* nodejs 18 (default) and 20; perl 5 and 6, no default; app:1 needs
 * nodejs 20, app:2 any perl but 6, app:3 a module nobody has; tool:1
 * needs app:1 (so nodejs 20 too). */
static Modules *load(void) {
        static const struct {
                const char *name, *stream, *deps;
        } docs[] = {
                { "nodejs", "18", "" },
                { "nodejs", "20", "" },
                { "perl", "5", "" },
                { "perl", "6", "" },
                { "app", "1", "  dependencies:\n    - requires:\n        nodejs: [\"20\"]\n        platform: [el9]\n" },
                { "app", "2", "  dependencies:\n    - requires:\n        perl: [\"-6\"]\n" },
                { "app", "3", "  dependencies:\n    - requires:\n        gone: []\n" },
                { "tool", "1", "  dependencies:\n    - requires:\n        app: [\"1\"]\n" },
        };
        _cleanup_free_ char *text = strdup("");
        Modules *m = modules_new();

        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                _cleanup_free_ char *d = stream_doc(docs[i].name, docs[i].stream, docs[i].deps), *t = text;

                text = strdup_printf("%s%s", t, d);
        }
        {
                _cleanup_free_ char *d = default_doc("nodejs", "18"), *t = text;

                text = strdup_printf("%s%s", t, d);
        }
        assert_int_equal(write_file_atomic("modules.yaml", text, strlen(text), 0644), 0);
        assert_int_equal(modules_add_file(m, "modules.yaml", "test"), 0);
        return m;
}

/* The active streams as "name:stream(how)" words, how being d (default),
 * e (enabled) or r:WHO (required by WHO). */
static char *active_list(const Modules *m) {
        size_t n;
        const ModuleChoice *c = modules_active(m, &n);
        char *out = strdup("");

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *t = out;

                out = strdup_printf("%s%s%s:%s(%s%s)", t, i ? " " : "", c[i].name, c[i].stream,
                                    c[i].required_by ? "r:" : c[i].is_default ? "d" : "e", strempty(c[i].required_by));
        }
        return out;
}

/* Activates and compares: with r == 0, want is the active list; else the
 * one error logged must hold want. */
static void expect(const char *enable, const char *disable, int r, const char *want) {
        _cleanup_strv_free_ char **e = strv_split_words(enable), **d = strv_split_words(disable);
        _cleanup_free_ char *logged = NULL;
        Modules *m = load();
        int saved, k;

        fflush(stderr);
        saved = dup(2);
        assert_non_null(freopen("stderr.txt", "w", stderr));
        k = modules_activate(m, e, d);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        clearerr(stderr);
        assert_int_equal(read_full_file("stderr.txt", 1 << 16, &logged, NULL), 0);
        if (k != r)
                fail_msg("enable '%s' disable '%s': %d, expected %d (%s)", enable, disable, k, r, logged);
        if (r == 0) {
                _cleanup_free_ char *got = active_list(m);

                if (!streq(got, want))
                        fail_msg("enable '%s' disable '%s': %s, expected %s", enable, disable, got, want);
                assert_string_equal(logged, "");
        } else if (!strstr(logged, want) || strchr(logged, '\n') != logged + strlen(logged) - 1)
                fail_msg("enable '%s' disable '%s' logged '%s', expected one line with '%s'", enable, disable,
                         logged, want);
        modules_free(m);
}

static void test_defaults_and_enable(void **state) {
        (void) state;
        expect("", "", 0, "nodejs:18(d)");
        expect("nodejs:20 perl:6", "", 0, "nodejs:20(e) perl:6(e)");
        /* disabled: not even its default */
        expect("", "nodejs", 0, "");
        expect("", "nowhere", -ENOENT, "module 'nowhere' (disable) is in no repository's modules metadata");
}

static void test_requires(void **state) {
        (void) state;
        /* a requirement wins over the default stream; platform is not a module */
        expect("app:1", "", 0, "app:1(e) nodejs:20(r:app:1)");
        /* through a chain */
        expect("tool:1", "", 0, "app:1(r:tool:1) nodejs:20(r:app:1) tool:1(e)");
        /* met by what is enabled: nothing more */
        expect("app:1 nodejs:20", "", 0, "app:1(e) nodejs:20(e)");
        /* "-6": any perl but 6; perl has no default and the list names none to take */
        expect("app:2 perl:5", "", 0, "app:2(e) nodejs:18(d) perl:5(e)");
        expect("app:2", "", -EINVAL,
               "module stream 'app:2' requires module 'perl', which has no default stream: enable the one it needs");
        expect("app:2 perl:6", "", -EINVAL,
               "module stream 'app:2' requires another stream of module 'perl' than 'perl:6', which is enabled");
        /* against an enabled stream, a disabled module, a module nobody has */
        expect("app:1 nodejs:18", "", -EINVAL, "requires another stream of module 'nodejs' than 'nodejs:18'");
        expect("app:1", "nodejs", -EINVAL, "module stream 'app:1' requires module 'nodejs', which is disabled");
        expect("app:3", "", -ENOENT,
               "module stream 'app:3' requires module 'gone', which is in no repository's modules metadata");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_defaults_and_enable),
                test_in_dir(test_requires),
        };

        return cmocka_run_group_tests_name("modules", tests, NULL, NULL);
}
