/* slipwayd's state: one sqlite database (WAL) in the state directory, shared
 * by the HTTP worker threads behind one mutex. Callers hold the lock with
 * db_lock()/db_unlock() around a statement or a transaction. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef struct Db Db;

/* Opens (creating and migrating) the database at path. */
int db_open(const char *path, Db **ret);
Db *db_free(Db *db);
static inline void db_freep(Db **db) {
        db_free(*db);
}
#define _cleanup_db_free_ _cleanup_(db_freep)

/* Takes the lock and returns the connection. */
sqlite3 *db_lock(Db *db);
void db_unlock(Db *db);

/* With the lock held: BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
int db_begin(sqlite3 *s);
int db_commit(sqlite3 *s);
/* BEGIN for a transaction that may be lost in a power cut but never
 * corrupts (WAL with synchronous=NORMAL): check-ins, which every agent
 * repeats within seconds. Commit and rollback restore full durability. */
int db_begin_relaxed(sqlite3 *s);
void db_rollback(sqlite3 *s);

/* A piece of work that fails alone: a transaction of its own (BEGIN
 * IMMEDIATE) when none is open, else a savepoint inside the open one, so a
 * caller's transaction keeps what came before. */
typedef struct DbUnit {
        sqlite3 *s;
        bool nested; /* a savepoint */
        bool open;
} DbUnit;

/* With the lock held: starts a unit. */
int db_unit_begin(sqlite3 *s, DbUnit *ret);
/* Commits (or releases) it; on failure it is rolled back. */
int db_unit_commit(DbUnit *u);
/* Undoes a unit that was not committed. Returns false when the enclosing
 * transaction was lost with it (sqlite rolls a whole transaction back on
 * some errors): then nothing more may be done in it. */
bool db_unit_rollback(DbUnit *u);
static inline void db_unit_rollbackp(DbUnit *u) {
        (void) db_unit_rollback(u);
}
#define _cleanup_db_unit_ _cleanup_(db_unit_rollbackp)

/* Maps a sqlite result code to a negative errno: SQLITE_FULL -ENOSPC,
 * SQLITE_CONSTRAINT -EEXIST, SQLITE_BUSY/LOCKED -EBUSY, others -EIO. */
int db_errno(int rc);

/* Steps st: 1 when a row is ready, 0 when the statement is done, a negative
 * errno (db_errno(), logged at debug) on an error. A loop written
 * `while ((r = db_step(st)) > 0)` and followed by `if (r < 0)` cannot take an
 * error for the end of the rows. */
int db_step(sqlite3_stmt *st);

/* Prepares sql on s; -EIO (logged at debug) on failure. */
int db_prepare(sqlite3 *s, const char *sql, sqlite3_stmt **ret);

static inline void sqlite3_finalizep(sqlite3_stmt **st) {
        if (*st)
                sqlite3_finalize(*st);
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* Column text duplicated (NULL stays NULL); -ENOMEM is reported as NULL too,
 * so callers that need the value check it. */
char *db_column_strdup(sqlite3_stmt *st, int col);

/* sqlite's message for the last statement that failed on this thread
 * (db_step(), db_prepare(), a transaction command), NULL when none failed
 * since db_clear_error(). sqlite3_errmsg() no longer has it once a later
 * call succeeded. */
const char *db_last_error(void);
void db_clear_error(void);
