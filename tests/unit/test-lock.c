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
#define FPR "f1a13774c80249a0bcd320ab3c858d071448bf44"
#define KEY_ID "3c858d071448bf44"

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

/* valid() as format 2: repo "sample" checked with key FPR, which signed
 * busybox; repo "extra" with gpgcheck off. */
static json_t *valid2(void) {
        json_t *j = valid(), *repos = json_object_get(j, "repos");

        json_object_set_new(j, "format", json_integer(2));
        json_object_set_new(json_array_get(repos, 0), "gpgcheck", json_true());
        json_object_set_new(json_array_get(repos, 0), "keys", json_pack("[s]", FPR));
        json_object_set_new(json_array_get(repos, 1), "gpgcheck", json_false());
        json_object_set_new(json_array_get(repos, 1), "keys", json_array());
        json_object_set_new(json_array_get(json_object_get(j, "packages"), 0), "key_id", json_string(KEY_ID));
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
                .key_id = strdup(KEY_ID),
        };
}

static Lock *lock_new_test(void) {
        Lock *l = calloc(1, sizeof(*l));

        assert_non_null(l);
        l->arch = strdup("x86_64");
        l->requested = strv_split_words("zeta alpha");
        assert_int_equal(strv_extend(&l->requested, "mid >= 1:2.0-1"), 0);
        l->repos = calloc(1, sizeof(LockRepo));
        l->repos[0] = (LockRepo) {
                .id = strdup("r"),
                .baseurl = strdup("http://127.0.0.1:8080/repo"),
                .repomd_sha256 = strdup(SHA_C),
                .gpgcheck = true,
                .keys = strv_split_words(FPR),
        };
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
                assert_int_equal(a->repos[i].gpgcheck, b->repos[i].gpgcheck);
                assert_int_equal(strv_length(a->repos[i].keys), strv_length(b->repos[i].keys));
                for (size_t k = 0; k < strv_length(a->repos[i].keys); k++)
                        assert_string_equal(a->repos[i].keys[k], b->repos[i].keys[k]);
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
                assert_true(streq_ptr(p->key_id, q->key_id));
        }
}

static void test_round_trip(void **state _unused_) {
        _cleanup_lock_free_ Lock *l = lock_new_test(), *back = NULL, *read = NULL;
        _cleanup_free_ char *text = NULL;
        json_t *j = NULL;

        lock_sort(l);
        assert_int_equal(lock_to_json(l, &j), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "format")), 2);
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
        { "format 3", "format", SET_INT, NULL, 3 },
        { "format 0", "format", SET_INT, NULL, 0 },
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
        /* format 1 has no signature fields */
        { "key_id in format 1", "packages.0.key_id", SET_STRING, KEY_ID, 0 },
        { "gpgcheck in format 1", "repos.0.gpgcheck", SET_INT, NULL, 1 },
};

/* The same against valid2(). */
static const Case cases_v2[] = {
        { "gpgcheck missing", "repos.0.gpgcheck", DELETE, NULL, 0 },
        { "gpgcheck a number", "repos.0.gpgcheck", SET_INT, NULL, 1 },
        { "keys missing", "repos.0.keys", DELETE, NULL, 0 },
        { "keys a string", "repos.0.keys", SET_STRING, FPR, 0 },
        { "key_id short", "packages.0.key_id", SET_STRING, "3c858d07", 0 },
        { "key_id uppercase", "packages.0.key_id", SET_STRING, "3C858D071448BF44", 0 },
        { "key_id a number", "packages.0.key_id", SET_INT, NULL, 12345 },
        { "key_id from a repo with gpgcheck off", "packages.1.key_id", SET_STRING, KEY_ID, 0 },
        { "unknown repo key", "repos.0.gpgkey", SET_STRING, "file:///k", 0 },
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

static void reject_all(json_t *(*make)(void), const Case *list, size_t n) {
        for (size_t i = 0; i < n; i++) {
                json_t *j = make();
                Lock *l = NULL;
                int r;

                apply(j, &list[i]);
                r = lock_from_json(j, &l);
                json_decref(j);
                if (r != -EINVAL)
                        fail_msg("case '%s': expected -EINVAL, got %d", list[i].what, r);
                assert_null(l);
        }
}

static void test_reject(void **state _unused_) {
        reject_all(valid, cases, ELEMENTSOF(cases));
        reject_all(valid2, cases_v2, ELEMENTSOF(cases_v2));
}

/* A bad fingerprint in a repo's keys. */
static void test_reject_fingerprints(void **state _unused_) {
        static const char *const bad[] = { "f1a13774", "F1A13774C80249A0BCD320AB3C858D071448BF44",
                                           "g1a13774c80249a0bcd320ab3c858d071448bf44", "" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *j = valid2();
                Lock *l = NULL;

                json_object_set_new(json_array_get(json_object_get(j, "repos"), 0), "keys", json_pack("[s]", bad[i]));
                assert_int_equal(lock_from_json(j, &l), -EINVAL);
                json_decref(j);
        }
        /* keys for a repository whose packages were not checked */
        {
                json_t *j = valid2();
                Lock *l = NULL;

                json_object_set_new(json_array_get(json_object_get(j, "repos"), 1), "keys", json_pack("[s]", FPR));
                assert_int_equal(lock_from_json(j, &l), -EINVAL);
                json_decref(j);
        }
}

/* Format 2 reads back what it says; format 1 (before signatures were
 * checked) still reads, with nothing checked. */
static void test_signature_fields(void **state _unused_) {
        _cleanup_lock_free_ Lock *l2 = NULL, *l1 = NULL, *back = NULL;
        json_t *j = valid2(), *u = NULL;

        assert_int_equal(lock_from_json(j, &l2), 0);
        json_decref(j);
        assert_true(l2->repos[0].gpgcheck);
        assert_string_equal(l2->repos[0].keys[0], FPR);
        assert_false(l2->repos[1].gpgcheck);
        assert_int_equal(strv_length(l2->repos[1].keys), 0);
        assert_string_equal(l2->packages[0].key_id, KEY_ID);
        assert_null(l2->packages[1].key_id);

        j = valid();
        assert_int_equal(lock_from_json(j, &l1), 0);
        json_decref(j);
        assert_false(l1->repos[0].gpgcheck);
        assert_null(l1->repos[0].keys);
        assert_null(l1->packages[0].key_id);

        /* the lock as resolved: format 1, no signature fields, reads back */
        assert_int_equal(lock_to_json_unchecked(l2, &u), 0);
        assert_int_equal(json_integer_value(json_object_get(u, "format")), 1);
        assert_null(json_object_get(json_array_get(json_object_get(u, "repos"), 0), "gpgcheck"));
        assert_null(json_object_get(json_array_get(json_object_get(u, "packages"), 0), "key_id"));
        assert_int_equal(lock_from_json(u, &back), 0);
        json_decref(u);
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

/* "modules" and "groups": what the resolution was asked; optional, kept
 * through a round trip, absent when empty, checked when present. */
static void test_resolution_fields(void **state _unused_) {
        static const char *const bad[] = {
                "{\"modules\": {}}",
                "{\"modules\": [{\"name\": \"nodejs\", \"stream\": \"20\"}]}",
                "{\"modules\": [{\"name\": \"nodejs\", \"stream\": \"2:0\", \"default\": true}]}",
                "{\"modules\": [{\"name\": \"nodejs\", \"stream\": \"20\", \"default\": 1}]}",
                "{\"modules\": [{\"name\": \"nodejs\", \"stream\": \"20\", \"default\": true, \"x\": 1}]}",
                "{\"modules\": [{\"name\": \"nodejs\", \"stream\": \"20\", \"default\": false, \"required_by\": 1}]}",
                "{\"groups\": [{\"request\": \"@other\", \"ids\": [], \"packages\": []}]}",
                "{\"groups\": [{\"request\": \"@core\", \"ids\": [\"core\"]}]}",
                "{\"groups\": [{\"request\": \"@core\", \"ids\": [1], \"packages\": []}]}",
        };
        _cleanup_lock_free_ Lock *l = NULL, *back = NULL;
        json_t *j = valid(), *out = NULL;

        json_array_append_new(json_object_get(j, "requested"), json_string("@core"));
        json_object_set_new(j, "modules",
                            json_pack("[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:b, s:s}]", "name", "nodejs", "stream", "20",
                                      "profile", "common", "default", 0, "name", "perl", "stream", "5.36", "default", 0,
                                      "required_by", "app:1"));
        json_object_set_new(j, "groups",
                            json_pack("[{s:s, s:[s], s:[s, s]}]", "request", "@core", "ids", "core", "packages",
                                      "(g-cond if trig)", "g-mand"));
        assert_int_equal(lock_from_json(j, &l), 0);
        assert_int_equal(l->n_modules, 2);
        assert_string_equal(l->modules[0].profile, "common");
        assert_false(l->modules[0].is_default);
        assert_null(l->modules[0].required_by);
        assert_null(l->modules[1].profile);
        assert_false(l->modules[1].is_default);
        assert_string_equal(l->modules[1].required_by, "app:1");
        assert_int_equal(l->n_groups, 1);
        assert_string_equal(l->groups[0].packages[0], "(g-cond if trig)");
        assert_int_equal(lock_to_json(l, &out), 0);
        assert_true(json_equal(json_object_get(out, "modules"), json_object_get(j, "modules")));
        assert_true(json_equal(json_object_get(out, "groups"), json_object_get(j, "groups")));
        assert_int_equal(lock_from_json(out, &back), 0);
        assert_int_equal(back->n_modules, 2);
        json_decref(out);
        json_decref(j);

        /* none: the members are left out, as in locks from before them */
        lock_free(TAKE_PTR(back));
        j = valid();
        assert_int_equal(lock_from_json(j, &back), 0);
        json_decref(j);
        assert_int_equal(lock_to_json(back, &out), 0);
        assert_null(json_object_get(out, "modules"));
        assert_null(json_object_get(out, "groups"));
        json_decref(out);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *extra = json_loads(bad[i], 0, NULL);
                Lock *b = NULL;

                assert_non_null(extra);
                j = valid();
                json_array_append_new(json_object_get(j, "requested"), json_string("@core"));
                json_object_update(j, extra);
                if (lock_from_json(j, &b) != -EINVAL)
                        fail_msg("case %zu was not refused: %s", i, bad[i]);
                assert_null(b);
                json_decref(extra);
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
                cmocka_unit_test(test_reject_fingerprints), cmocka_unit_test(test_signature_fields),
                cmocka_unit_test(test_resolution_fields),
        };

        log_set_level(LOG_LEVEL_ERROR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
