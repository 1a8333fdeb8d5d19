/* SHA-256 over buffers, streams and files (OpenSSL EVP). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE 65

typedef struct Sha256 Sha256;

/* Streaming context. sha256_new() returns NULL on allocation failure. */
Sha256 *sha256_new(void);
Sha256 *sha256_free(Sha256 *h);
void sha256_update(Sha256 *h, const void *data, size_t n);
/* Writes the lowercase hex digest into ret_hex (65 bytes). The context can
 * not be updated afterwards. */
void sha256_final_hex(Sha256 *h, char ret_hex[SHA256_HEX_SIZE]);

static inline void sha256_freep(Sha256 **h) {
        sha256_free(*h);
}
#define _cleanup_sha256_free_ _cleanup_(sha256_freep)

void sha256_buffer_hex(const void *data, size_t n, char ret_hex[SHA256_HEX_SIZE]);

/* Hashes everything readable from fd (from its current offset). Optionally
 * returns the byte count. Returns 0 or a negative errno. */
int sha256_fd_hex(int fd, char ret_hex[SHA256_HEX_SIZE], uint64_t *ret_size);
int sha256_file_hex(const char *path, char ret_hex[SHA256_HEX_SIZE], uint64_t *ret_size);

/* The first 16 bytes of sha256(seed "/" label): stable pseudo-random bytes
 * for identifiers that must not change between two builds of the same input. */
void sha256_seed_bytes(const char *seed, const char *label, uint8_t ret[16]);

/* A version 4, RFC 4122 variant UUID string (36 chars + NUL) made of
 * sha256_seed_bytes(seed, label). */
void uuid_from_seed(const char *seed, const char *label, char ret[37]);
