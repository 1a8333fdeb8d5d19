/* The coordinator's leader lease and the instances' registry (leader.h,
 * store-instances.h) on both drivers: two StoreDb handles on one database
 * act as two instances. One takes the lease, the other is refused; when
 * the holder stops renewing, the other takes it after the expiry with a
 * higher epoch; a tick of the old holder changes nothing (fencing); a
 * holder that stops hands over at once. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "tests.h"

#include "coordinator.h"
#include "leader.h"
#include "pgserver.h"
#include "store-coord.h"
#include "store-db.h"
#include "store-instances.h"
#include "log.h"
#include "util.h"

/* Long enough that a slow machine does not let a lease expire between two
 * steps that expect it valid. */
#define TTL_MS 1000

typedef struct Pair {
        StoreDb *db[2];
        Leader *l[2];
} Pair;

/* Two instances, "a" and "b", each with a handle of its own on a new
 * database of the driver under test. */
static void pair_open(Pair *p) {
        *p = (Pair) {};
        p->db[0] = test_store_open();
        assert_non_null(p->db[0]);
        assert_int_equal(store_db_open(test_pg_conninfo ?: "state.db", &p->db[1]), 0);
        assert_int_equal(leader_new("a", "1.0", &p->l[0]), 0);
        assert_int_equal(leader_new("b", "1.0", &p->l[1]), 0);
}

static void pair_close(Pair *p) {
        for (int i = 0; i < 2; i++) {
                leader_free(p->l[i]);
                store_db_free(p->db[i]);
        }
}

static int beat(Pair *p, int i) {
        return leader_beat(p->l[i], p->db[i], i == 0 ? "http://a:1" : "http://b:2", TTL_MS);
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

static void test_take_and_refuse(void **state _unused_) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        Instance *l = NULL;
        LeaderRow row = {};
        size_t n = 0;
        Pair p;

        pair_open(&p);
        assert_int_equal(beat(&p, 0), 1);
        assert_true(leader_leading(p.l[0]));
        assert_int_equal(leader_epoch(p.l[0]), 1);
        assert_int_equal(beat(&p, 1), 0);
        assert_false(leader_leading(p.l[1]));
        assert_int_equal(leader_epoch(p.l[1]), 0);
        /* Renewing keeps the epoch. */
        assert_int_equal(beat(&p, 0), 1);
        assert_int_equal(leader_epoch(p.l[0]), 1);
        assert_int_equal(leader_changes(p.l[0]), 1);
        assert_int_equal(leader_changes(p.l[1]), 0);

        assert_int_equal(store_tx_begin(p.db[1], STORE_TX_READ, &tx), 0);
        assert_int_equal(store_instance_list(tx, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(l[0].name, "a");
        assert_string_equal(l[0].url, "http://a:1");
        assert_string_equal(l[0].incarnation, leader_holder(p.l[0]));
        assert_int_equal(l[0].pid, getpid());
        assert_true(l[0].heartbeat_age >= 0 && l[0].heartbeat_age < INSTANCE_STALE_MS);
        assert_true(l[0].started > 1700000000000LL);
        assert_string_equal(l[1].name, "b");
        assert_string_equal(l[1].version, "1.0");
        instance_list_free(l, n);
        assert_int_equal(store_leader_get(tx, &row), 0);
        assert_string_equal(row.instance, "a");
        assert_string_equal(row.holder, leader_holder(p.l[0]));
        assert_int_equal(row.epoch, 1);
        assert_true(row.expires_in > 0 && row.expires_in <= TTL_MS);
        leader_row_release(&row);
        store_tx_rollback(&tx);
        pair_close(&p);
}

static void test_expiry_takeover(void **state _unused_) {
        Pair p;

        pair_open(&p);
        assert_int_equal(beat(&p, 0), 1);
        assert_int_equal(beat(&p, 1), 0);
        /* a stops renewing: b takes over once the lease expired, not before. */
        sleep_ms(100);
        assert_int_equal(beat(&p, 1), 0);
        sleep_ms(TTL_MS + 50);
        assert_int_equal(beat(&p, 1), 1);
        assert_int_equal(leader_epoch(p.l[1]), 2);
        assert_int_equal(leader_changes(p.l[1]), 1);
        /* a comes back: it learns that it lost the lease. */
        assert_int_equal(beat(&p, 0), 0);
        assert_false(leader_leading(p.l[0]));
        assert_int_equal(leader_changes(p.l[0]), 2);
        /* b's own expired lease taken again is a new epoch too. */
        sleep_ms(TTL_MS + 50);
        assert_int_equal(beat(&p, 1), 1);
        assert_int_equal(leader_epoch(p.l[1]), 3);
        pair_close(&p);
}

static void add_leased_host(StoreDb *db, const char *id, uint64_t expires) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_stmt(tx,
                                    "INSERT INTO hosts (id, mac, registered, last_seen, state) "
                                    "VALUES (?1, NULL, 0, 0, 'healthy')",
                                    &st),
                         0);
        db_bind_text(st, 1, id);
        assert_int_equal(db_step(st), 0);
        db_reset(st);
        assert_int_equal(store_lease_set(tx, id, 7, expires), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static bool quarantined(StoreDb *db, const char *id) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        Lease l = {};

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_lease_get(tx, id, &l), 0);
        return l.quarantined;
}

static void test_fencing(void **state _unused_) {
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        CoordTicker *ta = coord_ticker_new(), *tb = coord_ticker_new();
        Pair p;

        assert_non_null(ta);
        assert_non_null(tb);
        pair_open(&p);
        add_leased_host(p.db[0], "h-1", 100);
        assert_int_equal(beat(&p, 0), 1);
        assert_int_equal(coord_ticker_fence(ta, leader_holder(p.l[0]), leader_epoch(p.l[0])), 0);
        /* b takes over after a's lease expired; a has not noticed yet. */
        sleep_ms(TTL_MS + 50);
        assert_int_equal(beat(&p, 1), 1);
        assert_true(leader_leading(p.l[0]));
        /* a's tick, fenced with its old epoch, writes nothing: the lease
         * that expired at 100 is still there, its host not quarantined. */
        assert_int_equal(coord_ticker_run(ta, p.db[0], &cc, 1000), -ESTALE);
        assert_false(quarantined(p.db[1], "h-1"));
        /* The same tick unfenced would have: b's, fenced with its own epoch, does. */
        assert_int_equal(coord_ticker_fence(tb, leader_holder(p.l[1]), leader_epoch(p.l[1])), 0);
        assert_int_equal(coord_ticker_run(tb, p.db[1], &cc, 1000), 0);
        assert_true(quarantined(p.db[0], "h-1"));
        /* A stale epoch of the holder itself is refused too. */
        assert_int_equal(coord_ticker_fence(tb, leader_holder(p.l[1]), leader_epoch(p.l[1]) - 1), 0);
        assert_int_equal(coord_ticker_run(tb, p.db[1], &cc, 1000), -ESTALE);
        coord_ticker_free(ta);
        coord_ticker_free(tb);
        pair_close(&p);
}

static void test_handover(void **state _unused_) {
        Pair p;

        pair_open(&p);
        assert_int_equal(beat(&p, 0), 1);
        assert_int_equal(beat(&p, 1), 0);
        assert_int_equal(leader_resign(p.l[0], p.db[0]), 1);
        assert_false(leader_leading(p.l[0]));
        assert_int_equal(leader_changes(p.l[0]), 2);
        /* b takes it at its next beat, well before a's lease would have expired. */
        assert_int_equal(beat(&p, 1), 1);
        assert_int_equal(leader_epoch(p.l[1]), 2);
        /* a left the registry; giving up what it does not hold does nothing. */
        {
                _cleanup_store_tx_ StoreTx *tx = NULL;
                Instance *l = NULL;
                size_t n = 0;

                assert_int_equal(store_tx_begin(p.db[1], STORE_TX_READ, &tx), 0);
                assert_int_equal(store_instance_list(tx, &l, &n), 0);
                assert_int_equal(n, 1);
                assert_string_equal(l[0].name, "b");
                instance_list_free(l, n);
        }
        assert_int_equal(leader_resign(p.l[0], p.db[0]), 0);
        assert_true(leader_leading(p.l[1]));
        assert_int_equal(beat(&p, 1), 1);
        assert_int_equal(leader_epoch(p.l[1]), 2);
        pair_close(&p);
}

static void test_name_taken(void **state _unused_) {
        Leader *twin = NULL;
        Pair p;

        pair_open(&p);
        assert_int_equal(beat(&p, 0), 1);
        /* A second process under the name "a" neither takes the row nor
         * the lease while the first beats. */
        assert_int_equal(leader_new("a", "2.0", &twin), 0);
        assert_int_equal(leader_beat(twin, p.db[1], "http://twin:3", TTL_MS), 0);
        assert_false(leader_leading(twin));
        assert_int_equal(beat(&p, 0), 1);
        assert_int_equal(leader_epoch(p.l[0]), 1);
        /* Once the first stopped, the name is free at once: a restart
         * under it is not kept out. */
        assert_int_equal(leader_resign(p.l[0], p.db[0]), 1);
        assert_int_equal(leader_beat(twin, p.db[1], "http://twin:3", TTL_MS), 1);
        assert_int_equal(leader_epoch(twin), 2);
        leader_free(twin);
        pair_close(&p);
}

/* The leader forgets, at its beat, an instance gone for a day. */
static void test_prune(void **state _unused_) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        Instance *l = NULL;
        size_t n = 0;
        Pair p;

        pair_open(&p);
        assert_int_equal(beat(&p, 0), 1);
        assert_int_equal(beat(&p, 1), 0);
        assert_int_equal(store_tx_begin(p.db[0], STORE_TX_WRITE, &tx), 0);
        /* b's last beat a day and a minute ago. */
        assert_int_equal(store_stmt(tx, "UPDATE instances SET heartbeat = heartbeat - 86460000 WHERE name = 'b'", &st),
                         0);
        assert_int_equal(db_step(st), 0);
        db_reset(st);
        st = NULL;
        assert_int_equal(store_instance_list(tx, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_true(l[0].heartbeat_age < INSTANCE_STALE_MS);
        assert_true(l[1].heartbeat_age >= 86460000);
        instance_list_free(l, n);
        assert_int_equal(store_tx_commit(&tx), 0);

        assert_int_equal(beat(&p, 0), 1);
        assert_int_equal(store_tx_begin(p.db[1], STORE_TX_READ, &tx), 0);
        assert_int_equal(store_instance_list(tx, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].name, "a");
        instance_list_free(l, n);
        store_tx_rollback(&tx);
        pair_close(&p);
}

static void test_names(void **state _unused_) {
        assert_true(instance_name_valid("web-1.example.com:8080"));
        assert_true(instance_name_valid("a_b"));
        assert_false(instance_name_valid(""));
        assert_false(instance_name_valid(NULL));
        assert_false(instance_name_valid("a b"));
        assert_false(instance_name_valid("a/b"));
        assert_false(instance_name_valid("\"a\""));
        assert_true(instance_name_valid("0123456789012345678901234567890123456789012345678901234567890123"));
        assert_false(instance_name_valid("01234567890123456789012345678901234567890123456789012345678901234"));
}

#define CASES(test)                                                                                       \
        test(test_take_and_refuse), test(test_expiry_takeover), test(test_fencing), test(test_handover), \
                test(test_name_taken), test(test_prune)

int main(void) {
        if (getenv("TEST_DEBUG"))
                log_set_level(LOG_LEVEL_DEBUG);
        else
                log_set_level(LOG_LEVEL_ERROR);
        const struct CMUnitTest sqlite[] = { CASES(test_in_dir), cmocka_unit_test(test_names) };
        const struct CMUnitTest pg[] = { CASES(cmocka_unit_test) };
        int r;

        r = cmocka_run_group_tests_name("sqlite", sqlite, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
