/* Blobs on the server: files named by their SHA-256 under
 * STATE/blobs/sha256/<xx>/<hex>, written through STATE/tmp (hash while
 * writing, fsync, rename, fsync the directory), served from their file
 * descriptor. Each instance keeps its own directory; the catalog in the
 * store (store-catalog.h) records which blobs exist and which instances
 * hold a copy. No HTTP, no SQL. */
#pragma once

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct BlobWriter BlobWriter;

/* This instance's blobs: its directory, its name among the holders and the
 * URL its peers fetch its copies at. The strings are the caller's. */
typedef struct BlobSite {
        const char *state_dir;
        const char *instance;
        const char *url;
} BlobSite;

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
 * the file durable, renames it into place and records it in db at now,
 * with site's instance as a holder, in a transaction of its own: audited as
 * actor, or not at all for a copy fetched from a peer (actor NULL).
 * ret_created is false when the blob was already there. Frees w in every
 * case. */
int blob_writer_commit(StoreDb *db, BlobWriter *w, const BlobSite *site, const char *actor, int64_t now,
                       bool *ret_created);
/* Discards an unfinished upload and frees w. */
void blob_writer_abort(BlobWriter *w);

/* Inside tx: 1 when the blob's file exists in site's directory with size
 * (when size_check is not UINT64_MAX), recording it (as first seen at now)
 * when it was not and site's instance as its holder, else 0. */
int blobs_present(const BlobSite *site, StoreTx *tx, const char *hex, uint64_t size_check, int64_t now);

/* Garbage collection of one instance's copies, inside the caller's write
 * transaction: among candidates, the blobs no image (visible or
 * replicating) references any more, and the unreferenced blobs recorded
 * before orphan_cutoff (Unix time; younger orphans may belong to a push in
 * progress; a blob whose image was deleted counts as recorded at 0).
 * Forgets instance's copy of each; a blob no instance holds any more leaves
 * the catalog, one that others still hold is marked for their collection.
 * Returns the digests in ret_removed (caller frees with strv_free) so the
 * caller can unlink its own files after committing. */
int blobs_collect_garbage(StoreTx *tx, const char *instance, char *const *candidates, int64_t orphan_cutoff,
                          char ***ret_removed);
/* Unlinks the files of the given blobs under state_dir. */
void blobs_unlink(const char *state_dir, char *const *hexes);
