/* The PostgreSQL driver of the store (store-driver.h): a pool of libpq
 * connections (store-pg.c), each with its prepared statements, and the
 * store's transactions on them.
 *
 * Writes are serialized across every instance on the database, as sqlite's
 * single writer serializes them in one process: a write transaction takes a
 * transaction-scoped advisory lock first, so the fleet logic's read-then-
 * write decisions (a lease against its budgets, the next epoch) hold under
 * READ COMMITTED without retries. Reads run beside them in REPEATABLE READ,
 * READ ONLY: one snapshot, as a sqlite read transaction has. A relaxed
 * transaction commits without waiting for the WAL flush
 * (synchronous_commit off): it may be lost in a crash, never half kept.
 *
 * Unlike sqlite, an error aborts the whole transaction (a savepoint
 * excepted): whatever the caller does next fails, and the commit reports
 * it.
 *
 * Transient failures. The callers run their transactions themselves
 * (begin, statements, commit), so a transaction cannot be run again here
 * once it has begun: what is retried is its BEGIN. A pooled connection
 * that the server ended (a restart, pg_terminate_backend, a failover) or
 * that reached a server which is a standby now is found at the BEGIN,
 * which then changed nothing: it connects again (libpq tries the hosts of
 * the connection string in order) and begins anew, without the caller
 * seeing an error. After the BEGIN, every failure fails the transaction
 * closed (a lost connection -ECONNRESET, a serialization failure or a
 * deadlock -EAGAIN, a standby -EROFS), and the caller gives up on it: the
 * API answers 503, and the client's rules say what is sent again. A COMMIT
 * whose answer was lost is never sent again: it may or may not have
 * committed.
 *
 * Instances learn of leases given back elsewhere, and of audit entries
 * written elsewhere, through triggers that notify a channel each (schemas
 * 15 and 24) and one listener on both (store-pg-listen.c), started while
 * either watch is on: each connection of the pool names its instance in a
 * setting the triggers send as the payload, so that an instance leaves out
 * its own notices. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "log.h"
#include "store-driver.h"
#include "store-pg.h"
#include "util.h"

/* The advisory lock of write transactions ("slipwayw" in ASCII), apart
 * from the migration's. */
#define WRITE_LOCK "8317138543606593911"

/* The channel of schema 14's trigger; its payload is the setting
 * slipway.instance of the session that wrote (session_sql below). */
#define RELEASE_CHANNEL "slipway_lease_released"
/* Schema 24's, with the same payload. */
#define AUDIT_CHANNEL "slipway_audit"

/* The listener's channels, by StoreWatch. */
static const char *const watch_channels[_STORE_WATCH_MAX + 1] = {
        [STORE_WATCH_RELEASES] = RELEASE_CHANNEL,
        [STORE_WATCH_AUDIT] = AUDIT_CHANNEL,
};

/* How often a BEGIN is tried again on a connection made anew, when the one
 * it was sent on turned out lost. */
#define BEGIN_RETRIES 2

typedef struct PgDb {
        StoreDb head;
        char *conninfo;
        char instance[33]; /* random, in hex: this StoreDb's name on its connections */
        char *session_sql; /* names it on a new connection */
        pthread_mutex_t lock;
        PgConn **idle;
        size_t n_idle, cap;
        pthread_mutex_t watch_lock; /* the watches', taken by the listener to call them */
        PgListener *listener;       /* while a watch is on */
        StoreWakeFn watch_fn[_STORE_WATCH_MAX];
        void *watch_userdata[_STORE_WATCH_MAX];
} PgDb;

typedef struct PgTx {
        StoreTx head;
        PgDb *db;
        PgConn *conn;
        struct PgTx *parent; /* the enclosing transaction of a savepoint */
        bool open;
} PgTx;

static const StoreDriver pg_driver;

static void conn_put(PgDb *db, PgConn *c) {
        PgConn **v;

        pthread_mutex_lock(&db->lock);
        if (db->n_idle == db->cap) {
                size_t cap = db->cap ? 2 * db->cap : 8;
                v = reallocarray(db->idle, cap, sizeof *v);
                if (!v) {
                        pthread_mutex_unlock(&db->lock);
                        pg_conn_free(c);
                        return;
                }
                db->idle = v;
                db->cap = cap;
        }
        db->idle[db->n_idle++] = c;
        pthread_mutex_unlock(&db->lock);
}

/* An idle connection, or a new one; one that was lost connects again. A
 * new session is told the instance's name first. The most recently used
 * comes first: one given back as lost is the next to connect again. */
static int conn_take(PgDb *db, PgConn **ret) {
        PgConn *c = NULL;
        int r;

        pthread_mutex_lock(&db->lock);
        if (db->n_idle > 0)
                c = db->idle[--db->n_idle];
        pthread_mutex_unlock(&db->lock);
        if (!c) {
                r = pg_conn_open(db->conninfo, &c, NULL);
                if (r < 0)
                        return r;
                r = pg_exec(c, db->session_sql);
                if (r < 0) {
                        pg_conn_free(c);
                        return r;
                }
        } else if (!pg_conn_ok(c)) {
                r = pg_conn_reset(c);
                if (r >= 0)
                        r = pg_exec(c, db->session_sql);
                if (r < 0) {
                        conn_put(db, c);
                        return r;
                }
        }
        *ret = c;
        return 0;
}

static StoreDb *db_free(StoreDb *s) {
        PgDb *db = (PgDb *) s;

        if (!db)
                return NULL;
        pg_listener_free(db->listener);
        for (size_t i = 0; i < db->n_idle; i++)
                pg_conn_free(db->idle[i]);
        free(db->idle);
        free(db->conninfo);
        free(db->session_sql);
        pthread_mutex_destroy(&db->lock);
        pthread_mutex_destroy(&db->watch_lock);
        free(db);
        return NULL;
}

/* 32 random hex digits. */
static int instance_name(char ret[static 33]) {
        uint8_t b[16];

        if (getrandom(b, sizeof b, 0) != (ssize_t) sizeof b)
                return -EIO;
        for (size_t i = 0; i < sizeof b; i++)
                snprintf(ret + 2 * i, 3, "%02x", b[i]);
        return 0;
}

int pg_db_open(const char *conninfo, StoreDb **ret) {
        _cleanup_free_ char *error = NULL;
        PgConn *c = NULL;
        PgDb *db;
        int r;

        db = calloc(1, sizeof *db);
        if (!db)
                return -ENOMEM;
        db->head.driver = &pg_driver;
        pthread_mutex_init(&db->lock, NULL);
        pthread_mutex_init(&db->watch_lock, NULL);
        r = instance_name(db->instance);
        if (r < 0) {
                db_free(&db->head);
                return r;
        }
        db->conninfo = strdup(conninfo);
        db->session_sql = strdup_printf("SET slipway.instance = '%s'", db->instance);
        if (!db->conninfo || !db->session_sql) {
                db_free(&db->head);
                return -ENOMEM;
        }
        r = pg_conn_open(conninfo, &c, &error);
        if (r < 0) {
                /* libpq's message names the host and what it said; the
                 * connection string may hold a password, so it is not
                 * repeated. */
                log_error("cannot connect to the PostgreSQL state database: %s", strempty(error));
                db_free(&db->head);
                return r;
        }
        r = pg_migrate(c);
        if (r >= 0)
                r = pg_exec(c, db->session_sql);
        if (r < 0) {
                log_error_errno(r, "cannot set up the PostgreSQL state database: %s", strempty(pg_last_error()));
                pg_conn_free(c);
                db_free(&db->head);
                return r;
        }
        conn_put(db, c);
        *ret = &db->head;
        return 0;
}

static const char *begin_sql(StoreTxMode mode) {
        switch (mode) {
        case STORE_TX_WRITE:
                /* READ WRITE: a standby refuses it here, before anything
                 * is done, rather than at the first write. */
                return "BEGIN READ WRITE; SELECT pg_advisory_xact_lock(" WRITE_LOCK ")";
        case STORE_TX_RELAXED:
                return "BEGIN READ WRITE; SET LOCAL synchronous_commit = off; "
                       "SELECT pg_advisory_xact_lock(" WRITE_LOCK ")";
        case STORE_TX_READ:
                return "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        default:
                return NULL;
        }
}

static int tx_begin(StoreDb *s, StoreTxMode mode, StoreTx **ret) {
        PgDb *db = (PgDb *) s;
        const char *sql = begin_sql(mode);
        PgConn *c = NULL;
        PgTx *tx;
        int r;

        if (!sql)
                return -EINVAL;
        tx = calloc(1, sizeof *tx);
        if (!tx)
                return -ENOMEM;
        for (int attempt = 0;; attempt++) {
                r = conn_take(db, &c);
                if (r < 0) {
                        free(tx);
                        return r;
                }
                r = pg_exec(c, sql);
                if (r >= 0)
                        break;
                /* Lost before or at the BEGIN: nothing was done; a new
                 * connection (another host, maybe) begins it anew. */
                bool lost = !pg_conn_ok(c);
                if (!lost)
                        (void) pg_exec(c, "ROLLBACK");
                conn_put(db, c);
                if (!lost || attempt == BEGIN_RETRIES) {
                        free(tx);
                        return r;
                }
                log_debug("postgresql: a pooled connection was lost (%s); connecting again",
                          strempty(pg_last_error()));
        }
        tx->head.driver = &pg_driver;
        tx->db = db;
        tx->conn = c;
        tx->open = true;
        *ret = &tx->head;
        return 0;
}

static int tx_nest(StoreTx *p, StoreTx **ret) {
        PgTx *parent = (PgTx *) p, *tx;
        int r;

        assert(parent->open);
        tx = calloc(1, sizeof *tx);
        if (!tx)
                return -ENOMEM;
        r = pg_exec(parent->conn, "SAVEPOINT unit");
        if (r < 0) {
                free(tx);
                return r;
        }
        *tx = (PgTx) { .head.driver = &pg_driver, .db = parent->db, .conn = parent->conn, .parent = parent,
                       .open = true };
        *ret = &tx->head;
        return 0;
}

/* Ends a top transaction: its statements' results freed, the connection
 * back to the pool. */
static void tx_release(PgTx *tx) {
        pg_conn_reset_statements(tx->conn);
        conn_put(tx->db, tx->conn);
}

static bool tx_rollback(StoreTx **txp) {
        PgTx *tx = (PgTx *) *txp;
        bool kept = true;

        if (!tx)
                return true;
        if (!tx->parent) {
                pg_conn_reset_statements(tx->conn);
                (void) pg_exec(tx->conn, "ROLLBACK");
                tx_release(tx);
        } else {
                pg_conn_reset_statements(tx->conn);
                kept = pg_exec(tx->conn, "ROLLBACK TO unit; RELEASE unit") >= 0;
        }
        free(tx);
        *txp = NULL;
        return kept;
}

static int tx_commit(StoreTx **txp) {
        PgTx *tx = (PgTx *) *txp;
        bool sent;
        int r;

        assert(tx->open);
        pg_conn_reset_statements(tx->conn);
        /* Known lost before: the COMMIT is not sent, and the server has
         * rolled the transaction back. */
        sent = pg_conn_ok(tx->conn);
        r = tx->parent ? pg_exec(tx->conn, "RELEASE unit") : pg_commit(tx->conn);
        if (r == -ECONNRESET && sent && !tx->parent)
                /* Lost in it: never sent again, it may have been kept or
                 * not. */
                log_warning("a commit's outcome is unknown, the connection to the database was lost: %s",
                            strempty(pg_last_error()));
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

static int stmt(StoreTx *tx, const char *sql, DbStmt **ret) {
        PgStmt *st;
        int r = pg_stmt(((PgTx *) tx)->conn, sql, &st);

        if (r < 0)
                return r;
        *ret = pg_stmt_head(st);
        (*ret)->driver = &pg_driver;
        return 0;
}

static void reset(DbStmt *st) {
        pg_stmt_reset((PgStmt *) st);
}

static void bind_int64(DbStmt *st, int i, int64_t v) {
        pg_bind_int64((PgStmt *) st, i, v);
}

static void bind_text(DbStmt *st, int i, const char *v) {
        pg_bind_text((PgStmt *) st, i, v);
}

static void bind_null(DbStmt *st, int i) {
        pg_bind_null((PgStmt *) st, i);
}

static int step(DbStmt *st) {
        return pg_step((PgStmt *) st);
}

static int64_t changes(DbStmt *st) {
        return pg_changes((PgStmt *) st);
}

static int64_t column_int64(DbStmt *st, int col) {
        return pg_column_int64((PgStmt *) st, col);
}

static const char *column_text(DbStmt *st, int col) {
        return pg_column_text((PgStmt *) st, col);
}

static bool column_is_null(DbStmt *st, int col) {
        return pg_column_is_null((PgStmt *) st, col);
}

/* From the listener's thread; under the lock, so that a watch ended is not
 * called after. */
static void notified(void *userdata, unsigned mask) {
        PgDb *db = userdata;

        pthread_mutex_lock(&db->watch_lock);
        for (int w = 0; w < _STORE_WATCH_MAX; w++)
                if ((mask & (1u << w)) && db->watch_fn[w])
                        db->watch_fn[w](db->watch_userdata[w]);
        pthread_mutex_unlock(&db->watch_lock);
}

/* One listener for every watch: it LISTENs on every channel while one of
 * them is on, and a notice nobody watches is dropped in notified(). */
static int db_watch(StoreDb *s, StoreWatch what, StoreWakeFn fn, void *userdata) {
        PgDb *db = (PgDb *) s;
        PgListener *end = NULL;
        bool any = false;
        int r = 0;

        pthread_mutex_lock(&db->watch_lock);
        db->watch_fn[what] = fn;
        db->watch_userdata[what] = userdata;
        for (int w = 0; w < _STORE_WATCH_MAX; w++)
                any = any || db->watch_fn[w];
        if (any && !db->listener) {
                /* Its thread calls notified() only once the lock is free. */
                r = pg_listener_start(db->conninfo, watch_channels, db->instance, notified, db, &db->listener);
                if (r < 0) {
                        db->watch_fn[what] = NULL;
                        log_error_errno(r, "cannot listen for other instances' news: %s", strempty(pg_last_error()));
                }
        } else if (!any) {
                end = db->listener;
                db->listener = NULL;
        }
        pthread_mutex_unlock(&db->watch_lock);
        /* Outside the lock: its thread may be waiting for it in notified(). */
        pg_listener_free(end);
        return r;
}

static const StoreDriver pg_driver = {
        .postgresql = true,
        .db_free = db_free,
        .tx_begin = tx_begin,
        .tx_nest = tx_nest,
        .tx_commit = tx_commit,
        .tx_rollback = tx_rollback,
        .db_watch = db_watch,
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
