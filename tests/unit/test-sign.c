#include "tests.h"
#include <sys/stat.h>

#include "fileio.h"
#include "hash.h"
#include "sign.h"
#include "util.h"

static void test_sign_verify(void **state) {
        uint8_t sig[ED25519_SIG_SIZE], sig2[ED25519_SIG_SIZE];
        struct stat st;
        (void) state;

        assert_int_equal(sign_keygen("a.key", "a.pub"), 0);
        assert_int_equal(stat("a.key", &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(sign_keygen("a.key", "other.pub"), -EEXIST);

        assert_int_equal(sign_data("a.key", "hello", 5, sig), 0);
        assert_int_equal(sign_verify("a.pub", "hello", 5, sig, sizeof(sig)), 0);
        /* Ed25519 is deterministic: the same bytes give the same signature. */
        assert_int_equal(sign_data("a.key", "hello", 5, sig2), 0);
        assert_memory_equal(sig, sig2, sizeof(sig));

        assert_int_equal(sign_verify("a.pub", "hellO", 5, sig, sizeof(sig)), -EBADMSG);
        sig[3] ^= 1;
        assert_int_equal(sign_verify("a.pub", "hello", 5, sig, sizeof(sig)), -EBADMSG);
        assert_int_equal(sign_verify("a.pub", "hello", 5, sig, 10), -EBADMSG);
}

static void test_wrong_keys(void **state) {
        uint8_t sig[ED25519_SIG_SIZE];
        (void) state;
        assert_int_equal(sign_keygen("a.key", "a.pub"), 0);
        assert_int_equal(sign_keygen("b.key", "b.pub"), 0);
        assert_int_equal(sign_data("a.key", "x", 1, sig), 0);
        assert_int_equal(sign_verify("b.pub", "x", 1, sig, sizeof(sig)), -EBADMSG);
        assert_int_equal(sign_data("missing.key", "x", 1, sig), -ENOENT);
        /* A public key is not a private key, and garbage is neither. */
        assert_int_equal(sign_data("a.pub", "x", 1, sig), -EBADMSG);
        assert_int_equal(write_file_atomic("junk.key", "not a key\n", 10, 0600), 0);
        assert_int_equal(sign_data("junk.key", "x", 1, sig), -EBADMSG);
        /* An RSA-sized PEM that is not Ed25519 is refused too. */
        assert_int_equal(system("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key "
                                "2>/dev/null"),
                         0);
        assert_int_equal(sign_data("ec.key", "x", 1, sig), -EBADMSG);
}

static void test_verify_dir(void **state) {
        uint8_t sig[ED25519_SIG_SIZE];
        _cleanup_free_ char *which = NULL;
        char id1[65], id2[65];
        (void) state;

        assert_int_equal(mkdir_p("keys", 0755), 0);
        assert_int_equal(sign_verify_dir("keys", "x", 1, sig, sizeof(sig), NULL), -ENOENT);
        assert_int_equal(sign_keygen("a.key", "keys/a.pub"), 0);
        assert_int_equal(sign_keygen("b.key", "keys/b.pub"), 0);
        assert_int_equal(sign_keygen("c.key", "c.pub"), 0);
        assert_int_equal(sign_data("b.key", "x", 1, sig), 0);
        assert_int_equal(sign_verify_dir("keys", "x", 1, sig, sizeof(sig), &which), 0);
        assert_string_equal(which, "b.pub");
        assert_int_equal(sign_data("c.key", "x", 1, sig), 0);
        assert_int_equal(sign_verify_dir("keys", "x", 1, sig, sizeof(sig), NULL), -EBADMSG);

        assert_int_equal(sign_key_id("keys/a.pub", id1), 0);
        assert_int_equal(sign_key_id("keys/b.pub", id2), 0);
        assert_string_not_equal(id1, id2);
}

static void test_hash(void **state) {
        char hex[65];
        uint64_t size;
        (void) state;
        sha256_buffer_hex("", 0, hex);
        assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_int_equal(write_file_atomic("abc", "abc", 3, 0644), 0);
        assert_int_equal(sha256_file_hex("abc", hex, &size), 0);
        assert_int_equal(size, 3);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_int_equal(sha256_file_hex("nope", hex, &size), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_sign_verify),
                test_in_dir(test_wrong_keys),
                test_in_dir(test_verify_dir),
                test_in_dir(test_hash),
        };
        return cmocka_run_group_tests_name("sign", tests, NULL, NULL);
}
