#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "store-driver.h"
#include "store-sqlite.h"
#include "store-sqlite-schema.h"
#include "store-stmt-cache.h"
#include "util.h"

/* A statement of store-db.h: sqlite's, with the first binding that failed
 * since the last reset (reported by the next step) and the rows the last
 * completed run changed. */
typedef struct SqliteStmt {
        DbStmt head;
        sqlite3_stmt *st;
        int64_t changes;
        int bind_rc; /* SQLITE_OK, or what the failed binding returned */
        int bind_i;  /* its parameter */
} SqliteStmt;

/* A connection with its statement cache. Connections are opened in
 * serialized mode (FULLMUTEX): statements made with sqlite_prepare() may be
 * finalized by cleanup handlers after the transaction ended, when the
 * connection may already serve another thread, so sqlite must guard its own
 * calls. */
typedef struct Conn {
        sqlite3 *s;
        StmtCache cache; /* of SqliteStmt, kept for the life of the connection */
        struct Conn *next_idle;
} Conn;

/* One writer and a pool of readers (WAL lets readers run beside the
 * writer, each on the last committed state). The writer's mutex is what
 * makes a write request's statements one transaction, and orders writes
 * without sqlite's busy retries; it guards the writer's statement cache too.
 * A read transaction takes an idle reader, or opens one: there are at most
 * as many readers as threads reading at once. */
typedef struct SqliteDb {
        StoreDb head;
        Conn writer;
        pthread_mutex_t lock;
        char *path; /* NULL: no readers (an in-memory database) */
        pthread_mutex_t pool_lock;
        Conn *idle;   /* readers not in use */
        Conn **all;   /* every reader, for store_db_free() */
        size_t n_all;
} SqliteDb;

typedef struct SqliteTx {
        StoreTx head;
        SqliteDb *store;
        Conn *conn;
        struct SqliteTx *parent; /* the enclosing transaction of a savepoint */
        bool relaxed;
        bool reader;
        bool open;
} SqliteTx;

int sqlite_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
        case SQLITE_PERM:
                return -EROFS;
        default:
                return -EIO;
        }
}

/* sqlite's message for the last statement that failed on this thread:
 * sqlite3_errmsg() is overwritten by whatever runs next (a finalize, a
 * rollback), before the caller that logs gets to it. */
static const StoreDriver sqlite_driver;
static StoreDb *db_free(StoreDb *s);

static void remember_error(const char *sql, const char *message) {
        store_remember_error("sqlite", sql, message);
}


static int exec(sqlite3 *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s, sql, NULL, NULL, &err);

        if (rc != SQLITE_OK) {
                remember_error(sql, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return sqlite_errno(rc);
        }
        return 0;
}

static int migrate(sqlite3 *s) {
        sqlite3_stmt *st = NULL;
        int version = 0, r;

        if (sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        r = sqlite_step(st);
        if (r > 0)
                version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        if (version > (int) sqlite_n_migrations)
                return log_error_errno(-EPROTO, "state database has schema %d, newer than this slipwayd (%zu)",
                                       version, sqlite_n_migrations);
        for (size_t i = (size_t) version; i < sqlite_n_migrations; i++) {
                char pragma[64];

                snprintf(pragma, sizeof pragma, "PRAGMA user_version=%zu;", i + 1);
                r = exec(s, "BEGIN IMMEDIATE;");
                if (r >= 0)
                        r = exec(s, sqlite_migrations[i]);
                if (r >= 0)
                        r = exec(s, pragma);
                if (r >= 0)
                        r = exec(s, "COMMIT;");
                if (r < 0) {
                        char why[512]; /* sqlite's message is gone once the rollback succeeds */
                        snprintf(why, sizeof why, "migration %zu of %zu: %s", i + 1, sqlite_n_migrations,
                                 store_last_error() ?: "failed");
                        (void) exec(s, "ROLLBACK;");
                        remember_error(sqlite_migrations[i], why);
                        return r;
                }
        }
        return 0;
}

static void conn_close(Conn *c) {
        for (size_t i = 0; i < c->cache.n_max; i++) {
                SqliteStmt *st = c->cache.slots[i].st;

                if (st) {
                        sqlite3_finalize(st->st);
                        free(st);
                }
        }
        stmt_cache_release(&c->cache);
        sqlite3_close_v2(c->s);
        *c = (Conn) {};
}

/* Opens path on c; flags are sqlite3_open_v2()'s besides FULLMUTEX. */
static int conn_open(Conn *c, const char *path, int flags) {
        int rc, r;

        *c = (Conn) {};
        rc = sqlite3_open_v2(path, &c->s, flags | SQLITE_OPEN_FULLMUTEX, NULL);
        if (rc != SQLITE_OK) {
                r = log_error_errno(sqlite_errno(rc), "cannot open '%s': %s", path,
                                    c->s ? sqlite3_errmsg(c->s) : sqlite3_errstr(rc));
                conn_close(c);
                return r;
        }
        sqlite3_busy_timeout(c->s, 10000);
        return 0;
}

int sqlite_db_open(const char *path, StoreDb **ret) {
        SqliteDb *st;
        int r;

        /* No global allocation counters (sqlite3_memory_used() and its
         * mutex on every malloc). Refused, harmlessly, once sqlite is in use. */
        (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        st->head.driver = &sqlite_driver;
        pthread_mutex_init(&st->lock, NULL);
        pthread_mutex_init(&st->pool_lock, NULL);
        /* Another connection to ":memory:" or "" would be another database. */
        if (!streq(path, ":memory:") && !isempty(path)) {
                st->path = strdup(path);
                if (!st->path) {
                        db_free(&st->head);
                        return -ENOMEM;
                }
        }
        r = conn_open(&st->writer, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        if (r < 0) {
                db_free(&st->head);
                return r;
        }
        store_clear_error();
        r = exec(st->writer.s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
        if (r >= 0)
                r = migrate(st->writer.s);
        if (r < 0) {
                log_error_errno(r, "cannot set up the state database '%s': %s", path,
                                store_last_error() ?: strerror(-r));
                db_free(&st->head);
                return r;
        }
        *ret = &st->head;
        return 0;
}

static StoreDb *db_free(StoreDb *s) {
        SqliteDb *st = (SqliteDb *) s;

        if (!st)
                return NULL;
        for (size_t i = 0; i < st->n_all; i++) {
                conn_close(st->all[i]);
                free(st->all[i]);
        }
        free(st->all);
        if (st->writer.s)
                conn_close(&st->writer);
        free(st->path);
        pthread_mutex_destroy(&st->pool_lock);
        pthread_mutex_destroy(&st->lock);
        free(st);
        return NULL;
}

sqlite3 *sqlite_tx_handle(StoreTx *tx) {
        return tx->driver == &sqlite_driver ? ((SqliteTx *) tx)->conn->s : NULL;
}

bool store_db_is_sqlite(StoreDb *s) {
        return s->driver == &sqlite_driver;
}

sqlite3 *store_sqlite(StoreDb *s) {
        assert(s->driver == &sqlite_driver);
        return ((SqliteDb *) s)->writer.s;
}

static int cached_stmt(Conn *c, const char *sql, SqliteStmt **ret);

/* Runs sql, one statement with no rows (BEGIN, COMMIT, a PRAGMA), prepared
 * once and kept: the transaction commands of every request would otherwise
 * be parsed anew each time. */
static int control(Conn *c, const char *sql) {
        sqlite3_stmt *stmt;
        SqliteStmt *cached;
        int rc, r;

        r = cached_stmt(c, sql, &cached);
        if (r < 0)
                return r;
        stmt = cached->st;
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
                sqlite3_reset(stmt);
                return 0;
        }
        remember_error(sql, sqlite3_errmsg(c->s));
        sqlite3_reset(stmt);
        return sqlite_errno(rc) ?: -EIO;
}

/* Resets every statement still running on the connection: a transaction
 * cannot commit under a pending write, and a cached statement left running
 * would hold its read open into the next transaction. */
static void reset_running(sqlite3 *s) {
        for (sqlite3_stmt *st = sqlite3_next_stmt(s, NULL); st; st = sqlite3_next_stmt(s, st))
                if (sqlite3_stmt_busy(st))
                        sqlite3_reset(st);
}

/* An idle reader, opened when there is none; NULL when there are no
 * readers (an in-memory database) or one cannot be opened: then reads go to
 * the writer, as they would with no pool. */
static Conn *reader_take(SqliteDb *st) {
        Conn *c, **all;

        if (!st->path)
                return NULL;
        pthread_mutex_lock(&st->pool_lock);
        c = st->idle;
        if (c)
                st->idle = c->next_idle;
        pthread_mutex_unlock(&st->pool_lock);
        if (c)
                return c;
        c = malloc(sizeof *c);
        if (!c)
                return NULL;
        /* query_only: a write in a read transaction is a bug, refused. */
        if (conn_open(c, st->path, SQLITE_OPEN_READWRITE) < 0 ||
            exec(c->s, "PRAGMA query_only=1; PRAGMA foreign_keys=ON;") < 0) {
                if (c->s)
                        conn_close(c);
                free(c);
                return NULL;
        }
        pthread_mutex_lock(&st->pool_lock);
        all = reallocarray(st->all, st->n_all + 1, sizeof *all);
        if (all) {
                st->all = all;
                st->all[st->n_all++] = c;
        }
        pthread_mutex_unlock(&st->pool_lock);
        if (!all) {
                conn_close(c);
                free(c);
                return NULL;
        }
        return c;
}

static void reader_put(SqliteDb *st, Conn *c) {
        pthread_mutex_lock(&st->pool_lock);
        c->next_idle = st->idle;
        st->idle = c;
        pthread_mutex_unlock(&st->pool_lock);
}

/* Ends the top transaction: a reader back to the pool; the writer back to
 * full durability, its lock released. */
static void tx_release(SqliteTx *tx) {
        if (tx->reader) {
                reader_put(tx->store, tx->conn);
                return;
        }
        if (tx->relaxed)
                (void) control(tx->conn, "PRAGMA synchronous=FULL;");
        pthread_mutex_unlock(&tx->store->lock);
}

static int tx_begin(StoreDb *s, StoreTxMode mode, StoreTx **ret) {
        SqliteDb *st = (SqliteDb *) s;
        SqliteTx *tx;
        Conn *c = NULL;
        int r = 0;

        tx = calloc(1, sizeof *tx);
        if (!tx)
                return -ENOMEM;
        if (mode == STORE_TX_READ)
                c = reader_take(st);
        *tx = (SqliteTx) { .head.driver = &sqlite_driver, .store = st, .conn = c ?: &st->writer,
                           .relaxed = mode == STORE_TX_RELAXED, .reader = c != NULL };
        if (!tx->reader)
                pthread_mutex_lock(&st->lock);
        if (tx->relaxed)
                r = control(tx->conn, "PRAGMA synchronous=NORMAL;");
        if (r >= 0)
                r = control(tx->conn, mode == STORE_TX_READ ? "BEGIN DEFERRED;" : "BEGIN IMMEDIATE;");
        if (r < 0) {
                /* An interrupted BEGIN may have opened the transaction. */
                if (!sqlite3_get_autocommit(tx->conn->s))
                        (void) control(tx->conn, "ROLLBACK;");
                tx_release(tx);
                free(tx);
                return r;
        }
        tx->open = true;
        *ret = &tx->head;
        return 0;
}

static int tx_nest(StoreTx *p, StoreTx **ret) {
        SqliteTx *parent = (SqliteTx *) p;
        SqliteTx *tx;
        int r;

        assert(parent->open);
        tx = calloc(1, sizeof *tx);
        if (!tx)
                return -ENOMEM;
        r = control(parent->conn, "SAVEPOINT unit;");
        if (r < 0) {
                free(tx);
                return r;
        }
        *tx = (SqliteTx) { .head.driver = &sqlite_driver, .store = parent->store, .conn = parent->conn,
                           .parent = parent, .open = true };
        *ret = &tx->head;
        return 0;
}

static bool tx_rollback(StoreTx **txp);

static int tx_commit(StoreTx **txp) {
        SqliteTx *tx = (SqliteTx *) *txp;
        sqlite3 *s = tx->conn->s;
        int r;

        assert(tx->open);
        reset_running(s);
        r = control(tx->conn, tx->parent ? "RELEASE unit;" : "COMMIT;");
        if (r < 0) {
                (void) tx_rollback(txp);
                return r;
        }
        if (!tx->parent)
                tx_release(tx);
        free(tx);
        *txp = NULL;
        return 0;
}

static bool tx_rollback(StoreTx **txp) {
        SqliteTx *tx = (SqliteTx *) *txp;
        sqlite3 *s;
        bool kept = true;

        if (!tx)
                return true;
        s = tx->conn->s;
        reset_running(s);
        if (!tx->parent) {
                if (!sqlite3_get_autocommit(s))
                        (void) control(tx->conn, "ROLLBACK;");
                tx_release(tx);
        } else if (sqlite3_get_autocommit(s))
                /* Some errors (an interrupt, a full disk, an I/O error) make
                 * sqlite roll back the whole transaction, savepoints and all. */
                kept = false;
        else if (control(tx->conn, "ROLLBACK TO unit;") < 0 || control(tx->conn, "RELEASE unit;") < 0)
                kept = !sqlite3_get_autocommit(s);
        free(tx);
        *txp = NULL;
        return kept;
}

static int cached_stmt(Conn *c, const char *sql, SqliteStmt **ret) {
        SqliteStmt *st = stmt_cache_get(&c->cache, sql);
        int rc;

        if (st) {
                *ret = st;
                return 0;
        }
        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        st->head.driver = &sqlite_driver;
        rc = sqlite3_prepare_v3(c->s, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->st, NULL);
        if (rc != SQLITE_OK) {
                remember_error(sql, sqlite3_errmsg(c->s));
                free(st);
                return sqlite_errno(rc) ?: -EIO;
        }
        if (!stmt_cache_put(&c->cache, sql, st)) {
                sqlite3_finalize(st->st);
                free(st);
                return -ENOMEM;
        }
        *ret = st;
        return 0;
}

static int stmt(StoreTx *tx, const char *sql, DbStmt **ret) {
        SqliteStmt *st;
        int r = cached_stmt(((SqliteTx *) tx)->conn, sql, &st);

        if (r >= 0)
                *ret = &st->head;
        return r;
}

static void reset(DbStmt *d) {
        SqliteStmt *st = (SqliteStmt *) d;

        sqlite3_reset(st->st);
        sqlite3_clear_bindings(st->st);
        st->bind_rc = SQLITE_OK;
}

/* Keeps the first binding that failed for db_step(). */
static void bound(SqliteStmt *st, int i, int rc) {
        if (rc != SQLITE_OK && st->bind_rc == SQLITE_OK) {
                st->bind_rc = rc;
                st->bind_i = i;
        }
}

static void bind_int64(DbStmt *d, int i, int64_t v) {
        SqliteStmt *st = (SqliteStmt *) d;

        bound(st, i, sqlite3_bind_int64(st->st, i, (sqlite3_int64) v));
}

static void bind_text(DbStmt *d, int i, const char *v) {
        SqliteStmt *st = (SqliteStmt *) d;

        bound(st, i, sqlite3_bind_text(st->st, i, v, -1, SQLITE_STATIC));
}

static void bind_null(DbStmt *d, int i) {
        SqliteStmt *st = (SqliteStmt *) d;

        bound(st, i, sqlite3_bind_null(st->st, i));
}

static int step(DbStmt *d) {
        SqliteStmt *st = (SqliteStmt *) d;
        sqlite3 *s = sqlite3_db_handle(st->st);
        int rc;

        if (st->bind_rc != SQLITE_OK) {
                char m[160];

                snprintf(m, sizeof m, "cannot bind parameter %d: %s", st->bind_i, sqlite3_errstr(st->bind_rc));
                remember_error(sqlite3_sql(st->st), m);
                return sqlite_errno(st->bind_rc) ?: -EIO;
        }
        rc = sqlite3_step(st->st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE) {
                /* sqlite counts per connection, and only the statements
                 * that write. */
                st->changes = sqlite3_stmt_readonly(st->st) ? 0 : sqlite3_changes64(s);
                return 0;
        }
        remember_error(sqlite3_sql(st->st), sqlite3_errmsg(s));
        return sqlite_errno(rc) ?: -EIO;
}

static int64_t changes(DbStmt *d) {
        return ((SqliteStmt *) d)->changes;
}

static int64_t column_int64(DbStmt *d, int col) {
        return sqlite3_column_int64(((SqliteStmt *) d)->st, col);
}

static const char *column_text(DbStmt *d, int col) {
        return (const char *) sqlite3_column_text(((SqliteStmt *) d)->st, col);
}

static bool column_is_null(DbStmt *d, int col) {
        return sqlite3_column_type(((SqliteStmt *) d)->st, col) == SQLITE_NULL;
}

static const StoreDriver sqlite_driver = {
        .db_free = db_free,
        .tx_begin = tx_begin,
        .tx_nest = tx_nest,
        .tx_commit = tx_commit,
        .tx_rollback = tx_rollback,
        .stmt = stmt,
        .reset = reset,
        .bind_int64 = bind_int64,
        .bind_text = bind_text,
        .bind_null = bind_null,
        .step = step,
        .changes = changes,
        .column_int64 = column_int64,
        .column_text = column_text,
        .column_is_null = column_is_null,
};

int sqlite_prepare(sqlite3 *s, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(s, sql, -1, ret, NULL);

        if (rc != SQLITE_OK) {
                remember_error(sql, sqlite3_errmsg(s));
                return sqlite_errno(rc) ?: -EIO;
        }
        return 0;
}

int sqlite_step(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        remember_error(sqlite3_sql(st), sqlite3_errmsg(sqlite3_db_handle(st)));
        return sqlite_errno(rc) ?: -EIO;
}
