/* The counts a lease decision's budget check reads (group_counts, kept by
 * migration 18's triggers, and the silent hosts) against a recount of the
 * group's hosts one by one, on both drivers: random changes to hosts,
 * labels, leases, quarantine, state and time, and after each one every
 * group's figures from store_group_unavailable() must be those of the
 * recount. TEST_SEED picks another sequence; TEST_GROUP_TIMING=1 also
 * times both ways on a fleet of 10,000 hosts (figures, not a test). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "tests.h"

#include "pgserver.h"
#include "store-coord-sql.h"
#include "store-coord.h"
#include "store-db.h"
#include "store-hosts.h"
#include "store-pg.h"
#include "log.h"
#include "util.h"

#define N_HOSTS 24
#define TIMEOUT 100

static const char *const keys[] = { "rack", "svc", "zone" };
static const char *const values[] = { "a", "b", "c" };
static const char *const states[] = { "healthy", "unhealthy", "installing", "registered" };

/* The budget check's count before group_counts: every member of the group
 * read and tested. */
static const char recount_sql[] =
        "SELECT count(*), coalesce(sum(CASE WHEN h.id IS DISTINCT FROM ?5 AND " COORD_UNAVAILABLE_SQL
        " THEN 1 ELSE 0 END), 0) FROM hosts h JOIN host_labels l ON l.host_id = h.id WHERE l.key = ?3 AND l.value = ?4";

static uint64_t rng_state;

static uint64_t rnd(uint64_t n) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state % n;
}

static void recount(StoreTx *tx, const char *key, const char *value, const char *host, uint64_t now, int64_t *ret_n,
                    int64_t *ret_down) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, recount_sql, &st), 0);
        db_bind_int64(st, 1, now);
        db_bind_int64(st, 2, TIMEOUT);
        db_bind_text(st, 3, key);
        db_bind_text(st, 4, value);
        db_bind_text(st, 5, host);
        assert_int_equal(db_step(st), 1);
        *ret_n = db_column_int64(st, 0);
        *ret_down = db_column_int64(st, 1);
}

static int64_t query_int(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_int_equal(db_step(st), 1);
        return db_column_int64(st, 0);
}

/* Runs sql with text parameters ?1 to ?3 (NULL: not bound) and expects it
 * done. */
static void exec_text(StoreTx *tx, const char *sql, const char *a, const char *b, const char *c) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        if (a)
                db_bind_text(st, 1, a);
        if (b)
                db_bind_text(st, 2, b);
        if (c)
                db_bind_text(st, 3, c);
        assert_int_equal(db_step(st), 0);
}

/* Every group's figures, asked for by each host (and none), against the
 * recount; and the table itself against a recount of every group. */
static void check_all(StoreTx *tx, uint64_t now, const char *op) {
        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                for (size_t v = 0; v < ELEMENTSOF(values); v++)
                        for (int i = -1; i < N_HOSTS; i += 1 + (int) rnd(4)) {
                                char host[16];
                                int64_t n, down, want_n, want_down;

                                snprintf(host, sizeof host, "h-%d", i);
                                assert_int_equal(store_group_unavailable(tx, keys[k], values[v], i < 0 ? NULL : host,
                                                                         now, TIMEOUT, &n, &down),
                                                 0);
                                recount(tx, keys[k], values[v], i < 0 ? NULL : host, now, &want_n, &want_down);
                                if (i < 0) {
                                        int64_t size;

                                        assert_int_equal(store_group_size(tx, keys[k], values[v], &size), 0);
                                        if (size != want_n)
                                                fail_msg("after %s: group %s=%s has %" PRIi64
                                                         " hosts, the recount says %" PRIi64,
                                                         op, keys[k], values[v], size, want_n);
                                }
                                if (n != want_n || down != want_down)
                                        fail_msg("after %s: group %s=%s asked by %s: %" PRIi64 " of %" PRIi64
                                                 " down, the recount says %" PRIi64 " of %" PRIi64,
                                                 op, keys[k], values[v], i < 0 ? "none" : host, down, n, want_down,
                                                 want_n);
                        }
        assert_int_equal(query_int(tx, "SELECT count(*) FROM group_counts g WHERE g.members <> (SELECT count(*) "
                                       "FROM host_labels l JOIN hosts h ON h.id = l.host_id WHERE l.key = g.key AND "
                                       "l.value = g.value) OR g.held <> (SELECT count(*) FROM host_labels l JOIN hosts h "
                                       "ON h.id = l.host_id WHERE l.key = g.key AND l.value = g.value AND "
                                       COORD_HELD_SQL("h") ") OR g.members = 0"),
                         0);
        assert_int_equal(query_int(tx, "SELECT count(*) FROM (SELECT DISTINCT key, value FROM host_labels) l WHERE "
                                       "NOT EXISTS (SELECT 1 FROM group_counts g WHERE g.key = l.key AND "
                                       "g.value = l.value)"),
                         0);
}

/* One random change; its name goes to *ret_op. */
static void random_op(StoreDb *db, StoreTx **tx, uint64_t *now, const char **ret_op) {
        char host[16], other[16], mac[16];
        const char *key = keys[rnd(ELEMENTSOF(keys))], *value = values[rnd(ELEMENTSOF(values))];
        uint64_t epoch;
        char **expired = NULL;
        unsigned h = (unsigned) rnd(N_HOSTS);
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        snprintf(host, sizeof host, "h-%u", h);
        snprintf(other, sizeof other, "h-%u", (unsigned) rnd(N_HOSTS));
        snprintf(mac, sizeof mac, "m-%u", h);
        switch (rnd(17)) {
        case 0:
        case 1:
                *ret_op = "register";
                assert_int_equal(store_stmt(*tx,
                                            "INSERT INTO hosts (id, mac, registered, last_seen, state) VALUES "
                                            "(?1, ?2, 0, ?3, ?4) ON CONFLICT (id) DO NOTHING",
                                            &st),
                                 0);
                db_bind_text(st, 1, host);
                if (rnd(4))
                        db_bind_text(st, 2, mac);
                if (rnd(5))
                        db_bind_int64(st, 3, (int64_t) (*now - rnd(2 * TIMEOUT)));
                db_bind_text(st, 4, states[rnd(ELEMENTSOF(states))]);
                assert_int_equal(db_step(st), 0);
                break;
        case 2:
        case 3:
                *ret_op = "label";
                exec_text(*tx,
                          "INSERT INTO host_labels (host_id, key, value) SELECT id, ?2, ?3 FROM hosts WHERE id = ?1 "
                          "ON CONFLICT (host_id, key) DO UPDATE SET value = excluded.value",
                          host, key, value);
                break;
        case 4:
                *ret_op = "unlabel";
                assert_int_equal(store_host_label_remove(*tx, host, key), 0);
                break;
        case 5:
                *ret_op = "relabel key or host";
                if (rnd(2))
                        exec_text(*tx,
                                  "UPDATE host_labels SET key = ?2 WHERE host_id = ?1 AND key <> ?2 AND NOT EXISTS "
                                  "(SELECT 1 FROM host_labels o WHERE o.host_id = ?1 AND o.key = ?2) AND key = ?3",
                                  host, key, keys[rnd(ELEMENTSOF(keys))]);
                else
                        exec_text(*tx,
                                  "UPDATE host_labels SET host_id = ?2 WHERE host_id = ?1 AND key = ?3 AND ?1 <> ?2 "
                                  "AND EXISTS (SELECT 1 FROM hosts WHERE id = ?2) AND NOT EXISTS (SELECT 1 FROM "
                                  "host_labels o WHERE o.host_id = ?2 AND o.key = ?3)",
                                  host, other, key);
                break;
        case 6:
                *ret_op = "delete host";
                exec_text(*tx, "DELETE FROM hosts WHERE id = ?", host, NULL, NULL);
                break;
        case 7:
        case 8:
                *ret_op = "grant";
                assert_int_equal(store_lease_next_epoch(*tx, &epoch), 0);
                assert_int_equal(store_lease_set(*tx, host, epoch, *now + rnd(3 * TIMEOUT)), 0);
                break;
        case 9:
                *ret_op = "release";
                assert_true(store_lease_release(*tx, host, 0) >= 0);
                break;
        case 10:
                *ret_op = "expire";
                assert_int_equal(store_lease_expired(*tx, NULL, *now, &expired), 0);
                for (char **p = expired; p && *p; p++)
                        assert_true(store_lease_release(*tx, *p, 0) >= 0);
                strv_free(expired);
                break;
        case 11:
                *ret_op = "quarantine";
                assert_int_equal(store_lease_quarantine(*tx, host), 0);
                break;
        case 12:
                *ret_op = "unquarantine";
                assert_true(store_coord_host_unquarantine(*tx, host, rnd(2)) >= 0);
                break;
        case 13:
                *ret_op = "state";
                exec_text(*tx, "UPDATE hosts SET state = ?2 WHERE id = ?1", host, states[rnd(ELEMENTSOF(states))],
                          NULL);
                break;
        case 14:
                *ret_op = "seen";
                assert_int_equal(store_coord_host_seen(*tx, host, *now), 0);
                break;
        case 15:
                *ret_op = "time";
                *now += rnd(TIMEOUT);
                break;
        default:
                /* The counts are kept in the transaction that changes a
                 * host: they go with it when it is rolled back. */
                *ret_op = rnd(4) ? "commit" : "rollback";
                if (strcmp(*ret_op, "commit") == 0)
                        assert_int_equal(store_tx_commit(tx), 0);
                else
                        store_tx_rollback(tx);
                assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, tx), 0);
                break;
        }
}

static void test_random(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        const char *seed = getenv("TEST_SEED");
        uint64_t now = 100000;
        (void) state;

        rng_state = seed ? strtoull(seed, NULL, 0) : 0x5eed5eedULL;
        if (rng_state == 0)
                rng_state = 1;
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (int i = 0; i < 1500; i++) {
                const char *op = NULL;

                random_op(db, &tx, &now, &op);
                check_all(tx, now, op);
        }
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* The migration counts the groups a store already has: labels and held
 * hosts written with the triggers gone, then counted afresh. */
static void test_backfill(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        const char *op = NULL;
        uint64_t now = 100000;
        (void) state;

        rng_state = 7;
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (int i = 0; i < 400; i++)
                random_op(db, &tx, &now, &op);
        exec_text(tx, "DELETE FROM group_counts", NULL, NULL, NULL);
        exec_text(tx,
                  "INSERT INTO group_counts SELECT l.key, l.value, count(*), sum(CASE WHEN " COORD_HELD_SQL("h")
                  " THEN 1 ELSE 0 END) FROM host_labels l JOIN hosts h ON h.id = l.host_id GROUP BY l.key, l.value",
                  NULL, NULL, NULL);
        check_all(tx, now, "backfill");
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* PostgreSQL: the plan of the statement for any bound (what a prepared
 * statement runs after a few runs) reads the silent hosts through their
 * index, neither every host nor every member of the group. */
static void check_generic_plan(void) {
        PgConn *c = test_pg_connect();
        _cleanup_free_ char *sql = NULL, *prepare = NULL;
        PgStmt *st = NULL;
        int n;

        assert_int_equal(pg_translate(COORD_GROUP_UNAVAILABLE_SQL, &sql, &n), 0);
        prepare = strdup_printf("PREPARE q (bigint, bigint, text, text, text) AS %s", sql);
        assert_int_equal(pg_exec(c, "SET plan_cache_mode = force_generic_plan"), 0);
        assert_int_equal(pg_exec(c, prepare), 0);
        assert_int_equal(pg_stmt(c, "EXPLAIN EXECUTE q (100000, 100, 'svc', 's1', 'h-2001')", &st), 0);
        while (pg_step(st) > 0) {
                const char *line = pg_column_text(st, 0);

                fprintf(stderr, "generic plan: %s\n", line);
                assert_null(strstr(line, "Seq Scan"));
                assert_null(strstr(line, "host_labels_kv"));
        }
        pg_stmt_reset(st);
        pg_conn_free(c);
}

/* Figures: the budget check of a decision on a fleet of 10,000 hosts (5
 * services of 2,000, racks of 10, 1% of each service held), both ways in
 * the same run, and two reads of a host by its key for the cost of a
 * statement alone. */
static void test_timing(void **state) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        uint64_t now = 100000, t0, t_new = 0, t_old = 0, t_base = 0;
        const int rounds = 400;
        (void) state;

        if (!getenv("TEST_GROUP_TIMING"))
                skip();
        db = test_store_open();
        rng_state = 11;
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (int i = 0; i < 10000; i++) {
                _cleanup_stmt_reset_ DbStmt *st = NULL;
                char id[16], mac[16], svc[8], rack[16];

                snprintf(id, sizeof id, "h-%d", i);
                snprintf(mac, sizeof mac, "m-%d", i);
                snprintf(svc, sizeof svc, "s%d", i / 2000);
                snprintf(rack, sizeof rack, "r%d", i / 10);
                assert_int_equal(store_stmt(tx,
                                            "INSERT INTO hosts (id, mac, registered, last_seen, state, lease_epoch) "
                                            "VALUES (?1, ?2, 0, ?3, 'healthy', ?4)",
                                            &st),
                                 0);
                db_bind_text(st, 1, id);
                db_bind_text(st, 2, mac);
                db_bind_int64(st, 3, (int64_t) now);
                if (i % 100 == 0)
                        db_bind_int64(st, 4, i + 1);
                assert_int_equal(db_step(st), 0);
                assert_int_equal(store_host_label_set(tx, id, "svc", svc), 0);
                assert_int_equal(store_host_label_set(tx, id, "rack", rack), 0);
        }
        assert_int_equal(store_tx_commit(&tx), 0);
        if (test_pg_conninfo) {
                assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
                exec_text(tx, "ANALYZE", NULL, NULL, NULL);
                assert_int_equal(store_tx_commit(&tx), 0);
        }

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (int i = 0; i < rounds; i++) {
                char id[16], svc[8], rack[16];
                int h = (int) rnd(10000);
                int64_t n, down, want_n, want_down;

                snprintf(id, sizeof id, "h-%d", h);
                snprintf(svc, sizeof svc, "s%d", h / 2000);
                snprintf(rack, sizeof rack, "r%d", h / 10);
                t0 = now_usec();
                assert_int_equal(store_group_unavailable(tx, "svc", svc, id, now, TIMEOUT, &n, &down), 0);
                assert_int_equal(store_group_unavailable(tx, "rack", rack, id, now, TIMEOUT, &n, &down), 0);
                t_new += now_usec() - t0;
                t0 = now_usec();
                recount(tx, "svc", svc, id, now, &want_n, &want_down);
                recount(tx, "rack", rack, id, now, &want_n, &want_down);
                t_old += now_usec() - t0;
                t0 = now_usec();
                assert_int_equal(query_int(tx, "SELECT count(*) FROM hosts WHERE id = 'h-1'"), 1);
                assert_int_equal(query_int(tx, "SELECT count(*) FROM hosts WHERE id = 'h-2'"), 1);
                t_base += now_usec() - t0;
                assert_int_equal(n, want_n);
                assert_int_equal(down, want_down);
        }
        store_tx_rollback(&tx);
        if (test_pg_conninfo)
                check_generic_plan();
        fprintf(stderr,
                "budget check, 10,000 hosts (%s): one decision (service and rack) %.1f us counted, %.1f us recounted "
                "(%.1fx); two reads of a host by its key %.1f us\n",
                test_pg_conninfo ? "postgresql" : "sqlite", (double) t_new / rounds, (double) t_old / rounds,
                (double) t_old / (double) (t_new ? t_new : 1), (double) t_base / rounds);
}

#define CASES(test) test(test_random), test(test_backfill), test(test_timing)

int main(void) {
        if (getenv("TEST_DEBUG"))
                log_set_level(LOG_LEVEL_DEBUG);
        const struct CMUnitTest sqlite[] = { CASES(test_in_dir) };
        const struct CMUnitTest pg[] = { CASES(cmocka_unit_test) };
        int r;

        r = cmocka_run_group_tests_name("sqlite", sqlite, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
