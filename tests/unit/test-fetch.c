/* Downloads into the RPM cache from a fixture repository (file:// and a
 * loopback python3 http.server), with sha256, librpm and signature
 * verification. */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "definition.h"
#include "fetch.h"
#include "fileio.h"
#include "hash.h"
#include "lock.h"
#include "log.h"
#include "util.h"

extern char **environ;

typedef struct Fixture {
        bool available;
        char *repo_dir; /* absolute */
        char *repo_url; /* file://… */
        Trust *trust;   /* repository "fix": gpgcheck on, the fixture key */
        Trust *unchecked; /* repository "fix" with gpgcheck = 0 */
} Fixture;

static Fixture fixture;

typedef struct FixturePackage {
        const char *name, *epoch, *version, *release;
} FixturePackage;

/* What tests/data/repo-specs/fixtures.spec builds. */
static const FixturePackage fixture_packages[] = {
        { "pkg-a", "0", "1.0", "1" },   { "pkg-b", "2", "1.2", "3" }, { "pkg-big", "0", "1.0", "1" },
        { "pkg-c", "0", "1.0", "1" },   { "pkg-d", "0", "1.0", "1" }, { "pkg-e", "0", "1.0", "1" },
        { "pkg-f", "0", "1.0", "1" },
};

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

/* The trust of a definition whose repository "fix" has the fixture key. */
static Trust *fixture_trust(bool gpgcheck) {
        _cleanup_image_def_free_ ImageDef *def = calloc(1, sizeof(ImageDef));
        Trust *t = NULL;

        assert_non_null(def);
        def->repos = calloc(1, sizeof(RepoDef));
        def->repos[0] = (RepoDef) { .id = strdup("fix"), .baseurl = strdup(fixture.repo_url), .gpgcheck = gpgcheck };
        def->n_repos = 1;
        def->repos[0].gpgkeys = calloc(1, sizeof(char *));
        assert_int_equal(strv_consume(&def->repos[0].gpgkeys, strdup_printf("%s/RPM-GPG-KEY-fixture", fixture.repo_url)),
                         0);
        assert_int_equal(trust_load(def, &t), 0);
        return t;
}

static void test_skipped(void **state _unused_) {
        skip();
}

static int group_teardown(void **state _unused_) {
        trust_free(fixture.trust);
        trust_free(fixture.unchecked);
        free(fixture.repo_dir);
        free(fixture.repo_url);
        return 0;
}

/* Every test starts with an empty cache. */
static int setup(void **state _unused_) {
        assert_int_equal(rm_rf("cache"), 0);
        return 0;
}

static const FixturePackage *fixture_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(fixture_packages); i++)
                if (streq(fixture_packages[i].name, name))
                        return &fixture_packages[i];
        fail_msg("no fixture package '%s'", name);
        return NULL;
}

static char *fixture_location(const FixturePackage *f) {
        return strdup_printf("Packages/%s-%s-%s.noarch.rpm", f->name, f->version, f->release);
}

/* A lock for the given packages (space separated) of a repo whose files are
 * in dir (for their sha256 and size) and served at baseurl. */
static Lock *make_lock(const char *names, const char *dir, const char *baseurl) {
        _cleanup_strv_free_ char **l = strv_split_words(names);
        Lock *lock = calloc(1, sizeof(*lock));
        size_t n = strv_length(l);

        assert_non_null(lock);
        lock->arch = strdup("x86_64");
        lock->requested = calloc(1, sizeof(char *));
        lock->repos = calloc(1, sizeof(LockRepo));
        lock->repos[0] = (LockRepo) {
                .id = strdup("fix"),
                .baseurl = strdup(baseurl),
                .repomd_sha256 = strdup("0000000000000000000000000000000000000000000000000000000000000000"),
        };
        lock->n_repos = 1;
        lock->packages = calloc(n, sizeof(LockPackage));
        for (size_t i = 0; i < n; i++) {
                const FixturePackage *f = fixture_find(l[i]);
                LockPackage *p = &lock->packages[lock->n_packages++];
                _cleanup_free_ char *path = NULL;
                char sum[SHA256_HEX_SIZE];
                uint64_t size;

                p->name = strdup(f->name);
                p->epoch = strdup(f->epoch);
                p->version = strdup(f->version);
                p->release = strdup(f->release);
                p->arch = strdup("noarch");
                p->repo_id = strdup("fix");
                p->location = fixture_location(f);
                path = path_join(dir, p->location);
                if (sha256_file_hex(path, sum, &size) >= 0) {
                        p->sha256 = strdup(sum);
                        p->size = size;
                } else {
                        p->sha256 = strdup("1111111111111111111111111111111111111111111111111111111111111111");
                        p->size = 1234;
                }
        }
        lock_sort(lock);
        return lock;
}

static size_t count_files(const char *dir) {
        _cleanup_free_ char *cmd = strdup_printf("find '%s' -type f | wc -l", dir);
        FILE *p = popen(cmd, "r");
        unsigned long n = 0;

        assert_non_null(p);
        assert_int_equal(fscanf(p, "%lu", &n), 1);
        pclose(p);
        return n;
}

static void copy_repo(const char *to) {
        _cleanup_free_ char *cmd = strdup_printf("rm -rf '%s' && cp -a '%s' '%s'", to, fixture.repo_dir, to);
        assert_int_equal(system(cmd), 0);
}

static char *cwd_url(const char *dir) {
        _cleanup_free_ char *cwd = get_current_dir_name();
        return strdup_printf("file://%s/%s", cwd, dir);
}

static void test_fetch_and_cache(void **state _unused_) {
        _cleanup_free_ char *url = cwd_url("copy");
        _cleanup_lock_free_ Lock *lock = NULL;
        _cleanup_strv_free_ char **paths = NULL, **again = NULL;

        copy_repo("copy");
        lock = make_lock("pkg-a pkg-b pkg-big", "copy", url);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &paths), 0);
        assert_int_equal(strv_length(paths), 3);
        for (size_t i = 0; i < lock->n_packages; i++) {
                _cleanup_free_ char *want = strdup_printf("cache/rpms/%s.rpm", lock->packages[i].sha256);
                char sum[SHA256_HEX_SIZE];

                assert_string_equal(paths[i], want);
                assert_int_equal(sha256_file_hex(paths[i], sum, NULL), 0);
                assert_string_equal(sum, lock->packages[i].sha256);
                assert_int_equal(fetch_verify_rpm(paths[i]), 0);
        }
        assert_int_equal(count_files("cache/rpms"), 3);

        /* The source is gone: the cache alone must do. */
        assert_int_equal(system("rm -f copy/Packages/*.rpm"), 0);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &again), 0);
        assert_int_equal(strv_length(again), 3);
        for (size_t i = 0; i < 3; i++)
                assert_string_equal(again[i], paths[i]);
}

static void test_parallel_all(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-a pkg-b pkg-big pkg-c pkg-d pkg-e pkg-f", fixture.repo_dir,
                                                   fixture.repo_url);
        _cleanup_strv_free_ char **paths = NULL;

        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 4, NULL, &paths), 0);
        assert_int_equal(strv_length(paths), 7);
        assert_int_equal(count_files("cache/rpms"), 7);
        for (size_t i = 0; i < 7; i++)
                assert_true(path_exists(paths[i]));
}

static void test_cached_file_of_wrong_size_is_replaced(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-a", fixture.repo_dir, fixture.repo_url);
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *cached = NULL;
        char sum[SHA256_HEX_SIZE];

        assert_int_equal(mkdir_p("cache/rpms", 0755), 0);
        cached = strdup_printf("cache/rpms/%s.rpm", lock->packages[0].sha256);
        assert_int_equal(write_file_atomic(cached, "truncated", 9, 0644), 0);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), 0);
        assert_int_equal(sha256_file_hex(cached, sum, NULL), 0);
        assert_string_equal(sum, lock->packages[0].sha256);
}

static void test_wrong_sha256(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-a pkg-b pkg-big", fixture.repo_dir, fixture.repo_url);
        char **paths = NULL;

        /* pkg-b's entry claims another digest */
        free(lock->packages[1].sha256);
        lock->packages[1].sha256 = strdup("2222222222222222222222222222222222222222222222222222222222222222");
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), -EBADMSG);
        assert_null(paths);
        /* pkg-a was good and is kept; nothing of pkg-b, no temporary files */
        assert_int_equal(count_files("cache/rpms"), 1);
        assert_false(path_exists("cache/rpms/2222222222222222222222222222222222222222222222222222222222222222.rpm"));

        /* in parallel, the other transfers are aborted and leave nothing */
        assert_int_equal(rm_rf("cache"), 0);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 3, NULL, &paths), -EBADMSG);
        assert_null(paths);
        assert_false(path_exists("cache/rpms/2222222222222222222222222222222222222222222222222222222222222222.rpm"));
        assert_int_equal(system("test -z \"$(find cache/rpms -name '*.tmp-*')\""), 0);
}

static void test_wrong_size(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-big", fixture.repo_dir, fixture.repo_url);
        char **paths = NULL;

        lock->packages[0].size = 1000; /* the file is larger: stops early */
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), -EBADMSG);
        assert_int_equal(count_files("cache/rpms"), 0);

        lock->packages[0].size = 10 * 1024 * 1024; /* the file is smaller */
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), -EBADMSG);
        assert_int_equal(count_files("cache/rpms"), 0);
        assert_null(paths);
}

static void test_missing_file(void **state _unused_) {
        _cleanup_free_ char *url = cwd_url("partial");
        _cleanup_lock_free_ Lock *lock = NULL;
        char **paths = NULL;

        copy_repo("partial");
        lock = make_lock("pkg-a pkg-d", "partial", url);
        assert_int_equal(system("rm partial/Packages/pkg-d-*.rpm"), 0);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &paths), -ENOENT);
        assert_null(paths);
}

/* Overwrites n bytes at offset of path with 'X'. */
static void corrupt(const char *path, off_t offset, size_t n) {
        char junk[64];
        int fd = open(path, O_WRONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_true(n <= sizeof(junk));
        memset(junk, 'X', n);
        assert_int_equal(pwrite(fd, junk, n, offset), (ssize_t) n);
        close(fd);
}

static void test_corrupted_rpm(void **state _unused_) {
        _cleanup_free_ char *url = cwd_url("corrupt");
        _cleanup_lock_free_ Lock *lock = NULL;
        char **paths = NULL;
        struct stat st;

        copy_repo("corrupt");
        /* payload damage past the header (pkg-big's payload is ~256 KiB) */
        corrupt("corrupt/Packages/pkg-big-1.0-1.noarch.rpm", 200000, 8);
        /* header damage: the main header sits in the first few KiB */
        assert_int_equal(stat("corrupt/Packages/pkg-a-1.0-1.noarch.rpm", &st), 0);
        corrupt("corrupt/Packages/pkg-a-1.0-1.noarch.rpm", st.st_size - 600, 4);

        assert_int_equal(fetch_verify_rpm("corrupt/Packages/pkg-big-1.0-1.noarch.rpm"), -EBADMSG);
        assert_int_equal(fetch_verify_rpm("corrupt/Packages/pkg-a-1.0-1.noarch.rpm"), -EBADMSG);
        assert_int_equal(fetch_verify_rpm("repo/Packages/pkg-big-1.0-1.noarch.rpm"), 0);
        assert_int_equal(fetch_verify_rpm("repo/Packages/pkg-a-1.0-1.noarch.rpm"), 0);
        assert_int_equal(write_file_atomic("not-an-rpm", "hello\n", 6, 0644), 0);
        assert_int_equal(fetch_verify_rpm("not-an-rpm"), -EBADMSG);
        assert_int_equal(fetch_verify_rpm("does-not-exist.rpm"), -EBADMSG);

        /* the lock's sha256 matches the damaged bytes: librpm must catch it */
        lock = make_lock("pkg-big", "corrupt", url);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), -EBADMSG);
        assert_int_equal(count_files("cache/rpms"), 0);
        lock_free(TAKE_PTR(lock));
        lock = make_lock("pkg-a", "corrupt", url);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), -EBADMSG);
        assert_int_equal(count_files("cache/rpms"), 0);
        assert_null(paths);
}

static void test_nevra_mismatch(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-c", fixture.repo_dir, fixture.repo_url);
        char **paths = NULL;

        /* the entry says pkg-c but points at pkg-d's file (with its digest) */
        {
                _cleanup_lock_free_ Lock *d = make_lock("pkg-d", fixture.repo_dir, fixture.repo_url);
                free(lock->packages[0].location);
                free(lock->packages[0].sha256);
                lock->packages[0].location = strdup(d->packages[0].location);
                lock->packages[0].sha256 = strdup(d->packages[0].sha256);
                lock->packages[0].size = d->packages[0].size;
        }
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), -EBADMSG);
        assert_int_equal(count_files("cache/rpms"), 0);
        assert_null(paths);
}

/* Every package's key is recorded; the repository lists the key's fingerprint. */
static void test_signatures_recorded(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-a pkg-b pkg-big", fixture.repo_dir, fixture.repo_url);
        _cleanup_strv_free_ char **paths = NULL, **again = NULL;
        json_t *j = NULL;

        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &paths), 0);
        assert_non_null(lock->packages[0].key_id);
        assert_int_equal(strlen(lock->packages[0].key_id), 16);
        for (size_t i = 1; i < lock->n_packages; i++)
                assert_string_equal(lock->packages[i].key_id, lock->packages[0].key_id);
        assert_true(lock->repos[0].gpgcheck);
        assert_int_equal(strv_length(lock->repos[0].keys), 1);
        assert_true(endswith(lock->repos[0].keys[0], lock->packages[0].key_id));
        assert_int_equal(lock_to_json(lock, &j), 0);
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "packages"), 0),
                                                              "key_id")),
                            lock->packages[0].key_id);
        json_decref(j);

        /* from the cache, the same keys; a lock that names another key is refused */
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &again), 0);
        assert_int_equal(strv_length(lock->repos[0].keys), 1);
        free(lock->packages[1].key_id);
        lock->packages[1].key_id = strdup("0123456789abcdef");
        strv_free(TAKE_PTR(again));
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &again), -EBADMSG);
        assert_null(again);
}

/* A copy of the fixture repository in dir whose pkg-a is a signature-variants.sh
 * variant: "unsigned", "other-key" or "broken". */
static void repo_with_bad_pkg_a(const char *dir, const char *variant) {
        _cleanup_free_ char *src = source_dir(), *cmd = NULL;

        copy_repo(dir);
        cmd = strdup_printf("'%s/tests/data/repo-specs/signature-variants.sh' '%s/Packages/pkg-a-1.0-1.noarch.rpm' "
                            "'%s.bad' >/dev/null && cp '%s.bad/%s.rpm' '%s/Packages/pkg-a-1.0-1.noarch.rpm'",
                            src, dir, dir, dir, variant, dir);
        assert_int_equal(system(cmd), 0);
}

/* Unsigned, signed by another key, a broken signature: refused, and nothing
 * of them stays in the cache. */
static void test_bad_signatures_refused(void **state _unused_) {
        static const struct {
                const char *variant;
                int error;
        } cases[] = { { "unsigned", -EBADMSG }, { "other-key", -ENOKEY }, { "broken", -EBADMSG } };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *url = cwd_url(cases[i].variant), *bad = NULL;
                _cleanup_lock_free_ Lock *lock = NULL;
                char **paths = NULL;

                repo_with_bad_pkg_a(cases[i].variant, cases[i].variant);
                lock = make_lock("pkg-a pkg-b", cases[i].variant, url);
                bad = strdup_printf("cache/rpms/%s.rpm", lock->packages[0].sha256);
                for (unsigned parallel = 1; parallel <= 2; parallel++) {
                        assert_int_equal(rm_rf("cache"), 0);
                        if (fetch_packages(lock, fixture.trust, "cache", parallel, NULL, &paths) != cases[i].error)
                                fail_msg("%s (%u at once) was not refused with %d", cases[i].variant, parallel,
                                         cases[i].error);
                        assert_null(paths);
                        assert_false(path_exists(bad));
                        assert_int_equal(system("test -z \"$(find cache/rpms -name '*.tmp-*')\""), 0);
                }
        }
}

/* gpgcheck = 0 takes an unsigned package and records no key; the cached file
 * is checked again when the repository has gpgcheck on. */
static void test_gpgcheck_off(void **state _unused_) {
        _cleanup_free_ char *url = cwd_url("nosig");
        _cleanup_lock_free_ Lock *lock = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        char **again = NULL;

        repo_with_bad_pkg_a("nosig", "unsigned");
        lock = make_lock("pkg-a pkg-b", "nosig", url);
        assert_int_equal(fetch_packages(lock, fixture.unchecked, "cache", 2, NULL, &paths), 0);
        assert_null(lock->packages[0].key_id);
        assert_null(lock->packages[1].key_id);
        assert_false(lock->repos[0].gpgcheck);
        assert_int_equal(strv_length(lock->repos[0].keys), 0);
        assert_int_equal(count_files("cache/rpms"), 2);

        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &again), -EBADMSG);
        assert_null(again);
}

/* A lock whose repository the definition does not list is refused. */
static void test_unknown_repo(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-a", fixture.repo_dir, fixture.repo_url);
        char **paths = NULL;

        free(lock->repos[0].id);
        lock->repos[0].id = strdup("elsewhere");
        free(lock->packages[0].repo_id);
        lock->packages[0].repo_id = strdup("elsewhere");
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), -EINVAL);
        assert_null(paths);
}

static void test_empty_lock(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("", fixture.repo_dir, fixture.repo_url);
        _cleanup_strv_free_ char **paths = NULL;

        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 4, NULL, &paths), 0);
        assert_non_null(paths);
        assert_int_equal(strv_length(paths), 0);
}

/* ---- over http, from python3 -m http.server on loopback ---- */

typedef struct Server {
        pid_t pid;
        unsigned port;
} Server;

static bool server_start(const char *dir, Server *ret) {
        char *argv[] = { "python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
                         (char *) dir, NULL };
        posix_spawn_file_actions_t fa;
        pid_t pid;

        unlink("http.log");
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "http.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        if (posix_spawnp(&pid, "python3", &fa, NULL, argv, environ) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return false;
        }
        posix_spawn_file_actions_destroy(&fa);

        /* "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..." */
        for (int i = 0; i < 200; i++) {
                _cleanup_free_ char *text = NULL;
                const char *p;
                struct timespec ts = { 0, 50 * 1000 * 1000 };

                if (read_full_file("http.log", 65536, &text, NULL) >= 0 && (p = strstr(text, " port ")) &&
                    sscanf(p, " port %u", &ret->port) == 1) {
                        ret->pid = pid;
                        return true;
                }
                if (waitpid(pid, NULL, WNOHANG) == pid)
                        return false;
                nanosleep(&ts, NULL);
        }
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return false;
}

static void server_stop(Server *s) {
        if (s->pid > 0) {
                kill(s->pid, SIGTERM);
                waitpid(s->pid, NULL, 0);
                s->pid = 0;
        }
}

static void test_http(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = NULL, *missing = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *url = NULL;
        char **none = NULL;
        Server server = {};

        if (system("command -v python3 >/dev/null 2>&1") != 0) {
                fprintf(stderr, "python3 is not installed: skipping the http test\n");
                skip();
        }
        assert_true(server_start(fixture.repo_dir, &server));
        url = strdup_printf("http://127.0.0.1:%u/", server.port);

        lock = make_lock("pkg-a pkg-b pkg-big pkg-d", fixture.repo_dir, url);
        int r = fetch_packages(lock, fixture.trust, "cache", 3, NULL, &paths);
        missing = make_lock("pkg-c", fixture.repo_dir, url);
        free(missing->packages[0].location);
        missing->packages[0].location = strdup("Packages/no-such-package-1.0-1.noarch.rpm");
        int r404 = fetch_packages(missing, fixture.trust, "cache", 1, NULL, &none);
        server_stop(&server);

        assert_int_equal(r, 0);
        assert_int_equal(strv_length(paths), 4);
        for (size_t i = 0; i < 4; i++) {
                char sum[SHA256_HEX_SIZE];
                assert_int_equal(sha256_file_hex(paths[i], sum, NULL), 0);
                assert_string_equal(sum, lock->packages[i].sha256);
        }
        assert_int_equal(r404, -ENOENT);
        assert_null(none);
        assert_int_equal(count_files("cache/rpms"), 4);
}

/* A partial download left in the cache (.part) is continued; one whose
 * bytes are wrong is fetched again whole from the same mirror. */
static void test_resume_part(void **state _unused_) {
        _cleanup_lock_free_ Lock *lock = make_lock("pkg-big", fixture.repo_dir, fixture.repo_url);
        _cleanup_strv_free_ char **paths = NULL, **again = NULL;
        _cleanup_free_ char *src = NULL, *data = NULL, *part = NULL, *cached = NULL;
        char sum[SHA256_HEX_SIZE];
        size_t size = 0;

        src = strdup_printf("%s/%s", fixture.repo_dir, lock->packages[0].location);
        assert_int_equal(read_full_file(src, 64 << 20, &data, &size), 0);
        assert_int_equal(mkdir_p("cache/rpms", 0755), 0);
        cached = strdup_printf("cache/rpms/%s.rpm", lock->packages[0].sha256);
        part = strdup_printf("%s.part", cached);

        /* the first half, as a killed build left it */
        assert_int_equal(write_file_atomic(part, data, size / 2, 0644), 0);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &paths), 0);
        assert_int_equal(sha256_file_hex(cached, sum, NULL), 0);
        assert_string_equal(sum, lock->packages[0].sha256);
        assert_false(path_exists(part));

        /* wrong bytes: refetched whole, from the only mirror */
        assert_int_equal(unlink(cached), 0);
        memset(data, 'x', size / 2);
        assert_int_equal(write_file_atomic(part, data, size / 2, 0644), 0);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 1, NULL, &again), 0);
        assert_int_equal(sha256_file_hex(cached, sum, NULL), 0);
        assert_string_equal(sum, lock->packages[0].sha256);
        assert_false(path_exists(part));
}

/* A lock's mirrors: the first that serves the right bytes wins. */
static void test_mirrors(void **state _unused_) {
        _cleanup_free_ char *empty = NULL, *bad = NULL;
        _cleanup_lock_free_ Lock *lock = NULL;
        _cleanup_strv_free_ char **paths = NULL;

        copy_repo("bad");
        assert_int_equal(mkdir_p("empty", 0755), 0);
        assert_int_equal(system("for f in bad/Packages/*.rpm; do printf 'corrupt' | dd of=$f bs=1 seek=3000 "
                                "conv=notrunc 2>/dev/null; done"),
                         0);
        empty = cwd_url("empty");
        bad = cwd_url("bad");
        lock = make_lock("pkg-a pkg-b pkg-big", fixture.repo_dir, fixture.repo_url);
        lock->repos[0].mirrors = calloc(4, sizeof(char *));
        lock->repos[0].mirrors[0] = strdup(empty);
        lock->repos[0].mirrors[1] = strdup(bad);
        lock->repos[0].mirrors[2] = strdup(fixture.repo_url);
        assert_int_equal(fetch_packages(lock, fixture.trust, "cache", 2, NULL, &paths), 0);
        assert_int_equal(strv_length(paths), 3);
        assert_int_equal(count_files("cache/rpms"), 3);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_fetch_and_cache, setup),
                cmocka_unit_test_setup(test_parallel_all, setup),
                cmocka_unit_test_setup(test_cached_file_of_wrong_size_is_replaced, setup),
                cmocka_unit_test_setup(test_wrong_sha256, setup),
                cmocka_unit_test_setup(test_wrong_size, setup),
                cmocka_unit_test_setup(test_missing_file, setup),
                cmocka_unit_test_setup(test_corrupted_rpm, setup),
                cmocka_unit_test_setup(test_nevra_mismatch, setup),
                cmocka_unit_test_setup(test_empty_lock, setup),
                cmocka_unit_test_setup(test_signatures_recorded, setup),
                cmocka_unit_test_setup(test_bad_signatures_refused, setup),
                cmocka_unit_test_setup(test_gpgcheck_off, setup),
                cmocka_unit_test_setup(test_unknown_repo, setup),
                cmocka_unit_test_setup(test_http, setup),
                cmocka_unit_test_setup(test_resume_part, setup),
                cmocka_unit_test_setup(test_mirrors, setup),
        };

        const struct CMUnitTest skipped[] = { cmocka_unit_test(test_skipped) };

        log_set_level(LOG_LEVEL_ERROR);
        if (!fixture_build()) {
                fprintf(stderr, "rpmbuild or createrepo_c is not installed: skipping the fetch tests\n");
                return cmocka_run_group_tests(skipped, NULL, group_teardown);
        }
        fixture.trust = fixture_trust(true);
        fixture.unchecked = fixture_trust(false);
        return cmocka_run_group_tests(tests, NULL, group_teardown);
}
