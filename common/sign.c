#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fileio.h"
#include "hash.h"
#include "sign.h"
#include "util.h"

#define KEY_FILE_MAX (64 * 1024)

static void pkey_freep(EVP_PKEY **k) {
        EVP_PKEY_free(*k);
}
static void bio_freep(BIO **b) {
        BIO_free(*b);
}
static void mdctx_freep(EVP_MD_CTX **c) {
        EVP_MD_CTX_free(*c);
}

/* Returns the PEM text a memory BIO holds; caller frees. */
static char *bio_to_string(BIO *b, size_t *ret_size) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        char *s = n >= 0 ? strndup(data, (size_t) n) : NULL;
        if (s && ret_size)
                *ret_size = (size_t) n;
        return s;
}

int sign_keygen(const char *private_path, const char *public_path) {
        _cleanup_(pkey_freep) EVP_PKEY *key = NULL;
        _cleanup_(bio_freep) BIO *priv = NULL, *pub = NULL;
        _cleanup_free_ char *priv_pem = NULL, *pub_pem = NULL;
        size_t priv_n = 0, pub_n = 0;
        int r;

        if (path_exists(private_path) || path_exists(public_path))
                return -EEXIST;

        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        priv = BIO_new(BIO_s_mem());
        pub = BIO_new(BIO_s_mem());
        if (!key || !priv || !pub)
                return -ENOMEM;
        if (PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) != 1 ||
            PEM_write_bio_PUBKEY(pub, key) != 1)
                return -EIO;
        priv_pem = bio_to_string(priv, &priv_n);
        pub_pem = bio_to_string(pub, &pub_n);
        if (!priv_pem || !pub_pem)
                return -ENOMEM;

        r = write_file_atomic(private_path, priv_pem, priv_n, 0600);
        if (r < 0)
                return r;
        r = write_file_atomic(public_path, pub_pem, pub_n, 0644);
        if (r < 0) {
                unlink(private_path);
                return r;
        }
        return 0;
}

static int load_key(const char *path, bool private, EVP_PKEY **ret) {
        _cleanup_free_ char *pem = NULL;
        _cleanup_(bio_freep) BIO *b = NULL;
        size_t n;
        EVP_PKEY *k;
        int r;

        r = read_full_file(path, KEY_FILE_MAX, &pem, &n);
        if (r < 0)
                return r;
        b = BIO_new_mem_buf(pem, (int) n);
        if (!b)
                return -ENOMEM;
        k = private ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
        if (!k)
                return -EBADMSG;
        if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
                EVP_PKEY_free(k);
                return -EBADMSG;
        }
        *ret = k;
        return 0;
}

int sign_data(const char *private_path, const void *data, size_t n, uint8_t ret_sig[ED25519_SIG_SIZE]) {
        _cleanup_(pkey_freep) EVP_PKEY *key = NULL;
        _cleanup_(mdctx_freep) EVP_MD_CTX *ctx = NULL;
        size_t siglen = ED25519_SIG_SIZE;
        int r;

        r = load_key(private_path, true, &key);
        if (r < 0)
                return r;
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
            EVP_DigestSign(ctx, ret_sig, &siglen, data, n) != 1 || siglen != ED25519_SIG_SIZE)
                return -EIO;
        return 0;
}

static int verify_with(EVP_PKEY *key, const void *data, size_t n, const uint8_t *sig, size_t sig_size) {
        _cleanup_(mdctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (sig_size != ED25519_SIG_SIZE)
                return -EBADMSG;
        if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1)
                return -EIO;
        return EVP_DigestVerify(ctx, sig, sig_size, data, n) == 1 ? 0 : -EBADMSG;
}

int sign_verify(const char *public_path, const void *data, size_t n, const uint8_t *sig, size_t sig_size) {
        _cleanup_(pkey_freep) EVP_PKEY *key = NULL;
        int r = load_key(public_path, false, &key);
        if (r < 0)
                return r;
        return verify_with(key, data, n, sig, sig_size);
}

int sign_verify_pem(const char *pem, size_t pem_size, const void *data, size_t n, const uint8_t *sig,
                    size_t sig_size) {
        _cleanup_(pkey_freep) EVP_PKEY *key = NULL;
        _cleanup_(bio_freep) BIO *b = BIO_new_mem_buf(pem, (int) pem_size);
        if (!b)
                return -ENOMEM;
        key = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
        if (!key || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519)
                return -EBADMSG;
        return verify_with(key, data, n, sig, sig_size);
}

int sign_verify_dir(const char *dir, const void *data, size_t n, const uint8_t *sig, size_t sig_size,
                    char **ret_key) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        struct dirent *de;
        bool any = false;

        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                if (!endswith(de->d_name, ".pub") && !endswith(de->d_name, ".pem"))
                        continue;
                p = path_join(dir, de->d_name);
                if (!p)
                        return -ENOMEM;
                any = true;
                if (sign_verify(p, data, n, sig, sig_size) == 0) {
                        if (ret_key) {
                                *ret_key = strdup(de->d_name);
                                if (!*ret_key)
                                        return -ENOMEM;
                        }
                        return 0;
                }
        }
        return any ? -EBADMSG : -ENOENT;
}

int sign_key_id(const char *public_path, char ret_hex[65]) {
        _cleanup_(pkey_freep) EVP_PKEY *key = NULL;
        uint8_t raw[32];
        size_t len = sizeof(raw);
        int r = load_key(public_path, false, &key);
        if (r < 0)
                return r;
        if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1)
                return -EIO;
        sha256_buffer_hex(raw, len, ret_hex);
        return 0;
}
