/* The sqlite driver of the store (store.h, store-db.h): one database (WAL)
 * in the state directory; one writer connection shared by the HTTP worker
 * threads behind one mutex, which a write transaction holds from its begin
 * to its end, and a pool of read-only connections on which read transactions
 * run beside it. The store's areas do not include this header (they use
 * store-db.h); it is for the driver and for tests that look into the
 * database through sqlite's own calls. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "store-db.h"
#include "store.h"

/* The writer connection of s, for tests that look into the database
 * between transactions (never while one is open on another thread). */
sqlite3 *store_sqlite(StoreDb *s);

/* The connection a transaction runs on, NULL when it is not sqlite's;
 * whether a database is sqlite's. For the driver's own files
 * (store-sqlite-backup.c). */
sqlite3 *sqlite_tx_handle(StoreTx *tx);
bool store_db_is_sqlite(StoreDb *s);

/* Maps a sqlite result code to a negative errno: SQLITE_FULL -ENOSPC,
 * SQLITE_CONSTRAINT -EEXIST, SQLITE_BUSY/LOCKED -EBUSY, SQLITE_NOMEM -ENOMEM,
 * SQLITE_READONLY/PERM -EROFS, others -EIO; 0 for OK, ROW and DONE. */
int sqlite_errno(int rc);

/* Prepares sql on s for one use; a negative errno (the message kept for
 * store_last_error(), logged at debug) on failure. The caller finalizes it
 * (_cleanup_sqlite_stmt_). */
int sqlite_prepare(sqlite3 *s, const char *sql, sqlite3_stmt **ret);
static inline void sqlite_finalizep(sqlite3_stmt **st) {
        if (*st)
                sqlite3_finalize(*st);
}
#define _cleanup_sqlite_stmt_ _cleanup_(sqlite_finalizep)

/* Steps st as db_step() does: 1 for a row, 0 when done, a negative errno. */
int sqlite_step(sqlite3_stmt *st);
