/* OpenPGP signatures of RPM packages, checked with librpm against the keys a
 * repository lists (gpgkey), with the meaning dnf gives gpgcheck: a package
 * from a repository with gpgcheck on must carry a valid signature made by one
 * of that repository's own keys. */
#pragma once

#include <jansson.h>

#include "definition.h"
#include "lock.h"

/* A key ID: 16 lowercase hex digits, and the NUL. */
#define SIGCHECK_KEY_ID_SIZE 17
/* A fingerprint: 40 (v4 keys) or 64 lowercase hex digits, and the NUL. */
#define SIGCHECK_FINGERPRINT_SIZE 65

/* One repository's keys: its gpgcheck setting and a librpm keyring of the
 * keys (and their subkeys) its gpgkey lists. */
typedef struct RepoKeys RepoKeys;

/* The keys of every repository of a definition. */
typedef struct Trust Trust;

/* Reads the keys repo lists (files or http(s) URLs, each holding one or more
 * ASCII-armored or binary OpenPGP public keys). gpgcheck on with no gpgkey,
 * an unreadable key file and a file without a usable key are errors, logged
 * once with the definition's file:line (file may be NULL). */
int repo_keys_load(const RepoDef *repo, const char *file, RepoKeys **ret);
RepoKeys *repo_keys_free(RepoKeys *k);
static inline void repo_keys_freep(RepoKeys **k) {
        repo_keys_free(*k);
}
#define _cleanup_repo_keys_free_ _cleanup_(repo_keys_freep)

/* The repository's id, and whether its packages' signatures are checked. */
const char *repo_keys_repo(const RepoKeys *k);
bool repo_keys_gpgcheck(const RepoKeys *k);
/* The repository's timeout and minrate (definition.h; 0: defaults), which
 * its package downloads use. k may be NULL: both 0. */
void repo_keys_transfer_limits(const RepoKeys *k, unsigned *ret_timeout, uint64_t *ret_minrate);
/* The fingerprint of the listed key that has key_id (its own or a subkey's),
 * or NULL. */
const char *repo_keys_fingerprint(const RepoKeys *k, const char *key_id);

/* Loads the keys of every repository of def (repo_keys_load()) and warns
 * once per repository that has gpgcheck off. */
int trust_load(const ImageDef *def, Trust **ret);
Trust *trust_free(Trust *t);
static inline void trust_freep(Trust **t) {
        trust_free(*t);
}
#define _cleanup_trust_free_ _cleanup_(trust_freep)

/* The keys of repository id, or NULL when the definition has no such repo. */
const RepoKeys *trust_find(const Trust *t, const char *id);

/* What the build key needs of the trust: per repository its id, gpgcheck and
 * the fingerprints of its keys, as JSON (new reference). */
int trust_to_json(const Trust *t, json_t **ret);

/* Checks the signature of the RPM file at path against the keys of k, before
 * anything trusts the file. `what` names the package in the one error this
 * logs (its NEVRA, or its file name). On success ret_key_id gets the ID of
 * the key that made the signature, or "" when k has gpgcheck off and nothing
 * was checked. Returns 0; -EBADMSG when the package is not signed, its
 * signature is bad or it is not an RPM; -ENOKEY when the signing key is not
 * one of k's. */
int sigcheck_package(const RepoKeys *k, const char *path, const char *what, char ret_key_id[SIGCHECK_KEY_ID_SIZE]);

/* Verifies sig (sig_size bytes: an ASCII-armored or binary detached OpenPGP
 * signature, as repodata/repomd.xml.asc) over the size bytes of data with
 * the keys of k, in-process. ret_key_id gets the signing key's ID when the
 * signature could be read. Returns 0; -EBADMSG when sig is not a signature
 * or does not verify; -ENOKEY when the key is not one of k's. reason gets a
 * short explanation of a failure; nothing is logged. */
int sigcheck_detached(const RepoKeys *k, const void *data, size_t size, const char *sig, size_t sig_size,
                      char ret_key_id[SIGCHECK_KEY_ID_SIZE], char *reason, size_t reason_size);

/* After every package of l was checked (each key_id set, NULL for packages
 * of repositories with gpgcheck off): records in each of l's repositories
 * its gpgcheck and the sorted fingerprints of the keys that signed its
 * packages. */
int trust_annotate_lock(const Trust *t, Lock *l);
