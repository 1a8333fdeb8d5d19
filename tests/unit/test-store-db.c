/* The statement API (store-db.h) on both drivers, sqlite and PostgreSQL (a
 * server of the test's own): a failed binding is returned by the next step
 * and forgotten by a reset, the rows a statement changed are its own, NULL
 * reads as NULL, 0 or false, and a new row's id comes back from RETURNING.
 * And on sqlite, a reboot window that is no string, told apart in the
 * statement, reads as NULL (not valid). A target's audit entries are read
 * through the index on audit.target; a transaction that appends to the
 * audit log tells store_db_watch_audit()'s function once it commits. A
 * statement is found by its text, not by where the text is. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests.h"

#include "pgserver.h"
#include "store-audit-sql.h"
#include "store-audit.h"
#include "store-coord.h"
#include "store-db.h"
#include "store-driver.h"
#include "store-pg.h"
#include "store-sqlite.h"
#include "util.h"

static void insert_token(StoreTx *tx, const char *name, const char *hash, int64_t created) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, "INSERT INTO tokens (name, hash, created) VALUES (?, ?, ?)", &st), 0);
        db_bind_text(st, 1, name);
        db_bind_text(st, 2, hash);
        db_bind_int64(st, 3, created);
        assert_int_equal(db_step(st), 0);
        assert_int_equal(db_changes(st), 1);
}

static void test_bind_error_kept(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_stmt(tx, "SELECT count(*) FROM tokens WHERE name = ?", &st), 0);
        store_clear_error();
        /* No parameter 2: the step reports it, and nothing runs. */
        db_bind_text(st, 2, "x");
        db_bind_text(st, 1, "x");
        assert_int_equal(db_step(st), -EIO);
        assert_non_null(store_last_error());
        assert_non_null(strstr(store_last_error(), "parameter 2"));
        /* A reset forgets it. */
        db_reset(st);
        db_bind_text(st, 1, "x");
        assert_int_equal(db_step(st), 1);
        assert_int_equal(db_column_int64(st, 0), 0);
        db_reset(st);
        /* The same literal gives the same statement, reset and unbound. */
        assert_int_equal(store_stmt(tx, "SELECT count(*) FROM tokens WHERE name = ?", &st), 0);
        assert_int_equal(db_step(st), 1);
}

/* The statement cache goes by the SQL's text, not by where it is: a text
 * made again in the same buffer is a statement of its own, and a text
 * seen before, wherever it is now, finds the statement it had. */
static void test_stmt_by_text(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *again = NULL;
        DbStmt *count = NULL, *name = NULL, *same = NULL;
        char sql[128];
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        insert_token(tx, "a", "ha", 1);
        insert_token(tx, "b", "hb", 2);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM tokens WHERE created < %d", 2);
        assert_int_equal(store_stmt(tx, sql, &count), 0);
        assert_int_equal(db_step(count), 1);
        assert_int_equal(db_column_int64(count, 0), 1);
        db_reset(count);
        snprintf(sql, sizeof sql, "SELECT name FROM tokens WHERE created = %d", 2);
        assert_int_equal(store_stmt(tx, sql, &name), 0);
        assert_ptr_not_equal(name, count);
        assert_int_equal(db_step(name), 1);
        assert_string_equal(db_column_text(name, 0), "b");
        db_reset(name);
        again = strdup("SELECT count(*) FROM tokens WHERE created < 2");
        assert_non_null(again);
        assert_int_equal(store_stmt(tx, again, &same), 0);
        assert_ptr_equal(same, count);
        assert_int_equal(db_step(same), 1);
        assert_int_equal(db_column_int64(same, 0), 1);
        db_reset(same);
}

static void test_changes(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *up = NULL, *sel = NULL;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        insert_token(tx, "a", "ha", 1);
        insert_token(tx, "b", "hb", 2);
        insert_token(tx, "c", "hc", 3);
        assert_int_equal(store_stmt(tx, "UPDATE tokens SET created = created + 10 WHERE created < ?", &up), 0);
        db_bind_int64(up, 1, 3);
        assert_int_equal(db_step(up), 0);
        assert_int_equal(db_changes(up), 2);
        /* A read changes nothing, whatever ran before it on the connection. */
        assert_int_equal(store_stmt(tx, "SELECT name FROM tokens ORDER BY name", &sel), 0);
        while (db_step(sel) > 0)
                ;
        assert_int_equal(db_changes(sel), 0);
        assert_int_equal(db_changes(up), 2);
        db_reset(up);
        db_bind_int64(up, 1, 0);
        assert_int_equal(db_step(up), 0);
        assert_int_equal(db_changes(up), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_columns(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ char *t = NULL;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        /* A bare NULL has no type in PostgreSQL: the statement gives it one. */
        assert_int_equal(store_stmt(tx, "SELECT CAST(?1 AS TEXT), ?2, ?3, ?4, ?5, ?6", &st), 0);
        db_bind_null(st, 1);
        db_bind_text(st, 2, NULL);
        db_bind_bool(st, 3, true);
        db_bind_int(st, 4, -7);
        db_bind_int64(st, 5, INT64_MAX);
        db_bind_text(st, 6, "text");
        assert_int_equal(db_step(st), 1);
        for (int i = 0; i < 2; i++) {
                assert_true(db_column_is_null(st, i));
                assert_null(db_column_text(st, i));
                assert_null(db_column_strdup(st, i));
                assert_int_equal(db_column_int64(st, i), 0);
                assert_false(db_column_bool(st, i));
        }
        assert_false(db_column_is_null(st, 2));
        assert_true(db_column_bool(st, 2));
        assert_int_equal(db_column_int(st, 3), -7);
        assert_true(db_column_int64(st, 4) == INT64_MAX);
        t = db_column_strdup(st, 5);
        assert_string_equal(t, "text");
        assert_int_equal(db_step(st), 0);
}

static void test_returning(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int64_t ids[2];
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                _cleanup_stmt_reset_ DbStmt *st = NULL;

                assert_int_equal(store_stmt(tx,
                                            "INSERT INTO audit (time, actor, action) VALUES (?, 'test', 'x') "
                                            "RETURNING id",
                                            &st),
                                 0);
                db_bind_int64(st, 1, 1);
                assert_int_equal(db_step(st), 1);
                ids[i] = db_column_int64(st, 0);
        }
        assert_true(ids[0] > 0);
        assert_true(ids[1] == ids[0] + 1);
        assert_int_equal(store_tx_commit(&tx), 0);
        /* Each insert was read to its first row only, and is whole. */
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        {
                _cleanup_stmt_reset_ DbStmt *st = NULL;

                assert_int_equal(store_stmt(tx, "SELECT count(*) FROM audit", &st), 0);
                assert_int_equal(db_step(st), 1);
                assert_int_equal(db_column_int64(st, 0), 2);
        }
}

static void test_window_not_text(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        RebootWindow *l = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(sqlite3_exec(store_sqlite(db),
                                      "INSERT INTO hosts (id, registered) VALUES ('h-1', 0);"
                                      "INSERT INTO host_labels (host_id, key, value) VALUES ('h-1', 'a', '1'), "
                                      "('h-1', 'b', '2'), ('h-1', 'c', '3'), ('h-1', 'd', '4');"
                                      "INSERT INTO rollouts (id, kind, spec, state, n_waves, created) VALUES (1, "
                                      "'rollout', '{\"windows\": {\"a\": \"22:00-04:00\", \"b\": 5, "
                                      "\"c\": null, \"d\": {\"x\": 1}}}', 'running', 1, 0);"
                                      "INSERT INTO rollout_hosts (rollout_id, host_id, wave, target, status) VALUES "
                                      "(1, 'h-1', 0, 'img', 'assigned');",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_coord_host_windows(tx, "h-1", &l, &n), 0);
        assert_int_equal(n, 4);
        assert_string_equal(l[0].selector, "a");
        assert_string_equal(l[0].window, "22:00-04:00");
        assert_string_equal(l[0].group, "a=1");
        assert_null(l[1].window);
        assert_null(l[2].window);
        /* JSON text is text, as before: its parse refuses it. */
        assert_string_equal(l[3].window, "{\"x\":1}");
        reboot_window_list_free(l, n);
}

/* A migration that fails is named with sqlite's reason, which its
 * rollback used to wipe ("not an error"); the file is left as it was. */
static void test_migration_error(void **state) {
        StoreDb *db = NULL;
        sqlite3 *s = NULL;
        sqlite3_stmt *st = NULL;
        (void) state;

        assert_int_equal(sqlite3_open("state.db", &s), SQLITE_OK);
        assert_int_equal(sqlite3_exec(s, "CREATE TABLE blobs (x TEXT);", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_close(s), SQLITE_OK);

        assert_true(sqlite_db_open("state.db", &db) < 0);
        assert_null(db);
        assert_non_null(store_last_error());
        assert_non_null(strstr(store_last_error(), "migration 1 of "));
        assert_non_null(strstr(store_last_error(), "table blobs already exists"));

        assert_int_equal(sqlite3_open("state.db", &s), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 0);
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_exec(s, "SELECT 1 FROM images", NULL, NULL, NULL), SQLITE_ERROR);
        assert_int_equal(sqlite3_close(s), SQLITE_OK);
}

/* The plan of the listing of one target's entries (a host's page) names
 * the index audit_target: sqlite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN
 * over a log of 2,000 entries of 200 targets, analyzed. */
static void test_audit_target_index(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *plan = NULL;
        bool pg;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (int i = 0; i < 2000; i++) {
                char target[16];

                snprintf(target, sizeof target, "h-%03d", i % 200);
                assert_int_equal(store_audit_append(tx, i, "test", "host.state", target, NULL), 0);
        }
        pg = store_tx_postgresql(tx);
        {
                _cleanup_stmt_reset_ DbStmt *st = NULL;

                assert_int_equal(store_stmt(tx, "ANALYZE audit", &st), 0);
                assert_int_equal(db_step(st), 0);
        }
        assert_int_equal(store_tx_commit(&tx), 0);

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        {
                _cleanup_stmt_reset_ DbStmt *st = NULL;
                int r;

                assert_int_equal(store_stmt(tx, pg ? "EXPLAIN " AUDIT_LIST_TARGET_SQL
                                                   : "EXPLAIN QUERY PLAN " AUDIT_LIST_TARGET_SQL,
                                            &st),
                                 0);
                db_bind_int64(st, 1, 0);
                db_bind_int64(st, 2, 50);
                db_bind_text(st, 3, "host");
                db_bind_int(st, 4, -1);
                db_bind_text(st, 5, "h-007");
                /* sqlite: (id, parent, notused, detail); PostgreSQL: one line a row. */
                while ((r = db_step(st)) > 0) {
                        _cleanup_free_ char *line = plan;

                        plan = strdup_printf("%s%s\n", strempty(line), db_column_text(st, pg ? 0 : 3));
                        assert_non_null(plan);
                }
                assert_int_equal(r, 0);
        }
        print_message("the plan of a target's entries:\n%s", plan);
        assert_non_null(strstr(plan, "audit_target"));
        /* And the listing finds that target's entries, the newest last. */
        {
                AuditQuery q = { .last = 5, .action = "host", .target = "h-007" };
                AuditEntry *l = NULL;
                size_t n = 0;

                assert_int_equal(store_audit_list(tx, &q, &l, &n), 0);
                assert_int_equal(n, 5);
                for (size_t i = 0; i < n; i++)
                        assert_string_equal(l[i].target, "h-007");
                assert_int_equal(l[4].time, 1807);
                assert_true(l[0].id < l[4].id);
                audit_entries_free(l, n);
        }
}

typedef struct Appended {
        int n;
} Appended;

static void appended(void *userdata) {
        ((Appended *) userdata)->n++;
}

static void append_one(StoreTx *tx) {
        assert_int_equal(store_audit_append(tx, 1, "test", "host.labels", "h-1", NULL), 0);
}

/* This StoreDb's own entries: told from the committing thread, once a
 * transaction that appended commits; not for one rolled back, nor for one
 * that appended nothing; a savepoint's with its transaction. */
static void test_audit_watch_own(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        StoreTx *tx = NULL, *sp = NULL;
        Appended a = {};
        (void) state;

        assert_int_equal(store_db_watch_audit(db, appended, &a), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        append_one(tx);
        append_one(tx);
        assert_int_equal(a.n, 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(a.n, 1);

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        append_one(tx);
        store_tx_rollback(&tx);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        insert_token(tx, "a", "ha", 1);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(a.n, 1);

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_tx_nest(tx, &sp), 0);
        append_one(sp);
        assert_int_equal(store_tx_commit(&sp), 0);
        assert_int_equal(a.n, 1);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(a.n, 2);

        assert_int_equal(store_db_watch_audit(db, NULL, NULL), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        append_one(tx);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(a.n, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_bind_error_kept),
                test_in_dir(test_stmt_by_text),
                test_in_dir(test_changes),
                test_in_dir(test_columns),
                test_in_dir(test_returning),
                test_in_dir(test_window_not_text),
                test_in_dir(test_migration_error),
                test_in_dir(test_audit_target_index),
                test_in_dir(test_audit_watch_own),
        };
        const struct CMUnitTest pg[] = {
                cmocka_unit_test(test_bind_error_kept),
                cmocka_unit_test(test_stmt_by_text),
                cmocka_unit_test(test_changes),
                cmocka_unit_test(test_columns),
                cmocka_unit_test(test_returning),
                cmocka_unit_test(test_audit_target_index),
                cmocka_unit_test(test_audit_watch_own),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
