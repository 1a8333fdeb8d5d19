/* Blobs on the server: files named by their SHA-256 under
 * STATE/blobs/sha256/<xx>/<hex>, written through STATE/tmp (hash while
 * writing, fsync, rename, fsync the directory), served from their file
 * descriptor. The catalog in the store (store-catalog.h) records which
 * exist. No HTTP, no SQL. */
#pragma once

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct BlobWriter BlobWriter;

/* Path of the blob (present or not); caller frees. NULL when hex is not a
 * sha256 digest. */
char *blob_path(const char *state_dir, const char *hex);

/* Starts an upload of the blob named hex under state_dir. -EINVAL when hex is not a lowercase
 * sha256 digest. When the blob exists already the writer discards what it is
 * given. */
int blob_writer_new(const char *state_dir, const char *hex, BlobWriter **ret);
/* Appends data; returns a negative errno (-ENOSPC, -EFBIG ...) once writing
 * failed. */
int blob_writer_write(BlobWriter *w, const void *data, size_t n);
/* Finishes the upload: checks the digest (-EBADMSG when it differs), makes
 * the file durable, renames it into place and records it in db at now
 * (audited as actor, in a transaction of its own). ret_created is false when
 * the blob was already there. Frees w in every case. */
int blob_writer_commit(StoreDb *db, BlobWriter *w, const char *actor, int64_t now, bool *ret_created);
/* Discards an unfinished upload and frees w. */
void blob_writer_abort(BlobWriter *w);

/* Inside tx: 1 when the blob's file exists under state_dir with size (when
 * size_check is not UINT64_MAX), recording it (as first seen at now) when it
 * was not, else 0. */
int blobs_present(const char *state_dir, StoreTx *tx, const char *hex, uint64_t size_check, int64_t now);

/* With the db lock held, inside the caller's transaction: forgets the blobs
 * among candidates that no image references any more, and unreferenced
 * blobs recorded before orphan_cutoff (Unix time; younger orphans may belong
 * to a push in progress). Returns their digests in ret_removed (caller frees
 * with strv_free) so the caller can unlink them after committing. */
int blobs_collect_garbage(StoreTx *tx, char *const *candidates, int64_t orphan_cutoff, char ***ret_removed);
/* Unlinks the files of the given blobs under state_dir. */
void blobs_unlink(const char *state_dir, char *const *hexes);
