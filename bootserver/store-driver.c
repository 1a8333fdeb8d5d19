/* store.h and store-db.h over the drivers (store-driver.h): each call goes
 * to the driver of the database, transaction or statement it is given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store-driver.h"
#include "util.h"

/* A PostgreSQL URI, or a libpq key=value string (it has an '='); anything
 * else is a sqlite file. */
bool store_db_is_postgresql(const char *where) {
        return startswith(where, "postgresql://") || startswith(where, "postgres://") || strchr(where, '=');
}

int store_db_open(const char *where, StoreDb **ret) {
        return store_db_is_postgresql(where) ? pg_db_open(where, ret) : sqlite_db_open(where, ret);
}

int store_db_check(const char *where, char **ret_why) {
        return pg_conninfo_check(where, ret_why);
}

char *store_db_describe(const char *where) {
        return store_db_is_postgresql(where) ? pg_conninfo_describe(where) : strdup_printf("'%s'", where);
}

StoreDb *store_db_free(StoreDb *s) {
        return s ? s->driver->db_free(s) : NULL;
}

int store_db_watch_releases(StoreDb *s, StoreWakeFn fn, void *userdata) {
        return s->driver->db_watch ? s->driver->db_watch(s, STORE_WATCH_RELEASES, fn, userdata) : 0;
}

int store_db_watch_audit(StoreDb *s, StoreWakeFn fn, void *userdata) {
        if (fn) {
                atomic_store(&s->audit_userdata, userdata);
                atomic_store(&s->audit_fn, fn);
        } else
                atomic_store(&s->audit_fn, NULL);
        return s->driver->db_watch ? s->driver->db_watch(s, STORE_WATCH_AUDIT, fn, userdata) : 0;
}

void store_tx_audited(StoreTx *tx) {
        tx->audited = true;
}

/* The message of the last store call that failed on this thread: a
 * driver's message is overwritten by whatever runs next (a reset, a
 * rollback), before the caller that logs gets to it. */
static _Thread_local char last_error[256];

void store_remember_error(const char *driver, const char *sql, const char *message) {
        snprintf(last_error, sizeof last_error, "%s", strempty(message));
        /* libpq's messages end in a newline and may hold several lines. */
        last_error[strcspn(last_error, "\n")] = 0;
        log_debug("%s: \"%s\": %s", driver, strempty(sql), last_error);
}

const char *store_last_error(void) {
        return last_error[0] ? last_error : NULL;
}

void store_clear_error(void) {
        last_error[0] = 0;
}

int store_tx_begin(StoreDb *s, StoreTxMode mode, StoreTx **ret) {
        int r = s->driver->tx_begin(s, mode, ret);

        if (r >= 0)
                (*ret)->db = s;
        return r;
}

int store_tx_nest(StoreTx *tx, StoreTx **ret) {
        int r = tx->driver->tx_nest(tx, ret);

        if (r >= 0)
                (*ret)->outer = tx;
        return r;
}

int store_tx_commit(StoreTx **tx) {
        StoreDb *db = (*tx)->db;
        StoreTx *outer = (*tx)->outer;
        bool audited = (*tx)->audited;
        StoreWakeFn fn;
        int r;

        r = (*tx)->driver->tx_commit(tx);
        if (r < 0 || !audited)
                return r;
        /* A savepoint's entries are its transaction's, announced with it. */
        if (outer)
                outer->audited = true;
        else if (db && (fn = atomic_load(&db->audit_fn)))
                fn(atomic_load(&db->audit_userdata));
        return r;
}

bool store_tx_rollback(StoreTx **tx) {
        return *tx ? (*tx)->driver->tx_rollback(tx) : true;
}

bool store_tx_postgresql(StoreTx *tx) {
        return tx->driver->postgresql;
}

int store_stmt(StoreTx *tx, const char *sql, DbStmt **ret) {
        return tx->driver->stmt(tx, sql, ret);
}

void db_reset(DbStmt *st) {
        if (st)
                st->driver->reset(st);
}

void db_bind_int64(DbStmt *st, int i, int64_t v) {
        st->driver->bind_int64(st, i, v);
}

void db_bind_int(DbStmt *st, int i, int v) {
        st->driver->bind_int64(st, i, v);
}

void db_bind_bool(DbStmt *st, int i, bool v) {
        st->driver->bind_int64(st, i, v ? 1 : 0);
}

void db_bind_text(DbStmt *st, int i, const char *v) {
        st->driver->bind_text(st, i, v);
}

void db_bind_null(DbStmt *st, int i) {
        st->driver->bind_null(st, i);
}

int db_step(DbStmt *st) {
        return st->driver->step(st);
}

int64_t db_changes(DbStmt *st) {
        return st->driver->changes(st);
}

int64_t db_column_int64(DbStmt *st, int col) {
        return st->driver->column_int64(st, col);
}

int db_column_int(DbStmt *st, int col) {
        return (int) st->driver->column_int64(st, col);
}

bool db_column_bool(DbStmt *st, int col) {
        return st->driver->column_int64(st, col) != 0;
}

const char *db_column_text(DbStmt *st, int col) {
        return st->driver->column_text(st, col);
}

bool db_column_is_null(DbStmt *st, int col) {
        return st->driver->column_is_null(st, col);
}

char *db_column_strdup(DbStmt *st, int col) {
        const char *t = db_column_text(st, col);

        return t ? strdup(t) : NULL;
}

int db_column_dup(DbStmt *st, int col, char **ret) {
        *ret = db_column_strdup(st, col);
        return !*ret && !db_column_is_null(st, col) ? -ENOMEM : 0;
}

int db_rows(DbStmt *st, void **v, size_t *n, size_t *cap, size_t size, DbRowFunc row) {
        int r;

        while ((r = db_step(st)) > 0) {
                void *item = array_push(v, n, cap, size);

                if (!item)
                        return -ENOMEM;
                r = row(st, item);
                if (r < 0)
                        return r;
        }
        return r;
}
