/* A rollout's own budgets (docs/coordinator.md, "A rollout's budgets"), on
 * both drivers: while a host is on its way in a rollout, a lease is
 * granted only when each of its groups stays within the site's budget and
 * the rollout's, the smaller of the two; a rollout's looser budget does not
 * loosen the site's; hosts outside the rollout see the site's alone; a
 * refusal names the budget that stopped the host. The planner counts the
 * same effective budgets, and the spec's budgets are checked. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "tests.h"

#include "coordinator.h"
#include "pgserver.h"
#include "rollout-spec.h"
#include "store-db.h"
#include "store-sqlite.h"
#include "util.h"

#define IMG1 "1111111111111111111111111111111111111111111111111111111111111111"
#define IMG2 "2222222222222222222222222222222222222222222222222222222222222222"

/* sql with the same text as an earlier one gets that one's address: the
 * store caches statements by the address of their text. Kept to the end. */
static const char *interned(const char *sql) {
        static char **seen;

        for (size_t i = 0; seen && seen[i]; i++)
                if (streq(seen[i], sql))
                        return seen[i];
        assert_int_equal(strv_extend(&seen, sql), 0);
        return seen[strv_length(seen) - 1];
}

/* Runs sql, one statement, in a write transaction of its own. */
static void exec_sql(StoreDb *db, const char *sql) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_stmt(tx, interned(sql), &st), 0);
        if (db_step(st) < 0)
                fail_msg("%s: %s", sql, strempty(store_last_error()));
        db_reset(st);
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* Hosts h-1..h-6 on 1.0, healthy, all in rack r1; h-1..h-4 in service a,
 * h-5 and h-6 in service b. The site lets site_rack hosts of a rack down. */
static StoreDb *fleet_open(uint64_t now, int site_rack) {
        StoreDb *db = NULL;
        char sql[512];

        if (test_pg_conninfo)
                db = test_store_open();
        else
                assert_int_equal(store_db_open("state.db", &db), 0);
        exec_sql(db, "INSERT INTO images (id, name, version, arch, manifest, signature, created) VALUES "
                     "('" IMG1 "', 'tiny', '1.0', 'x86_64', '" IMG1 "', '" IMG1 "', 0), "
                     "('" IMG2 "', 'tiny', '2.0', 'x86_64', '" IMG2 "', '" IMG2 "', 0)");
        for (int i = 1; i <= 6; i++) {
                snprintf(sql, sizeof sql,
                         "INSERT INTO hosts (id, mac, state, image, current_image, registered, last_seen) VALUES "
                         "('h-%d', '52:54:00:00:00:0%d', 'healthy', '" IMG1 "', '" IMG1 "', 0, %llu)",
                         i, i, (unsigned long long) now);
                exec_sql(db, sql);
                snprintf(sql, sizeof sql,
                         "INSERT INTO host_labels (host_id, key, value) VALUES ('h-%d', 'rack', 'r1'), "
                         "('h-%d', 'service', '%s')",
                         i, i, i <= 4 ? "a" : "b");
                exec_sql(db, sql);
        }
        snprintf(sql, sizeof sql, "INSERT INTO budgets (selector, max_unavailable) VALUES ('rack', %d)", site_rack);
        exec_sql(db, sql);
        return db;
}

/* Starts spec and runs its first tick, which assigns the hosts of its
 * first wave. */
static int64_t rollout_start(StoreDb *db, const char *spec_text, uint64_t now) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        _cleanup_free_ char *error = NULL;
        json_t *spec = json_loads(spec_text, 0, NULL);
        int64_t id = 0;
        int r;

        assert_non_null(spec);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        r = coord_rollout_start(tx, &cc, spec, "test", now, &id, &error);
        if (r < 0)
                fail_msg("start %s: %s: %s", spec_text, strerror(-r), strempty(error));
        assert_int_equal(store_tx_commit(&tx), 0);
        json_decref(spec);
        assert_int_equal(coord_tick(db, &cc, now), 0);
        return id;
}

/* Host asks for its lease at now; returns whether it was granted, with
 * the decision in *d (the caller releases it). */
static bool ask(StoreDb *db, const char *host, uint64_t now, LeaseDecision *d) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        CoordConfig cc = COORD_CONFIG_DEFAULT;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(coord_lease_acquire(tx, &cc, host, now, "test", d), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        return d->granted;
}

static void give_back(StoreDb *db, const char *host, uint64_t now) {
        _cleanup_store_tx_ StoreTx *tx = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(coord_lease_release(tx, host, 0, now, "test", NULL), 1);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void action(StoreDb *db, int64_t id, const char *what, uint64_t now) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *error = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(coord_rollout_action(tx, id, what, "test", now, NULL, &error), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* The site lets 3 of rack r1 down; the rollout of service a, 1 (as a
 * group's own min_available 5 of its 6). */
static void test_tighter_holds(void **state) {
        uint64_t now = 1000000;
        _cleanup_store_db_free_ StoreDb *db = fleet_open(now, 3);
        LeaseDecision d = {};
        int64_t id;
        char want[64];
        (void) state;

        id = rollout_start(db,
                           "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}, "
                           "\"budgets\": {\"rack\": 2, \"rack=r1\": {\"min_available\": 5}}}",
                           now);
        /* GET /v1/rollouts/N shows them as GET /v1/budgets shows the site's. */
        {
                _cleanup_store_tx_ StoreTx *tx = NULL;
                CoordConfig cc = COORD_CONFIG_DEFAULT;
                json_t *ro = NULL;
                char *dump;

                assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
                assert_int_equal(coord_rollout_json(tx, &cc, id, now, &ro), 0);
                dump = json_dumps(json_object_get(ro, "budgets"), JSON_COMPACT | JSON_SORT_KEYS);
                assert_string_equal(dump, "[{\"budget\":\"max_unavailable 2\",\"selector\":\"rack\"},"
                                          "{\"budget\":\"min_available 5\",\"selector\":\"rack=r1\"}]");
                free(dump);
                json_decref(ro);
        }
        assert_true(ask(db, "h-1", now, &d));
        lease_decision_release(&d);
        /* The group's own budget wins over its key's, and is the tighter. */
        assert_false(ask(db, "h-2", now, &d));
        assert_int_equal(d.refusal, LEASE_REFUSAL_ROLLOUT_BUDGET);
        assert_string_equal(d.group, "rack=r1");
        snprintf(want, sizeof want, "rollout %" PRIi64 "'s budget min_available 5 allows 1", id);
        assert_non_null(strstr(d.reason, want));
        assert_string_equal(lease_refusal_to_string(d.refusal), "rollout-budget");
        lease_decision_release(&d);

        /* Hosts outside the rollout: the site's budget alone (3). */
        assert_true(ask(db, "h-5", now, &d));
        lease_decision_release(&d);
        assert_true(ask(db, "h-6", now, &d));
        lease_decision_release(&d);
        /* Now the site's is full too; it refuses the one outside. */
        give_back(db, "h-1", now);
        assert_false(ask(db, "h-1", now, &d)); /* 2 down: the rollout's 1 */
        assert_int_equal(d.refusal, LEASE_REFUSAL_ROLLOUT_BUDGET);
        lease_decision_release(&d);
        give_back(db, "h-6", now);
        assert_false(ask(db, "h-2", now, &d)); /* 1 down, h-5: still the rollout's */
        lease_decision_release(&d);
        give_back(db, "h-5", now);
        assert_true(ask(db, "h-2", now, &d));
        lease_decision_release(&d);

        /* Paused, its hosts on their way still go through its budgets. */
        action(db, id, "pause", now + 1);
        assert_false(ask(db, "h-3", now + 1, &d));
        assert_int_equal(d.refusal, LEASE_REFUSAL_ROLLOUT_BUDGET);
        lease_decision_release(&d);
        /* Aborted, they are the site's alone. */
        action(db, id, "abort", now + 2);
        assert_true(ask(db, "h-3", now + 2, &d));
        lease_decision_release(&d);
}

/* The site lets 1 of rack r1 down; the rollout asks for 100%: the site's
 * holds, and names itself. */
static void test_looser_does_not_loosen(void **state) {
        uint64_t now = 1000000;
        _cleanup_store_db_free_ StoreDb *db = fleet_open(now, 1);
        LeaseDecision d = {};
        (void) state;

        rollout_start(db, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}, \"budgets\": {\"rack\": \"100%\"}}",
                      now);
        assert_true(ask(db, "h-1", now, &d));
        lease_decision_release(&d);
        assert_false(ask(db, "h-2", now, &d));
        assert_int_equal(d.refusal, LEASE_REFUSAL_BUDGET);
        assert_string_equal(d.reason, "group rack=r1: 1 of 6 hosts are down and max_unavailable 1 allows 1");
        lease_decision_release(&d);
        assert_false(ask(db, "h-5", now, &d));
        assert_int_equal(d.refusal, LEASE_REFUSAL_BUDGET);
        lease_decision_release(&d);
}

/* A key that only the rollout budgets (service) limits the rollout's
 * hosts; a stored spec whose budgets no longer read refuses. */
static void test_rollout_only_key_and_unreadable(void **state) {
        uint64_t now = 1000000;
        _cleanup_store_db_free_ StoreDb *db = fleet_open(now, 6);
        LeaseDecision d = {};
        int64_t id;
        char sql[256];
        (void) state;

        id = rollout_start(db, "{\"image\": \"tiny:2.0\", \"budgets\": {\"service\": \"25%\"}}", now);
        /* Its view counts the groups its own budgets name too. */
        {
                _cleanup_store_tx_ StoreTx *tx = NULL;
                CoordConfig cc = COORD_CONFIG_DEFAULT;
                json_t *ro = NULL, *g;
                _cleanup_free_ char *names = NULL;
                size_t i;

                assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
                assert_int_equal(coord_rollout_json(tx, &cc, id, now, &ro), 0);
                json_array_foreach(json_object_get(ro, "groups"), i, g) {
                        char *n = strdup_printf("%s%s ", strempty(names), json_string_value(json_object_get(g, "group")));
                        assert_non_null(n);
                        free(names);
                        names = n;
                }
                assert_string_equal(names, "rack=r1 service=a service=b ");
                json_decref(ro);
        }
        assert_true(ask(db, "h-1", now, &d));
        lease_decision_release(&d);
        assert_true(ask(db, "h-5", now, &d)); /* service b: 25% of 2 is at least 1 */
        lease_decision_release(&d);
        assert_false(ask(db, "h-2", now, &d)); /* service a: 25% of 4 */
        assert_int_equal(d.refusal, LEASE_REFUSAL_ROLLOUT_BUDGET);
        assert_string_equal(d.group, "service=a");
        lease_decision_release(&d);

        snprintf(sql, sizeof sql,
                 "UPDATE rollouts SET spec = '{\"image\": \"tiny:2.0\", \"budgets\": {\"service\": \"x\"}}' "
                 "WHERE id = %" PRIi64,
                 id);
        exec_sql(db, sql);
        assert_false(ask(db, "h-6", now, &d));
        assert_int_equal(d.refusal, LEASE_REFUSAL_ROLLOUT_BUDGET);
        assert_non_null(strstr(d.reason, "not valid"));
        lease_decision_release(&d);
}

/* What the planner counts: the smaller of the two, or the rollout's alone
 * for a key the site does not budget. */
static void test_group_allowed(void **state) {
        uint64_t now = 1000000;
        _cleanup_store_db_free_ StoreDb *db = fleet_open(now, 3);
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *b = json_pack("{s:i, s:s}", "rack", 1, "service", "50%");
        json_t *loose = json_pack("{s:i}", "rack", 5);
        int64_t allowed = -1;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(coord_group_allowed(tx, "rack", "r1", NULL, &allowed), 1);
        assert_int_equal(allowed, 3);
        assert_int_equal(coord_group_allowed(tx, "rack", "r1", b, &allowed), 1);
        assert_int_equal(allowed, 1);
        assert_int_equal(coord_group_allowed(tx, "rack", "r1", loose, &allowed), 1);
        assert_int_equal(allowed, 3);
        assert_int_equal(coord_group_allowed(tx, "service", "a", NULL, &allowed), 0);
        assert_int_equal(coord_group_allowed(tx, "service", "a", b, &allowed), 1);
        assert_int_equal(allowed, 2);
        json_decref(b);
        json_decref(loose);
}

/* The spec's budgets: the three forms, keyed by a selector, and nothing else. */
static void test_spec(void **state) {
        static const char *const good[] = {
                "{\"rack\": 1, \"service\": \"10%\", \"service=db\": {\"min_available\": 2}}",
                "{\"rack\": {\"max_unavailable\": \"5%\"}, \"zone\": \"3\"}",
                "{}",
        };
        static const char *const bad[] = {
                "[1]", "{\"rack\": -1}", "{\"rack\": \"101%\"}", "{\"rack=\": 1}", "{\"ra ck\": 1}",
                "{\"rack\": {\"min_available\": 1, \"max_unavailable\": 1}}", "{\"rack\": {}}",
                "{\"rack\": {\"min_available\": \"1\"}}", "{\"rack\": null}", "{\"rack\": 1.5}",
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(good) + ELEMENTSOF(bad); i++) {
                bool ok = i < ELEMENTSOF(good);
                const char *b = ok ? good[i] : bad[i - ELEMENTSOF(good)];
                _cleanup_free_ char *text = strdup_printf("{\"image\": \"x\", \"budgets\": %s}", b);
                _cleanup_free_ char *error = NULL;
                json_t *j = json_loads(text, 0, NULL);
                RolloutSpec s;

                assert_non_null(j);
                int r = rollout_spec_parse(j, &s, &error);
                if (ok != (r == 0))
                        fail_msg("%s: %s", b, strempty(error));
                if (!ok)
                        assert_non_null(strstr(error, "'budgets'"));
                json_decref(j);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_tighter_holds),
                test_in_dir(test_looser_does_not_loosen),
                test_in_dir(test_rollout_only_key_and_unreadable),
                test_in_dir(test_group_allowed),
                test_in_dir(test_spec),
        };
        const struct CMUnitTest pg[] = {
                cmocka_unit_test(test_tighter_holds),
                cmocka_unit_test(test_looser_does_not_loosen),
                cmocka_unit_test(test_rollout_only_key_and_unreadable),
                cmocka_unit_test(test_group_allowed),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);

        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
