/* The store's part of a backup (store-backup.h) for the sqlite database:
 * sqlite's online backup API, read beside the running server. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "store-backup.h"
#include "store-sqlite.h"
#include "util.h"

/* Pages copied per step. The whole copy reads one snapshot (see
 * store_snapshot()), so the step size does not change what is copied; it
 * only bounds how long one call holds sqlite's mutex of the source
 * connection, which nothing else uses. */
#define SNAPSHOT_STEP_PAGES 4096

static inline void sqlite3_closep(sqlite3 **s) {
        if (*s)
                sqlite3_close_v2(*s);
}
#define _cleanup_sqlite_ _cleanup_(sqlite3_closep)

static int open_db(const char *path, int flags, sqlite3 **ret) {
        sqlite3 *s = NULL;
        int rc = sqlite3_open_v2(path, &s, flags | SQLITE_OPEN_FULLMUTEX, NULL);

        if (rc != SQLITE_OK) {
                log_debug("sqlite: cannot open '%s': %s", path, s ? sqlite3_errmsg(s) : sqlite3_errstr(rc));
                sqlite3_close_v2(s);
                return db_errno(rc) ?: -EIO;
        }
        sqlite3_busy_timeout(s, 10000);
        *ret = s;
        return 0;
}

static int exec(sqlite3 *s, const char *sql) {
        int rc = sqlite3_exec(s, sql, NULL, NULL, NULL);

        if (rc != SQLITE_OK) {
                log_debug("sqlite: \"%s\": %s", sql, sqlite3_errmsg(s));
                return db_errno(rc) ?: -EIO;
        }
        return 0;
}

/* The integer of a one-row, one-column query; 0 when there is no row. */
static int query_u64(sqlite3 *s, const char *sql, uint64_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = db_prepare(s, sql, &st);

        if (r >= 0)
                r = db_step(st);
        if (r < 0)
                return r;
        *ret = r > 0 ? (uint64_t) sqlite3_column_int64(st, 0) : 0;
        return 0;
}

/* Copies src into dest, all steps in the read transaction the caller
 * opened on src. */
static int copy_pages(sqlite3 *src, sqlite3 *dest, StoreSnapshotStats *stats) {
        sqlite3_backup *b = sqlite3_backup_init(dest, "main", src, "main");
        int rc;

        if (!b) {
                log_debug("sqlite: cannot start the backup: %s", sqlite3_errmsg(dest));
                return -EIO;
        }
        for (;;) {
                uint64_t t = now_usec();

                rc = sqlite3_backup_step(b, SNAPSHOT_STEP_PAGES);
                stats->steps++;
                stats->max_step_usec = MAX(stats->max_step_usec, now_usec() - t);
                if (rc == SQLITE_DONE)
                        break;
                if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
                        /* What sqlite's documentation does: wait a little and step again. */
                        stats->busy++;
                        nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
                        continue;
                }
                if (rc != SQLITE_OK)
                        break;
        }
        stats->pages = (uint64_t) sqlite3_backup_pagecount(b);
        if (rc != SQLITE_DONE) {
                log_debug("sqlite: backup step: %s", sqlite3_errstr(rc));
                sqlite3_backup_finish(b);
                return db_errno(rc) ?: -EIO;
        }
        rc = sqlite3_backup_finish(b);
        if (rc != SQLITE_OK) {
                log_debug("sqlite: backup finish: %s", sqlite3_errmsg(dest));
                return db_errno(rc) ?: -EIO;
        }
        return 0;
}

/* The copy runs inside one read transaction on the source, opened before
 * the first step. In WAL mode (the only mode slipwayd runs its database
 * in) a reader never blocks a writer and sees one committed state from its
 * begin to its end, so every step copies pages of the same state and the
 * copy never has to start over, however much the server writes meanwhile.
 * Stepping in small parts with pauses, as sqlite's documentation shows, is
 * for a database in rollback mode, where a reader does block writers; in
 * WAL mode the pauses would only make the copy take longer and, without
 * the enclosing read, restart it at every commit of the server. The one
 * cost is that checkpoints cannot pass the copy's snapshot until it ends,
 * so the server's write-ahead log grows for that long. */
int store_snapshot(const char *db_path, const char *dest_path, StoreSnapshotStats *ret_stats) {
        _cleanup_sqlite_ sqlite3 *src = NULL, *dest = NULL;
        StoreSnapshotStats stats = {};
        uint64_t start, dummy;
        int rc, r;

        if (!path_exists(db_path))
                return -ENOENT;
        if (path_exists(dest_path))
                return -EEXIST;
        r = open_db(db_path, SQLITE_OPEN_READWRITE, &src);
        if (r >= 0)
                r = exec(src, "PRAGMA query_only=1;");
        if (r >= 0)
                r = open_db(dest_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &dest);
        if (r < 0)
                return r;
        start = now_usec();
        r = exec(src, "BEGIN DEFERRED;");
        if (r < 0)
                return r;
        /* The read (and its snapshot) starts with the first statement. */
        r = query_u64(src, "SELECT count(*) FROM sqlite_schema", &dummy);
        if (r >= 0)
                r = copy_pages(src, dest, &stats);
        (void) exec(src, "COMMIT;");
        stats.usec = now_usec() - start;
        /* The copy alone is the whole database, in rollback mode, so
         * reading it opens no write-ahead log beside it (the server turns
         * WAL on again when it opens it). */
        if (r >= 0)
                r = exec(dest, "PRAGMA journal_mode=DELETE;");
        if (r < 0)
                return r;
        rc = sqlite3_close(dest);
        dest = NULL;
        if (rc != SQLITE_OK)
                return db_errno(rc) ?: -EIO;
        r = fsync_path(dest_path);
        if (r < 0)
                return r;
        if (ret_stats)
                *ret_stats = stats;
        return 0;
}

void store_snapshot_info_release(StoreSnapshotInfo *i) {
        free(i->blobs);
        *i = (StoreSnapshotInfo) {};
}

static int read_blobs(sqlite3 *s, StoreSnapshotInfo *i) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        size_t cap = 0;
        int r;

        /* A blob recorded in the catalog, or one an artifact names (which the
         * catalog records too, unless the state was changed by hand). */
        r = db_prepare(s,
                       "SELECT sha256, max(size) FROM (SELECT sha256, size FROM blobs UNION ALL "
                       "SELECT sha256, size FROM artifacts) GROUP BY sha256 ORDER BY sha256",
                       &st);
        while (r >= 0 && (r = db_step(st)) > 0) {
                const char *hex = (const char *) sqlite3_column_text(st, 0);
                StoreBlobRef *ref;

                if (!hex || !sha256_hex_valid(hex)) {
                        log_debug("sqlite: a blob named '%s' is no digest", strempty(hex));
                        return -EBADMSG;
                }
                ref = array_push((void **) &i->blobs, &i->n_blobs, &cap, sizeof *ref);
                if (!ref)
                        return -ENOMEM;
                memcpy(ref->sha256, hex, 65);
                ref->size = (uint64_t) sqlite3_column_int64(st, 1);
        }
        return r;
}

int store_snapshot_inspect(const char *path, StoreSnapshotInfo *ret) {
        _cleanup_sqlite_ sqlite3 *s = NULL;
        StoreSnapshotInfo i = {};
        uint64_t version = 0;
        int r;

        if (!path_exists(path))
                return -ENOENT;
        r = open_db(path, SQLITE_OPEN_READONLY, &s);
        if (r >= 0)
                r = exec(s, "BEGIN DEFERRED;");
        if (r >= 0)
                r = query_u64(s, "PRAGMA user_version", &version);
        if (r >= 0)
                r = query_u64(s, "SELECT value FROM meta WHERE key = 'lease_epoch'", &i.lease_epoch);
        if (r >= 0)
                r = query_u64(s, "SELECT count(*) FROM hosts", &i.hosts);
        if (r >= 0)
                r = query_u64(s, "SELECT count(*) FROM images", &i.images);
        if (r >= 0)
                r = query_u64(s, "SELECT count(*) FROM rollouts", &i.rollouts);
        if (r >= 0)
                r = query_u64(s, "SELECT count(*) FROM audit", &i.audit);
        if (r >= 0)
                r = query_u64(s, "SELECT count(*) FROM tokens", &i.tokens);
        if (r >= 0)
                r = read_blobs(s, &i);
        (void) exec(s, "COMMIT;");
        if (r < 0) {
                store_snapshot_info_release(&i);
                return r;
        }
        i.schema_version = (int) version;
        *ret = i;
        return 0;
}

int store_settle(const char *path, uint64_t *ret_epoch) {
        _cleanup_free_ char *wal = strdup_printf("%s-wal", path);
        sqlite3 *s = NULL;
        uint64_t epoch = 0;
        int rc, r;

        if (!wal)
                return -ENOMEM;
        if (!path_exists(path))
                return -ENOENT;
        r = open_db(path, SQLITE_OPEN_READWRITE, &s);
        if (r < 0)
                return r;
        /* Opening replays a log a crash left; the checkpoint writes all of it
         * into the file, and closing the last connection removes it. */
        r = exec(s, "PRAGMA wal_checkpoint(TRUNCATE);");
        if (r >= 0)
                r = query_u64(s, "SELECT value FROM meta WHERE key = 'lease_epoch'", &epoch);
        rc = sqlite3_close(s);
        if (r >= 0 && rc != SQLITE_OK)
                r = db_errno(rc) ?: -EIO;
        if (r < 0)
                return r;
        if (path_exists(wal))
                /* Another process has the database open. */
                return -EBUSY;
        r = fsync_path(path);
        if (r < 0)
                return r;
        *ret_epoch = epoch;
        return 0;
}

int store_restore_epochs(StoreTx *tx, uint64_t floor, uint64_t *ret_epoch, uint64_t *ret_leases) {
        _cleanup_stmt_reset_ sqlite3_stmt *up = NULL, *sel = NULL;
        int r;

        if (floor > INT64_MAX / 2)
                return -ERANGE;
        r = store_stmt(tx, "UPDATE meta SET value = max(value, ?) WHERE key = 'lease_epoch'", &up);
        if (r < 0)
                return r;
        sqlite3_bind_int64(up, 1, (sqlite3_int64) floor);
        r = db_step(up);
        /* The held leases in the order of their old epochs, numbered on
         * from the counter; then the counter past them. */
        if (r >= 0)
                r = store_exec(tx, "UPDATE hosts SET lease_epoch = (SELECT value FROM meta WHERE key = 'lease_epoch') +"
                                   "  (SELECT count(*) FROM hosts h WHERE h.lease_epoch IS NOT NULL AND"
                                   "   (h.lease_epoch < hosts.lease_epoch OR (h.lease_epoch = hosts.lease_epoch AND"
                                   "    h.id <= hosts.id)))"
                                   "  WHERE lease_epoch IS NOT NULL;"
                                   "UPDATE meta SET value = value + (SELECT count(*) FROM hosts WHERE lease_epoch IS NOT NULL)"
                                   "  WHERE key = 'lease_epoch';");
        if (r >= 0)
                r = store_stmt(tx,
                               "SELECT value, (SELECT count(*) FROM hosts WHERE lease_epoch IS NOT NULL) FROM meta "
                               "WHERE key = 'lease_epoch'",
                               &sel);
        if (r >= 0)
                r = db_step(sel);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        *ret_epoch = (uint64_t) sqlite3_column_int64(sel, 0);
        if (ret_leases)
                *ret_leases = (uint64_t) sqlite3_column_int64(sel, 1);
        return 0;
}
