/* install_packages(): fixture RPMs built with rpmbuild and signed with a
 * test key, installed into roots in the test's temporary directory (the
 * cwd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rpm/rpmdb.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmmacro.h>
#include <rpm/rpmts.h>
#include <sys/stat.h>

#include "definition.h"
#include "fileio.h"
#include "install.h"
#include "log.h"
#include "util.h"

#define DBPATH "/usr/lib/sysimage/rpm"
#define EPOCH 1700000000ULL

static const char spec_a[] =
        "Name: fix-a\nVersion: 1.0\nRelease: 1\nSummary: a\nLicense: MIT\nBuildArch: noarch\n"
        /* make_root() puts a busybox at /bin/sh; this satisfies fix-b's
         * Requires(post): /bin/sh. */
        "Provides: /bin/sh\n"
        "%description\na\n"
        "%install\nmkdir -p %{buildroot}/usr/share/fix-a\necho hello-a > %{buildroot}/usr/share/fix-a/data\n"
        /* Lua runs inside librpm, shell in a child: both must be chrooted. */
        "%post -p <lua>\nlocal f = io.open('/lua-post-marker', 'w')\nf:write('lua')\nf:close()\n"
        "%files\n/usr/share/fix-a\n";

static const char spec_b[] =
        "Name: fix-b\nVersion: 2.0\nRelease: 3\nSummary: b\nLicense: MIT\nBuildArch: noarch\n"
        "Requires: fix-a\n"
        "%description\nb\n"
        "%install\nmkdir -p %{buildroot}/etc\necho b=1 > %{buildroot}/etc/fix-b.conf\n"
        "%post\necho post-ran > /post-marker\n"
        "%files\n%config /etc/fix-b.conf\n";

static const char spec_c[] =
        "Name: fix-c\nVersion: 1\nRelease: 1\nSummary: c\nLicense: MIT\nBuildArch: noarch\n"
        "Requires: fix-not-there >= 2\n"
        "%description\nc\n"
        "%install\nmkdir -p %{buildroot}/opt\necho c > %{buildroot}/opt/fix-c\n"
        "%files\n/opt/fix-c\n";

/* The keys of the repository the fixtures come from: the test key. */
static RepoKeys *fixture_keys;
/* For install_packages(): every package from that repository. */
static const RepoKeys *keys[4];

static int run(const char *cmd) {
        int k = system(cmd);
        return k == 0 ? 0 : -EIO;
}

static int build_rpm(const char *name, const char *spec) {
        _cleanup_free_ char *path = strdup_printf("specs/%s.spec", name);
        _cleanup_free_ char *cmd = NULL;
        int r;

        r = mkdir_p("specs", 0755);
        if (r < 0)
                return r;
        r = write_file_atomic(path, spec, strlen(spec), 0644);
        if (r < 0)
                return r;
        cmd = strdup_printf("rpmbuild -bb --quiet --define \"_topdir $PWD/rpmbuild\" "
                            "--define \"__os_install_post %%{nil}\" --define \"_build_id_links none\" "
                            "--define \"_rpmdir $PWD/rpms\" --define \"_rpmfilename %%{NAME}.rpm\" "
                            "%s >rpmbuild.log 2>&1",
                            path);
        return run(cmd);
}

static int group_setup(void **state _unused_) {
        const char *src = getenv("SLIPWAY_SOURCE_DIR") ? getenv("SLIPWAY_SOURCE_DIR") : SLIPWAY_SOURCE_DIR;
        _cleanup_free_ char *cwd = get_current_dir_name(), *sign = NULL, *unsigned_copy = NULL;
        RepoDef repo = { .id = (char *) "fix", .gpgcheck = true };
        int r;

        log_set_level(LOG_LEVEL_INFO);
        if (build_rpm("fix-a", spec_a) < 0 || build_rpm("fix-b", spec_b) < 0 || build_rpm("fix-c", spec_c) < 0) {
                fprintf(stderr, "rpmbuild failed, see rpmbuild.log\n");
                return -1;
        }
        /* fix-a also unsigned and signed by another key, as bad.rpm/ */
        sign = strdup_printf("'%s/images/sign-rpms.sh' gnupg RPM-GPG-KEY-test rpms/*.rpm >/dev/null && "
                             "'%s/tests/data/repo-specs/signature-variants.sh' rpms/fix-a.rpm bad >/dev/null",
                             src, src);
        if (!cwd || !sign || run(sign) < 0) {
                fprintf(stderr, "cannot sign the fixtures\n");
                return -1;
        }
        repo.gpgkeys = calloc(1, sizeof(char *));
        if (!repo.gpgkeys || strv_consume(&repo.gpgkeys, strdup_printf("file://%s/RPM-GPG-KEY-test", cwd)) < 0)
                return -1;
        r = repo_keys_load(&repo, NULL, &fixture_keys);
        strv_free(repo.gpgkeys);
        if (r < 0)
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                keys[i] = fixture_keys;
        return 0;
}

static int group_teardown(void **state _unused_) {
        repo_keys_free(fixture_keys);
        return 0;
}

/* A root with a shell, so that the shell %post has something to run. */
static void make_root(const char *root) {
        _cleanup_free_ char *bin = path_join(root, "bin");
        _cleanup_free_ char *tmp = path_join(root, "var/tmp");
        _cleanup_free_ char *cmd = strdup_printf("cp /bin/busybox %s/bin/sh", root);

        assert_int_equal(mkdir_p(bin, 0755), 0);
        assert_int_equal(mkdir_p(tmp, 01777), 0);
        assert_int_equal(run(cmd), 0);
}

static char *read_file(const char *path) {
        char *data = NULL;
        if (read_full_file(path, 1 << 20, &data, NULL) < 0)
                return NULL;
        return data;
}

static void test_install_ok(void **state _unused_) {
        char *const rpms[] = { "rpms/fix-b.rpm", "rpms/fix-a.rpm", NULL };
        _cleanup_free_ char *a = NULL, *b = NULL, *post = NULL, *lua = NULL;
        rpmts ts;
        rpmdbMatchIterator mi;
        Header h;
        int found = 0;

        make_root("root");
        assert_int_equal(install_packages("root", rpms, keys, DBPATH, EPOCH, NULL), 0);

        a = read_file("root/usr/share/fix-a/data");
        b = read_file("root/etc/fix-b.conf");
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, "hello-a\n");
        assert_string_equal(b, "b=1\n");

        /* Scriptlets ran chrooted: their files are inside the root only. */
        post = read_file("root/post-marker");
        assert_non_null(post);
        assert_string_equal(post, "post-ran\n");
        lua = read_file("root/lua-post-marker");
        assert_non_null(lua);
        assert_string_equal(lua, "lua");
        assert_false(path_exists("/post-marker"));
        assert_false(path_exists("/lua-post-marker"));

        assert_true(path_exists("root" DBPATH "/rpmdb.sqlite"));

        /* The database answers queries through librpm. */
        rpmPushMacro(NULL, "_dbpath", NULL, DBPATH, RMIL_CMDLINE);
        ts = rpmtsCreate();
        assert_non_null(ts);
        _cleanup_free_ char *abs = realpath("root", NULL);
        assert_int_equal(rpmtsSetRootDir(ts, abs), 0);
        mi = rpmtsInitIterator(ts, RPMDBI_PACKAGES, NULL, 0);
        assert_non_null(mi);
        while ((h = rpmdbNextIterator(mi))) {
                const char *name = headerGetString(h, RPMTAG_NAME);
                assert_true(streq(name, "fix-a") || streq(name, "fix-b"));
                /* rpm steps the time once per package, in install order */
                assert_in_range(headerGetNumber(h, RPMTAG_INSTALLTIME), EPOCH, EPOCH + 1);
                assert_int_equal(headerGetNumber(h, RPMTAG_INSTALLTID), EPOCH);
                found++;
        }
        rpmdbFreeIterator(mi);
        mi = rpmtsInitIterator(ts, RPMDBI_NAME, "fix-b", 0);
        assert_non_null(mi);
        assert_int_equal(rpmdbGetIteratorCount(mi), 1);
        rpmdbFreeIterator(mi);
        rpmtsFree(ts);
        rpmPopMacro(NULL, "_dbpath");
        assert_int_equal(found, 2);
}

static void test_install_reproducible(void **state _unused_) {
        char *const rpms1[] = { "rpms/fix-a.rpm", "rpms/fix-b.rpm", NULL };
        char *const rpms2[] = { "rpms/fix-b.rpm", "rpms/fix-a.rpm", NULL };

        make_root("r1");
        make_root("r2");
        assert_int_equal(install_packages("r1", rpms1, keys, DBPATH, EPOCH, NULL), 0);
        sleep(1); /* a time(NULL) leaking into the database would show */
        assert_int_equal(install_packages("r2", rpms2, keys, DBPATH, EPOCH, NULL), 0);
        assert_int_equal(run("cmp r1" DBPATH "/rpmdb.sqlite r2" DBPATH "/rpmdb.sqlite"), 0);
        /* Nothing but the database and its lock: no WAL, no shared memory. */
        assert_int_equal(run("test \"$(ls -A r1" DBPATH " | tr '\\n' ' ')\" = '.rpm.lock rpmdb.sqlite '"), 0);
        assert_int_equal(run("diff -r r1 r2 >/dev/null"), 0);
}

static void test_install_missing_dep(void **state _unused_) {
        char *const rpms[] = { "rpms/fix-a.rpm", "rpms/fix-c.rpm", NULL };

        make_root("bad");
        assert_int_equal(install_packages("bad", rpms, keys, DBPATH, EPOCH, NULL), -EDEADLK);
        assert_false(path_exists("bad/opt/fix-c"));
}

static void test_install_not_rpm(void **state _unused_) {
        char *const rpms[] = { "specs/fix-a.spec", NULL };

        make_root("notrpm");
        assert_int_equal(install_packages("notrpm", rpms, keys, DBPATH, EPOCH, NULL), -EBADMSG);
}

/* A package whose signature does not pass its repository's check never
 * reaches the root: nothing is installed, not even its good companions. */
static void test_install_bad_signature(void **state _unused_) {
        static const struct {
                const char *path;
                int error;
        } cases[] = {
                { "bad/unsigned.rpm", -EBADMSG },
                { "bad/other-key.rpm", -ENOKEY },
                { "bad/broken.rpm", -EBADMSG },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *const rpms[] = { "rpms/fix-b.rpm", (char *) cases[i].path, NULL };
                _cleanup_free_ char *root = strdup_printf("sig%zu", i), *cmd = NULL;

                make_root(root);
                if (install_packages(root, rpms, keys, DBPATH, EPOCH, NULL) != cases[i].error)
                        fail_msg("'%s' was not refused with %d", cases[i].path, cases[i].error);
                cmd = strdup_printf("test ! -e %s/usr/share/fix-a && test ! -e %s/etc/fix-b.conf", root, root);
                assert_int_equal(run(cmd), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_install_ok),
                cmocka_unit_test(test_install_reproducible),
                cmocka_unit_test(test_install_missing_dep),
                cmocka_unit_test(test_install_not_rpm),
                cmocka_unit_test(test_install_bad_signature),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
