#include "tests.h"
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "macro.h"
#include "pgserver.h"
#include "store-db.h"
#include "store-pg.h"
#include "store.h"
#include "store-hosts.h"
#include "store-tokens.h"
#include "util.h"

static void translate_ok(const char *sql, const char *want, int want_n) {
        _cleanup_free_ char *out = NULL;
        int n = -1;

        assert_int_equal(pg_translate(sql, &out, &n), 0);
        assert_string_equal(out, want);
        assert_int_equal(n, want_n);
}

/* sqlite's placeholders as PostgreSQL's, numbered as sqlite numbers them;
 * what is quoted or commented stays as it is. */
static void test_translate(void **state) {
        _cleanup_free_ char *out = NULL;
        int n;
        (void) state;

        translate_ok("SELECT 1", "SELECT 1", 0);
        translate_ok("UPDATE t SET a = ?, b = ? WHERE c = ?", "UPDATE t SET a = $1, b = $2 WHERE c = $3", 3);
        translate_ok("SELECT ?1 - ?4 WHERE x = ?1", "SELECT $1 - $4 WHERE x = $1", 4);
        /* A bare ? takes the number after the largest so far. */
        translate_ok("SELECT ?3, ?, ?1, ?", "SELECT $3, $4, $1, $5", 5);
        translate_ok("SELECT '?', 'it''s ?', \"a?\"\"b\", ? -- ?\n, ? /* ? */",
                     "SELECT '?', 'it''s ?', \"a?\"\"b\", $1 -- ?\n, $2 /* ? */", 2);
        translate_ok("SELECT ?999", "SELECT $999", 999);
        /* A literal that never ends is copied to the end. */
        translate_ok("SELECT 'a?", "SELECT 'a?", 0);
        assert_int_equal(pg_translate("SELECT ?0", &out, &n), -EINVAL);
        assert_int_equal(pg_translate("SELECT ?1000", &out, &n), -EINVAL);
        assert_null(out);
}

/* The SQLSTATEs that decide what a caller does: retry, fail closed, or say
 * the disk is full. */
static void test_errno(void **state) {
        (void) state;

        assert_int_equal(pg_errno("08006"), -ECONNRESET);
        assert_int_equal(pg_errno("57P01"), -ECONNRESET);
        assert_int_equal(pg_errno(NULL), -ECONNRESET);
        assert_int_equal(pg_errno("40001"), -EAGAIN);
        assert_int_equal(pg_errno("40P01"), -EAGAIN);
        assert_int_equal(pg_errno("23505"), -EEXIST);
        assert_int_equal(pg_errno("23503"), -EEXIST);
        assert_int_equal(pg_errno("53100"), -ENOSPC);
        assert_int_equal(pg_errno("25006"), -EROFS);
        assert_int_equal(pg_errno("55P03"), -EBUSY);
        assert_int_equal(pg_errno("57014"), -ECANCELED);
        assert_int_equal(pg_errno("42601"), -EIO);
        assert_int_equal(pg_errno("4200"), -EIO);
}

/* One server for the tests that speak to one. */


/* Statements with sqlite's placeholders, bound, run and read, cached by
 * their text's address; NULLs, booleans and counts come back as the store
 * reads them. */
static void test_statements(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect();
        static const char ins[] = "INSERT INTO t (name, n, note) VALUES (?, ?, ?) RETURNING id";
        static const char sel[] = "SELECT name, n, note, n > ?1, ?2 - ?3 FROM t ORDER BY id";
        PgStmt *st, *again;
        (void) state;

        assert_true(pg_conn_server_version(c) >= 150000);
        assert_int_equal(pg_exec(c, "CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                                    "name TEXT UNIQUE NOT NULL, n BIGINT, note TEXT)"),
                         0);
        assert_int_equal(pg_stmt(c, ins, &st), 0);
        pg_bind_text(st, 1, "a");
        pg_bind_int64(st, 2, INT64_MAX);
        pg_bind_text(st, 3, NULL);
        assert_int_equal(pg_step(st), 1);
        assert_int_equal(pg_column_int64(st, 0), 1);
        assert_int_equal(pg_step(st), 0);
        assert_int_equal(pg_changes(st), 1);
        pg_stmt_reset(st);
        assert_int_equal(pg_stmt(c, ins, &again), 0);
        assert_ptr_equal(st, again);
        pg_bind_text(st, 1, "b");
        pg_bind_int64(st, 2, -5);
        pg_bind_text(st, 3, "it's");
        assert_int_equal(pg_step(st), 1);
        assert_int_equal(pg_column_int64(st, 0), 2);
        pg_stmt_reset(st);

        assert_int_equal(pg_stmt(c, sel, &st), 0);
        pg_bind_int64(st, 1, 0);
        pg_bind_int64(st, 2, 10);
        pg_bind_int64(st, 3, 3);
        assert_int_equal(pg_step(st), 1);
        assert_string_equal(pg_column_text(st, 0), "a");
        assert_true(pg_column_int64(st, 1) == INT64_MAX);
        assert_true(pg_column_is_null(st, 2));
        assert_null(pg_column_text(st, 2));
        assert_int_equal(pg_column_int64(st, 3), 1);
        assert_int_equal(pg_column_int64(st, 4), 7);
        assert_int_equal(pg_step(st), 1);
        assert_int_equal(pg_column_int64(st, 1), -5);
        assert_string_equal(pg_column_text(st, 2), "it's");
        assert_int_equal(pg_column_int64(st, 3), 0);
        assert_int_equal(pg_step(st), 0);
        /* Past the end stays at the end. */
        assert_int_equal(pg_step(st), 0);
        assert_true(pg_column_is_null(st, 0));
        pg_stmt_reset(st);

        static const char upd[] = "UPDATE t SET n = n + 1 WHERE n < ?";
        assert_int_equal(pg_stmt(c, upd, &st), 0);
        pg_bind_int64(st, 1, 100);
        assert_int_equal(pg_step(st), 0);
        assert_int_equal(pg_changes(st), 1);
        pg_stmt_reset(st);

        static const char sum[] = "SELECT sum(n), count(*) FROM t WHERE name = ?";
        assert_int_equal(pg_stmt(c, sum, &st), 0);
        pg_bind_text(st, 1, "b");
        assert_int_equal(pg_step(st), 1);
        assert_int_equal(pg_column_int64(st, 0), -4);
        assert_int_equal(pg_column_int64(st, 1), 1);
        pg_stmt_reset(st);
}

/* An error is returned by the step and by every step after it, until the
 * statement is reset; its message is kept. */
static void test_errors(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect();
        static const char ins[] = "INSERT INTO u (name) VALUES (?)";
        static const char bad[] = "SELEC 1";
        PgStmt *st;
        (void) state;

        assert_int_equal(pg_exec(c, "CREATE TABLE u (name TEXT PRIMARY KEY)"), 0);
        assert_int_equal(pg_exec(c, "CREATE TABLE u (name TEXT PRIMARY KEY)"), -EIO);
        assert_non_null(strstr(pg_last_error(), "already exists"));
        assert_int_equal(pg_stmt(c, ins, &st), 0);
        pg_bind_text(st, 1, "x");
        assert_int_equal(pg_step(st), 0);
        pg_stmt_reset(st);
        pg_bind_text(st, 1, "x");
        assert_int_equal(pg_step(st), -EEXIST);
        assert_non_null(strstr(pg_last_error(), "duplicate key"));
        assert_int_equal(pg_step(st), -EEXIST);
        pg_stmt_reset(st);
        pg_bind_text(st, 1, "y");
        assert_int_equal(pg_step(st), 0);
        pg_stmt_reset(st);
        /* A binding out of range fails the step, not the program. */
        pg_bind_text(st, 2, "z");
        assert_int_equal(pg_step(st), -EIO);
        assert_non_null(strstr(pg_last_error(), "parameter 2"));
        pg_stmt_reset(st);

        assert_int_equal(pg_stmt(c, bad, &st), 0);
        assert_int_equal(pg_step(st), -EIO);
        assert_non_null(strstr(pg_last_error(), "syntax error"));
        pg_stmt_reset(st);
        /* The failed prepare is tried again, and fails again. */
        assert_int_equal(pg_step(st), -EIO);
        pg_stmt_reset(st);
}

/* A connection the server ended fails every call with -ECONNRESET, never
 * with an empty answer; after a reset, the same statements work again
 * (prepared anew on the new session). */
static void test_connection_lost(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect(), *killer = test_pg_connect();
        static const char pid_sql[] = "SELECT pg_backend_pid()";
        static const char kill_sql[] = "SELECT pg_terminate_backend(CAST(? AS integer))";
        PgStmt *st, *k;
        int64_t pid;
        (void) state;

        assert_int_equal(pg_stmt(c, pid_sql, &st), 0);
        assert_int_equal(pg_step(st), 1);
        pid = pg_column_int64(st, 0);
        pg_stmt_reset(st);
        assert_int_equal(pg_stmt(killer, kill_sql, &k), 0);
        pg_bind_int64(k, 1, pid);
        assert_int_equal(pg_step(k), 1);
        assert_int_equal(pg_column_int64(k, 0), 1);
        pg_stmt_reset(k);

        assert_int_equal(pg_step(st), -ECONNRESET);
        assert_false(pg_conn_ok(c));
        pg_stmt_reset(st);
        assert_int_equal(pg_step(st), -ECONNRESET);
        pg_stmt_reset(st);
        assert_int_equal(pg_exec(c, "SELECT 1"), -ECONNRESET);
        assert_int_equal(pg_conn_reset(c), 0);
        if (pg_step(st) != 1)
                fail_msg("after the reset: %s", strempty(pg_last_error()));
        assert_true(pg_column_int64(st, 0) != pid);
        pg_stmt_reset(st);
}

/* A server that is not there: a clear refusal, libpq's message kept. */
static void test_no_server(void **state) {
        _cleanup_free_ char *error = NULL;
        PgConn *c = NULL;
        (void) state;

        assert_int_equal(pg_conn_open("postgresql:///slipway?host=/nonexistent&connect_timeout=2", &c, &error),
                         -ECONNREFUSED);
        assert_null(c);
        assert_non_null(error);
        assert_non_null(strstr(error, "/nonexistent"));
}

static int64_t query_int(PgConn *c, const char *sql) {
        /* A test's own statement: prepared once per text it uses. */
        PgStmt *st;
        int64_t v;

        assert_int_equal(pg_stmt(c, sql, &st), 0);
        if (pg_step(st) != 1)
                fail_msg("%s: %s", sql, strempty(pg_last_error()));
        v = pg_column_int64(st, 0);
        pg_stmt_reset(st);
        return v;
}

/* A fresh database gets the whole schema; a second run finds nothing to do;
 * a database from a newer slipwayd is refused. */
static void test_migrate(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect();
        static const char version[] = "SELECT version FROM schema_version";
        static const char tables[] = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
        (void) state;

        assert_int_equal(pg_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), 0);
        assert_int_equal(pg_migrate(c), 0);
        assert_int_equal(query_int(c, version), 24);
        /* 24 tables and schema_version. */
        assert_int_equal(query_int(c, tables), 25);
        assert_int_equal(pg_migrate(c), 0);
        assert_int_equal(query_int(c, version), 24);
        assert_int_equal(pg_exec(c, "UPDATE schema_version SET version = 99"), 0);
        assert_int_equal(pg_migrate(c), -EPROTO);
        /* The lock was let go: another session can take it. */
        _cleanup_pg_conn_free_ PgConn *other = test_pg_connect();
        assert_int_equal(query_int(other, "SELECT pg_try_advisory_lock(32488822435963257)::int"), 1);
}

/* The triggers keep the same counts as sqlite's: each wave's hosts by
 * status, and the mark on an assigned row that its host's report finishes. */
static void test_triggers(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect();
        static const char waves[] =
                "SELECT count(*) FROM rollout_waves w FULL JOIN (SELECT rollout_id, wave, count(*) AS hosts, "
                "count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = "
                "'assigned') AS assigned, count(*) FILTER (WHERE status = 'done') AS done, count(*) FILTER "
                "(WHERE status = 'failed') AS failed, count(*) FILTER (WHERE status = 'skipped') AS skipped, "
                "count(*) FILTER (WHERE status = 'failed' AND acked = 0) AS failed_new FROM rollout_hosts GROUP "
                "BY rollout_id, wave) h USING (rollout_id, wave) WHERE coalesce(w.hosts, 0) > 0 AND (w.hosts, "
                "w.pending, w.assigned, w.done, w.failed, w.skipped, w.failed_new) IS DISTINCT FROM (h.hosts, "
                "h.pending, h.assigned, h.done, h.failed, h.skipped, h.failed_new) OR (w.hosts IS NULL AND "
                "h.hosts > 0) OR (coalesce(w.hosts, 0) > 0 AND h.hosts IS NULL)";
        static const char reported[] = "SELECT count(*) FROM rollout_hosts WHERE reported <> 0";
        (void) state;

        assert_int_equal(pg_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), 0);
        assert_int_equal(pg_migrate(c), 0);
        assert_int_equal(pg_exec(c, "INSERT INTO images (id, name, version, arch, manifest, signature, created) "
                                    "VALUES ('i1', 't', '1', 'x86_64', 'm', 's', 0), ('i2', 't', '2', 'x86_64', "
                                    "'m', 's', 0);"
                                    "INSERT INTO hosts (id, registered, image, current_image, state) SELECT "
                                    "'h' || n, 0, 'i1', 'i1', 'healthy' FROM generate_series(1, 20) n;"
                                    "INSERT INTO rollouts (kind, image, spec, state, n_waves, created) VALUES "
                                    "('rollout', 'i2', '{}', 'running', 2, 0);"
                                    "INSERT INTO rollout_hosts (rollout_id, host_id, wave, target, prev_image, "
                                    "status) SELECT 1, 'h' || n, n % 2, 'i2', 'i1', 'pending' FROM "
                                    "generate_series(1, 20) n;"),
                         0);
        assert_int_equal(query_int(c, waves), 0);
        assert_int_equal(query_int(c, "SELECT pending FROM rollout_waves WHERE wave = 1"), 10);
        assert_int_equal(pg_exec(c, "UPDATE rollout_hosts SET status = 'assigned', assigned_at = 100 WHERE "
                                    "host_id IN ('h1', 'h2', 'h3', 'h4');"
                                    "UPDATE hosts SET image = 'i2' WHERE id IN ('h1', 'h2', 'h3', 'h4')"),
                         0);
        assert_int_equal(query_int(c, waves), 0);
        assert_int_equal(query_int(c, reported), 0);
        /* h1 arrives healthy, h2 falls back after its assignment, h3 falls
         * back from the target before it (failed_image names it), h4 says
         * nothing new. */
        assert_int_equal(pg_exec(c, "UPDATE hosts SET current_image = 'i2' WHERE id = 'h1';"
                                    "UPDATE hosts SET state = 'rolled-back', state_since = 150 WHERE id = 'h2';"
                                    "UPDATE hosts SET state = 'failed', state_since = 50, failed_image = 'i2' "
                                    "WHERE id = 'h3';"
                                    "UPDATE hosts SET hostname = 'x' WHERE id = 'h4'"),
                         0);
        assert_int_equal(query_int(c, reported), 3);
        assert_int_equal(query_int(c, "SELECT count(*) FROM rollout_hosts WHERE reported <> 0 AND host_id "
                                      "IN ('h1', 'h2', 'h3')"),
                         3);
        assert_int_equal(pg_exec(c, "UPDATE rollout_hosts SET status = 'done', reported = 0 WHERE host_id = 'h1';"
                                    "UPDATE rollout_hosts SET status = 'failed', reported = 0 WHERE host_id IN "
                                    "('h2', 'h3');"
                                    "UPDATE rollout_hosts SET acked = 1 WHERE host_id = 'h3';"
                                    "UPDATE rollout_hosts SET status = 'skipped' WHERE host_id = 'h5';"
                                    "UPDATE rollout_hosts SET wave = 1 WHERE host_id = 'h6';"
                                    "DELETE FROM rollout_hosts WHERE host_id = 'h7'"),
                         0);
        assert_int_equal(query_int(c, waves), 0);
        /* h2 (wave 0) failed; h3 (wave 1) failed and was acknowledged. */
        assert_int_equal(query_int(c, "SELECT failed_new FROM rollout_waves WHERE wave = 0"), 1);
        assert_int_equal(query_int(c, "SELECT failed_new FROM rollout_waves WHERE wave = 1"), 0);
        /* In a rollback, a failed_image named before the assignment does
         * not finish the row. */
        assert_int_equal(pg_exec(c, "UPDATE rollouts SET kind = 'rollback';"
                                    "UPDATE rollout_hosts SET status = 'assigned', assigned_at = 100 WHERE "
                                    "host_id = 'h9';"
                                    "UPDATE hosts SET state = 'failed', state_since = 50, failed_image = 'i2' "
                                    "WHERE id = 'h9'"),
                         0);
        assert_int_equal(query_int(c, "SELECT reported FROM rollout_hosts WHERE host_id = 'h9'"), 0);
        assert_int_equal(query_int(c, waves), 0);
}

static void *migrate_thread(void *userdata) {
        PgConn *c = NULL;
        int *r = userdata;

        *r = pg_conn_open(test_pg_conninfo, &c, NULL);
        if (*r >= 0)
                *r = pg_migrate(c);
        pg_conn_free(c);
        return NULL;
}

/* Instances that start together: one migrates, the others wait for it and
 * find nothing to do; none fails on what another made. */
static void test_migrate_together(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect();
        pthread_t t[4];
        int r[4];
        (void) state;

        assert_int_equal(pg_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &r[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(r[i], 0);
        }
        assert_int_equal(query_int(c, "SELECT version FROM schema_version"), 24);
        assert_int_equal(query_int(c, "SELECT count(*) FROM schema_version"), 1);
}

static int insert_token(StoreTx *tx, const char *name) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r = store_stmt(tx, "INSERT INTO tokens (name, hash, created) VALUES (?1, ?1, 0)", &st);

        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        return db_step(st);
}

static int64_t count_tokens(StoreDb *db) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_stmt(tx, "SELECT count(*) FROM tokens", &st), 0);
        assert_int_equal(db_step(st), 1);
        return db_column_int64(st, 0);
}

typedef struct Writer {
        StoreDb *db;
        volatile bool committed;
        int r;
} Writer;

static void *second_writer(void *userdata) {
        Writer *w = userdata;
        StoreTx *tx = NULL;

        w->r = store_tx_begin(w->db, STORE_TX_WRITE, &tx);
        if (w->r >= 0)
                w->r = insert_token(tx, "b");
        if (w->r >= 0)
                w->r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        w->committed = w->r >= 0;
        return NULL;
}

/* The store's transactions on PostgreSQL: writes of two instances one
 * after the other, reads that cannot write, an error that costs the whole
 * transaction (and says so at the commit) or only its savepoint. */
static void test_store_transactions(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect();
        _cleanup_store_db_free_ StoreDb *one = NULL, *two = NULL;
        StoreTx *tx = NULL, *nested = NULL;
        Writer w = {};
        pthread_t t;
        (void) state;

        assert_int_equal(pg_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), 0);
        assert_int_equal(store_db_open(test_pg_conninfo, &one), 0);
        assert_int_equal(store_db_open(test_pg_conninfo, &two), 0);

        /* The second instance's write waits for the first's. */
        assert_int_equal(store_tx_begin(one, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(insert_token(tx, "a"), 0);
        w.db = two;
        assert_int_equal(pthread_create(&t, NULL, second_writer, &w), 0);
        /* Seen waiting for the write lock, however slow the machine. */
        bool waits = false;
        for (int i = 0; i < 1000 && !waits; i++) {
                waits = query_int(c, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                     "wait_event = 'advisory'") == 1;
                if (!waits)
                        usleep(10 * 1000);
        }
        assert_true(waits);
        assert_false(w.committed);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.r, 0);
        assert_int_equal(count_tokens(one), 2);

        /* A read transaction refuses a write. */
        assert_int_equal(store_tx_begin(two, STORE_TX_READ, &tx), 0);
        assert_int_equal(insert_token(tx, "c"), -EROFS);
        store_tx_rollback(&tx);

        /* An error ends the transaction: what it wrote before is gone, and
         * the commit says so. */
        assert_int_equal(store_tx_begin(one, STORE_TX_RELAXED, &tx), 0);
        assert_int_equal(insert_token(tx, "d"), 0);
        assert_int_equal(insert_token(tx, "a"), -EEXIST);
        assert_int_equal(store_tx_commit(&tx), -EIO);
        assert_null(tx);
        assert_int_equal(count_tokens(one), 2);

        /* In a savepoint, only the savepoint is lost. */
        assert_int_equal(store_tx_begin(one, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(insert_token(tx, "e"), 0);
        assert_int_equal(store_tx_nest(tx, &nested), 0);
        assert_int_equal(insert_token(nested, "f"), 0);
        assert_int_equal(insert_token(nested, "a"), -EEXIST);
        assert_true(store_tx_rollback(&nested));
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(count_tokens(two), 3);
}

static int token_name_cb(const char *name, const char *role, long long created, void *userdata) {
        (void) role;
        (void) created;
        return strv_extend(userdata, name);
}

/* Text sorts and compares bytewise, as on sqlite, in a database whose own
 * collation does not (ICU's English: 'a' before 'B', '_' first): the
 * schema's text columns have the C collation. */
static void test_collation(void **state) {
        _cleanup_pg_conn_free_ PgConn *c = test_pg_connect();
        _cleanup_pg_conn_free_ PgConn *icu = NULL;
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_strv_free_ char **names = NULL, **hosts = NULL;
        _cleanup_free_ char *url = NULL, *error = NULL;
        const char *at = strstr(test_pg_conninfo, "/slipway?");
        (void) state;

        assert_non_null(at);
        url = strdup_printf("%.*s/english?%s", (int) (at - test_pg_conninfo), test_pg_conninfo, at + strlen("/slipway?"));
        assert_non_null(url);
        assert_int_equal(pg_exec(c, "DROP DATABASE IF EXISTS english"), 0);
        assert_int_equal(pg_exec(c, "CREATE DATABASE english TEMPLATE template0 LOCALE_PROVIDER icu "
                                    "ICU_LOCALE 'en-US' LOCALE 'C'"),
                         0);
        if (pg_conn_open(url, &icu, &error) < 0)
                fail_msg("cannot connect to %s: %s", url, strempty(error));
        /* The database's own order is not bytes'. */
        assert_int_equal(query_int(icu, "SELECT CASE WHEN 'a' < 'B' THEN 1 ELSE 0 END"), 1);

        assert_int_equal(store_db_open(url, &db), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        static const char *const tokens[] = { "b", "B", "a", "_x", "A1" };
        for (size_t i = 0; i < ELEMENTSOF(tokens); i++)
                assert_int_equal(store_token_insert(tx, tokens[i], tokens[i], "admin", 0), 0);
        assert_int_equal(store_token_list(tx, token_name_cb, &names), 0);
        assert_int_equal(strv_length(names), 5);
        assert_string_equal(names[0], "A1");
        assert_string_equal(names[1], "B");
        assert_string_equal(names[2], "_x");
        assert_string_equal(names[3], "a");
        assert_string_equal(names[4], "b");
        /* Host IDs (ORDER BY id) and a label's value, compared. */
        assert_int_equal(store_host_insert(tx, "h-b", NULL, NULL, 1), 0);
        assert_int_equal(store_host_insert(tx, "h-B", NULL, NULL, 1), 0);
        assert_int_equal(store_host_insert(tx, "h-_", NULL, NULL, 1), 0);
        assert_int_equal(store_host_list(tx, NULL, NULL, NULL, &hosts), 0);
        assert_int_equal(strv_length(hosts), 3);
        assert_string_equal(hosts[0], "h-B");
        assert_string_equal(hosts[1], "h-_");
        assert_string_equal(hosts[2], "h-b");
        assert_int_equal(store_tx_commit(&tx), 0);
        store_db_free(TAKE_PTR(db));
        pg_conn_free(TAKE_PTR(icu));
        assert_int_equal(pg_exec(c, "DROP DATABASE english"), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_translate),
                test_in_dir(test_errno),
                test_in_dir(test_no_server),
        };
        const struct CMUnitTest live[] = {
                cmocka_unit_test(test_statements),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_connection_lost),
                cmocka_unit_test(test_migrate),
                cmocka_unit_test(test_migrate_together),
                cmocka_unit_test(test_triggers),
                cmocka_unit_test(test_store_transactions),
                cmocka_unit_test(test_collation),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        return r + cmocka_run_group_tests_name("against a server", live, test_pg_group_setup, test_pg_group_teardown);
}
