/* The store's part of a backup and a restore (backup.h does the rest: the
 * backup directory, its manifest, the blobs). The snapshot is the driver's
 * (store-sqlite.c); the rest is an area (store-backup.c) written on the
 * statement API. A PostgreSQL store takes its snapshot with the server's
 * own tools (pg_dump, pg_basebackup) in its driver's function. */
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

/* Copies the database of s, which a running slipwayd may be writing
 * through its own connections, into the new file dest_path as one
 * consistent state (the last commit when the copy began), without making
 * the writers wait; dest_path is fsynced before this returns. ret_stats may
 * be NULL. -EEXIST when dest_path exists; on a failure dest_path may be
 * left, for the caller to remove. The driver implements it (store-sqlite.c:
 * sqlite's online backup API). */
int store_db_snapshot(StoreDb *s, const char *dest_path, StoreSnapshotStats *ret_stats);

/* Inside tx: what the state holds. Caller releases ret with
 * store_snapshot_info_release(). */
int store_snapshot_read(StoreTx *tx, StoreSnapshotInfo *ret);

/* Inside tx, in a restored state: raises the lease epoch counter to at
 * least floor (it never goes down), then gives every lease the state holds
 * a new epoch from it, so that no epoch handed out before floor is handed
 * out again, not even by a renewal. ret_epoch gets the counter afterwards,
 * ret_leases (may be NULL) the number of leases renumbered. */
int store_restore_epochs(StoreTx *tx, uint64_t floor, uint64_t *ret_epoch, uint64_t *ret_leases);

/* PostgreSQL's part (-EOPNOTSUPP on sqlite). In tx, a read transaction:
 * its snapshot exported, for pg_dump --snapshot to dump the state tx sees
 * while tx stays open (*ret_id: caller frees). */
int store_pg_snapshot_export(StoreTx *tx, char **ret_id);
/* The server's version as server_version_num (150004). */
int store_pg_server_version(StoreTx *tx, int *ret);
/* The sessions of clients on the database besides tx's own: slipwayd
 * instances, and anyone else connected. */
int store_pg_other_sessions(StoreTx *tx, uint64_t *ret);
