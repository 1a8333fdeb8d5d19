/* The statement API the store's areas (store-<area>.c) are written against:
 * one implementation of each area, whatever database runs under it. A
 * driver (store-sqlite.c) implements these functions and store.h; the areas
 * hold SQL text and call only what is declared here.
 *
 * A statement is a cached one: store_stmt() gives the same DbStmt for the
 * same SQL text on a connection, prepared the first time. Parameters are
 * numbered from 1 (?1 is the first), columns from 0.
 *
 * Errors: a binding that fails (a parameter out of range, no memory) is kept
 * in the statement and returned by the next db_step(), so a caller binds
 * without checking each call and no error is lost. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "store.h"

typedef struct DbStmt DbStmt;

/* The prepared statement for sql on tx's connection, made once per
 * connection and kept, found by its text (sql need not outlive the call: a
 * text made again in the same buffer finds its own). It comes reset with no bindings; the caller does not
 * free it: _cleanup_stmt_reset_ resets it on scope exit, and the end of the
 * transaction resets whatever is left running. */
int store_stmt(StoreTx *tx, const char *sql, DbStmt **ret);

/* Whether tx runs on PostgreSQL, for the few statements that have no text
 * both databases read the same (JSON: sqlite's json_each(), PostgreSQL's
 * jsonb_each()): an area picks one of two literals with it. */
bool store_tx_postgresql(StoreTx *tx);

/* Marks tx as one that appended to the audit log (store-audit.c): its
 * commit calls store_db_watch_audit()'s function. */
void store_tx_audited(StoreTx *tx);

/* Makes st ready to run again from the start, its bindings cleared (each
 * parameter NULL) and a kept binding error forgotten. NULL is fine. */
void db_reset(DbStmt *st);
static inline void db_resetp(DbStmt **st) {
        db_reset(*st);
}
#define _cleanup_stmt_reset_ _cleanup_(db_resetp)

/* Binds parameter i. Text is not copied: it must stay valid until st is
 * reset; NULL text binds SQL NULL. A failure is kept for db_step(). */
void db_bind_int64(DbStmt *st, int i, int64_t v);
void db_bind_int(DbStmt *st, int i, int v);
void db_bind_bool(DbStmt *st, int i, bool v);
void db_bind_text(DbStmt *st, int i, const char *v);
void db_bind_null(DbStmt *st, int i);

/* Steps st: 1 when a row is ready, 0 when the statement is done, a negative
 * errno on an error (a failed binding included): -EEXIST for a constraint,
 * -EBUSY, -ENOSPC, -ENOMEM, -EROFS, else -EIO; the database's message is
 * kept for store_last_error() and logged at debug. A loop written
 * `while ((r = db_step(st)) > 0)` and followed by `if (r < 0)` cannot take an
 * error for the end of the rows. */
int db_step(DbStmt *st);

/* The rows the last completed run of st inserted, updated or deleted (0 for
 * a statement that changes nothing); valid once db_step() returned 0. */
int64_t db_changes(DbStmt *st);

/* Column col of the row db_step() made ready. NULL reads as 0, false or
 * NULL text. Text belongs to st and is valid until the next step or reset. */
int64_t db_column_int64(DbStmt *st, int col);
int db_column_int(DbStmt *st, int col);
bool db_column_bool(DbStmt *st, int col);
const char *db_column_text(DbStmt *st, int col);
bool db_column_is_null(DbStmt *st, int col);
/* Column text duplicated (NULL stays NULL); -ENOMEM is reported as NULL too,
 * so callers that need the value check it (with db_column_is_null() where
 * the column may be NULL). The caller frees it. */
char *db_column_strdup(DbStmt *st, int col);
/* Column text duplicated into *ret (NULL for SQL NULL): 0, or -ENOMEM with
 * *ret NULL. The caller frees it. */
int db_column_dup(DbStmt *st, int col, char **ret);

/* Reads the row db_step() made ready into item, a zeroed element of the
 * caller's array: 0, or a negative errno (-ENOMEM) that ends the rows. */
typedef int (*DbRowFunc)(DbStmt *st, void *item);

/* Steps st through its rows, each read by row into a new zeroed element at
 * the end of the array *v of *n elements of size bytes (with room for
 * *cap, as array_push()). Returns 0 at the end of the rows, or the first
 * negative errno of a step, of memory or of row: the elements read stay
 * in *v (the one row failed on included, as row left it), for the caller
 * to free. DB_ROWS(st, v, n, cap, row) passes the array's own. */
int db_rows(DbStmt *st, void **v, size_t *n, size_t *cap, size_t size, DbRowFunc row);
#define DB_ROWS(st, v, n, cap, row) db_rows((st), (void **) &(v), &(n), &(cap), sizeof *(v), (row))
