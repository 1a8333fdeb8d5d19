#include "tests.h"
#include <sys/stat.h>

#include "bootentry.h"
#include "manifest.h"
#include "fileio.h"
#include "util.h"

static void assert_file(const char *path, bool exists) {
        if (path_exists(path) != exists)
                fail_msg("'%s' should %s", path, exists ? "exist" : "not exist");
}

static void test_parse_names(void **state) {
        static const struct {
                const char *file, *id, *version;
                unsigned gen;
                int left, done;
        } good[] = {
                { "slipway-2-1.4+3.conf", "slipway-2-1.4", "1.4", 2, 3, 0 },
                { "slipway-2-1.4+2-1.conf", "slipway-2-1.4", "1.4", 2, 2, 1 },
                { "slipway-2-1.4+0-3.conf", "slipway-2-1.4", "1.4", 2, 0, 3 },
                { "slipway-2-1.4+0.conf", "slipway-2-1.4", "1.4", 2, 0, 0 },
                { "slipway-1-1.4.conf", "slipway-1-1.4", "1.4", 1, -1, 0 },
                { "slipway-10-2.0-rc1~x^p_1+1-12.conf", "slipway-10-2.0-rc1~x^p_1", "2.0-rc1~x^p_1", 10, 1, 12 },
                /* Entries, but not ours: no generation, no version. */
                { "fedora.conf", "fedora", NULL, 0, -1, 0 },
                { "slipway-0-1.0.conf", "slipway-0-1.0", NULL, 0, -1, 0 },
                { "slipway-x-1.0+3.conf", "slipway-x-1.0", NULL, 0, 3, 0 },
                { "slipway-3-.conf", "slipway-3-", NULL, 0, -1, 0 },
                { "slipway-3-..+1.conf", "slipway-3-..", NULL, 0, 1, 0 },
        };
        static const char *const bad[] = {
                "", ".conf", "x", "x+3", "x.conf.tmp", "x.CONF", /* no ".conf" */
                "+3.conf", ".x.conf", "auto-x.conf", "a/b.conf", /* empty id, hidden, automatic, a path */
                "x+x.conf", "x+-1.conf", "x+.conf", "x+3x.conf", "x+3-.conf", "x+3-1-2.conf", "x+1-2x.conf",
                "x+99999999999.conf", /* malformed counters */
                ".tmp-slipway-2-1.0+3.conf.AbC123", "slipway-2-1.0+3.conf.tmp-AbC123", /* temporary files */
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                BootEntry e;
                _cleanup_free_ char *again = NULL;

                assert_int_equal(bootentry_parse_file_name(good[i].file, &e), 0);
                assert_string_equal(e.file, good[i].file);
                assert_string_equal(e.id, good[i].id);
                if (good[i].version)
                        assert_string_equal(e.version, good[i].version);
                else
                        assert_null(e.version);
                assert_int_equal(e.gen, good[i].gen);
                assert_int_equal(e.tries_left, good[i].left);
                assert_int_equal(e.tries_done, good[i].done);
                assert_int_equal(e.slot, 0);
                assert_null(e.kernel);
                assert_int_equal(bootentry_is_bad(&e), good[i].left == 0);
                again = loader_entry_file_name(e.id, e.tries_left, e.tries_done);
                assert_string_equal(again, good[i].file);
                bootentry_release(&e);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                BootEntry e = { .file = (char *) "untouched" };

                if (bootentry_parse_file_name(bad[i], &e) != -EINVAL)
                        fail_msg("'%s' should be rejected", bad[i]);
                assert_string_equal(e.file, "untouched");
        }
}

/* Every version the builder accepts comes back whole from its entry's file
 * name, whatever the counter. */
static void test_version_roundtrip(void **state) {
        static const char *const versions[] = { "1.0", "2.0-1", "3", "1.0~rc1", "1.0^p1", "1_0", "9-9", "4.0-2-3" };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(versions); i++) {
                _cleanup_free_ char *id = loader_entry_id(12, versions[i]);

                assert_true(image_version_valid(versions[i]));
                assert_non_null(id);
                for (int left = -1; left <= 3; left++)
                        for (int done = 0; done <= 2; done++) {
                                _cleanup_free_ char *file = loader_entry_file_name(id, left, done);
                                _cleanup_(bootentry_release) BootEntry e = {};

                                assert_int_equal(bootentry_parse_file_name(file, &e), 0);
                                assert_string_equal(e.id, id);
                                assert_int_equal(e.gen, 12);
                                if (!e.version || !streq(e.version, versions[i]))
                                        fail_msg("'%s' parsed as version '%s', want '%s'", file, e.version ? e.version : "(none)",
                                                 versions[i]);
                                assert_int_equal(e.tries_left, left);
                                assert_int_equal(e.tries_done, left < 0 ? 0 : done);
                        }
        }
}

static void test_verscmp(void **state) {
        /* The order given by the UAPI version format specification. */
        static const char *const ordered[] = {
                "122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1", "123.a-1",
                "123.1-1", "123a-1", "124-1",
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(ordered); i++)
                for (size_t j = 0; j < ELEMENTSOF(ordered); j++) {
                        int r = bootentry_verscmp(ordered[i], ordered[j]);
                        int want = i < j ? -1 : i > j ? 1 : 0;

                        if ((r > 0) - (r < 0) != want)
                                fail_msg("verscmp('%s', '%s') = %d, want %d", ordered[i], ordered[j], r, want);
                }
        assert_true(bootentry_verscmp("slipway-10-1.0", "slipway-9-2.0") > 0);
        assert_true(bootentry_verscmp("1.010", "1.10") == 0);
        assert_true(bootentry_verscmp("1.0", "1.0.1") < 0);
        assert_true(bootentry_verscmp("1.0~rc1", "1.0") < 0);
        assert_true(bootentry_verscmp("ABC", "abc") == 0);
        assert_true(bootentry_verscmp("", "") == 0);
        assert_true(bootentry_verscmp(NULL, "1") < 0);
        assert_true(bootentry_verscmp("1_2", "12") < 0); /* '_' separates: 1.2 older than 12 */
}

static void test_sort(void **state) {
        /* In the menu order systemd-boot 252 gives them. */
        static const char *const want[] = {
                "slipway-10-1.0+3.conf",  /* newest generation; 10 > 9 */
                "slipway-9-2.0.conf",     /* blessed */
                "slipway-4-1.9+2-1.conf", /* a rollback: older version, newer generation */
                "slipway-3-2.0.conf",
                "fedora.conf",            /* "fedora" < "slipway" */
                "slipway-11-3.0+0-3.conf", /* no tries left: last, newest first among them */
                "slipway-5-2.1+0.conf",
        };
        static const size_t shuffle[] = { 5, 3, 0, 6, 2, 4, 1 };
        BootEntry e[ELEMENTSOF(want)];
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                assert_int_equal(bootentry_parse_file_name(want[shuffle[i]], &e[i]), 0);
        bootentries_sort(e, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                assert_string_equal(e[i].file, want[i]);
        assert_int_equal(bootentries_next_gen(e, ELEMENTSOF(want)), 12);
        assert_int_equal(bootentries_next_gen(NULL, 0), 1);
        for (size_t i = 0; i < ELEMENTSOF(want); i++)
                bootentry_release(&e[i]);
}

static void test_sort_same_name(void **state) {
        /* Never on a real ESP (systemd-boot 252's ids carry the counter), but
         * its tie-breaks are followed: more tries left first, then fewer
         * done, and no counter at all is a tie. */
        BootEntry a = { .file = (char *) "x.conf", .tries_left = 2, .tries_done = 1 };
        BootEntry b = { .file = (char *) "x.conf", .tries_left = 1, .tries_done = 2 };
        BootEntry c = { .file = (char *) "x.conf", .tries_left = 2, .tries_done = 0 };
        BootEntry d = { .file = (char *) "x.conf", .tries_left = -1 };
        (void) state;

        assert_true(bootentry_compare(&a, &b) < 0);
        assert_true(bootentry_compare(&c, &a) < 0);
        assert_int_equal(bootentry_compare(&d, &a), 0);
        assert_true(bootentry_compare(&d, &(BootEntry) { .file = (char *) "x.conf", .tries_left = 0 }) < 0);
}

static void test_write_load(void **state) {
        _cleanup_free_ char *f1 = NULL, *f2 = NULL, *content = NULL;
        BootEntry *e = NULL;
        size_t n = 0;
        struct stat st;
        (void) state;

        /* No ESP directory yet: no entries. */
        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_null(e);
        assert_int_equal(n, 0);

        assert_int_equal(bootentry_write("esp", 1, "tiny", "1.0", 'a', "console=ttyS0 quiet", -1, &f1), 0);
        assert_string_equal(f1, "slipway-1-1.0.conf");
        assert_int_equal(bootentry_write("esp", 2, "tiny", "1.1", 'b', NULL, BOOTENTRY_TRIES, &f2), 0);
        assert_string_equal(f2, "slipway-2-1.1+3.conf");

        assert_int_equal(read_full_file("esp/loader/entries/slipway-1-1.0.conf", 4096, &content, NULL), 0);
        assert_string_equal(content, "title tiny 1.0 (slot A)\n"
                                     "version 1.0\n"
                                     "linux /slipway/1.0/vmlinuz\n"
                                     "initrd /slipway/1.0/initrd\n"
                                     "options console=ttyS0 quiet slipway.slot=a\n");
        free(content);
        assert_int_equal(read_full_file("esp/loader/entries/slipway-2-1.1+3.conf", 4096, &content, NULL), 0);
        assert_non_null(strstr(content, "\noptions slipway.slot=b\n"));
        assert_int_equal(stat("esp/loader/entries/slipway-2-1.1+3.conf", &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);

        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(e[0].file, "slipway-2-1.1+3.conf");
        assert_string_equal(e[0].id, "slipway-2-1.1");
        assert_string_equal(e[0].version, "1.1");
        assert_int_equal(e[0].gen, 2);
        assert_int_equal(e[0].slot, 'b');
        assert_string_equal(e[0].kernel, "/slipway/1.1/vmlinuz");
        assert_int_equal(e[0].tries_left, 3);
        assert_int_equal(e[0].tries_done, 0);
        assert_string_equal(e[1].file, "slipway-1-1.0.conf");
        assert_int_equal(e[1].slot, 'a');
        assert_int_equal(e[1].tries_left, -1);
        assert_int_equal(bootentries_next_gen(e, n), 3);
        bootentries_free(e, n);
}

static void test_write_rejects(void **state) {
        _cleanup_free_ char *f = NULL;
        (void) state;

        assert_int_equal(bootentry_write("esp", 1, "tiny", "1.0", 'c', NULL, 3, NULL), -EINVAL);
        assert_int_equal(bootentry_write("esp", 0, "tiny", "1.0", 'a', NULL, 3, NULL), -EINVAL);
        assert_int_equal(bootentry_write("esp", 1, "tiny", "1.0+git", 'a', NULL, 3, NULL), -EINVAL);
        assert_int_equal(bootentry_write("esp", 1, "tiny", "../x", 'a', NULL, 3, NULL), -EINVAL);
        assert_int_equal(bootentry_write("esp", 1, "tiny", "1.0", 'a', "quiet\nlinux /evil", 3, NULL), -EINVAL);
        assert_int_equal(bootentry_write("esp", 1, "tiny", "1.0", 'a', "slipway.slot=b", 3, NULL), -EINVAL);
        assert_int_equal(bootentry_write("esp", 1, "-tiny", "1.0", 'a', NULL, 3, NULL), -EINVAL);
        assert_int_equal(bootentry_write("esp", 1, NULL, "1.0", 'a', NULL, 3, NULL), -EINVAL);
        assert_file("esp/loader/entries", false);

        /* The same id under another counter is refused; the same name is
         * replaced. */
        assert_int_equal(bootentry_write("esp", 4, "tiny", "1.0", 'a', NULL, 3, &f), 0);
        assert_int_equal(bootentry_write("esp", 4, "tiny", "1.0", 'b', NULL, -1, NULL), -EEXIST);
        assert_int_equal(bootentry_write("esp", 4, "tiny", "1.0", 'b', NULL, 3, NULL), 0);
        assert_file("esp/loader/entries/slipway-4-1.0.conf", false);
}

static void test_bless_mark_bad_remove(void **state) {
        BootEntry *e = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(bootentry_write("esp", 1, "tiny", "1.0", 'a', NULL, BOOTENTRY_TRIES, NULL), 0);
        assert_int_equal(bootentry_write("esp", 2, "tiny", "1.1", 'b', NULL, BOOTENTRY_TRIES, NULL), 0);
        assert_int_equal(bootentry_write("esp", 3, "tiny", "1.2", 'a', NULL, BOOTENTRY_TRIES, NULL), 0);
        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(e[2].file, "slipway-1-1.0+3.conf");

        /* What the firmware does before a try. */
        assert_int_equal(bootentry_rename("esp", &e[1], 2, 1), 0);
        assert_file("esp/loader/entries/slipway-2-1.1+2-1.conf", true);
        assert_file("esp/loader/entries/slipway-2-1.1+3.conf", false);
        bootentries_free(e, n);

        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, 3);
        /* Gen 3, untried, given up on: "+0". Gen 2, tried once: "+0-1". */
        assert_int_equal(bootentry_mark_bad("esp", &e[0]), 0);
        assert_file("esp/loader/entries/slipway-3-1.2+0.conf", true);
        assert_string_equal(e[1].file, "slipway-2-1.1+2-1.conf");
        assert_int_equal(bootentry_mark_bad("esp", &e[1]), 0);
        assert_file("esp/loader/entries/slipway-2-1.1+0-1.conf", true);
        /* Gen 1 blessed: no counter. */
        assert_int_equal(bootentry_bless("esp", &e[2]), 0);
        assert_file("esp/loader/entries/slipway-1-1.0.conf", true);
        assert_file("esp/loader/entries/slipway-1-1.0+3.conf", false);
        /* e[2] is stale now: its old name is gone. */
        assert_int_equal(bootentry_bless("esp", &e[2]), -ENOENT);
        bootentries_free(e, n);

        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(e[0].file, "slipway-1-1.0.conf");
        assert_false(bootentry_is_bad(&e[0]));
        assert_string_equal(e[1].file, "slipway-3-1.2+0.conf");
        assert_true(bootentry_is_bad(&e[1]));
        assert_string_equal(e[2].file, "slipway-2-1.1+0-1.conf");
        assert_true(bootentry_is_bad(&e[2]));
        /* Blessing a blessed entry, giving up on a given-up one: no-ops. */
        assert_int_equal(bootentry_bless("esp", &e[0]), 0);
        assert_int_equal(bootentry_mark_bad("esp", &e[1]), 0);
        assert_file("esp/loader/entries/slipway-3-1.2+0.conf", true);
        /* A blessed entry may be given up on too. */
        assert_int_equal(bootentry_mark_bad("esp", &e[0]), 0);
        assert_file("esp/loader/entries/slipway-1-1.0+0.conf", true);

        assert_int_equal(bootentry_remove("esp", &e[2]), 0);
        assert_file("esp/loader/entries/slipway-2-1.1+0-1.conf", false);
        assert_int_equal(bootentry_remove("esp", &e[2]), -ENOENT);
        bootentries_free(e, n);

        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, 2);
        /* Gen 3 is still there, so the next one is 4. */
        assert_int_equal(bootentries_next_gen(e, n), 4);
        bootentries_free(e, n);
}

static void test_crash_leftovers_ignored(void **state) {
        static const char entry[] = "title x\nlinux /slipway/9.0/vmlinuz\noptions slipway.slot=b\n";
        BootEntry *e = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(bootentry_write("esp", 1, "tiny", "1.0", 'a', NULL, -1, NULL), 0);
        /* What a crash in bootentry_write() leaves (complete or not), what
         * write_file_atomic() would leave, a directory and a symlink. */
        assert_int_equal(write_file_atomic("esp/loader/entries/.tmp-slipway-2-9.0+3.conf.AbC123", entry,
                                           strlen(entry), 0644),
                         0);
        assert_int_equal(write_file_atomic("esp/loader/entries/.tmp-slipway-3-9.0+3.conf.XyZ789", "tit", 3, 0644),
                         0);
        assert_int_equal(write_file_atomic("esp/loader/entries/slipway-4-9.0+3.conf.tmp-AbC123", entry,
                                           strlen(entry), 0644),
                         0);
        assert_int_equal(mkdir_p("esp/loader/entries/slipway-5-9.0.conf", 0755), 0);
        assert_int_equal(symlink("slipway-1-1.0.conf", "esp/loader/entries/slipway-6-9.0.conf"), 0);

        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(e[0].file, "slipway-1-1.0.conf");
        /* A new generation is not taken by the leftovers. */
        assert_int_equal(bootentries_next_gen(e, n), 2);
        bootentries_free(e, n);

        assert_int_equal(bootentries_remove_stale("esp"), 2);
        assert_file("esp/loader/entries/.tmp-slipway-2-9.0+3.conf.AbC123", false);
        assert_file("esp/loader/entries/slipway-1-1.0.conf", true);
        assert_int_equal(bootentries_remove_stale("esp"), 0);
        assert_int_equal(bootentries_remove_stale("nothing-here"), 0);
}

static void test_content(void **state) {
        static const char odd[] = "# a comment\n"
                                  "  title   Odd  \r\n"
                                  "\n"
                                  "linux\t/slipway/2.0/vmlinuz  \n"
                                  "options quiet xslipway.slot=a\n"
                                  "options slipway.slot=b   root=x\n"
                                  "options slipway.slot=ab\n";
        static const char last[] = "linux /k\noptions slipway.slot=a slipway.slot=b\n";
        static const char none[] = "title no kernel\noptions quiet\n";
        BootEntry *e = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(mkdir_p("esp/loader/entries", 0755), 0);
        assert_int_equal(write_file_atomic("esp/loader/entries/slipway-3-2.0.conf", odd, strlen(odd), 0644), 0);
        assert_int_equal(write_file_atomic("esp/loader/entries/slipway-2-2.0.conf", last, strlen(last), 0644), 0);
        assert_int_equal(write_file_atomic("esp/loader/entries/slipway-1-2.0.conf", none, strlen(none), 0644), 0);
        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(e[0].kernel, "/slipway/2.0/vmlinuz");
        assert_int_equal(e[0].slot, 0); /* the last slipway.slot= is "ab" */
        assert_string_equal(e[1].kernel, "/k");
        assert_int_equal(e[1].slot, 'b');
        assert_null(e[2].kernel);
        assert_int_equal(e[2].slot, 0);
        bootentries_free(e, n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_parse_names),
                test_in_dir(test_version_roundtrip),
                test_in_dir(test_verscmp),
                test_in_dir(test_sort),
                test_in_dir(test_sort_same_name),
                test_in_dir(test_write_load),
                test_in_dir(test_write_rejects),
                test_in_dir(test_bless_mark_bad_remove),
                test_in_dir(test_crash_leftovers_ignored),
                test_in_dir(test_content),
        };
        return cmocka_run_group_tests_name("bootentry", tests, NULL, NULL);
}
