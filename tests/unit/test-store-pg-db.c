/* The PostgreSQL driver at run time, on a server of the test's own: the
 * notice of a lease given back on another instance, and the failures that
 * pass (a connection ended by the server, a server restarted). */
#include "tests.h"
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "macro.h"
#include "pgserver.h"
#include "store-db.h"
#include "store-pg.h"
#include "store.h"
#include "util.h"



/* A fresh schema; the test's own connection for what the tests do beside
 * the store (pg_terminate_backend). */
static PgConn *fresh(void) {
        PgConn *c = test_pg_connect();

        assert_int_equal(pg_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                    "current_database() AND pid <> pg_backend_pid()"),
                         0);
        assert_int_equal(pg_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), 0);
        return c;
}

/* Ends every session on the database but c's; returns how many. */
static int64_t terminate_others(PgConn *c, const char *where) {
        static const char sql[] = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
                                  "current_database() AND pid <> pg_backend_pid() AND query LIKE ?";
        PgStmt *st;
        int64_t n;

        assert_int_equal(pg_stmt(c, sql, &st), 0);
        pg_bind_text(st, 1, where ? where : "%");
        assert_int_equal(pg_step(st), 1);
        n = pg_column_int64(st, 0);
        pg_stmt_reset(st);
        return n;
}

/* One statement of the store, with no rows or one. */
static int run(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r = store_stmt(tx, sql, &st);

        return r < 0 ? r : db_step(st);
}

static int write_once(StoreDb *db, const char *sql) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = run(tx, sql);
        if (r >= 0)
                r = store_tx_commit(&tx);
        return r;
}

static int64_t count_tokens(StoreDb *db) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_tx_begin(db, STORE_TX_READ, &tx);
        if (r < 0)
                fail_msg("read transaction: %s: %s", strerror(-r), strempty(store_last_error()));
        assert_int_equal(store_stmt(tx, "SELECT count(*) FROM tokens", &st), 0);
        assert_int_equal(db_step(st), 1);
        return db_column_int64(st, 0);
}

/* What a watch saw: how many calls, and when the last came. */
typedef struct Woken {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int n;
        uint64_t last_usec;
} Woken;

static void woken(void *userdata) {
        Woken *w = userdata;

        pthread_mutex_lock(&w->lock);
        w->n++;
        w->last_usec = now_usec();
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

/* Waits at most ms for the count to reach n; returns the count. */
static int woken_wait(Woken *w, int n, int ms) {
        uint64_t until = now_usec() + (uint64_t) ms * 1000;
        int got;

        pthread_mutex_lock(&w->lock);
        while (w->n < n && now_usec() < until) {
                pthread_mutex_unlock(&w->lock);
                usleep(2000);
                pthread_mutex_lock(&w->lock);
        }
        got = w->n;
        pthread_mutex_unlock(&w->lock);
        return got;
}

#define WOKEN_INIT { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER }

static const char add_hosts[] = "INSERT INTO hosts (id, registered, lease_epoch, lease_expires) VALUES "
                                "('h1', 0, 1, 100), ('h2', 0, 2, 100), ('h3', 0, 3, 100)";

/* Two instances on one database: one gives a lease back, the other hears of
 * it once the transaction commits, not before; several in one transaction
 * are one notice; what does not free a place says nothing; an instance
 * does not hear of its own. */
static void test_watch(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = fresh();
        _cleanup_store_db_free_ StoreDb *a = NULL, *b = NULL;
        Woken wa = WOKEN_INIT, wb = WOKEN_INIT;
        StoreTx *tx = NULL;
        uint64_t t0;
        (void) state;

        assert_int_equal(store_db_open(test_pg_conninfo, &a), 0);
        assert_int_equal(store_db_open(test_pg_conninfo, &b), 0);
        assert_int_equal(store_db_watch_releases(a, woken, &wa), 0);
        assert_int_equal(store_db_watch_releases(b, woken, &wb), 0);
        assert_int_equal(write_once(a, add_hosts), 0);

        assert_int_equal(store_tx_begin(a, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(run(tx, "UPDATE hosts SET lease_epoch = NULL, lease_expires = NULL WHERE id = 'h1'"), 0);
        /* Not before the commit. */
        assert_int_equal(woken_wait(&wb, 1, 300), 0);
        t0 = now_usec();
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(woken_wait(&wb, 1, 10000), 1);
        print_message("a lease given back on one instance: the other heard of it in %.1f ms\n",
                      (double) (wb.last_usec - t0) / 1000.0);

        /* Two leases in one transaction: one notice. A new lease, a renewal
         * and a quarantine free nothing. */
        assert_int_equal(write_once(a, "UPDATE hosts SET lease_epoch = NULL WHERE id IN ('h2', 'h3')"), 0);
        assert_int_equal(woken_wait(&wb, 2, 10000), 2);
        assert_int_equal(write_once(a, "UPDATE hosts SET lease_epoch = 4, lease_expires = 200 WHERE id = 'h1'"), 0);
        assert_int_equal(write_once(a, "UPDATE hosts SET lease_expires = 300 WHERE id = 'h1'"), 0);
        assert_int_equal(write_once(a, "UPDATE hosts SET quarantined = 1 WHERE id = 'h2'"), 0);
        /* A quarantine lifted, a host deleted with its lease. */
        assert_int_equal(write_once(a, "UPDATE hosts SET quarantined = 0 WHERE id = 'h2'"), 0);
        assert_int_equal(woken_wait(&wb, 3, 10000), 3);
        assert_int_equal(write_once(a, "DELETE FROM hosts WHERE id = 'h1'"), 0);
        assert_int_equal(woken_wait(&wb, 4, 10000), 4);
        /* From b, a hears; b does not hear itself. */
        assert_int_equal(write_once(b, "UPDATE hosts SET quarantined = 1 WHERE id = 'h3'"), 0);
        assert_int_equal(write_once(b, "UPDATE hosts SET quarantined = 0 WHERE id = 'h3'"), 0);
        assert_int_equal(woken_wait(&wa, 1, 10000), 1);
        assert_int_equal(woken_wait(&wb, 5, 300), 4);
        assert_int_equal(wa.n, 1);

        /* Once the watch is off, nothing more. */
        assert_int_equal(store_db_watch_releases(b, NULL, NULL), 0);
        assert_int_equal(write_once(a, "DELETE FROM hosts WHERE id = 'h3'"), 0);
        assert_int_equal(woken_wait(&wb, 5, 300), 4);
}

/* The listener's connection ended by the server: it connects again by
 * itself, says so once (a notice may have been missed), and hears the
 * next one. */
static void test_watch_reconnects(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = fresh();
        _cleanup_store_db_free_ StoreDb *a = NULL, *b = NULL;
        Woken wb = WOKEN_INIT;
        (void) state;

        assert_int_equal(store_db_open(test_pg_conninfo, &a), 0);
        assert_int_equal(store_db_open(test_pg_conninfo, &b), 0);
        assert_int_equal(store_db_watch_releases(b, woken, &wb), 0);
        assert_int_equal(write_once(a, add_hosts), 0);
        assert_int_equal(terminate_others(c, "LISTEN %"), 1);
        assert_int_equal(woken_wait(&wb, 1, 10000), 1);
        assert_int_equal(write_once(a, "UPDATE hosts SET lease_epoch = NULL WHERE id = 'h1'"), 0);
        assert_int_equal(woken_wait(&wb, 2, 10000), 2);
}

/* Audit entries written by another instance, on the same listener as the
 * released leases (one connection, both channels): the other hears of
 * them once they commit, each watch only of its own news; the writer is
 * told from its committing thread, not by the database; when the listening
 * connection is lost, both watches are called once it is back. */
static void test_watch_audit(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = fresh();
        _cleanup_store_db_free_ StoreDb *a = NULL, *b = NULL;
        Woken wa = WOKEN_INIT, wb = WOKEN_INIT, rb = WOKEN_INIT;
        StoreTx *tx = NULL;
        uint64_t t0;
        (void) state;

        assert_int_equal(store_db_open(test_pg_conninfo, &a), 0);
        assert_int_equal(store_db_open(test_pg_conninfo, &b), 0);
        assert_int_equal(store_db_watch_audit(a, woken, &wa), 0);
        assert_int_equal(store_db_watch_audit(b, woken, &wb), 0);
        assert_int_equal(store_db_watch_releases(b, woken, &rb), 0);
        assert_int_equal(terminate_others(c, "LISTEN %"), 2);
        assert_int_equal(woken_wait(&wb, 1, 10000), 1);
        assert_int_equal(woken_wait(&rb, 1, 10000), 1);
        assert_int_equal(woken_wait(&wa, 1, 10000), 1);

        assert_int_equal(store_tx_begin(a, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(run(tx, "INSERT INTO audit (time, actor, action) VALUES (1, 'test', 'host.labels')"), 0);
        assert_int_equal(run(tx, "INSERT INTO audit (time, actor, action) VALUES (2, 'test', 'host.labels')"), 0);
        assert_int_equal(woken_wait(&wb, 2, 300), 1);
        t0 = now_usec();
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(woken_wait(&wb, 2, 10000), 2);
        print_message("an audit entry written on one instance: the other heard of it in %.1f ms\n",
                      (double) (wb.last_usec - t0) / 1000.0);
        /* Two statements, one transaction: one notice; no lease news. */
        assert_int_equal(woken_wait(&wb, 3, 300), 2);
        assert_int_equal(rb.n, 1);
        /* The writer hears nothing from the database (run() did not say
         * it appended, as store_audit_append() does). */
        assert_int_equal(wa.n, 1);
        /* A lease given back: the release watch only. */
        assert_int_equal(write_once(a, add_hosts), 0);
        assert_int_equal(write_once(a, "UPDATE hosts SET lease_epoch = NULL WHERE id = 'h1'"), 0);
        assert_int_equal(woken_wait(&rb, 2, 10000), 2);
        assert_int_equal(wb.n, 2);
        /* One watch off, the other goes on. */
        assert_int_equal(store_db_watch_releases(b, NULL, NULL), 0);
        assert_int_equal(write_once(a, "INSERT INTO audit (time, actor, action) VALUES (3, 'test', 'x')"), 0);
        assert_int_equal(woken_wait(&wb, 3, 10000), 3);
        assert_int_equal(store_db_watch_audit(b, NULL, NULL), 0);
        assert_int_equal(write_once(a, "INSERT INTO audit (time, actor, action) VALUES (4, 'test', 'x')"), 0);
        assert_int_equal(woken_wait(&wb, 4, 300), 3);
}

/* Pooled connections that the server ended while idle: the next
 * transactions connect again at their BEGIN, and the caller sees no error,
 * for every mode and for as many dead connections as the pool holds. */
static void test_lost_between(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = fresh();
        _cleanup_store_db_free_ StoreDb *a = NULL;
        StoreTx *tx[3] = {};
        (void) state;

        assert_int_equal(store_db_open(test_pg_conninfo, &a), 0);
        /* Three connections in the pool. */
        for (size_t i = 0; i < ELEMENTSOF(tx); i++)
                assert_int_equal(store_tx_begin(a, STORE_TX_READ, &tx[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(tx); i++)
                assert_int_equal(store_tx_commit(&tx[i]), 0);
        assert_int_equal(terminate_others(c, NULL), 3);

        assert_int_equal(write_once(a, "INSERT INTO tokens (name, hash, created) VALUES ('a', 'a', 0)"), 0);
        assert_int_equal(count_tokens(a), 1);
        {
                _cleanup_store_tx_ StoreTx *t = NULL;
                assert_int_equal(store_tx_begin(a, STORE_TX_RELAXED, &t), 0);
                assert_int_equal(run(t, "INSERT INTO tokens (name, hash, created) VALUES ('b', 'b', 0)"), 0);
                assert_int_equal(store_tx_commit(&t), 0);
        }
        assert_int_equal(count_tokens(a), 2);

        /* All dead at once again, taken together. */
        for (size_t i = 0; i < ELEMENTSOF(tx); i++)
                assert_int_equal(store_tx_begin(a, STORE_TX_READ, &tx[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(tx); i++)
                assert_int_equal(store_tx_commit(&tx[i]), 0);
        assert_int_equal(terminate_others(c, NULL), 3);
        for (size_t i = 0; i < ELEMENTSOF(tx); i++) {
                if (store_tx_begin(a, i == 0 ? STORE_TX_WRITE : STORE_TX_READ, &tx[i]) < 0)
                        fail_msg("begin %zu: %s", i, strempty(store_last_error()));
        }
        for (size_t i = 0; i < ELEMENTSOF(tx); i++)
                assert_int_equal(store_tx_commit(&tx[i]), 0);
}

/* A connection lost inside a transaction fails it closed: the statements
 * and the commit fail, nothing of it is kept; the next transaction works. */
static void test_lost_inside(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = fresh();
        _cleanup_store_db_free_ StoreDb *a = NULL;
        StoreTx *tx = NULL;
        (void) state;

        assert_int_equal(store_db_open(test_pg_conninfo, &a), 0);
        assert_int_equal(store_tx_begin(a, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(run(tx, "INSERT INTO tokens (name, hash, created) VALUES ('a', 'a', 0)"), 0);
        assert_int_equal(terminate_others(c, NULL), 1);
        assert_int_equal(run(tx, "INSERT INTO tokens (name, hash, created) VALUES ('b', 'b', 0)"), -ECONNRESET);
        assert_int_equal(store_tx_commit(&tx), -ECONNRESET);
        assert_null(tx);
        assert_int_equal(count_tokens(a), 0);
        assert_int_equal(write_once(a, "INSERT INTO tokens (name, hash, created) VALUES ('c', 'c', 0)"), 0);
        assert_int_equal(count_tokens(a), 1);
}

/* A COMMIT whose answer never comes (the session ends in it): the commit
 * fails, and is not sent again; the next transaction works. */
static void test_lost_at_commit(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = fresh();
        _cleanup_store_db_free_ StoreDb *a = NULL;
        StoreTx *tx = NULL;
        (void) state;

        assert_int_equal(store_db_open(test_pg_conninfo, &a), 0);
        assert_int_equal(pg_exec(c, "CREATE FUNCTION end_session() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
                                    "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); "
                                    "RETURN NULL; END $f$;"
                                    "CREATE CONSTRAINT TRIGGER end_session AFTER INSERT ON tokens DEFERRABLE "
                                    "INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.name = 'end') EXECUTE FUNCTION "
                                    "end_session()"),
                         0);
        assert_int_equal(store_tx_begin(a, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(run(tx, "INSERT INTO tokens (name, hash, created) VALUES ('end', 'end', 0)"), 0);
        assert_int_equal(store_tx_commit(&tx), -ECONNRESET);
        assert_null(tx);
        assert_int_equal(write_once(a, "INSERT INTO tokens (name, hash, created) VALUES ('c', 'c', 0)"), 0);
        assert_int_equal(count_tokens(a), 1);
}

/* The server stopped and started again under a running store: while it is
 * away, transactions fail (a connection errno, nothing done); once it is
 * back, the next one works on the same StoreDb, and the watch hears again,
 * as does one begun while the server was away. */
static void test_server_restart(void **state) {
        _cleanup_store_db_free_ StoreDb *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ char *again = NULL;
        Woken wb = WOKEN_INIT, wc = WOKEN_INIT;
        StoreTx *tx = NULL;
        uint64_t t0;
        int r, n;
        (void) state;

        {
                _cleanup_pg_conn_free_ PgConn *setup = fresh();
        }
        assert_int_equal(store_db_open(test_pg_conninfo, &a), 0);
        assert_int_equal(store_db_open(test_pg_conninfo, &b), 0);
        assert_int_equal(store_db_open(test_pg_conninfo, &c), 0);
        assert_int_equal(store_db_watch_releases(b, woken, &wb), 0);
        assert_int_equal(write_once(a, add_hosts), 0);

        test_pg_stop();
        assert_int_equal(store_db_watch_releases(c, woken, &wc), 0);
        r = store_tx_begin(a, STORE_TX_WRITE, &tx);
        assert_true(r == -ECONNREFUSED || r == -ECONNRESET);
        assert_null(tx);
        r = store_tx_begin(a, STORE_TX_READ, &tx);
        assert_true(r == -ECONNREFUSED || r == -ECONNRESET);

        assert_int_equal(test_pg_start(&again), 0);
        assert_string_equal(again, test_pg_conninfo);
        t0 = now_usec();
        r = write_once(a, "UPDATE hosts SET lease_epoch = NULL WHERE id = 'h1'");
        if (r < 0)
                fail_msg("first write after the restart: %s: %s", strerror(-r), strempty(store_last_error()));
        print_message("server back: first write in %.1f ms\n", (double) (now_usec() - t0) / 1000.0);
        /* The listener's own wake once it is back; then a notice. */
        assert_true(woken_wait(&wb, 1, 15000) >= 1);
        usleep(300 * 1000);
        pthread_mutex_lock(&wb.lock);
        n = wb.n;
        pthread_mutex_unlock(&wb.lock);
        assert_int_equal(write_once(a, "UPDATE hosts SET lease_epoch = NULL WHERE id = 'h2'"), 0);
        assert_int_equal(woken_wait(&wb, n + 1, 15000), n + 1);
        /* c's watch, begun in the outage: once when it listens, and at
         * each notice after. */
        assert_true(woken_wait(&wc, 1, 15000) >= 1);
        usleep(300 * 1000);
        pthread_mutex_lock(&wc.lock);
        n = wc.n;
        pthread_mutex_unlock(&wc.lock);
        assert_int_equal(write_once(a, "UPDATE hosts SET lease_epoch = NULL WHERE id = 'h3'"), 0);
        assert_int_equal(woken_wait(&wc, n + 1, 15000), n + 1);
}

int main(void) {
        const struct CMUnitTest live[] = {
                cmocka_unit_test(test_watch),
                cmocka_unit_test(test_watch_reconnects),
                cmocka_unit_test(test_watch_audit),
                cmocka_unit_test(test_lost_between),
                cmocka_unit_test(test_lost_inside),
                cmocka_unit_test(test_lost_at_commit),
                cmocka_unit_test(test_server_restart),
        };
        return cmocka_run_group_tests_name("against a server", live, test_pg_group_setup, test_pg_group_teardown);
}
