/* The fleet page's reads (store-fleet.c) and the audit log's target
 * filter, on both drivers: the same calls on sqlite and on PostgreSQL (a
 * server of the test's own) give the same answers. */
#include <string.h>

#include "tests.h"

#include "pgserver.h"
#include "store-audit.h"
#include "store-db.h"
#include "store-fleet.h"
#include "store-hosts.h"
#include "util.h"

typedef struct Seen {
        char rows[8][64];
        size_t n;
} Seen;

static int row_cb(const FleetRow *row, void *userdata) {
        Seen *s = userdata;

        assert_true(s->n < ELEMENTSOF(s->rows));
        snprintf(s->rows[s->n++], sizeof s->rows[0], "%s %s|%s|%s|%s|%d", row->id, row->x, row->y, row->version,
                 row->state, (int) row->has_lease);
        return 0;
}

static int key_cb(const char *key, int64_t hosts, void *userdata) {
        Seen *s = userdata;

        assert_true(s->n < ELEMENTSOF(s->rows));
        snprintf(s->rows[s->n++], sizeof s->rows[0], "%s=%lld", key, (long long) hosts);
        return 0;
}

static int stop_cb(const FleetRow *row, void *userdata) {
        (void) row;
        (void) userdata;
        return -ECANCELED;
}

static void test_fleet_rows(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        Seen seen = {};
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_host_insert(tx, "h-000000000001", "52:54:00:00:00:01", NULL, 100), 0);
        assert_int_equal(store_host_insert(tx, "h-000000000002", "52:54:00:00:00:02", NULL, 100), 0);
        assert_int_equal(store_host_insert(tx, "h-000000000003", "52:54:00:00:00:03", NULL, 100), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000001", "service", "web"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000001", "rack", "r1"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000002", "rack", "r2"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000003", "zone", "a"), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        /* Every host once, by ID; "" for a key it lacks and a report it has not made. */
        assert_int_equal(store_fleet_rows(tx, "service", "rack", row_cb, &seen), 0);
        assert_int_equal(seen.n, 3);
        assert_string_equal(seen.rows[0], "h-000000000001 web|r1||registered|0");
        assert_string_equal(seen.rows[1], "h-000000000002 |r2||registered|0");
        assert_string_equal(seen.rows[2], "h-000000000003 |||registered|0");
        seen.n = 0;
        assert_int_equal(store_fleet_keys(tx, key_cb, &seen), 0);
        assert_int_equal(seen.n, 3);
        assert_string_equal(seen.rows[0], "rack=2");
        assert_string_equal(seen.rows[1], "service=1");
        assert_string_equal(seen.rows[2], "zone=1");
        /* The callback's error ends the walk and comes back. */
        assert_int_equal(store_fleet_rows(tx, "service", "rack", stop_cb, NULL), -ECANCELED);
}

static void test_audit_target(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        AuditEntry *l = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_audit_append(tx, 1, "ci", "lease.grant", "h-000000000001", NULL), 0);
        assert_int_equal(store_audit_append(tx, 2, "ci", "lease.grant", "h-000000000002", NULL), 0);
        assert_int_equal(store_audit_append(tx, 3, "ci", "host.state", "h-000000000001", NULL), 0);
        assert_int_equal(store_audit_append(tx, 4, "ci", "lease.release", "h-000000000001", NULL), 0);
        assert_int_equal(store_audit_append(tx, 5, "ci", "image.push", NULL, NULL), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .limit = 10, .target = "h-000000000001" }, &l, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(l[0].time, 1);
        assert_int_equal(l[2].time, 4);
        audit_entries_free(l, n);
        /* With an action family and the newest only. */
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .last = 1, .action = "lease", .target = "h-000000000001" },
                                          &l, &n),
                         0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].action, "lease.release");
        audit_entries_free(l, n);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .limit = 10, .target = "h-00000000000f" }, &l, &n), 0);
        assert_int_equal(n, 0);
        audit_entries_free(l, n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_fleet_rows),
                test_in_dir(test_audit_target),
        };
        const struct CMUnitTest pg[] = {
                cmocka_unit_test(test_fleet_rows),
                cmocka_unit_test(test_audit_target),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
