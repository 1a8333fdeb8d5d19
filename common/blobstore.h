/* The blob store layout slipway-build's store and slipwayd's state
 * directory share, under a root directory:
 *
 *     ROOT/blobs/sha256/<xx>/<hex>   a blob, named by the SHA-256 of its
 *                                    bytes (xx: the first two digits), 0444
 *     ROOT/tmp/                      blobs being written
 *
 * A blob is written to a new file in tmp/ and hashed as it is written, then
 * fsynced, checked against the name it is to have, made read-only, renamed
 * into place, and the directory is fsynced: a crash leaves at most a file in
 * tmp/ (which each owner empties in its own way), never part of a blob.
 *
 * One errno map for every user:
 *   -EINVAL   a name that is not a sha256 digest (64 lowercase hex digits)
 *   -EBADMSG  bytes that do not hash to the name they were written for
 *   -ENOENT   a blob that is not there
 *   -ENOMEM   out of memory
 * and otherwise the errno of the call that failed. Nothing here logs. */
#pragma once

#include <stdint.h>

#include "macro.h"

#define BLOBSTORE_BLOBS_DIR "blobs/sha256"
#define BLOBSTORE_TMP_DIR "tmp"

/* ROOT/blobs/sha256/<xx>/<hex> in *ret (caller frees), whether the blob
 * exists or not. -EINVAL when hex is not a digest. */
int blobstore_path(const char *root, const char *hex, char **ret);

/* 1 when the blob is there, 0 when not; -EINVAL as above. */
int blobstore_has(const char *root, const char *hex);

typedef struct BlobstoreWriter BlobstoreWriter;

/* Starts writing a blob into the store at root. expect is the digest the
 * bytes must hash to (-EINVAL when it is not one), or NULL when the blob is
 * named by whatever they hash to. When expect names a blob the store has,
 * nothing is written: the bytes are only hashed, to be checked. */
int blobstore_writer_new(const char *root, const char *expect, BlobstoreWriter **ret);

/* Appends n bytes. After a failure every later call returns it again. */
int blobstore_writer_write(BlobstoreWriter *w, const void *data, size_t n);

/* Finishes the blob and frees w, in every case: -EBADMSG when the bytes do
 * not hash to expect; else the file is made durable and renamed into place
 * (when the blob appeared meanwhile, the one there stays). Returns 1 when
 * this made the blob, 0 when it was there already; -ENOENT when it was
 * there when w began (so nothing was written) but is gone now. ret_hex (65
 * bytes) and ret_size (may be NULL) get its digest and size. */
int blobstore_writer_commit(BlobstoreWriter *w, char *ret_hex, uint64_t *ret_size);

/* Discards an unfinished blob (its temporary file goes) and frees w.
 * Accepts NULL; returns NULL. */
BlobstoreWriter *blobstore_writer_free(BlobstoreWriter *w);
static inline void blobstore_writer_freep(BlobstoreWriter **w) {
        blobstore_writer_free(*w);
}
#define _cleanup_blobstore_writer_free_ _cleanup_(blobstore_writer_freep)
