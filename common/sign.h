/* Ed25519 keys and signatures (OpenSSL). Keys are PEM files: PKCS#8 for the
 * private key, SubjectPublicKeyInfo for the public one. Signatures are the raw
 * 64 bytes. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

#define ED25519_SIG_SIZE 64

/* Writes a new key pair. The private key file is created 0600 and both are
 * written atomically; existing files are not overwritten (-EEXIST). */
int sign_keygen(const char *private_path, const char *public_path);

/* Signs data with the private key in private_path. ret_sig gets 64 bytes.
 * Returns -ENOENT when the key is missing, -EBADMSG when it is not an
 * Ed25519 private key. */
int sign_data(const char *private_path, const void *data, size_t n, uint8_t ret_sig[ED25519_SIG_SIZE]);

/* Verifies sig over data against the public key in public_path. Returns 0 when
 * valid, -EBADMSG when the signature does not match, other errors for keys. */
int sign_verify(const char *public_path, const void *data, size_t n, const uint8_t *sig, size_t sig_size);

/* Same, against a PEM public key held in memory. */
int sign_verify_pem(const char *pem, size_t pem_size, const void *data, size_t n, const uint8_t *sig,
                    size_t sig_size);

/* Verifies against every "*.pub" (or "*.pem") file in dir. Returns 0 when one
 * key matches and stores its file name in ret_key (may be NULL; caller frees);
 * -EBADMSG when none does; -ENOENT when the directory holds no key. */
int sign_verify_dir(const char *dir, const void *data, size_t n, const uint8_t *sig, size_t sig_size,
                    char **ret_key);

/* Hex SHA-256 of the raw public key, a stable short name for a key. */
int sign_key_id(const char *public_path, char ret_hex[65]);
