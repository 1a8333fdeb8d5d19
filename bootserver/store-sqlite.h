/* The sqlite backend of the store (store.h): one database (WAL) in the state
 * directory; one writer connection shared by the HTTP worker threads behind
 * one mutex, which a write transaction holds from its begin to its end, and a
 * pool of read-only connections on which read transactions run beside it. This header is
 * for the store's own files (store-*.c) and for tests that look into the
 * database; the rest of slipwayd uses store.h. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "store.h"

/* The connection tx runs on. */
sqlite3 *store_tx_sqlite(StoreTx *tx);
/* The writer connection of s, for tests that look into the database
 * between transactions (never while one is open on another thread). */
sqlite3 *store_sqlite(StoreDb *s);

/* The prepared statement for sql on tx's connection, made once per
 * connection and kept (sql must be a string that lives as long as the
 * program: a literal). It comes reset with no bindings; the caller must not
 * finalize it: _cleanup_stmt_reset_ resets it on scope exit, and the end of
 * the transaction resets whatever is left running. */
int store_stmt(StoreTx *tx, const char *sql, sqlite3_stmt **ret);
static inline void sqlite3_resetp(sqlite3_stmt **st) {
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}
#define _cleanup_stmt_reset_ _cleanup_(sqlite3_resetp)

/* Runs sql (one or more statements, no rows) on tx's connection. */
int store_exec(StoreTx *tx, const char *sql);

/* Maps a sqlite result code to a negative errno: SQLITE_FULL -ENOSPC,
 * SQLITE_CONSTRAINT -EEXIST, SQLITE_BUSY/LOCKED -EBUSY, others -EIO. */
int db_errno(int rc);

/* Steps st: 1 when a row is ready, 0 when the statement is done, a negative
 * errno (db_errno(), logged at debug) on an error. A loop written
 * `while ((r = db_step(st)) > 0)` and followed by `if (r < 0)` cannot take an
 * error for the end of the rows. */
int db_step(sqlite3_stmt *st);

/* Prepares sql on s for one use; -EIO (logged at debug) on failure. The
 * caller finalizes it (_cleanup_stmt_). */
int db_prepare(sqlite3 *s, const char *sql, sqlite3_stmt **ret);

static inline void sqlite3_finalizep(sqlite3_stmt **st) {
        if (*st)
                sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* Column text duplicated (NULL stays NULL); -ENOMEM is reported as NULL too,
 * so callers that need the value check it. */
char *db_column_strdup(sqlite3_stmt *st, int col);
