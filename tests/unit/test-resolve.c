/* Resolution against a fixture rpm-md repository built from
 * tests/data/repo-specs/fixtures.spec (rpmbuild + createrepo_c). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "definition.h"
#include "fileio.h"
#include "hash.h"
#include "lock.h"
#include "log.h"
#include "resolve.h"
#include "util.h"

typedef struct Fixture {
        bool available;
        char *repo_dir; /* absolute */
        char *repo_url; /* file://… */
} Fixture;

static Fixture fixture;

/* The source tree: $SLIPWAY_SOURCE_DIR, else two levels above build/tests/test-x. */
static char *source_dir(void) {
        char exe[PATH_MAX];
        const char *e = getenv("SLIPWAY_SOURCE_DIR");

        if (e)
                return strdup(e);
        if (!realpath("/proc/self/exe", exe))
                return NULL;
        for (int i = 0; i < 3; i++) {
                char *slash = strrchr(exe, '/');
                if (!slash)
                        return NULL;
                *slash = 0;
        }
        return strdup(exe);
}

/* Builds the fixture repository; false when the tools are missing. */
static bool fixture_build(void) {
        _cleanup_free_ char *src = source_dir(), *cmd = NULL, *cwd = get_current_dir_name();
        int status;

        if (!src || !cwd)
                exit(EXIT_FAILURE);
        fixture.repo_dir = path_join(cwd, "repo");
        fixture.repo_url = strdup_printf("file://%s", fixture.repo_dir);
        cmd = strdup_printf("'%s/tests/data/repo-specs/make-repo.sh' '%s'", src, fixture.repo_dir);
        status = system(cmd);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
                return false;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "cannot build the fixture repository\n");
                exit(EXIT_FAILURE);
        }
        fixture.available = true;
        return true;
}

static void test_skipped(void **state _unused_) {
        skip();
}

static int group_teardown(void **state _unused_) {
        free(fixture.repo_dir);
        free(fixture.repo_url);
        return 0;
}

/* A definition with one package list and up to two repositories. */
static ImageDef *def_new(const char *packages, const char *repo1_id, const char *repo1_url, const char *repo2_id,
                         const char *repo2_url) {
        ImageDef *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        d->name = strdup("test");
        d->version = strdup("1");
        d->arch = strdup("x86_64");
        d->packages = strv_split_words(packages);
        assert_true(strv_sort_unique(d->packages) >= 0);
        d->repos = calloc(2, sizeof(RepoDef));
        d->repos[0].id = strdup(repo1_id);
        d->repos[0].baseurl = strdup(repo1_url);
        d->n_repos = 1;
        if (repo2_id) {
                d->repos[1].id = strdup(repo2_id);
                d->repos[1].baseurl = strdup(repo2_url);
                d->n_repos = 2;
        }
        return d;
}

static void def_free(ImageDef *d) {
        free(d->name);
        free(d->version);
        free(d->arch);
        strv_free(d->packages);
        for (size_t i = 0; i < d->n_repos; i++) {
                free(d->repos[i].id);
                free(d->repos[i].baseurl);
        }
        free(d->repos);
        free(d);
}

static int resolve(const char *packages, Lock **ret) {
        ImageDef *d = def_new(packages, "fix", fixture.repo_url, NULL, NULL);
        int r = resolve_packages(d, "cache", NULL, ret);
        def_free(d);
        return r;
}

static const LockPackage *find(const Lock *l, const char *name) {
        for (size_t i = 0; i < l->n_packages; i++)
                if (streq(l->packages[i].name, name))
                        return &l->packages[i];
        return NULL;
}

/* sha256sum(1) of path, as an independent check of what the lock says. */
static void sha256sum(const char *path, char ret[SHA256_HEX_SIZE]) {
        _cleanup_free_ char *cmd = strdup_printf("sha256sum '%s'", path);
        FILE *p = popen(cmd, "r");

        assert_non_null(p);
        assert_non_null(fgets(ret, SHA256_HEX_SIZE, p));
        pclose(p);
        assert_true(sha256_hex_valid(ret));
}

static void test_dependencies(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = NULL;
        _cleanup_free_ char *repomd = NULL;
        char sum[SHA256_HEX_SIZE];
        const LockPackage *a, *b;
        struct stat st;

        assert_int_equal(resolve("pkg-a", &l), 0);
        assert_int_equal(l->n_packages, 2);
        assert_string_equal(l->packages[0].name, "pkg-a");
        assert_string_equal(l->packages[1].name, "pkg-b");
        assert_string_equal(l->arch, "x86_64");
        assert_int_equal(strv_length(l->requested), 1);
        assert_string_equal(l->requested[0], "pkg-a");
        assert_int_equal(l->n_repos, 1);
        assert_string_equal(l->repos[0].id, "fix");
        assert_string_equal(l->repos[0].baseurl, fixture.repo_url);
        repomd = path_join(fixture.repo_dir, "repodata/repomd.xml");
        sha256sum(repomd, sum);
        assert_string_equal(l->repos[0].repomd_sha256, sum);

        a = find(l, "pkg-a");
        assert_string_equal(a->epoch, "0");
        assert_string_equal(a->version, "1.0");
        assert_string_equal(a->release, "1");
        assert_string_equal(a->arch, "noarch");
        assert_string_equal(a->repo_id, "fix");
        assert_string_equal(a->location, "Packages/pkg-a-1.0-1.noarch.rpm");

        b = find(l, "pkg-b");
        assert_string_equal(b->epoch, "2");
        assert_string_equal(b->version, "1.2");
        assert_string_equal(b->release, "3");

        for (size_t i = 0; i < l->n_packages; i++) {
                _cleanup_free_ char *path = path_join(fixture.repo_dir, l->packages[i].location);
                sha256sum(path, sum);
                assert_string_equal(l->packages[i].sha256, sum);
                assert_int_equal(stat(path, &st), 0);
                assert_int_equal(l->packages[i].size, (uint64_t) st.st_size);
        }

        /* The metadata went into the cache under the repomd digest. */
        {
                _cleanup_free_ char *dir = strdup_printf("cache/repodata/%s", l->repos[0].repomd_sha256);
                assert_true(path_exists(dir));
        }
}

static void test_virtual_provides(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = NULL;

        assert_int_equal(resolve("fixture-virtual", &l), 0);
        assert_int_equal(l->n_packages, 1);
        assert_string_equal(l->packages[0].name, "pkg-d");
        assert_string_equal(l->requested[0], "fixture-virtual");
}

static void test_file_dependency(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = NULL;

        /* pkg-e needs /opt/slipway-fixture/b-data, which only filelists.xml knows. */
        assert_int_equal(resolve("pkg-e", &l), 0);
        assert_int_equal(l->n_packages, 2);
        assert_string_equal(l->packages[0].name, "pkg-b");
        assert_string_equal(l->packages[1].name, "pkg-e");
}

static void test_sorted(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = NULL;

        assert_int_equal(resolve("pkg-big pkg-d pkg-a", &l), 0);
        assert_int_equal(l->n_packages, 4);
        for (size_t i = 1; i < l->n_packages; i++)
                assert_true(strcmp(l->packages[i - 1].name, l->packages[i].name) < 0);
}

/* Resolves one request, which may be "NAME OP EVR". */
static int resolve_one(const char *spec, Lock **ret) {
        ImageDef *d = def_new("placeholder", "fix", fixture.repo_url, NULL, NULL);
        int r;

        free(d->packages[0]);
        d->packages[0] = strdup(spec);
        assert_non_null(d->packages[0]);
        r = resolve_packages(d, "cache", NULL, ret);
        def_free(d);
        return r;
}

/* The version of name that resolving spec picks, or NULL when it fails. */
static char *picked(const char *spec, const char *name) {
        _cleanup_lock_free_ Lock *l = NULL;
        const LockPackage *p;

        if (resolve_one(spec, &l) < 0)
                return NULL;
        assert_string_equal(l->requested[0], spec);
        p = find(l, name);
        assert_non_null(p);
        return strdup(p->version);
}

static void test_version_constraint(void **state _unused_) {
        static const struct {
                const char *spec, *version;
        } cases[] = {
                { "pkg-v", "3.0" },        /* the newest without a constraint */
                { "pkg-v = 1.0", "1.0" },  /* an older one */
                { "pkg-v = 2.0", "2.0" },
                { "pkg-v = 2.0-1", "2.0" }, /* with the release */
                { "pkg-v < 3.0", "2.0" },
                { "pkg-v <= 3.0", "3.0" },
                { "pkg-v > 1.0", "3.0" },
                { "pkg-v >= 2.0", "3.0" },
                { "pkg-b = 2:1.2", "1.2" }, /* with the epoch */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *name = strchr(cases[i].spec, ' ') ? "pkg-v" : cases[i].spec;
                _cleanup_free_ char *v = NULL;

                if (startswith(cases[i].spec, "pkg-b"))
                        name = "pkg-b";
                v = picked(cases[i].spec, name);
                if (!v || !streq(v, cases[i].version))
                        fail_msg("'%s' picked %s, want %s", cases[i].spec, v ? v : "nothing", cases[i].version);
        }
}

static void test_version_constraint_unmet(void **state _unused_) {
        Lock *l = NULL;

        assert_int_equal(resolve_one("pkg-v = 4.0", &l), -ENOENT);
        assert_int_equal(resolve_one("pkg-v > 3.0", &l), -ENOENT);
        assert_int_equal(resolve_one("pkg-b = 1.2", &l), -ENOENT); /* epoch 0 is not epoch 2 */
        assert_int_equal(resolve_one("no-such-package = 1.0", &l), -ENOENT);
        assert_null(l);
}

static void test_missing_package(void **state _unused_) {
        Lock *l = NULL;

        assert_int_equal(resolve("pkg-a no-such-package", &l), -ENOENT);
        assert_null(l);
}

static void test_conflict(void **state _unused_) {
        Lock *l = NULL;

        assert_int_equal(resolve("pkg-a pkg-c", &l), -EDEADLK);
        assert_null(l);
}

static void test_unresolvable_dependency(void **state _unused_) {
        Lock *l = NULL;

        assert_int_equal(resolve("pkg-f", &l), -EDEADLK);
        assert_null(l);
}

static void test_unreachable_repo(void **state _unused_) {
        ImageDef *d = def_new("pkg-a", "down", "http://127.0.0.1:9/", NULL, NULL);
        Lock *l = NULL;

        assert_int_equal(resolve_packages(d, "cache", NULL, &l), -EHOSTUNREACH);
        assert_null(l);
        def_free(d);
}

static void test_missing_repo(void **state _unused_) {
        ImageDef *d = def_new("pkg-a", "gone", "file:///nonexistent/slipway-repo", NULL, NULL);
        Lock *l = NULL;

        assert_int_equal(resolve_packages(d, "cache", NULL, &l), -ENOENT);
        assert_null(l);
        def_free(d);
}

static void test_two_repos(void **state _unused_) {
        _cleanup_free_ char *empty_url = NULL;
        _cleanup_lock_free_ Lock *l = NULL;
        ImageDef *d;

        assert_int_equal(mkdir_p("empty", 0755), 0);
        assert_int_equal(system("createrepo_c --quiet --no-database empty >/dev/null"), 0);
        {
                _cleanup_free_ char *cwd = get_current_dir_name();
                empty_url = strdup_printf("file://%s/empty", cwd);
        }
        d = def_new("pkg-a", "empty", empty_url, "fix", fixture.repo_url);
        assert_int_equal(resolve_packages(d, "cache", NULL, &l), 0);
        assert_int_equal(l->n_repos, 2);
        assert_string_equal(l->repos[0].id, "empty");
        assert_string_equal(l->repos[1].id, "fix");
        assert_string_equal(l->packages[0].repo_id, "fix");
        def_free(d);
}

static void test_cached_metadata(void **state _unused_) {
        _cleanup_lock_free_ Lock *first = NULL, *second = NULL;
        _cleanup_free_ char *url = NULL, *cwd = get_current_dir_name();
        ImageDef *d;

        /* Resolve from a copy, then take its primary/filelists away: the
         * second resolution must work from the cache alone. */
        {
                _cleanup_free_ char *cmd = strdup_printf("cp -a '%s' copy", fixture.repo_dir);
                assert_int_equal(system(cmd), 0);
        }
        url = strdup_printf("file://%s/copy", cwd);
        d = def_new("pkg-e", "fix", url, NULL, NULL);
        assert_int_equal(resolve_packages(d, "cache", NULL, &first), 0);
        assert_int_equal(system("rm copy/repodata/*-primary.xml* copy/repodata/*-filelists.xml*"), 0);
        assert_int_equal(resolve_packages(d, "cache", NULL, &second), 0);
        assert_int_equal(second->n_packages, first->n_packages);
        assert_string_equal(second->packages[0].sha256, first->packages[0].sha256);

        /* A corrupted cache entry is noticed and replaced from the repo. */
        assert_int_equal(system("for f in cache/repodata/*/*-primary.xml*; do echo junk > $f; done"), 0);
        lock_free(TAKE_PTR(second));
        assert_int_equal(resolve_packages(d, "cache", NULL, &second), -ENOENT);
        def_free(d);
}

static void test_cache_rejects_bad_download(void **state _unused_) {
        _cleanup_free_ char *url = NULL, *cwd = get_current_dir_name();
        Lock *l = NULL;
        ImageDef *d;

        /* primary.xml that does not match its checksum in repomd.xml */
        {
                _cleanup_free_ char *cmd = strdup_printf("cp -a '%s' bad", fixture.repo_dir);
                assert_int_equal(system(cmd), 0);
        }
        assert_int_equal(system("for f in bad/repodata/*-primary.xml.gz; do echo junk | gzip > $f; done"), 0);
        url = strdup_printf("file://%s/bad", cwd);
        d = def_new("pkg-a", "bad", url, NULL, NULL);
        assert_int_equal(resolve_packages(d, "badcache", NULL, &l), -EBADMSG);
        assert_null(l);
        /* nothing half-made is left in the cache */
        assert_int_equal(system("test -z \"$(find badcache -type f)\""), 0);
        def_free(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dependencies),
                cmocka_unit_test(test_virtual_provides),
                cmocka_unit_test(test_file_dependency),
                cmocka_unit_test(test_sorted),
                cmocka_unit_test(test_version_constraint),
                cmocka_unit_test(test_version_constraint_unmet),
                cmocka_unit_test(test_missing_package),
                cmocka_unit_test(test_conflict),
                cmocka_unit_test(test_unresolvable_dependency),
                cmocka_unit_test(test_unreachable_repo),
                cmocka_unit_test(test_missing_repo),
                cmocka_unit_test(test_two_repos),
                cmocka_unit_test(test_cached_metadata),
                cmocka_unit_test(test_cache_rejects_bad_download),
        };

        const struct CMUnitTest skipped[] = { cmocka_unit_test(test_skipped) };

        log_set_level(LOG_LEVEL_ERROR);
        if (!fixture_build()) {
                fprintf(stderr, "rpmbuild or createrepo_c is not installed: skipping the resolver tests\n");
                return cmocka_run_group_tests(skipped, NULL, group_teardown);
        }
        return cmocka_run_group_tests(tests, NULL, group_teardown);
}
