/* The inventory over a real store: registration by MAC, labels, a
 * check-in (its state recorded, no image desired), and refusals that fail
 * closed: an unknown host's check-in, and a registration secret never
 * issued. */
#include "tests.h"

#include "enroll.h"
#include "hosts.h"
#include "store-hosts.h"
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

        assert_int_equal(store_db_open("state.db", &db), 0);
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

        assert_int_equal(store_db_open("state.db", &db), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(hosts_checkin(tx, "h-000000000000", &c, NOW, "agent", &want), -ENOENT);
        assert_int_equal(hosts_ensure(tx, MAC, NULL, NOW, "test", id, &is_new), 0);
        /* No secret was issued: any secret is refused, with a reason. */
        assert_int_equal(enroll_check(tx, ".", MAC, "10.0.0.5", "00", NOW, &why), 0);
        assert_non_null(why);
        store_tx_rollback(&tx);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_register_labels_checkin),
                test_in_dir(test_fail_closed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
