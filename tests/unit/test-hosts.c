/* The inventory over a real store: registration by MAC, labels, a
 * check-in (its state recorded, no image desired), the check-in answered by
 * a read when it changes nothing, refusals that fail closed (an unknown
 * host's check-in, a registration secret never issued), and read
 * transactions beside an open write. Every case runs on sqlite and on
 * PostgreSQL (a server of the test's own). */
#include "tests.h"

#include "enroll.h"
#include "hosts.h"
#include "pgserver.h"
#include "store-db.h"
#include "store-hosts.h"
#include "store-sqlite.h"
#include "util.h"

#define MAC "52:54:00:12:34:56"
#define NOW 1800000000u

static void test_register_labels_checkin(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_(host_release) Host h = {};
        _cleanup_(desired_image_release) DesiredImage want = {};
        CheckinRequest c = { .state = HOST_HEALTHY };
        StoreTx *tx = NULL;
        char id[16], again[16];
        bool is_new;
        json_t *set;
        (void) state;

        db = test_store_open();
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(hosts_ensure(tx, MAC, NULL, NOW, "test", id, &is_new), 0);
        assert_true(is_new);
        assert_int_equal(hosts_ensure(tx, MAC, NULL, NOW, "test", again, &is_new), 0);
        assert_false(is_new);
        assert_string_equal(id, again);
        set = json_pack("{s:s}", "rack", "r1");
        assert_int_equal(hosts_set_labels(tx, id, set, NULL, NOW, "test", set), 0);
        json_decref(set);
        assert_int_equal(hosts_checkin(tx, MAC, &c, NOW, "agent", &want), 0);
        assert_null(want.image);
        assert_int_equal(store_host_get(tx, id, &h), 0);
        assert_string_equal(h.state, "healthy");
        assert_int_equal(h.last_seen, NOW);
        assert_int_equal(h.registered, NOW);
        assert_int_equal(h.n_labels, 1);
        assert_string_equal(h.labels[0].key, "rack");
        assert_string_equal(h.labels[0].value, "r1");
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_fail_closed(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_(desired_image_release) DesiredImage want = {};
        _cleanup_free_ char *why = NULL;
        CheckinRequest c = { .state = HOST_HEALTHY };
        StoreTx *tx = NULL;
        char id[16];
        bool is_new;
        (void) state;

        db = test_store_open();
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(hosts_checkin(tx, "h-000000000000", &c, NOW, "agent", &want), -ENOENT);
        assert_int_equal(hosts_ensure(tx, MAC, NULL, NOW, "test", id, &is_new), 0);
        /* No secret was issued: any secret is refused, with a reason. */
        assert_int_equal(enroll_check(tx, ".", MAC, "10.0.0.5", "00", NOW, &why), 0);
        assert_non_null(why);
        store_tx_rollback(&tx);
}

/* Runs sql, a literal without parameters, in a transaction of its own. */
static void exec_committed(StoreDb *db, const char *sql) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_true(db_step(st) >= 0);
        db_reset(st);
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* What changes with every write of the host rows: sqlite's count of
 * changed rows, the rows' versions on PostgreSQL. */
static char *writes_mark(StoreDb *db) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        if (!test_pg_conninfo)
                return strdup_printf("%d", sqlite3_total_changes(store_sqlite(db)));
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_stmt(tx, "SELECT string_agg(xmin::text, ',' ORDER BY id) FROM hosts", &st), 0);
        assert_int_equal(db_step(st), 1);
        return db_column_strdup(st, 0);
}

/* 1 when hosts_checkin_unchanged() answers c for ref at now from a read. */
static int unchanged(StoreDb *db, SeenLog *seen, const char *ref, const CheckinRequest *c, uint64_t now) {
        _cleanup_(desired_image_release) DesiredImage want = {};
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        r = hosts_checkin_unchanged(tx, seen, ref, c, now, &want);
        if (r == 0)
                assert_null(want.image);
        return r;
}

/* The read answers only what hosts_checkin() would write nothing for but
 * last_seen: the same report from a host not in quarantine; everything else
 * goes to the write path. last_seen is noted and written by a flush. */
static void test_checkin_unchanged(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_(desired_image_release) DesiredImage want = {};
        _cleanup_(host_release) Host h = {};
        SeenLog *seen = seen_log_new();
        json_t *slots = json_pack("{s:{s:s}}", "a", "version", "1.0");
        CheckinRequest c = { .state = HOST_HEALTHY, .version = (char *) "1.0", .booted_slot = 'a', .slots = slots };
        CheckinRequest other = c;
        StoreTx *tx = NULL;
        char id[16];
        bool is_new;
        _cleanup_free_ char *mark = NULL, *mark_after = NULL;
        (void) state;

        db = test_store_open();
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(hosts_ensure(tx, MAC, NULL, NOW, "test", id, &is_new), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        /* Never reported: the first check-in must be written. */
        assert_int_equal(unchanged(db, seen, id, &c, NOW), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_RELAXED, &tx), 0);
        assert_int_equal(hosts_checkin(tx, id, &c, NOW, "agent", &want), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        /* The same again, by ID or MAC: a read, and the write path would
         * indeed have written nothing. */
        assert_int_equal(unchanged(db, seen, id, &c, NOW), 1);
        assert_int_equal(unchanged(db, seen, MAC, &c, NOW), 1);
        mark = writes_mark(db);
        assert_int_equal(store_tx_begin(db, STORE_TX_RELAXED, &tx), 0);
        assert_int_equal(hosts_checkin(tx, id, &c, NOW, "agent", &want), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        mark_after = writes_mark(db);
        assert_string_equal(mark_after, mark);

        /* Nothing to note in the same second. */
        assert_int_equal(seen_log_flush(seen, db), 0);
        /* Later, still a read; last_seen is written by the next flush,
         * forward only. */
        assert_int_equal(unchanged(db, seen, id, &c, NOW + 5), 1);
        assert_int_equal(unchanged(db, seen, MAC, &c, NOW + 3), 1);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_host_get(tx, id, &h), 0);
        assert_int_equal(h.last_seen, NOW);
        host_release(&h);
        store_tx_rollback(&tx);
        assert_int_equal(seen_log_flush(seen, db), 1);
        assert_int_equal(seen_log_flush(seen, db), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_host_get(tx, id, &h), 0);
        assert_int_equal(h.last_seen, NOW + 5);
        host_release(&h);
        store_tx_rollback(&tx);
        assert_int_equal(seen_log_note(seen, id, NOW + 1), 0);
        assert_int_equal(seen_log_flush(seen, db), 1);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_host_get(tx, id, &h), 0);
        assert_int_equal(h.last_seen, NOW + 5);
        store_tx_rollback(&tx);

        /* Any changed member is a write. */
        other.state = HOST_UNHEALTHY;
        assert_int_equal(unchanged(db, seen, id, &other, NOW), 0);
        other = c;
        other.version = (char *) "1.1";
        assert_int_equal(unchanged(db, seen, id, &other, NOW), 0);
        other = c;
        other.booted_slot = 'b';
        assert_int_equal(unchanged(db, seen, id, &other, NOW), 0);
        other = c;
        other.message = (char *) "hello";
        assert_int_equal(unchanged(db, seen, id, &other, NOW), 0);
        other = c;
        other.slots = NULL;
        assert_int_equal(unchanged(db, seen, id, &other, NOW), 0);
        /* Unknown hosts go to the write path, which answers -ENOENT. */
        assert_int_equal(unchanged(db, seen, "h-000000000000", &c, NOW), 0);
        /* A quarantined host's report is the coordinator's to judge. */
        exec_committed(db, "UPDATE hosts SET quarantined = 1");
        assert_int_equal(unchanged(db, seen, id, &c, NOW), 0);
        json_decref(slots);
        seen_log_free(seen);
}

static int interrupt(void *userdata) {
        (void) userdata;
        return 1;
}

/* A flush that fails keeps what was noted for the next one; many hosts
 * (the table grows) are written in one flush. */
static void test_seen_flush_fails(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_(host_release) Host h = {};
        SeenLog *seen = seen_log_new();
        StoreTx *tx = NULL;
        char ids[200][16];
        bool is_new;
        (void) state;

        assert_non_null(seen);
        db = test_store_open();
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (int i = 0; i < 200; i++) {
                char mac[18];

                snprintf(mac, sizeof mac, "52:54:00:00:%02x:%02x", i / 256, i % 256);
                assert_int_equal(hosts_ensure(tx, mac, NULL, NOW, "test", ids[i], &is_new), 0);
        }
        assert_int_equal(store_tx_commit(&tx), 0);
        for (int i = 0; i < 200; i++)
                assert_int_equal(seen_log_note(seen, ids[i], NOW + (uint64_t) i), 0);
        assert_int_equal(seen_log_note(seen, "h-0123456789abcdef", NOW), -EINVAL);
        /* sqlite: every statement interrupted; PostgreSQL: the table away. */
        if (test_pg_conninfo)
                exec_committed(db, "ALTER TABLE hosts RENAME TO hosts_away");
        else
                sqlite3_progress_handler(store_sqlite(db), 1, interrupt, NULL);
        assert_true(seen_log_flush(seen, db) < 0);
        if (test_pg_conninfo)
                exec_committed(db, "ALTER TABLE hosts_away RENAME TO hosts");
        else
                sqlite3_progress_handler(store_sqlite(db), 0, NULL, NULL);
        /* Noted in between: kept with what the failed flush gave back. */
        assert_int_equal(seen_log_note(seen, ids[7], NOW + 1000), 0);
        assert_int_equal(seen_log_flush(seen, db), 200);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_host_get(tx, ids[199], &h), 0);
        assert_int_equal(h.last_seen, NOW + 199);
        host_release(&h);
        assert_int_equal(store_host_get(tx, ids[7], &h), 0);
        assert_int_equal(h.last_seen, NOW + 1000);
        store_tx_rollback(&tx);
        seen_log_free(seen);
}

/* A read transaction runs on its own connection: it does not wait for an
 * open write (on the same thread it would never end), sees only what was
 * committed, and cannot write. */
static void test_read_beside_write(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        StoreTx *w = NULL, *r = NULL, *r2 = NULL;
        char id[16], found[16];
        bool is_new;
        (void) state;

        db = test_store_open();
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &w), 0);
        assert_int_equal(hosts_ensure(w, MAC, NULL, NOW, "test", id, &is_new), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &r), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &r2), 0);
        assert_int_equal(store_host_find(r, NULL, MAC, found), -ENOENT);
        assert_int_equal(store_host_find(r2, NULL, MAC, found), -ENOENT);
        assert_int_equal(hosts_ensure(r, "52:54:00:00:00:01", NULL, NOW, "test", found, &is_new), -EROFS);
        store_tx_rollback(&r);
        store_tx_rollback(&r2);
        assert_int_equal(store_tx_commit(&w), 0);
        /* The idle reader, taken again, sees the commit. */
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &r), 0);
        assert_int_equal(store_host_find(r, NULL, MAC, found), 0);
        assert_string_equal(found, id);
        store_tx_rollback(&r);
}

#define CASES(test)                                                                                    \
        test(test_register_labels_checkin), test(test_fail_closed), test(test_checkin_unchanged),      \
                test(test_read_beside_write), test(test_seen_flush_fails)

int main(void) {
        const struct CMUnitTest sqlite[] = { CASES(test_in_dir) };
        const struct CMUnitTest pg[] = { CASES(cmocka_unit_test) };
        int r = cmocka_run_group_tests_name("sqlite", sqlite, NULL, NULL);

        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
