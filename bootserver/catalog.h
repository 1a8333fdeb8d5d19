/* The image catalog: images published from uploaded blobs (a signed
 * manifest and the artifacts it names), looked up by ID, ID prefix,
 * name:version or name, listed and deleted. Works inside the caller's
 * transaction, writes the audit entry with the change; no HTTP, no SQL. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store-catalog.h"

struct BlobSite;
struct Manifest;

/* Resolves ref to an image ID: -ENOENT when nothing matches, -ENOTUNIQ
 * when an ID prefix matches several, -EINVAL when ref is malformed. */
int catalog_resolve(StoreTx *tx, const char *ref, char ret_id[65]);

/* Image id (release with catalog_image_release()); -ENOENT when there is none. */
int catalog_image_get(StoreTx *tx, const char *id, Image *ret);
/* Every image, newest first; caller frees with catalog_image_list_free(). */
int catalog_image_list(StoreTx *tx, Image **ret, size_t *ret_n);

/* Reads the manifest and signature blobs under state_dir, parses the
 * manifest and checks the signature against the keys in keys_dir. Runs
 * outside any transaction. Errors: -ENOENT or -EFBIG for a missing or
 * oversized blob (*ret_signature tells which: false the manifest, true the
 * signature), -EBADMSG for a manifest that does not parse (error gets why),
 * -ENOKEY when keys_dir is NULL, -EKEYREJECTED when no key verifies it (for
 * these two *ret_manifest is set all the same, for the message). On success
 * the caller frees *ret_manifest and *ret_key (the signer). */
int catalog_image_verify(const char *state_dir, const char *keys_dir, const char *manifest_hex,
                         const char *signature_hex, struct Manifest **ret_manifest, char **ret_key,
                         bool *ret_signature, char *error, size_t error_size);

/* Publishes the verified manifest m as image manifest_hex, audited as actor
 * at now, once each of its blobs is held by replicas instances. Every blob
 * must be present in site's directory (site's instance is recorded as their
 * holder): otherwise -ENOENT with their digests in *ret_missing (caller
 * frees with strv_free). When some blob has fewer holders the image is
 * recorded as replicating, visible nowhere until catalog_replicating_publish()
 * makes it an image. *ret_copies gets the fewest holders of its blobs (at
 * least replicas when it is visible). -EEXIST with the other image's id in
 * ret_existing when name:version is taken by another image, visible or
 * replicating; pushing the same image again is 0 with *ret_created false.
 * On failure the caller rolls back: nothing stays written. */
int catalog_image_publish(StoreTx *tx, const struct BlobSite *site, const struct Manifest *m,
                          const char *manifest_hex, const char *signature_hex, const char *key, const char *actor,
                          int64_t now, uint64_t replicas, char ***ret_missing, char ret_existing[65],
                          bool *ret_created, uint64_t *ret_copies);

/* Makes replicating image id visible when each of its blobs is held by at
 * least replicas instances, in the caller's transaction: 1 when it was
 * published, 0 when it still lacks copies (*ret_copies says how many the
 * scarcest blob has), -ENOENT when it is not replicating, -EEXIST when its
 * name:version was published meanwhile by another image. */
int catalog_replicating_publish(StoreTx *tx, const char *id, uint64_t replicas, int64_t now, uint64_t *ret_copies);

/* Resolves ref (name:version or an ID prefix of at least 8 digits) among
 * the replicating images; errors as catalog_resolve(). */
int catalog_resolve_replicating(StoreTx *tx, const char *ref, char ret_id[65]);

/* Deletes image id (already resolved; whether it is in use the caller
 * checked in the same transaction), visible or replicating, forgets
 * instance's copies of the blobs nothing references any more and audits it.
 * Their digests are returned in *ret_removed for the caller to unlink once
 * committed (blobs_unlink()). */
int catalog_image_delete(StoreTx *tx, const char *id, const char *instance, const char *actor, int64_t now,
                         char ***ret_removed);

/* Reads and parses the manifest blob manifest_hex under state_dir; caller
 * frees the manifest. */
int catalog_load_manifest(const char *state_dir, const char *manifest_hex, struct Manifest **ret);
