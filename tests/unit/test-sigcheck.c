/* Package signatures: repository keys from files, and fixture RPMs signed
 * with the repository's key, with another key, not at all, or with a broken
 * signature. */
#include <jansson.h>
#include <sys/wait.h>

#include "tests.h"

#include "definition.h"
#include "fileio.h"
#include "lock.h"
#include "log.h"
#include "sigcheck.h"
#include "util.h"

#define PKG_A "repo/Packages/pkg-a-1.0-1.noarch.rpm"

static char *top; /* the directory the fixtures are in */

static char *source_dir(void) {
        const char *e = getenv("SLIPWAY_SOURCE_DIR");
        return strdup(e ? e : SLIPWAY_SOURCE_DIR);
}

static int run(const char *cmd) {
        int status = system(cmd);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *fixture(const char *name) {
        return path_join(top, name);
}

/* The fixture repository (signed with its key), and copies of pkg-a:
 * unsigned, signed with another key, with a broken signature, and signed by
 * another key's subkey. */
static int group_setup(void **state _unused_) {
        _cleanup_free_ char *src = source_dir(), *cmd = NULL;
        char cwd[PATH_MAX];
        int k;

        if (!getcwd(cwd, sizeof(cwd)))
                return -1;
        top = strdup(cwd);
        cmd = strdup_printf("'%s/tests/data/repo-specs/make-repo.sh' repo && "
                            "'%s/tests/data/repo-specs/signature-variants.sh' " PKG_A " .",
                            src, src);
        k = run(cmd);
        if (k == 77)
                return -1;
        if (k != 0) {
                fprintf(stderr, "cannot make the fixtures\n");
                return -1;
        }
        log_set_level(LOG_LEVEL_ERROR);
        return 0;
}

static int group_teardown(void **state _unused_) {
        free(top);
        return 0;
}

/* stderr goes to a file while the function under test logs. */
typedef struct Capture {
        int saved;
} Capture;

static void capture_start(Capture *c) {
        fflush(stderr);
        c->saved = dup(2);
        assert_non_null(freopen("stderr.txt", "w", stderr));
}

static char *capture_end(Capture *c) {
        char *text = NULL;

        fflush(stderr);
        dup2(c->saved, 2);
        close(c->saved);
        clearerr(stderr);
        assert_int_equal(read_full_file("stderr.txt", 1 << 20, &text, NULL), 0);
        return text;
}

static RepoDef repo_def(const char *id, bool gpgcheck, const char *keys) {
        RepoDef d = { .id = strdup(id), .baseurl = strdup("file:///nowhere"), .gpgcheck = gpgcheck };
        _cleanup_strv_free_ char **words = keys ? strv_split_words(keys) : NULL;

        d.gpgkeys = calloc(1, sizeof(char *));
        for (char **w = words; w && *w; w++) {
                _cleanup_free_ char *path = (*w)[0] == '/' ? strdup(*w) : fixture(*w);
                strv_consume(&d.gpgkeys, strdup_printf("file://%s", path));
        }
        return d;
}

static void repo_def_release(RepoDef *d) {
        free(d->id);
        free(d->baseurl);
        strv_free(d->gpgkeys);
}

static RepoKeys *load(const char *id, bool gpgcheck, const char *keys, int expect) {
        RepoDef d = repo_def(id, gpgcheck, keys);
        RepoKeys *k = NULL;

        assert_int_equal(repo_keys_load(&d, "test.conf", &k), expect);
        repo_def_release(&d);
        return k;
}

/* The fingerprint gpg gives for the key in an exported file. */
static char *gpg_fingerprint(const char *key_file) {
        _cleanup_free_ char *cmd = strdup_printf("gpg --homedir '%s/subkey-gnupg' --batch --with-colons --show-keys '%s' "
                                                 "2>/dev/null | "
                                                 "awk -F: '$1 == \"fpr\" { print tolower($10); exit }'",
                                                 top, key_file);
        char buf[128] = "";
        FILE *p = popen(cmd, "r");

        assert_non_null(p);
        assert_non_null(fgets(buf, sizeof(buf), p));
        pclose(p);
        buf[strcspn(buf, "\n")] = 0;
        return strdup(buf);
}

static void test_keys_load(void **state _unused_) {
        _cleanup_free_ char *fixture_key = fixture("repo/RPM-GPG-KEY-fixture"), *other_key = fixture("other-key.asc");
        _cleanup_free_ char *fp = gpg_fingerprint(fixture_key), *fp_other = gpg_fingerprint(other_key);
        _cleanup_(repo_keys_freep) RepoKeys *k = load("fix", true, "repo/RPM-GPG-KEY-fixture", 0);
        _cleanup_(repo_keys_freep) RepoKeys *both = NULL, *joined = NULL, *binary = NULL;
        _cleanup_free_ char *cmd = NULL;

        assert_int_equal(strlen(fp), 40);
        assert_string_equal(repo_keys_repo(k), "fix");
        assert_true(repo_keys_gpgcheck(k));
        /* a v4 key's ID is the end of its fingerprint */
        assert_string_equal(repo_keys_fingerprint(k, fp + 24), fp);
        assert_null(repo_keys_fingerprint(k, fp_other + 24));

        /* two files, one line */
        both = load("fix", true, "repo/RPM-GPG-KEY-fixture other-key.asc", 0);
        assert_string_equal(repo_keys_fingerprint(both, fp + 24), fp);
        assert_string_equal(repo_keys_fingerprint(both, fp_other + 24), fp_other);

        /* two armored blocks in one file, and binary (unarmored) keys */
        cmd = strdup_printf("cat '%s' '%s' >joined.asc && gpg --homedir '%s/subkey-gnupg' --batch --dearmor <joined.asc "
                            ">binary.gpg 2>/dev/null",
                            fixture_key, other_key, top);
        assert_int_equal(run(cmd), 0);
        {
                _cleanup_free_ char *cwd = get_current_dir_name(), *a = path_join(cwd, "joined.asc"),
                                    *b = path_join(cwd, "binary.gpg");
                joined = load("fix", true, a, 0);
                binary = load("fix", true, b, 0);
        }
        assert_string_equal(repo_keys_fingerprint(joined, fp_other + 24), fp_other);
        assert_string_equal(repo_keys_fingerprint(joined, fp + 24), fp);
        assert_string_equal(repo_keys_fingerprint(binary, fp_other + 24), fp_other);
}

static void test_keys_errors(void **state _unused_) {
        _cleanup_free_ char *out = NULL, *cwd = get_current_dir_name(), *not_key = path_join(cwd, "not-a-key");
        RepoDef d = repo_def("lab", true, NULL);
        RepoKeys *k = NULL;
        Capture c;

        /* gpgcheck on and no key: named with file:line */
        d.line = 7;
        capture_start(&c);
        assert_int_equal(repo_keys_load(&d, "test.conf", &k), -EINVAL);
        out = capture_end(&c);
        assert_non_null(strstr(out, "test.conf:7: repository 'lab' has gpgcheck on but no gpgkey"));
        assert_null(k);
        repo_def_release(&d);

        /* gpgcheck off: no key needed */
        k = load("lab", false, NULL, 0);
        assert_false(repo_keys_gpgcheck(k));
        k = repo_keys_free(k);

        assert_null(load("fix", true, "no-such-key.asc", -ENOENT));
        assert_int_equal(write_file_atomic(not_key, "hello\n", 6, 0644), 0);
        assert_null(load("fix", true, not_key, -EBADMSG));
        /* an armored block that is not a public key */
        {
                static const char armored[] = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n"
                                               "-----END PGP PUBLIC KEY BLOCK-----\n";
                assert_int_equal(write_file_atomic(not_key, armored, strlen(armored), 0644), 0);
        }
        assert_null(load("fix", true, not_key, -EBADMSG));
}

/* Checks path against the fixture key; returns the error and what was logged. */
static int check(const char *path, bool gpgcheck, char key_id[SIGCHECK_KEY_ID_SIZE], char **ret_log) {
        _cleanup_(repo_keys_freep) RepoKeys *k = load("fix", gpgcheck, "repo/RPM-GPG-KEY-fixture", 0);
        _cleanup_free_ char *p = fixture(path);
        Capture c;
        int r;

        capture_start(&c);
        r = sigcheck_package(k, p, "pkg-a-1.0-1.noarch", key_id);
        *ret_log = capture_end(&c);
        return r;
}

static void test_signed(void **state _unused_) {
        _cleanup_free_ char *fp = NULL, *key = fixture("repo/RPM-GPG-KEY-fixture"), *out = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "x";

        fp = gpg_fingerprint(key);
        assert_int_equal(check(PKG_A, true, key_id, &out), 0);
        assert_string_equal(key_id, fp + 24);
        assert_string_equal(out, "");
}

static void test_unsigned(void **state _unused_) {
        _cleanup_free_ char *out = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "";

        assert_int_equal(check("unsigned.rpm", true, key_id, &out), -EBADMSG);
        assert_non_null(strstr(out, "package 'pkg-a-1.0-1.noarch' from repository 'fix' refused: it is not signed"));
        /* one error line */
        assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

static void test_other_key(void **state _unused_) {
        _cleanup_free_ char *out = NULL, *other = fixture("other-key.asc"), *fp = gpg_fingerprint(other), *want = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "";

        assert_int_equal(check("other-key.rpm", true, key_id, &out), -ENOKEY);
        want = strdup_printf("package 'pkg-a-1.0-1.noarch' from repository 'fix' refused: signed with key %s, "
                             "which is not one of the repository's gpgkey keys",
                             fp + 24);
        assert_non_null(strstr(out, want));
        assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

static void test_broken_signature(void **state _unused_) {
        _cleanup_free_ char *out = NULL, *key = fixture("repo/RPM-GPG-KEY-fixture"), *fp = gpg_fingerprint(key),
                            *want = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "";

        assert_int_equal(check("broken.rpm", true, key_id, &out), -EBADMSG);
        want = strdup_printf("package 'pkg-a-1.0-1.noarch' from repository 'fix' refused: bad signature (key %s)",
                             fp + 24);
        assert_non_null(strstr(out, want));
}

static void test_not_an_rpm(void **state _unused_) {
        _cleanup_free_ char *out = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "";

        assert_int_equal(check("repo/RPM-GPG-KEY-fixture", true, key_id, &out), -EBADMSG);
        assert_non_null(strstr(out, "refused: not an RPM package"));
}

/* A signature by a subkey: its own ID is recorded, the fingerprint is the
 * listed (primary) key's. */
static void test_subkey(void **state _unused_) {
        _cleanup_(repo_keys_freep) RepoKeys *k = load("fix", true, "subkey.asc", 0);
        _cleanup_free_ char *p = fixture("subkey.rpm"), *key = fixture("subkey.asc"), *fp = gpg_fingerprint(key);
        char key_id[SIGCHECK_KEY_ID_SIZE] = "";

        assert_int_equal(sigcheck_package(k, p, "pkg-a", key_id), 0);
        assert_int_equal(strlen(key_id), 16);
        assert_false(endswith(fp, key_id));
        assert_string_equal(repo_keys_fingerprint(k, key_id), fp);
}

/* gpgcheck = 0: nothing is checked, no key is recorded. */
static void test_gpgcheck_off(void **state _unused_) {
        _cleanup_free_ char *out = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "x";

        assert_int_equal(check("unsigned.rpm", false, key_id, &out), 0);
        assert_string_equal(key_id, "");
        free(out);
        assert_int_equal(check("other-key.rpm", false, key_id, &out), 0);
        assert_string_equal(key_id, "");
}

/* The definition's trust, and what it writes into the lock. */
static void test_trust_and_lock(void **state _unused_) {
        _cleanup_free_ char *key = fixture("repo/RPM-GPG-KEY-fixture"), *fp = gpg_fingerprint(key), *out = NULL;
        ImageDef def = { .path = (char *) "test.conf" };
        _cleanup_(trust_freep) Trust *t = NULL;
        _cleanup_lock_free_ Lock *l = calloc(1, sizeof(Lock));
        json_t *j = NULL;
        Capture c;

        def.repos = calloc(2, sizeof(RepoDef));
        def.repos[0] = repo_def("fix", true, "repo/RPM-GPG-KEY-fixture");
        def.repos[1] = repo_def("lab", false, NULL);
        def.n_repos = 2;
        log_set_level(LOG_LEVEL_WARNING);
        capture_start(&c);
        assert_int_equal(trust_load(&def, &t), 0);
        out = capture_end(&c);
        log_set_level(LOG_LEVEL_ERROR);
        /* the repository with gpgcheck off is named, once */
        assert_non_null(strstr(out, "warning: repository 'lab' has gpgcheck = 0: its packages are NOT checked"));
        assert_null(strstr(out, "'fix'"));
        assert_non_null(trust_find(t, "fix"));
        assert_null(trust_find(t, "nope"));

        assert_int_equal(trust_to_json(t, &j), 0);
        assert_true(json_is_true(json_object_get(json_array_get(j, 0), "gpgcheck")));
        assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(j, 0), "keys"), 0)), fp);
        assert_true(json_is_false(json_object_get(json_array_get(j, 1), "gpgcheck")));
        json_decref(j);

        l->repos = calloc(2, sizeof(LockRepo));
        l->repos[0].id = strdup("fix");
        l->repos[1].id = strdup("lab");
        l->n_repos = 2;
        l->packages = calloc(2, sizeof(LockPackage));
        l->packages[0] = (LockPackage) { .repo_id = strdup("fix"), .key_id = strdup(fp + 24) };
        l->packages[1] = (LockPackage) { .repo_id = strdup("lab") };
        l->n_packages = 2;
        assert_int_equal(trust_annotate_lock(t, l), 0);
        assert_true(l->repos[0].gpgcheck);
        assert_int_equal(strv_length(l->repos[0].keys), 1);
        assert_string_equal(l->repos[0].keys[0], fp);
        assert_false(l->repos[1].gpgcheck);
        assert_int_equal(strv_length(l->repos[1].keys), 0);

        /* a key ID the repository does not list cannot be recorded */
        free(l->packages[0].key_id);
        l->packages[0].key_id = strdup("0123456789abcdef");
        assert_int_equal(trust_annotate_lock(t, l), -ENOKEY);

        for (size_t i = 0; i < def.n_repos; i++)
                repo_def_release(&def.repos[i]);
        free(def.repos);
}

/* Signs `file` with the key in GNUPGHOME `home` (detached; armored or not)
 * into `sig`. */
static void detach_sign(const char *home, const char *file, const char *sig, bool armor) {
        _cleanup_free_ char *cmd = strdup_printf("gpg --homedir '%s/%s' --batch --yes %s --detach-sign -o '%s' '%s' "
                                                 "2>/dev/null",
                                                 top, home, armor ? "--armor" : "", sig, file);
        /* gpgconf only asks the agent to go: wait until it has gone, or the
         * runner may find it still running when this binary ends ("[g]"
         * keeps the pattern from matching this shell's own command line) */
        _cleanup_free_ char *kill = strdup_printf("gpgconf --homedir '%s/%s' --kill gpg-agent 2>/dev/null; "
                                                  "for i in $(seq 100); do "
                                                  "pgrep -f -- '[g]pg-agent --homedir %s/%s' >/dev/null || exit 0; "
                                                  "sleep 0.1; done; exit 1",
                                                  top, home, top, home);
        assert_int_equal(run(cmd), 0);
        assert_int_equal(run(kill), 0);
}

static int verify_detached(RepoKeys *k, const char *file, const char *sig, char key_id[SIGCHECK_KEY_ID_SIZE],
                           char *reason, size_t reason_size) {
        _cleanup_free_ char *data = NULL, *sig_data = NULL;
        size_t size = 0, sig_size = 0;

        assert_int_equal(read_full_file(file, 1 << 20, &data, &size), 0);
        assert_int_equal(read_full_file(sig, 1 << 20, &sig_data, &sig_size), 0);
        return sigcheck_detached(k, data, size, sig_data, sig_size, key_id, reason, reason_size);
}

/* repomd.xml.asc: a detached signature over repomd.xml's bytes. */
static void test_detached(void **state _unused_) {
        _cleanup_(repo_keys_freep) RepoKeys *k = load("fix", true, "repo/RPM-GPG-KEY-fixture", 0);
        _cleanup_(repo_keys_freep) RepoKeys *sub = NULL;
        _cleanup_free_ char *fixture_key = fixture("repo/RPM-GPG-KEY-fixture"), *fp = gpg_fingerprint(fixture_key);
        _cleanup_free_ char *repomd = fixture("repo/repodata/repomd.xml");
        char key_id[SIGCHECK_KEY_ID_SIZE] = "", reason[256] = "";

        /* good, armored and binary */
        detach_sign("repo-gnupg", repomd, "good.asc", true);
        if (verify_detached(k, repomd, "good.asc", key_id, reason, sizeof(reason)) != 0)
                fail_msg("good.asc: %s", reason);
        assert_string_equal(key_id, fp + 24);
        assert_string_equal(repo_keys_fingerprint(k, key_id), fp);
        detach_sign("repo-gnupg", repomd, "good.sig", false);
        assert_int_equal(verify_detached(k, repomd, "good.sig", key_id, reason, sizeof(reason)), 0);

        /* bad: the bytes changed after signing */
        {
                _cleanup_free_ char *cmd = strdup_printf("cp '%s' changed.xml && echo '<!-- -->' >>changed.xml", repomd);
                assert_int_equal(run(cmd), 0);
        }
        assert_int_equal(verify_detached(k, "changed.xml", "good.asc", key_id, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "bad signature"));
        assert_string_equal(key_id, fp + 24);

        /* missing: an empty file, or something that is no signature */
        assert_int_equal(write_file_atomic("empty.asc", "", 0, 0644), 0);
        assert_int_equal(verify_detached(k, repomd, "empty.asc", key_id, reason, sizeof(reason)), -EBADMSG);
        assert_int_equal(write_file_atomic("junk.asc", "<html>404</html>\n", 17, 0644), 0);
        assert_int_equal(verify_detached(k, repomd, "junk.asc", key_id, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "not an OpenPGP signature"));

        /* wrong key: good signature, but not by a key of the repository */
        detach_sign("other-gnupg", repomd, "other.asc", true);
        assert_int_equal(verify_detached(k, repomd, "other.asc", key_id, reason, sizeof(reason)), -ENOKEY);
        assert_non_null(strstr(reason, "not one of the repository's gpgkey keys"));
        assert_non_null(strstr(reason, key_id));

        /* a key's signing subkey */
        sub = load("fix", true, "subkey.asc", 0);
        detach_sign("subkey-gnupg", repomd, "sub.asc", true);
        assert_int_equal(verify_detached(sub, repomd, "sub.asc", key_id, reason, sizeof(reason)), 0);
        assert_non_null(repo_keys_fingerprint(sub, key_id));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_keys_load),   test_in_dir(test_keys_errors),      test_in_dir(test_signed),
                test_in_dir(test_unsigned),    test_in_dir(test_other_key),        test_in_dir(test_broken_signature),
                test_in_dir(test_not_an_rpm),  test_in_dir(test_gpgcheck_off),     test_in_dir(test_trust_and_lock),
                test_in_dir(test_subkey),      test_in_dir(test_detached),
        };

        return cmocka_run_group_tests_name("sigcheck", tests, group_setup, group_teardown);
}
