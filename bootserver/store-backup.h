/* The store's part of a backup and a restore (backup.h does the rest: the
 * backup directory, its manifest, the blobs). Backend-neutral;
 * store-sqlite-backup.c implements it for the sqlite database file. A
 * PostgreSQL store takes its snapshot with the server's own tools
 * (pg_dump, pg_basebackup) and adds its functions beside these. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A blob the state refers to: recorded in the catalog or named by an
 * image's artifact. */
typedef struct StoreBlobRef {
        char sha256[65];
        uint64_t size;
} StoreBlobRef;

/* What a snapshot holds, read from the copy itself. */
typedef struct StoreSnapshotInfo {
        int schema_version;
        uint64_t lease_epoch; /* the last fencing epoch handed out */
        uint64_t hosts, images, rollouts, audit, tokens;
        StoreBlobRef *blobs; /* sorted by digest, no duplicates */
        size_t n_blobs;
} StoreSnapshotInfo;

void store_snapshot_info_release(StoreSnapshotInfo *i);

/* How a snapshot went, for the operator and the benchmark. */
typedef struct StoreSnapshotStats {
        uint64_t pages;     /* database pages copied */
        unsigned steps;     /* copy steps taken */
        unsigned busy;      /* steps that found the database locked and waited */
        uint64_t usec;      /* from the start of the read to the end of the copy */
        uint64_t max_step_usec;
} StoreSnapshotStats;

/* Copies the database at db_path, which a running slipwayd may be writing,
 * into the new file dest_path as one consistent state (the last committed
 * transaction when the copy began), without stopping the writer; dest_path
 * is made durable (fsync) before this returns. ret_stats may be NULL.
 * -ENOENT when there is no database at db_path, -EEXIST when dest_path
 * exists; dest_path may be left behind on a failure, for the caller to
 * remove. */
int store_snapshot(const char *db_path, const char *dest_path, StoreSnapshotStats *ret_stats);

/* Reads what the database file at path holds (without changing it: no
 * migration). Caller releases ret with store_snapshot_info_release(). */
int store_snapshot_inspect(const char *path, StoreSnapshotInfo *ret);

/* Makes the database at path self-contained (its write-ahead log folded
 * into the file and removed), so the file alone is the whole state and can
 * be replaced by a rename, and reads its last fencing epoch into
 * ret_epoch. Nothing may be using the database. -ENOENT when there is
 * none. */
int store_settle(const char *path, uint64_t *ret_epoch);

/* Inside tx, in a restored state: raises the lease epoch counter to at
 * least floor (it never goes down), then gives every lease the state holds
 * a new epoch from it, so that no epoch handed out before floor is handed
 * out again, not even by a renewal. ret_epoch gets the counter afterwards,
 * ret_leases (may be NULL) the number of leases renumbered. */
int store_restore_epochs(StoreTx *tx, uint64_t floor, uint64_t *ret_epoch, uint64_t *ret_leases);
