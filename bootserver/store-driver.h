/* What a driver of the store implements (store-sqlite.c, store-pg-db.c):
 * store.h's databases and transactions, and store-db.h's statements. Each
 * driver's database, transaction and statement begin with the head below,
 * which names the driver; store-db.c calls through it. Only the drivers
 * and store-db.c include this header. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store-db.h"
#include "store.h"

typedef struct StoreDriver StoreDriver;

struct StoreDb {
        const StoreDriver *driver;
        /* store_db_watch_audit()'s call for this StoreDb's own entries:
         * read by committing threads, so atomic. */
        _Atomic(StoreWakeFn) audit_fn;
        void *_Atomic audit_userdata;
};

/* The fields after driver are store-driver.c's: the drivers leave them
 * zero. */
struct StoreTx {
        const StoreDriver *driver;
        StoreDb *db;     /* a transaction's (store_tx_begin()) */
        StoreTx *outer;  /* a savepoint's (store_tx_nest()) */
        bool audited;    /* it appended to the audit log */
};

/* What other processes sharing the database announce (db_watch). */
typedef enum StoreWatch {
        STORE_WATCH_RELEASES, /* store_db_watch_releases() */
        STORE_WATCH_AUDIT,    /* store_db_watch_audit() */
        _STORE_WATCH_MAX,
} StoreWatch;

struct DbStmt {
        const StoreDriver *driver;
};

struct StoreDriver {
        /* Whether this is PostgreSQL (store_tx_postgresql()). */
        bool postgresql;
        StoreDb *(*db_free)(StoreDb *s);
        int (*tx_begin)(StoreDb *s, StoreTxMode mode, StoreTx **ret);
        int (*tx_nest)(StoreTx *parent, StoreTx **ret);
        int (*tx_commit)(StoreTx **tx);
        bool (*tx_rollback)(StoreTx **tx);
        /* store_db_watch_releases() and the other processes' part of
         * store_db_watch_audit(); NULL when the database has one process
         * only. */
        int (*db_watch)(StoreDb *s, StoreWatch what, StoreWakeFn fn, void *userdata);
        int (*stmt)(StoreTx *tx, const char *sql, DbStmt **ret);
        void (*reset)(DbStmt *st);
        void (*bind_int64)(DbStmt *st, int i, int64_t v);
        void (*bind_text)(DbStmt *st, int i, const char *v);
        void (*bind_null)(DbStmt *st, int i);
        int (*step)(DbStmt *st);
        int64_t (*changes)(DbStmt *st);
        int64_t (*column_int64)(DbStmt *st, int col);
        const char *(*column_text)(DbStmt *st, int col);
        bool (*column_is_null)(DbStmt *st, int col);
};

/* The drivers' databases: a sqlite file (or ":memory:"), a PostgreSQL
 * connection string. */
int sqlite_db_open(const char *path, StoreDb **ret);
int pg_db_open(const char *conninfo, StoreDb **ret);

/* A PostgreSQL connection string checked by libpq's parser, without a
 * connection (store-pg-conninfo.c): 0, or -EINVAL with *ret_why (may be
 * NULL; caller frees) set to libpq's reason, without the quoted pieces of
 * the string that could be a password. */
int pg_conninfo_check(const char *conninfo, char **ret_why);
/* "PostgreSQL host=... port=... dbname=... user=...", the settings given,
 * never the password; "PostgreSQL" alone for a string that does not parse.
 * Caller frees; NULL on ENOMEM. */
char *pg_conninfo_describe(const char *conninfo);

/* Keeps message as the last error of this thread, for store_last_error(),
 * and logs it at debug with the statement (NULL: none) and the driver's
 * name. */
void store_remember_error(const char *driver, const char *sql, const char *message);
