/* The lock file: JSON round trip, sorting, strict validation, atomic write. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fileio.h"
#include "lock.h"
#include "log.h"
#include "util.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A valid lock in its JSON form; the rejection tests break one thing each. */
static const char valid_json[] =
        "{\"format\": 1, \"arch\": \"x86_64\", \"requested\": [\"tiny-base\", \"kernel\"],"
        " \"repos\": [{\"id\": \"sample\", \"baseurl\": \"file:///srv/repo\", \"repomd_sha256\": \"" SHA_C "\"},"
        "             {\"id\": \"extra\", \"baseurl\": \"https://example.invalid/el9/\", \"repomd_sha256\": \"" SHA_C "\"}],"
        " \"packages\": ["
        "  {\"name\": \"busybox\", \"epoch\": \"1\", \"version\": \"1.35.0\", \"release\": \"4.deb12u1\","
        "   \"arch\": \"x86_64\", \"repo\": \"sample\", \"location\": \"Packages/busybox-1.35.0-4.deb12u1.x86_64.rpm\","
        "   \"sha256\": \"" SHA_A "\", \"size\": 1234567},"
        "  {\"name\": \"tiny-base\", \"epoch\": \"0\", \"version\": \"2.0\", \"release\": \"1\","
        "   \"arch\": \"noarch\", \"repo\": \"extra\", \"location\": \"tiny-base-2.0-1.noarch.rpm\","
        "   \"sha256\": \"" SHA_B "\", \"size\": 42}"
        " ]}";

static json_t *valid(void) {
        json_error_t e;
        json_t *j = json_loads(valid_json, 0, &e);

        if (!j)
                fail_msg("fixture JSON: %d:%d: %s", e.line, e.column, e.text);
        return j;
}

static LockPackage package(const char *name, const char *arch, const char *sha) {
        return (LockPackage) {
                .name = strdup(name),
                .epoch = strdup("0"),
                .version = strdup("1.0"),
                .release = strdup("1"),
                .arch = strdup(arch),
                .repo_id = strdup("r"),
                .location = strdup_printf("Packages/%s-1.0-1.%s.rpm", name, arch),
                .sha256 = strdup(sha),
                .size = 100,
        };
}

static Lock *lock_new_test(void) {
        Lock *l = calloc(1, sizeof(*l));

        assert_non_null(l);
        l->arch = strdup("x86_64");
        l->requested = strv_split_words("zeta alpha");
        assert_int_equal(strv_extend(&l->requested, "mid >= 1:2.0-1"), 0);
        l->repos = calloc(1, sizeof(LockRepo));
        l->repos[0] = (LockRepo) { strdup("r"), strdup("http://127.0.0.1:8080/repo"), strdup(SHA_C) };
        l->n_repos = 1;
        l->packages = calloc(4, sizeof(LockPackage));
        l->packages[l->n_packages++] = package("zeta", "x86_64", SHA_A);
        l->packages[l->n_packages++] = package("alpha", "x86_64", SHA_B);
        l->packages[l->n_packages++] = package("alpha", "i686", SHA_C);
        l->packages[l->n_packages++] = package("mid", "noarch", SHA_A);
        return l;
}

static void assert_locks_equal(const Lock *a, const Lock *b) {
        assert_string_equal(a->arch, b->arch);
        assert_int_equal(strv_length(a->requested), strv_length(b->requested));
        for (size_t i = 0; a->requested[i]; i++)
                assert_string_equal(a->requested[i], b->requested[i]);
        assert_int_equal(a->n_repos, b->n_repos);
        for (size_t i = 0; i < a->n_repos; i++) {
                assert_string_equal(a->repos[i].id, b->repos[i].id);
                assert_string_equal(a->repos[i].baseurl, b->repos[i].baseurl);
                assert_string_equal(a->repos[i].repomd_sha256, b->repos[i].repomd_sha256);
        }
        assert_int_equal(a->n_packages, b->n_packages);
        for (size_t i = 0; i < a->n_packages; i++) {
                const LockPackage *p = &a->packages[i], *q = &b->packages[i];
                assert_string_equal(p->name, q->name);
                assert_string_equal(p->epoch, q->epoch);
                assert_string_equal(p->version, q->version);
                assert_string_equal(p->release, q->release);
                assert_string_equal(p->arch, q->arch);
                assert_string_equal(p->repo_id, q->repo_id);
                assert_string_equal(p->location, q->location);
                assert_string_equal(p->sha256, q->sha256);
                assert_int_equal(p->size, q->size);
        }
}

static void test_round_trip(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = lock_new_test(), *back = NULL, *read = NULL;
        _cleanup_free_ char *text = NULL;
        json_t *j = NULL;

        lock_sort(l);
        assert_int_equal(lock_to_json(l, &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "format")), 1);
        assert_int_equal(lock_from_json(j, &back), 0);
        json_decref(j);
        assert_locks_equal(l, back);

        assert_int_equal(lock_write(l, "x.lock"), 0);
        assert_int_equal(lock_read("x.lock", &read), 0);
        assert_locks_equal(l, read);

        /* keys sorted, one trailing newline */
        assert_int_equal(read_full_file("x.lock", 1 << 20, &text, NULL), 0);
        assert_true(strstr(text, "\"arch\"") < strstr(text, "\"format\""));
        assert_true(strstr(text, "\"format\"") < strstr(text, "\"packages\""));
        assert_true(strstr(text, "\"packages\"") < strstr(text, "\"repos\""));
        assert_true(strstr(text, "\"repos\"") < strstr(text, "\"requested\""));
        assert_true(endswith(text, "}\n"));
        assert_false(endswith(text, "\n\n"));
}

static void test_stable_bytes(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = lock_new_test(), *read = NULL;
        _cleanup_free_ char *one = NULL, *two = NULL;

        lock_sort(l);
        assert_int_equal(lock_write(l, "a.lock"), 0);
        assert_int_equal(lock_read("a.lock", &read), 0);
        assert_int_equal(lock_write(read, "b.lock"), 0);
        assert_int_equal(read_full_file("a.lock", 1 << 20, &one, NULL), 0);
        assert_int_equal(read_full_file("b.lock", 1 << 20, &two, NULL), 0);
        assert_string_equal(one, two);
}

static void test_sort(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = lock_new_test();

        lock_sort(l);
        assert_string_equal(l->packages[0].name, "alpha");
        assert_string_equal(l->packages[0].arch, "i686");
        assert_string_equal(l->packages[1].name, "alpha");
        assert_string_equal(l->packages[1].arch, "x86_64");
        assert_string_equal(l->packages[2].name, "mid");
        assert_string_equal(l->packages[3].name, "zeta");
}

static void test_nevra_url_find(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = NULL;
        _cleanup_free_ char *n0 = NULL, *n1 = NULL, *u0 = NULL, *u1 = NULL;
        json_t *j = valid();

        assert_int_equal(lock_from_json(j, &l), 0);
        json_decref(j);
        n0 = lock_package_nevra(&l->packages[0]);
        n1 = lock_package_nevra(&l->packages[1]);
        assert_string_equal(n0, "busybox-1:1.35.0-4.deb12u1.x86_64");
        assert_string_equal(n1, "tiny-base-2.0-1.noarch");
        u0 = lock_package_url(l, &l->packages[0]);
        u1 = lock_package_url(l, &l->packages[1]);
        assert_string_equal(u0, "file:///srv/repo/Packages/busybox-1.35.0-4.deb12u1.x86_64.rpm");
        assert_string_equal(u1, "https://example.invalid/el9/tiny-base-2.0-1.noarch.rpm");
        assert_ptr_equal(lock_find_repo(l, "extra"), &l->repos[1]);
        assert_null(lock_find_repo(l, "nope"));

        /* characters that mean something in a URL are escaped */
        free(l->packages[1].location);
        l->packages[1].location = strdup("Packages/c++#1%.rpm");
        free(u1);
        u1 = lock_package_url(l, &l->packages[1]);
        assert_string_equal(u1, "https://example.invalid/el9/Packages/c++%231%25.rpm");
}

/* ---- rejection: one broken field each ---- */

typedef enum Op {
        SET_STRING,
        SET_INT,
        DELETE,
} Op;

typedef struct Case {
        const char *what;
        const char *path; /* "key" at top level, "repos.N.key" or "packages.N.key" */
        Op op;
        const char *s;
        json_int_t i;
} Case;

static const Case cases[] = {
        { "format 2", "format", SET_INT, NULL, 2 },
        { "format as string", "format", SET_STRING, "1", 0 },
        { "format missing", "format", DELETE, NULL, 0 },
        { "arch missing", "arch", DELETE, NULL, 0 },
        { "arch with slash", "arch", SET_STRING, "x86/64", 0 },
        { "requested missing", "requested", DELETE, NULL, 0 },
        { "requested a string", "requested", SET_STRING, "kernel", 0 },
        { "repos missing", "repos", DELETE, NULL, 0 },
        { "packages missing", "packages", DELETE, NULL, 0 },
        { "unknown top-level key", "extra", SET_STRING, "x", 0 },
        { "repo id missing", "repos.0.id", DELETE, NULL, 0 },
        { "repo id duplicate", "repos.1.id", SET_STRING, "sample", 0 },
        { "relative baseurl", "repos.0.baseurl", SET_STRING, "../repo", 0 },
        { "ftp baseurl", "repos.0.baseurl", SET_STRING, "ftp://host/repo", 0 },
        { "repomd_sha256 short", "repos.0.repomd_sha256", SET_STRING, "abc", 0 },
        { "repomd_sha256 missing", "repos.0.repomd_sha256", DELETE, NULL, 0 },
        { "name missing", "packages.0.name", DELETE, NULL, 0 },
        { "name with space", "packages.0.name", SET_STRING, "busy box", 0 },
        { "epoch missing", "packages.0.epoch", DELETE, NULL, 0 },
        { "epoch not a number", "packages.0.epoch", SET_STRING, "one", 0 },
        { "version missing", "packages.0.version", DELETE, NULL, 0 },
        { "version with dash", "packages.0.version", SET_STRING, "1.0-2", 0 },
        { "release missing", "packages.0.release", DELETE, NULL, 0 },
        { "release empty", "packages.0.release", SET_STRING, "", 0 },
        { "arch missing", "packages.0.arch", DELETE, NULL, 0 },
        { "repo missing", "packages.0.repo", DELETE, NULL, 0 },
        { "repo unknown", "packages.0.repo", SET_STRING, "nowhere", 0 },
        { "location missing", "packages.0.location", DELETE, NULL, 0 },
        { "location ../", "packages.0.location", SET_STRING, "../evil.rpm", 0 },
        { "location inner ..", "packages.0.location", SET_STRING, "Packages/../../evil.rpm", 0 },
        { "location absolute", "packages.0.location", SET_STRING, "/etc/evil.rpm", 0 },
        { "location empty component", "packages.0.location", SET_STRING, "Packages//a.rpm", 0 },
        { "location not an rpm", "packages.0.location", SET_STRING, "Packages/a.txt", 0 },
        { "location as number", "packages.0.location", SET_INT, NULL, 7 },
        { "sha256 missing", "packages.1.sha256", DELETE, NULL, 0 },
        { "sha256 short", "packages.1.sha256", SET_STRING, "abcdef", 0 },
        { "sha256 uppercase", "packages.1.sha256", SET_STRING,
          "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789", 0 },
        { "sha256 not hex", "packages.1.sha256", SET_STRING,
          "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", 0 },
        { "size missing", "packages.1.size", DELETE, NULL, 0 },
        { "size zero", "packages.1.size", SET_INT, NULL, 0 },
        { "size negative", "packages.1.size", SET_INT, NULL, -5 },
        { "size as string", "packages.1.size", SET_STRING, "42", 0 },
        { "unknown package key", "packages.1.signature", SET_STRING, "x", 0 },
};

static void apply(json_t *root, const Case *c) {
        _cleanup_free_ char *path = strdup(c->path);
        char *key = path, *dot;
        json_t *o = root;

        dot = strchr(key, '.');
        if (dot) {
                char *index_s = dot + 1, *dot2 = strchr(index_s, '.');
                *dot = 0;
                *dot2 = 0;
                o = json_array_get(json_object_get(root, key), (size_t) strtoul(index_s, NULL, 10));
                key = dot2 + 1;
        }
        assert_non_null(o);
        switch (c->op) {
        case SET_STRING:
                assert_int_equal(json_object_set_new(o, key, json_string(c->s)), 0);
                break;
        case SET_INT:
                assert_int_equal(json_object_set_new(o, key, json_integer(c->i)), 0);
                break;
        case DELETE:
                assert_int_equal(json_object_del(o, key), 0);
                break;
        }
}

static void test_reject(void **state _unused_) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *j = valid();
                Lock *l = NULL;
                int r;

                apply(j, &cases[i]);
                r = lock_from_json(j, &l);
                json_decref(j);
                if (r != -EINVAL)
                        fail_msg("case '%s': expected -EINVAL, got %d", cases[i].what, r);
                assert_null(l);
        }
}

static void test_reject_shapes(void **state _unused_) {
        json_t *j;
        Lock *l = NULL;

        j = json_array();
        assert_int_equal(lock_from_json(j, &l), -EINVAL);
        json_decref(j);
        j = valid();
        json_array_append_new(json_object_get(j, "packages"), json_string("not an object"));
        assert_int_equal(lock_from_json(j, &l), -EINVAL);
        json_decref(j);
        j = valid();
        json_array_append_new(json_object_get(j, "requested"), json_integer(3));
        assert_int_equal(lock_from_json(j, &l), -EINVAL);
        json_decref(j);
        assert_null(l);
}

/* A requested package is a name or "NAME OP VERSION", nothing else. */
static void test_requested_forms(void **state _unused_) {
        static const char *const good[] = { "kernel", "/usr/bin/sh", "tiny-base = 1.0", "a <= 2:1.0-1", "b > 0" };
        static const char *const bad[] = { "", "a  = 1", "a == 1", "a =", "a=1", "a = 1 2", " a", "a = <1", "a b" };

        for (size_t i = 0; i < ELEMENTSOF(good) + ELEMENTSOF(bad); i++) {
                bool ok = i < ELEMENTSOF(good);
                const char *r = ok ? good[i] : bad[i - ELEMENTSOF(good)];
                json_t *j = valid();
                Lock *l = NULL;

                json_array_append_new(json_object_get(j, "requested"), json_string(r));
                if ((lock_from_json(j, &l) == 0) != ok)
                        fail_msg("requested '%s' should be %s", r, ok ? "accepted" : "refused");
                lock_free(l);
                json_decref(j);
        }
}

static void test_valid_fixture(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = NULL;
        json_t *j = valid();

        assert_int_equal(lock_from_json(j, &l), 0);
        json_decref(j);
        assert_int_equal(l->n_packages, 2);
        assert_int_equal(l->packages[0].size, 1234567);
        assert_string_equal(l->requested[1], "kernel");
}

static void test_read_errors(void **state _unused_) {
        Lock *l = NULL;

        assert_int_equal(lock_read("missing.lock", &l), -ENOENT);
        assert_int_equal(write_file_atomic("bad.lock", "{\"format\": 1,", 13, 0644), 0);
        assert_int_equal(lock_read("bad.lock", &l), -EINVAL);
        assert_int_equal(write_file_atomic("dup.lock", "{\"format\": 1, \"format\": 1}", 26, 0644), 0);
        assert_int_equal(lock_read("dup.lock", &l), -EINVAL);
        assert_null(l);
}

static void test_atomic_write(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = lock_new_test(), *read = NULL;
        _cleanup_free_ char *before = NULL, *after = NULL;
        FILE *p;
        char line[64];

        assert_int_equal(mkdir_p("w", 0755), 0);
        assert_int_equal(lock_write(l, "w/x.lock"), 0);
        assert_int_equal(read_full_file("w/x.lock", 1 << 20, &before, NULL), 0);

        /* A lock that cannot be written (not UTF-8) leaves the old file alone. */
        free(l->packages[0].name);
        l->packages[0].name = strdup("bad\xff");
        assert_true(lock_write(l, "w/x.lock") < 0);
        assert_int_equal(read_full_file("w/x.lock", 1 << 20, &after, NULL), 0);
        assert_string_equal(before, after);

        /* Replacing works and leaves no temporary file behind. */
        free(l->packages[0].name);
        l->packages[0].name = strdup("omega");
        assert_int_equal(lock_write(l, "w/x.lock"), 0);
        assert_int_equal(lock_read("w/x.lock", &read), 0);
        assert_string_equal(read->packages[0].name, "omega");
        p = popen("ls -A w", "r");
        assert_non_null(p);
        assert_non_null(fgets(line, sizeof(line), p));
        assert_string_equal(line, "x.lock\n");
        assert_null(fgets(line, sizeof(line), p));
        pclose(p);

        /* A missing directory is an error, not a crash. */
        assert_int_equal(lock_write(l, "no/such/dir/x.lock"), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_stable_bytes),
                cmocka_unit_test(test_sort),            cmocka_unit_test(test_nevra_url_find),
                cmocka_unit_test(test_valid_fixture),   cmocka_unit_test(test_reject),
                cmocka_unit_test(test_reject_shapes),   cmocka_unit_test(test_read_errors),
                cmocka_unit_test(test_atomic_write),    cmocka_unit_test(test_requested_forms),
        };

        log_set_level(LOG_LEVEL_ERROR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
