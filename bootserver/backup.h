/* Backups of slipwayd's state and their restore (docs/operations.md,
 * "Backup and restore"). A backup is a directory:
 *
 *     DIR/manifest.json              what the backup holds and its digests
 *     DIR/state.db                   the database, one consistent snapshot
 *     DIR/state.pgdump               or, from PostgreSQL, pg_dump's (custom
 *                                    format) of one snapshot
 *     DIR/enroll.key                 the key install secrets come from
 *     DIR/blobs/sha256/<xx>/<hex>    the blobs the state refers to (not
 *                                    with --no-blobs; then listed only)
 *
 * It is built under a temporary name beside DIR and renamed to DIR when
 * complete, so DIR is either absent (or as empty as it was) or whole. The
 * state directory's layout is the server's (STATE/state.db,
 * STATE/blobs/...). No SQL here: the store's part is store-backup.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store-backup.h"

#define BACKUP_MANIFEST "manifest.json"
#define BACKUP_FORMAT "slipway-backup/1"
/* How far a restore moves the lease epoch counter past the highest epoch
 * it knows (docs/operations.md, "After a restore"): more epochs than a
 * fleet can be granted between a backup and its restore. */
#define BACKUP_RESTORE_EPOCH_GAP (UINT64_C(1) << 32)

typedef struct BackupOptions {
        bool no_blobs;        /* list the blobs, do not keep them */
        const char *database; /* the PostgreSQL database of the state ([state]
                               * database), NULL for STATE/state.db */
} BackupOptions;

typedef struct BackupReport {
        StoreSnapshotStats snapshot;
        StoreSnapshotInfo info;
        char db_sha256[65];
        uint64_t db_size;
        char enroll_key_sha256[65]; /* empty: the state had none */
        char server_version[65], tool_version[65]; /* PostgreSQL's and pg_dump's */
        size_t linked, copied; /* blobs hard-linked, blobs copied */
        uint64_t blob_bytes;
        uint64_t usec; /* the whole backup */
} BackupReport;

void backup_report_release(BackupReport *r);

/* Writes a backup of the state under state_dir (its database in
 * o->database when set) to dir, which must not exist or be empty (-EEXIST
 * otherwise), at time now. The servers may be running. -ENOENT when
 * state_dir has no database; -ESTALE when a blob the
 * snapshot refers to went from state_dir before it was kept (an image
 * deleted meanwhile: try again). ret may be
 * NULL; on success the caller releases it. */
int backup_create(const char *state_dir, const char *dir, const BackupOptions *o, int64_t now, BackupReport *ret);

typedef struct RestoreReport {
        int64_t backup_created;
        int schema_version;
        uint64_t epoch_backup;   /* the counter in the backup */
        uint64_t epoch_previous; /* in the state it replaced (0: none) */
        uint64_t epoch_unfinished; /* known to a restore that did not finish (0: none) */
        uint64_t epoch;          /* the counter now */
        uint64_t leases_renumbered; /* held leases given new epochs */
        size_t blobs_present, blobs_copied;
        char **missing; /* blobs neither in the state nor in the backup */
        char *previous; /* where the replaced database was kept, or NULL */
        bool enroll_key_restored; /* the state had none; the backup's is in place */
        StoreSnapshotInfo info;
        uint64_t usec;
} RestoreReport;

void restore_report_release(RestoreReport *r);

/* Puts the backup in dir in place as the state under state_dir (created
 * when missing), which no server may be using (the caller holds its lock,
 * state_lock_take()); with database (NULL: STATE/state.db), into that
 * PostgreSQL database, which no client may be using (-EBUSY), from a
 * backup of a PostgreSQL store (pg_restore, one transaction; -EPROTONOSUPPORT
 * for one of the other store). Checks the manifest's digests first (-EBADMSG),
 * then brings every blob the backup's state refers to into state_dir; when
 * some are in neither, report->missing names them and -ENOENT is returned
 * with the old database untouched. Then the database is replaced in one
 * rename, its lease epoch counter raised past anything that can have been
 * handed out since the backup (and the leases it holds renumbered above
 * that), and the restore audited as actor at now.
 * report is filled as far as the restore went, also on a failure; the
 * caller releases it. */
int backup_restore(const char *state_dir, const char *database, const char *dir, int64_t now, const char *actor,
                   RestoreReport *report);

/* Takes the state directory's lock (STATE/slipwayd.lock), which slipwayd
 * holds while it serves and a restore while it runs: the lock's file
 * descriptor in ret_fd (close it to let go). -EBUSY when another process
 * holds it; ret_holder (may be NULL) then gets its pid, or 0 when unknown. */
int state_lock_take(const char *state_dir, int *ret_fd, pid_t *ret_holder);

/* Tests: when backup_fail_at is not 0, the step of a backup or restore
 * that makes backup_steps equal to it fails with -EIO, as a failed write
 * would. Each step also is a crash point (crashpoint.h) named "backup-…"
 * or "restore-…". */
extern unsigned backup_fail_at, backup_steps;
