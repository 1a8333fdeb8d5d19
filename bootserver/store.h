/* slipwayd's state behind one interface: a StoreDb is the database, a StoreTx
 * one transaction on one of its connections. The fleet logic works on an
 * open StoreTx and never sees SQL; the store files (store*.c) are the only
 * ones that do, so that a second backend implements this interface and
 * nothing above it changes (docs/architecture.md, "slipwayd's layers").
 *
 * Every transaction ends in store_tx_commit() or store_tx_rollback(); the
 * cleanup _cleanup_store_tx_ rolls back one that was not committed, so an
 * early return cannot leave a transaction open or half written. */
#pragma once

#include <stdbool.h>

#include "macro.h"

typedef struct StoreDb StoreDb;
typedef struct StoreTx StoreTx;

/* Opens (creating and migrating) the database where says: a sqlite file
 * (":memory:" for one in memory), or a PostgreSQL connection string (a
 * postgresql:// URI, or libpq's key=value form). */
int store_db_open(const char *where, StoreDb **ret);
/* Whether where names a PostgreSQL database (store_db_open()'s rule). */
bool store_db_is_postgresql(const char *where);
/* Checks a PostgreSQL connection string with libpq's own parser, without
 * connecting: 0, -EINVAL with *ret_why (caller frees; may be NULL) set to
 * the reason, which never holds the password, or -ENOMEM. */
int store_db_check(const char *where, char **ret_why);
/* Where the state is, for a message: "PostgreSQL host=... dbname=..."
 * (the settings that place it, never the password) or the sqlite file's
 * path in quotes. Caller frees; NULL on ENOMEM. */
char *store_db_describe(const char *where);
StoreDb *store_db_free(StoreDb *s);
static inline void store_db_freep(StoreDb **s) {
        store_db_free(*s);
}
#define _cleanup_store_db_free_ _cleanup_(store_db_freep)

/* Has fn(userdata) called, from a thread of the store's, soon after
 * another process sharing the database commits a change that gives a
 * lease back (a release, an expiry, a host deleted) or lifts a quarantine,
 * so that requests waiting for a place ask again; and once after a time
 * when such news may have been missed (the database was out of reach).
 * What this StoreDb itself commits is not announced: its caller knows.
 * fn NULL ends the watch; after that returns, fn is not called any more.
 * Nothing to do on a sqlite file, which has one process. A database out
 * of reach at the start is tried again in the background. Returns 0 or a
 * negative errno (no memory, no thread). */
typedef void (*StoreWakeFn)(void *userdata);
int store_db_watch_releases(StoreDb *s, StoreWakeFn fn, void *userdata);

/* Has fn(userdata) called when entries are appended to the audit log: from
 * the committing thread, right after a transaction of s that appended one
 * commits; and, where other processes share the database (PostgreSQL),
 * from a thread of the store's soon after one of them commits entries, and
 * once after a time when such news may have been missed. fn must be quick
 * and use no store. fn NULL ends the watch. The committing threads' calls
 * are not ordered with this: set it before transactions that append run,
 * end it after they stopped. Returns 0 or a negative errno (no memory, no
 * thread); on an error the other processes' entries are not announced. */
int store_db_watch_audit(StoreDb *s, StoreWakeFn fn, void *userdata);

/* The back end's message for the last store call that failed on this
 * thread (a statement or a transaction command), NULL when none failed since
 * store_clear_error(): what a log line gives besides the errno. */
const char *store_last_error(void);
void store_clear_error(void);

typedef enum StoreTxMode {
        STORE_TX_WRITE,   /* durable once committed */
        STORE_TX_RELAXED, /* may be lost in a power cut, never corrupts: for
                           * check-ins, which every agent repeats within
                           * seconds */
        STORE_TX_READ,    /* reads only */
} StoreTxMode;

/* Takes a connection and begins a transaction on it. Until it ends, no
 * other transaction of this StoreDb sees what it wrote. */
int store_tx_begin(StoreDb *s, StoreTxMode mode, StoreTx **ret);
/* A part of tx that fails alone (a savepoint): committing it keeps its
 * writes in tx, rolling it back undoes them and leaves what tx did before. */
int store_tx_nest(StoreTx *tx, StoreTx **ret);
/* Commits (a nested one: releases) and frees *tx, setting it to NULL. On a
 * failure it is rolled back; returns a negative errno. */
int store_tx_commit(StoreTx **tx);
/* Rolls back and frees *tx (NULL is fine), setting it to NULL. Returns
 * false when a nested transaction's enclosing one was lost with it (some
 * errors make the database roll back the whole transaction): then nothing
 * more may be done in the enclosing one. */
bool store_tx_rollback(StoreTx **tx);
static inline void store_tx_rollbackp(StoreTx **tx) {
        (void) store_tx_rollback(tx);
}
#define _cleanup_store_tx_ _cleanup_(store_tx_rollbackp)
