/* The sqlite driver's snapshot of a database (store-backup.h), with
 * sqlite's online backup API. */
#include <time.h>

#include "fileio.h"
#include "log.h"
#include "store-backup.h"
#include "store-driver.h"
#include "store-sqlite.h"
#include "util.h"

/* store-backup.h. The copy runs inside one read transaction, on a reader:
 * in WAL mode a reader never blocks the writer and sees one committed state
 * from its begin to its end, so every step copies pages of the same state
 * and the copy never starts over, however much the server writes meanwhile.
 * (sqlite's documentation steps a copy in parts with pauses between: that
 * is for rollback mode, where a reader blocks writers; in WAL mode, without
 * the enclosing read, every commit would restart the copy.) Checkpoints
 * cannot pass the read until it ends, so the log grows for that long. */
int store_db_snapshot(StoreDb *st, const char *dest_path, StoreSnapshotStats *ret_stats) {
        StoreSnapshotStats stats = {};
        _cleanup_store_tx_ StoreTx *tx = NULL;
        sqlite3_backup *b = NULL;
        sqlite3 *dest = NULL;
        uint64_t start = now_usec();
        int rc, r;

        /* PostgreSQL's backups are its own tools' (docs/operations.md). */
        if (!store_db_is_sqlite(st))
                return -EOPNOTSUPP;
        if (path_exists(dest_path))
                return -EEXIST;
        r = store_tx_begin(st, STORE_TX_READ, &tx);
        /* The read, and the state it sees, starts with the first statement. */
        if (r >= 0) {
                rc = sqlite3_exec(sqlite_tx_handle(tx), "SELECT count(*) FROM sqlite_schema;", NULL, NULL, NULL);
                r = rc == SQLITE_OK ? 0 : sqlite_errno(rc) ?: -EIO;
        }
        if (r >= 0) {
                rc = sqlite3_open_v2(dest_path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
                r = rc == SQLITE_OK ? 0 : sqlite_errno(rc) ?: -EIO;
        }
        if (r >= 0 && !(b = sqlite3_backup_init(dest, "main", sqlite_tx_handle(tx), "main"))) {
                store_remember_error("sqlite", "backup", sqlite3_errmsg(dest));
                r = -EIO;
        }
        while (r >= 0) {
                uint64_t t = now_usec();

                rc = sqlite3_backup_step(b, 4096);
                stats.steps++;
                stats.max_step_usec = MAX(stats.max_step_usec, now_usec() - t);
                if (rc == SQLITE_DONE)
                        break;
                if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
                        stats.busy++;
                        nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
                } else if (rc != SQLITE_OK)
                        r = sqlite_errno(rc) ?: -EIO;
        }
        if (b) {
                stats.pages = (uint64_t) sqlite3_backup_pagecount(b);
                rc = sqlite3_backup_finish(b);
                if (r >= 0 && rc != SQLITE_OK)
                        r = sqlite_errno(rc) ?: -EIO;
        }
        stats.usec = now_usec() - start;
        if (dest && sqlite3_close_v2(dest) != SQLITE_OK && r >= 0)
                r = -EIO;
        if (r >= 0)
                r = fsync_path(dest_path);
        if (r >= 0 && ret_stats)
                *ret_stats = stats;
        return r;
}
