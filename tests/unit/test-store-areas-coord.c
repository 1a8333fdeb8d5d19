/* The coordinator's areas of the store (store-coord.h, store-rollouts.h)
 * on both drivers: the same calls with the same inputs, first on a sqlite
 * file, then on a PostgreSQL server of the test's own, give the same
 * results. Each case asserts the exact results, so a statement that one
 * database reads otherwise (a comparison taken for a number, JSON, a NULL
 * that compares) fails on that one. */
#include <errno.h>
#include <string.h>

#include "tests.h"

#include "pgserver.h"
#include "store-coord.h"
#include "store-db.h"
#include "store-pg.h"
#include "store-rollouts.h"
#include "log.h"
#include "util.h"

#define STRV_MAKE(...) ((char *const[]) { __VA_ARGS__, NULL })

/* Runs sql (a literal, without parameters) and expects it done. */
static void exec(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_int_equal(db_step(st), 0);
}

/* The text of the first column of sql's first row, duplicated. */
static char *query_text(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_int_equal(db_step(st), 1);
        return db_column_strdup(st, 0);
}

static void add_host(StoreTx *tx, const char *id, const char *mac, int64_t last_seen, const char *image) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx,
                                    "INSERT INTO hosts (id, mac, registered, last_seen, state, image, current_image) "
                                    "VALUES (?1, ?2, 0, ?3, 'healthy', ?4, ?4)",
                                    &st),
                         0);
        db_bind_text(st, 1, id);
        db_bind_text(st, 2, mac);
        if (last_seen >= 0)
                db_bind_int64(st, 3, last_seen);
        db_bind_text(st, 4, image);
        assert_int_equal(db_step(st), 0);
}

static void add_label(StoreTx *tx, const char *host, const char *key, const char *value) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, "INSERT INTO host_labels (host_id, key, value) VALUES (?, ?, ?)", &st), 0);
        db_bind_text(st, 1, host);
        db_bind_text(st, 2, key);
        db_bind_text(st, 3, value);
        assert_int_equal(db_step(st), 0);
}

static void set_budget(StoreTx *tx, const char *selector, int64_t max, int64_t pct, int64_t min) {
        Budget b = { .selector = (char *) selector, .max_unavailable = max, .max_unavailable_pct = pct,
                     .min_available = min };

        assert_int_equal(store_budget_set(tx, &b), 0);
}

static void test_budgets(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        Budget *l = NULL, b;
        size_t n = 0;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        set_budget(tx, "rack", 1, -1, -1);
        set_budget(tx, "rack=a", -1, 50, -1);
        set_budget(tx, "role", -1, -1, 3);
        /* Set again: replaced, the amounts not given are none. */
        set_budget(tx, "role", 2, -1, -1);
        assert_int_equal(store_budget_list(tx, &l, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(l[0].selector, "rack");
        assert_int_equal(l[0].max_unavailable, 1);
        assert_int_equal(l[0].max_unavailable_pct, -1);
        assert_int_equal(l[0].min_available, -1);
        assert_string_equal(l[1].selector, "rack=a");
        assert_int_equal(l[1].max_unavailable, -1);
        assert_int_equal(l[1].max_unavailable_pct, 50);
        assert_string_equal(l[2].selector, "role");
        assert_int_equal(l[2].max_unavailable, 2);
        assert_int_equal(l[2].min_available, -1);
        budget_list_free(l, n);
        /* The group's own budget before its key's. */
        assert_int_equal(store_budget_for_group(tx, "rack", "a", &b), 1);
        assert_int_equal(b.max_unavailable, -1);
        assert_int_equal(b.max_unavailable_pct, 50);
        assert_int_equal(store_budget_for_group(tx, "rack", "b", &b), 1);
        assert_int_equal(b.max_unavailable, 1);
        assert_int_equal(b.max_unavailable_pct, -1);
        assert_int_equal(store_budget_for_group(tx, "zone", "a", &b), 0);
        assert_int_equal(store_budget_delete(tx, "rack=a"), 0);
        assert_int_equal(store_budget_delete(tx, "rack=a"), -ENOENT);
        assert_int_equal(store_budget_list(tx, &l, &n), 0);
        assert_int_equal(n, 2);
        budget_list_free(l, n);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_groups_and_leases(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        HostGroup *g = NULL;
        char **ids = NULL;
        int64_t size, n, down;
        uint64_t epoch;
        size_t ng = 0;
        Lease lease;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        add_host(tx, "h-1", "m1", 1000, NULL);
        add_host(tx, "h-2", "m2", 800, NULL);
        /* No MAC (a FleetLock client), never seen: not unavailable. */
        add_host(tx, "h-3", NULL, -1, NULL);
        add_label(tx, "h-1", "rack", "a");
        add_label(tx, "h-1", "role", "web");
        add_label(tx, "h-2", "rack", "a");
        add_label(tx, "h-3", "rack", "a");

        assert_int_equal(store_coord_host_groups(tx, "h-1", &g, &ng), 0);
        assert_int_equal(ng, 2);
        assert_string_equal(g[0].key, "rack");
        assert_string_equal(g[0].value, "a");
        assert_string_equal(g[1].key, "role");
        assert_string_equal(g[1].value, "web");
        host_group_list_free(g, ng);
        assert_int_equal(store_group_size(tx, "rack", "a", &size), 0);
        assert_int_equal(size, 3);
        assert_int_equal(store_group_size(tx, "rack", "b", &size), 0);
        assert_int_equal(size, 0);

        /* h-2 missed its heartbeat. */
        assert_int_equal(store_group_unavailable(tx, "rack", "a", "h-1", 1000, 100, &n, &down), 0);
        assert_int_equal(n, 3);
        assert_int_equal(down, 1);
        assert_int_equal(store_coord_host_unavailable(tx, "h-1", 1000, 100), 0);
        assert_int_equal(store_coord_host_unavailable(tx, "h-2", 1000, 100), 1);
        assert_int_equal(store_coord_host_unavailable(tx, "h-3", 1000, 100), 0);
        assert_int_equal(store_coord_host_unavailable(tx, "h-9", 1000, 100), -ENOENT);

        /* A lease: h-1 is down, but not to itself. */
        assert_int_equal(store_lease_get(tx, "h-1", &lease), 0);
        assert_false(lease.held);
        assert_false(lease.quarantined);
        assert_int_equal(store_lease_set(tx, "h-1", 5, 2000), 0);
        assert_int_equal(store_lease_get(tx, "h-1", &lease), 0);
        assert_true(lease.held);
        assert_int_equal(lease.epoch, 5);
        assert_int_equal(lease.expires, 2000);
        assert_int_equal(store_lease_get(tx, "h-9", &lease), -ENOENT);
        assert_int_equal(store_group_unavailable(tx, "rack", "a", "h-1", 1000, 100, &n, &down), 0);
        assert_int_equal(down, 1);
        assert_int_equal(store_group_unavailable(tx, "rack", "a", NULL, 1000, 100, &n, &down), 0);
        assert_int_equal(down, 2);
        assert_int_equal(store_coord_host_unavailable(tx, "h-1", 1000, 100), 1);

        assert_int_equal(store_lease_release(tx, "h-1", 4), 0);
        assert_int_equal(store_lease_release(tx, "h-1", 5), 1);
        assert_int_equal(store_lease_release(tx, "h-1", 5), 0);
        assert_int_equal(store_lease_set(tx, "h-1", 6, 900), 0);
        assert_int_equal(store_lease_release(tx, "h-1", 0), 1);

        assert_int_equal(store_lease_next_epoch(tx, &epoch), 0);
        assert_int_equal(epoch, 1);
        assert_int_equal(store_lease_next_epoch(tx, &epoch), 0);
        assert_int_equal(epoch, 2);

        assert_int_equal(store_lease_set(tx, "h-1", 7, 900), 0);
        assert_int_equal(store_lease_set(tx, "h-2", 8, 1100), 0);
        assert_int_equal(store_lease_expired(tx, NULL, 1000, &ids), 0);
        assert_int_equal(strv_length(ids), 1);
        assert_string_equal(ids[0], "h-1");
        strv_free(ids);
        ids = NULL;
        assert_int_equal(store_lease_expired(tx, "h-2", 1000, &ids), 0);
        assert_int_equal(strv_length(ids), 0);
        strv_free(ids);
        ids = NULL;
        assert_int_equal(store_lease_expired(tx, "h-1", 1000, &ids), 0);
        assert_int_equal(strv_length(ids), 1);
        strv_free(ids);

        /* Quarantine takes the lease and keeps the host down until it runs
         * an image or reports healthy. */
        assert_int_equal(store_lease_quarantine(tx, "h-1"), 0);
        assert_int_equal(store_lease_get(tx, "h-1", &lease), 0);
        assert_false(lease.held);
        assert_true(lease.quarantined);
        assert_int_equal(store_coord_host_unavailable(tx, "h-1", 1000, 100), 1);
        assert_int_equal(store_coord_host_unquarantine(tx, "h-1", false), 0);
        assert_int_equal(store_coord_host_unquarantine(tx, "h-1", true), 1);
        assert_int_equal(store_coord_host_unquarantine(tx, "h-1", true), 0);
        assert_int_equal(store_coord_host_unavailable(tx, "h-1", 1000, 100), 0);
        assert_int_equal(store_lease_quarantine(tx, "h-1"), 0);
        exec(tx, "UPDATE hosts SET current_image = 'img-1' WHERE id = 'h-1'");
        assert_int_equal(store_coord_host_unquarantine(tx, "h-1", false), 1);

        /* h-2 is seen again: up, but for its lease. */
        assert_int_equal(store_coord_host_seen(tx, "h-2", 1000), 0);
        assert_int_equal(store_lease_release(tx, "h-2", 8), 1);
        assert_int_equal(store_coord_host_unavailable(tx, "h-2", 1000, 100), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_windows(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        RebootWindow *l = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        add_host(tx, "h-1", "m1", 0, NULL);
        add_label(tx, "h-1", "a", "1");
        add_label(tx, "h-1", "b", "2");
        add_label(tx, "h-1", "c", "3");
        add_label(tx, "h-1", "d", "4");
        add_label(tx, "h-1", "e", "5");
        exec(tx, "INSERT INTO rollouts (id, kind, spec, state, n_waves, created) VALUES (1, 'rollout', "
                 "'{\"windows\": {\"a\": \"22:00-04:00\", \"b\": 5, \"c\": null, \"d\": {\"x\": 1}, "
                 "\"e=5\": \"01:00-02:00\", \"e=6\": \"03:00-04:00\", \"z\": \"05:00-06:00\"}}', 'running', 1, 0)");
        /* Windows that are no object: none. */
        exec(tx, "INSERT INTO rollouts (id, kind, spec, state, n_waves, created) VALUES (2, 'rollout', "
                 "'{\"windows\": [\"a\"]}', 'running', 1, 0)");
        exec(tx, "INSERT INTO rollouts (id, kind, spec, state, n_waves, created) VALUES (3, 'rollout', "
                 "'{}', 'running', 1, 0)");
        exec(tx, "INSERT INTO rollout_hosts (rollout_id, host_id, wave, target, status) VALUES "
                 "(1, 'h-1', 0, 'img', 'assigned'), (2, 'h-1', 0, 'img', 'assigned'), "
                 "(3, 'h-1', 0, 'img', 'assigned')");
        assert_int_equal(store_coord_host_windows(tx, "h-1", &l, &n), 0);
        assert_int_equal(n, 5);
        assert_string_equal(l[0].selector, "a");
        assert_string_equal(l[0].window, "22:00-04:00");
        assert_string_equal(l[0].group, "a=1");
        assert_string_equal(l[1].selector, "b");
        assert_null(l[1].window);
        assert_string_equal(l[1].group, "b=2");
        assert_string_equal(l[2].selector, "c");
        assert_null(l[2].window);
        /* JSON text, which a window's parse refuses. */
        assert_string_equal(l[3].selector, "d");
        assert_non_null(l[3].window);
        assert_int_equal(l[3].window[0], '{');
        assert_string_equal(l[4].selector, "e=5");
        assert_string_equal(l[4].window, "01:00-02:00");
        assert_string_equal(l[4].group, "e=5");
        reboot_window_list_free(l, n);
        /* Only a running rollout's assigned host has its windows. */
        exec(tx, "UPDATE rollouts SET state = 'paused' WHERE id = 1");
        assert_int_equal(store_coord_host_windows(tx, "h-1", &l, &n), 0);
        assert_int_equal(n, 0);
        reboot_window_list_free(l, n);
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* Four hosts on img-1 in racks a and b, two roles; budgets on racks and
 * on the web hosts. */
static void fleet(StoreTx *tx) {
        exec(tx, "INSERT INTO images (id, name, version, arch, manifest, signature, created) VALUES "
                 "('img-1', 'base', '1', 'x86_64', '{}', 'sig', 0), ('img-2', 'base', '2', 'x86_64', '{}', 'sig', 0)");
        add_host(tx, "h-1", "m1", 1000, "img-1");
        add_host(tx, "h-2", "m2", 1000, "img-1");
        add_host(tx, "h-3", "m3", 1000, "img-1");
        add_host(tx, "h-4", "m4", 1000, "img-1");
        add_label(tx, "h-1", "rack", "a");
        add_label(tx, "h-1", "role", "web");
        add_label(tx, "h-2", "rack", "a");
        add_label(tx, "h-2", "role", "db");
        add_label(tx, "h-3", "rack", "b");
        add_label(tx, "h-3", "role", "web");
        add_label(tx, "h-4", "rack", "b");
        set_budget(tx, "rack", 1, -1, -1);
        set_budget(tx, "role=web", -1, 50, -1);
}

static void assert_waves(StoreTx *tx, int64_t id, const int64_t (*want)[7], size_t n_want) {
        _cleanup_free_ RolloutWaveCounts *w = NULL;
        size_t n = 0;

        assert_int_equal(store_rollout_wave_counts(tx, id, &w, &n), 0);
        assert_int_equal(n, n_want);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(w[i].wave, want[i][0]);
                assert_int_equal(w[i].hosts, want[i][1]);
                assert_int_equal(w[i].pending, want[i][2]);
                assert_int_equal(w[i].assigned, want[i][3]);
                assert_int_equal(w[i].done, want[i][4]);
                assert_int_equal(w[i].failed, want[i][5]);
                assert_int_equal(w[i].skipped, want[i][6]);
        }
}

/* The hosts store_rollout_ready() gives, checked against host (NULL: none)
 * and its flags. */
static void assert_ready(StoreTx *tx, int64_t id, int max_wave, bool rollback, const char *host, bool known,
                         bool finished) {
        RolloutReady *v = NULL;
        size_t n = 0;

        assert_int_equal(store_rollout_ready(tx, id, max_wave, 1000, 100, rollback, 10, &v, &n), 0);
        if (n != (host ? 1u : 0u))
                fail_msg("%zu ready, %s first, want %s", n, n ? v[0].host : "none", host ? host : "none");
        if (host) {
                assert_string_equal(v[0].host, host);
                assert_int_equal(v[0].known, known);
                assert_int_equal(v[0].finished, finished);
        }
        rollout_ready_free(v, n);
}

static void test_rollout(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int64_t id, busy;
        Rollout ro;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        fleet(tx);
        assert_int_equal(store_rollout_insert(tx, ROLLOUT_KIND_ROLLOUT, "img-2", "{\"waves\": 2}", 2, 0, "alice",
                                              1000, &id),
                         0);
        assert_true(id > 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-1", 0, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-2", 0, 1, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-3", 1, 2, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-4", 1, 2, "img-9", "img-1"), 0);
        {
                /* Once: a second is refused, in a nested transaction, as
                 * PostgreSQL refuses any statement after an error in its
                 * transaction. */
                _cleanup_store_tx_ StoreTx *sub = NULL;

                assert_int_equal(store_tx_nest(tx, &sub), 0);
                assert_int_equal(store_rollout_add_host(sub, id, "h-4", 1, 2, "img-9", "img-1"), -EEXIST);
        }
        assert_waves(tx, id, (const int64_t[][7]) { { 0, 2, 2, 0, 0, 0, 0 }, { 1, 2, 2, 0, 0, 0, 0 } }, 2);

        assert_int_equal(store_rollout_get(tx, id, &ro), 0);
        assert_int_equal(ro.kind, ROLLOUT_KIND_ROLLOUT);
        assert_int_equal(ro.state, ROLLOUT_RUNNING);
        assert_int_equal(ro.wave, 0);
        assert_int_equal(ro.n_waves, 2);
        assert_false(ro.has_done_at);
        assert_string_equal(ro.spec, "{\"waves\": 2}");
        rollout_release(&ro);
        assert_int_equal(store_rollout_get(tx, id + 100, &ro), -ENOENT);

        /* Phase 0 first; phase 1 waits for it to finish (phases run on
         * across the waves). */
        assert_ready(tx, id, 0, false, "h-1", true, false);
        assert_int_equal(store_rollout_wave_open(tx, id, 0, 1000, 100), 1);
        assert_int_equal(store_rollout_assign(tx, id, "h-1", "img-2", false, false, 1000), 0);
        assert_ready(tx, id, 0, false, NULL, false, false);
        /* A host that misses its heartbeat is not waited for. */
        exec(tx, "UPDATE hosts SET last_seen = 800 WHERE id = 'h-1'");
        assert_ready(tx, id, 0, false, "h-2", true, false);
        exec(tx, "UPDATE hosts SET last_seen = 1000 WHERE id = 'h-1'");

        /* h-1 reports the target, healthy: done. */
        exec(tx, "UPDATE hosts SET current_image = 'img-2', state_since = 1001 WHERE id = 'h-1'");
        assert_int_equal(store_rollout_update_statuses(tx, id, false), 0);
        assert_waves(tx, id, (const int64_t[][7]) { { 0, 2, 1, 0, 1, 0, 0 }, { 1, 2, 2, 0, 0, 0, 0 } }, 2);
        assert_ready(tx, id, 0, false, "h-2", true, false);
        assert_int_equal(store_rollout_assign(tx, id, "h-2", "img-2", false, false, 1000), 0);
        /* A report that finishes nothing loses its mark; then h-2 fails. */
        exec(tx, "UPDATE hosts SET state = 'installing', state_since = 1001 WHERE id = 'h-2'");
        exec(tx, "UPDATE rollout_hosts SET reported = 1 WHERE host_id = 'h-2'");
        assert_int_equal(store_rollout_update_statuses(tx, id, false), 0);
        assert_waves(tx, id, (const int64_t[][7]) { { 0, 2, 0, 1, 1, 0, 0 }, { 1, 2, 2, 0, 0, 0, 0 } }, 2);
        exec(tx, "UPDATE hosts SET state = 'failed', state_since = 1002, message = 'boom' WHERE id = 'h-2'");
        assert_int_equal(store_rollout_update_statuses(tx, id, false), 0);
        assert_waves(tx, id, (const int64_t[][7]) { { 0, 2, 0, 0, 1, 1, 0 }, { 1, 2, 2, 0, 0, 0, 0 } }, 2);
        {
                _cleanup_free_ char *m = query_text(tx, "SELECT message FROM rollout_hosts WHERE host_id = 'h-2'");
                assert_string_equal(m, "boom");
        }
        assert_int_equal(store_rollout_wave_open(tx, id, 0, 1000, 100), 0);
        {
                _cleanup_free_ RolloutWaveTally *t = NULL;
                size_t n = 0;

                assert_int_equal(store_rollout_wave_tallies(tx, id, 0, &t, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(t[0].wave, 0);
                assert_int_equal(t[0].hosts, 2);
                assert_int_equal(t[0].failed, 1);
                free(t);
                t = NULL;
                assert_int_equal(store_rollout_ack_failures(tx, id), 0);
                assert_int_equal(store_rollout_wave_tallies(tx, id, 1, &t, &n), 0);
                assert_int_equal(n, 2);
                assert_int_equal(t[0].failed, 0);
                assert_int_equal(t[1].wave, 1);
                assert_int_equal(t[1].hosts, 2);
        }
        assert_int_equal(store_rollout_set_wave_done(tx, id, 1003), 0);
        assert_int_equal(store_rollout_get(tx, id, &ro), 0);
        assert_true(ro.has_done_at);
        assert_int_equal(ro.done_at, 1003);
        rollout_release(&ro);
        assert_int_equal(store_rollout_next_wave(tx, id), 0);
        assert_int_equal(store_rollout_get(tx, id, &ro), 0);
        assert_int_equal(ro.wave, 1);
        assert_false(ro.has_done_at);
        rollout_release(&ro);

        /* Wave 1: h-3 and h-4 are both in phase 2; h-4's target is not in
         * the catalog. */
        {
                RolloutReady *v = NULL;
                size_t n = 0;

                assert_int_equal(store_rollout_ready(tx, id, 1, 1000, 100, false, 10, &v, &n), 0);
                assert_int_equal(n, 2);
                /* In no order PostgreSQL promises. */
                if (streq(v[0].host, "h-4")) {
                        RolloutReady t = v[0];

                        v[0] = v[1];
                        v[1] = t;
                }
                assert_string_equal(v[0].host, "h-3");
                assert_true(v[0].known);
                assert_string_equal(v[1].host, "h-4");
                assert_string_equal(v[1].target, "img-9");
                assert_false(v[1].known);
                rollout_ready_free(v, n);
                assert_int_equal(store_rollout_ready(tx, id, 1, 1000, 100, false, 1, &v, &n), 0);
                assert_int_equal(n, 1);
                rollout_ready_free(v, n);
        }
        assert_int_equal(store_rollout_host_busy(tx, "h-3", &busy), 1);
        assert_int_equal(busy, id);
        assert_int_equal(store_rollout_host_busy(tx, "h-1", &busy), 0);
        {
                _cleanup_free_ int64_t *ids = NULL;
                size_t n = 0;

                assert_int_equal(store_rollouts_active(tx, &ids, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(ids[0], id);
        }

        /* The views. */
        assert_int_equal(store_lease_quarantine(tx, "h-4"), 0);
        {
                RolloutGroupCounts *v = NULL;
                size_t n = 0;

                assert_int_equal(store_rollout_group_counts(tx, id, 1000, 100, &v, &n), 0);
                assert_int_equal(n, 3);
                assert_string_equal(v[0].group, "rack=a");
                assert_int_equal(v[0].hosts, 2);
                assert_int_equal(v[0].done, 1);
                assert_int_equal(v[0].failed, 1);
                assert_int_equal(v[0].down, 0);
                assert_string_equal(v[1].group, "rack=b");
                assert_int_equal(v[1].hosts, 2);
                assert_int_equal(v[1].done, 0);
                assert_int_equal(v[1].failed, 0);
                assert_int_equal(v[1].down, 1);
                assert_string_equal(v[2].group, "role=web");
                assert_int_equal(v[2].hosts, 2);
                assert_int_equal(v[2].done, 1);
                assert_int_equal(v[2].down, 0);
                rollout_group_counts_free(v, n);
        }
        {
                _cleanup_free_ RolloutImageUse *v = NULL;
                int64_t hosts;
                size_t n = 0;

                assert_int_equal(store_image_users(tx, "img-2", &hosts, &v, &n), 0);
                assert_int_equal(hosts, 2);
                assert_int_equal(n, 1);
                assert_int_equal(v[0].rollout_id, id);
                assert_true(v[0].assigns);
                assert_false(v[0].returns);
                free(v);
                v = NULL;
                assert_int_equal(store_image_users(tx, "img-1", &hosts, &v, &n), 0);
                assert_int_equal(hosts, 3);
                assert_int_equal(n, 1);
                assert_false(v[0].assigns);
                assert_true(v[0].returns);
                free(v);
                v = NULL;
                assert_int_equal(store_image_users(tx, "img-7", &hosts, &v, &n), 0);
                assert_int_equal(hosts, 0);
                assert_int_equal(n, 0);
        }
        {
                RolloutInfo i;

                assert_int_equal(store_rollout_info(tx, id, &i), 0);
                assert_int_equal(i.ro.id, id);
                assert_string_equal(i.image, "base:2");
                assert_null(i.reason);
                assert_int_equal(i.rollback_of, 0);
                assert_int_equal(i.created, 1000);
                rollout_info_release(&i);
                assert_int_equal(store_rollout_info(tx, id + 100, &i), -ENOENT);
        }

        /* The rest of wave 1 is skipped. */
        assert_int_equal(store_rollout_skip_host(tx, id, "h-3", "offline"), 0);
        assert_int_equal(store_rollout_skip_pending(tx, id), 0);
        assert_waves(tx, id, (const int64_t[][7]) { { 0, 2, 0, 0, 1, 1, 0 }, { 1, 2, 0, 0, 0, 0, 2 } }, 2);
        {
                _cleanup_free_ char *m = query_text(tx, "SELECT message FROM rollout_hosts WHERE host_id = 'h-3'");
                assert_string_equal(m, "offline");
        }
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_rollback(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int64_t id, back;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        fleet(tx);
        assert_int_equal(store_rollout_insert(tx, ROLLOUT_KIND_ROLLOUT, "img-2", "{}", 1, 0, "alice", 1000, &id), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-1", 0, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-2", 0, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-3", 0, 0, "img-2", NULL), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-4", 0, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_assign(tx, id, "h-1", "img-2", false, false, 1000), 0);
        assert_int_equal(store_rollout_assign(tx, id, "h-2", "img-2", false, false, 1000), 0);
        assert_int_equal(store_rollout_assign(tx, id, "h-3", "img-2", false, false, 1000), 0);
        exec(tx, "UPDATE hosts SET current_image = 'img-2', state_since = 1001 WHERE id = 'h-1'");
        assert_int_equal(store_rollout_update_statuses(tx, id, false), 0);

        assert_int_equal(store_rollout_set_state(tx, id, ROLLOUT_ABORTED, "stop", true, 1010), 0);
        assert_int_equal(store_rollout_insert(tx, ROLLOUT_KIND_ROLLBACK, NULL, "{}", 1, id, "bob", 1010, &back), 0);
        assert_true(back > id);
        assert_int_equal(store_rollout_add_rollback_hosts(tx, back, id), 0);
        {
                RolloutBackHost *v = NULL;
                size_t n = 0;

                assert_int_equal(store_rollout_back_hosts(tx, back, id, &v, &n), 0);
                /* h-3 came from no image, h-4 was never assigned. */
                assert_int_equal(n, 2);
                assert_string_equal(v[0].host, "h-1");
                assert_string_equal(v[0].target, "img-1");
                assert_true(v[0].known);
                assert_int_equal(v[0].busy_in, 0);
                assert_string_equal(v[1].host, "h-2");
                rollout_back_hosts_free(v, n);
        }
        /* Not finished: h-2 goes back to what it ran, h-1 is done. */
        assert_int_equal(store_rollout_revert_unfinished(tx, id), 0);
        {
                _cleanup_free_ char *a = query_text(tx, "SELECT image FROM hosts WHERE id = 'h-1'");
                _cleanup_free_ char *b = query_text(tx, "SELECT image FROM hosts WHERE id = 'h-2'");
                _cleanup_free_ char *c = query_text(tx, "SELECT image FROM hosts WHERE id = 'h-3'");
                assert_string_equal(a, "img-2");
                assert_string_equal(b, "img-1");
                assert_string_equal(c, "img-2");
        }
        /* The rollback's first host runs img-2 and is healthy: not
         * finished by going back to img-1. Failed on img-1 before: a
         * rollback does not count that. */
        exec(tx, "UPDATE hosts SET state = 'failed', failed_image = 'img-1', state_since = 900 WHERE id = 'h-1'");
        {
                RolloutReady *v = NULL;
                size_t n = 0;

                assert_int_equal(store_rollout_ready(tx, back, 0, 1000, 100, true, 10, &v, &n), 0);
                assert_int_equal(n, 2);
                /* h-2 runs img-1, healthy. */
                assert_int_equal(v[0].finished, streq(v[0].host, "h-2"));
                assert_int_equal(v[1].finished, streq(v[1].host, "h-2"));
                rollout_ready_free(v, n);
                assert_int_equal(store_rollout_ready(tx, back, 0, 1000, 100, false, 10, &v, &n), 0);
                assert_int_equal(n, 2);
                assert_true(v[0].finished);
                assert_true(v[1].finished);
                rollout_ready_free(v, n);
        }
        assert_int_equal(store_rollout_assign(tx, back, "h-1", "img-1", true, false, 1011), 0);
        {
                _cleanup_free_ char *r = query_text(tx, "SELECT rollback FROM hosts WHERE id = 'h-1'");
                assert_string_equal(r, "1");
        }
        {
                _cleanup_free_ int64_t *ids = NULL;
                size_t n = 0;

                assert_int_equal(store_rollouts_active(tx, &ids, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(ids[0], back);
        }
        {
                RolloutInfo *v = NULL;
                size_t n = 0;

                assert_int_equal(store_rollouts_list(tx, &v, &n), 0);
                assert_int_equal(n, 2);
                assert_int_equal(v[0].ro.id, back);
                assert_int_equal(v[0].ro.kind, ROLLOUT_KIND_ROLLBACK);
                assert_int_equal(v[0].ro.state, ROLLOUT_RUNNING);
                assert_int_equal(v[0].rollback_of, id);
                assert_null(v[0].image);
                assert_int_equal(v[0].hosts, 2);
                assert_int_equal(v[0].done, 0);
                assert_int_equal(v[1].ro.id, id);
                assert_int_equal(v[1].ro.state, ROLLOUT_ABORTED);
                assert_string_equal(v[1].reason, "stop");
                assert_string_equal(v[1].image, "base:2");
                assert_int_equal(v[1].hosts, 4);
                assert_int_equal(v[1].done, 1);
                rollout_infos_free(v, n);
        }
        {
                _cleanup_free_ char *f = query_text(tx, "SELECT finished FROM rollouts WHERE id = 1");
                assert_string_equal(f, "1010");
        }
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_planning(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        RolloutCandidate *v = NULL;
        RolloutLabel *l = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        fleet(tx);
        /* A host whose current image the catalog does not have. */
        exec(tx, "UPDATE hosts SET current_image = 'img-x', image = 'img-2' WHERE id = 'h-2'");
        assert_int_equal(store_rollout_candidates(tx, STRV_MAKE("rack", "a"), "role", &v, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0].host, "h-1");
        assert_string_equal(v[0].image, "img-1");
        assert_string_equal(v[0].order_value, "web");
        assert_string_equal(v[1].host, "h-2");
        assert_string_equal(v[1].image, "img-2");
        assert_string_equal(v[1].order_value, "db");
        rollout_candidates_free(v, n);
        assert_int_equal(store_rollout_candidates(tx, NULL, "role", &v, &n), 0);
        assert_int_equal(n, 4);
        assert_null(v[3].order_value);
        rollout_candidates_free(v, n);
        assert_int_equal(store_rollout_candidates(tx, STRV_MAKE("role", "web", "rack", "b"), NULL, &v, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0].host, "h-3");
        assert_null(v[0].order_value);
        rollout_candidates_free(v, n);
        assert_int_equal(store_rollout_candidates(tx, STRV_MAKE("zone", "x"), NULL, &v, &n), 0);
        assert_int_equal(n, 0);
        rollout_candidates_free(v, n);

        /* The keys of "rack" and "role=web"; a key that only starts like
         * one is not. */
        add_label(tx, "h-4", "racks", "x");
        assert_int_equal(store_budgeted_labels(tx, &l, &n), 0);
        assert_int_equal(n, 7);
        assert_string_equal(l[0].host, "h-1");
        assert_string_equal(l[0].key, "rack");
        assert_string_equal(l[0].value, "a");
        assert_string_equal(l[1].key, "role");
        assert_string_equal(l[6].host, "h-4");
        assert_string_equal(l[6].key, "rack");
        rollout_labels_free(l, n);
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* The hosts a tick may assign come by wave, then phase, then in the order
 * they were added to the rollout, on both drivers: not by ID, and not in
 * the order PostgreSQL happens to keep rows (an update moves a row). */
static void test_ready_order(void **state) {
        static const char *const want[] = { "h-7", "h-6", "h-3", "h-9", "h-5", "h-8" };
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        RolloutReady *v = NULL;
        size_t n = 0;
        int64_t id;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        fleet(tx);
        add_host(tx, "h-5", "m5", 1000, "img-1");
        add_host(tx, "h-6", "m6", 1000, "img-1");
        add_host(tx, "h-7", "m7", 1000, "img-1");
        add_host(tx, "h-8", "m8", 1000, "img-1");
        add_host(tx, "h-9", "m9", 1000, "img-1");
        assert_int_equal(store_rollout_insert(tx, ROLLOUT_KIND_ROLLOUT, "img-2", "{\"waves\": 2}", 2, 0, "alice",
                                              1000, &id),
                         0);
        /* Wave 1 added first; in each wave, IDs out of order. */
        assert_int_equal(store_rollout_add_host(tx, id, "h-9", 1, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-5", 1, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-8", 1, 1, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-7", 0, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-6", 0, 0, "img-2", "img-1"), 0);
        assert_int_equal(store_rollout_add_host(tx, id, "h-3", 0, 0, "img-2", "img-1"), 0);
        exec(tx, "UPDATE rollout_hosts SET message = 'moved' WHERE host_id IN ('h-7', 'h-9')");
        assert_int_equal(store_tx_commit(&tx), 0);

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_rollout_ready(tx, id, 1, 1000, 100, false, 10, &v, &n), 0);
        /* Phase 1 waits while phase 0 has pending hosts. */
        assert_int_equal(n, ELEMENTSOF(want) - 1);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(v[i].host, want[i]);
        rollout_ready_free(v, n);
        /* A limit takes the first ones in that order. */
        assert_int_equal(store_rollout_ready(tx, id, 1, 1000, 100, false, 2, &v, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0].host, "h-7");
        assert_string_equal(v[1].host, "h-6");
        rollout_ready_free(v, n);
}

#define CASES(test)                                                                                    \
        test(test_budgets), test(test_groups_and_leases), test(test_windows), test(test_rollout),      \
                test(test_rollback), test(test_planning), test(test_ready_order)

int main(void) {
        if (getenv("TEST_DEBUG"))
                log_set_level(LOG_LEVEL_DEBUG);
        /* sqlite: a new file in a directory of each case's own. */
        const struct CMUnitTest sqlite[] = { CASES(test_in_dir) };
        const struct CMUnitTest pg[] = { CASES(cmocka_unit_test) };
        int r;

        r = cmocka_run_group_tests_name("sqlite", sqlite, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
