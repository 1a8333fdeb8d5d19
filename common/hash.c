#include <fcntl.h>
#include <pthread.h>
#include <openssl/evp.h>

#include "hash.h"
#include "util.h"

/* SHA-256 fetched from OpenSSL's provider once: EVP_sha256() makes every
 * digest fetch it anew (a lookup under a lock), which showed in the
 * check-in's profile through the token hash. Falls back to EVP_sha256()
 * when the fetch fails. */
static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) {
        sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256_md(void) {
        (void) pthread_once(&sha256_once, sha256_fetch);
        return sha256_fetched ?: EVP_sha256();
}

struct Sha256 {
        EVP_MD_CTX *ctx;
};

Sha256 *sha256_new(void) {
        Sha256 *h = calloc(1, sizeof(*h));
        if (!h)
                return NULL;
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || EVP_DigestInit_ex(h->ctx, sha256_md(), NULL) != 1)
                return sha256_free(h);
        return h;
}

Sha256 *sha256_free(Sha256 *h) {
        if (h) {
                EVP_MD_CTX_free(h->ctx);
                free(h);
        }
        return NULL;
}

void sha256_update(Sha256 *h, const void *data, size_t n) {
        EVP_DigestUpdate(h->ctx, data, n);
}

void sha256_final_hex(Sha256 *h, char ret_hex[SHA256_HEX_SIZE]) {
        uint8_t md[SHA256_DIGEST_SIZE];
        unsigned len = 0;
        EVP_DigestFinal_ex(h->ctx, md, &len);
        hex_encode(md, SHA256_DIGEST_SIZE, ret_hex);
}

void sha256_buffer_hex(const void *data, size_t n, char ret_hex[SHA256_HEX_SIZE]) {
        uint8_t md[SHA256_DIGEST_SIZE];
        EVP_Digest(data, n, md, NULL, sha256_md(), NULL);
        hex_encode(md, SHA256_DIGEST_SIZE, ret_hex);
}

int sha256_fd_hex(int fd, char ret_hex[SHA256_HEX_SIZE], uint64_t *ret_size) {
        _cleanup_sha256_free_ Sha256 *h = sha256_new();
        _cleanup_free_ uint8_t *buf = NULL;
        uint64_t total = 0;
        const size_t bufsize = 1024 * 1024;

        buf = malloc(bufsize);
        if (!h || !buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf, bufsize);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                sha256_update(h, buf, (size_t) n);
                total += (uint64_t) n;
        }
        sha256_final_hex(h, ret_hex);
        if (ret_size)
                *ret_size = total;
        return 0;
}

int sha256_file_hex(const char *path, char ret_hex[SHA256_HEX_SIZE], uint64_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return sha256_fd_hex(fd, ret_hex, ret_size);
}

void sha256_seed_bytes(const char *seed, const char *label, uint8_t ret[16]) {
        uint8_t md[SHA256_DIGEST_SIZE];
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned len = 0;

        /* a context allocation failing leaves zeros, never garbage */
        memset(md, 0, sizeof(md));
        if (ctx && EVP_DigestInit_ex(ctx, sha256_md(), NULL) == 1) {
                EVP_DigestUpdate(ctx, seed, strlen(seed));
                EVP_DigestUpdate(ctx, "/", 1);
                EVP_DigestUpdate(ctx, label, strlen(label));
                EVP_DigestFinal_ex(ctx, md, &len);
        }
        EVP_MD_CTX_free(ctx);
        memcpy(ret, md, 16);
}

void uuid_from_seed(const char *seed, const char *label, char ret[37]) {
        uint8_t b[16];

        sha256_seed_bytes(seed, label, b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        snprintf(ret, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
