/* Rollouts of a host file set (rollout-files.c, store-rollout-files.c,
 * the pins and live versions of store-files.c) on both drivers: a held
 * version reaches no host; a rollout pins the hosts of each wave to it,
 * the others keep the version they have; a host is done when its booted
 * slot reports its new files digest, healthy; a fallback on the canary
 * pauses the rollout and the later waves never get the version; a
 * rollback and an abort move the pins back; a rollout that is done makes
 * its version the live one. */
#include <errno.h>
#include <string.h>

#include "tests.h"

#include "coordinator.h"
#include "filesets.h"
#include "json.h"
#include "pgserver.h"
#include "store-db.h"
#include "store-sqlite.h"
#include "store-files.h"
#include "store-hosts.h"
#include "store-rollouts.h"
#include "util.h"

#define N_HOSTS 5
static const char *const hosts[N_HOSTS] = { "h-000000000001", "h-000000000002", "h-000000000003", "h-000000000004",
                                            "h-000000000005" };

static StoreTx *begin(StoreDb *db) {
        StoreTx *tx = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        return tx;
}

static void commit(StoreTx **tx) {
        assert_int_equal(store_tx_commit(tx), 0);
}

/* A version of set net whose file says text; live at once unless held. */
static int64_t put_net(StoreTx *tx, const char *text, bool hold) {
        _cleanup_json_ json_t *body = json_pack("{s:{s:s}, s:[{s:s, s:s}]}", "selector", "rack", "r1", "files",
                                                "path", "/etc/net", "content", text);
        _cleanup_free_ char *spec = NULL;
        _cleanup_error_ Error e = {};
        char digest[65];
        int64_t seq = 0;

        assert_int_equal(file_set_canonical(body, &spec, digest, &e), 0);
        assert_int_equal(store_file_set_put(tx, "net", digest, spec, "ci", 1000, &seq), 1);
        if (!hold)
                assert_int_equal(store_file_set_live_set(tx, "net", seq), 0);
        return seq;
}

/* The files digest host gets now. */
static void desired(StoreTx *tx, const char *host, char digest[65]) {
        _cleanup_error_ Error e = {};

        assert_int_equal(files_host_render(tx, host, NULL, digest, &e), 0);
}

/* Host reports state since now, running image, slot a booted with files
 * digest. */
static void report_image(StoreTx *tx, const char *host, const char *state, const char *image, const char *digest,
                         uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ char *slots = strdup_printf("{\"a\": {\"image\": \"%s\", \"files\": \"%s\"}}", image,
                                                   digest);

        assert_int_equal(store_stmt(tx,
                                    "UPDATE hosts SET state = ?, state_since = ?, slots = ?, last_seen = ?, "
                                    "current_image = ? WHERE id = ?",
                                    &st),
                         0);
        db_bind_text(st, 1, state);
        db_bind_int64(st, 2, (int64_t) now);
        db_bind_text(st, 3, slots);
        db_bind_int64(st, 4, (int64_t) now);
        db_bind_text(st, 5, image);
        db_bind_text(st, 6, host);
        assert_true(db_step(st) >= 0);
}

static void report(StoreTx *tx, const char *host, const char *state, const char *digest, uint64_t now) {
        report_image(tx, host, state, "img1", digest, now);
}

/* Every host that runs its desired files reports them, healthy. */
static void report_arrived(StoreTx *tx, uint64_t now) {
        for (size_t i = 0; i < N_HOSTS; i++) {
                char d[65];
                desired(tx, hosts[i], d);
                report(tx, hosts[i], "healthy", d, now);
        }
}

static void tick(StoreDb *db, int64_t id, uint64_t now) {
        _cleanup_store_tx_ StoreTx *tx = begin(db);
        CoordConfig c = COORD_CONFIG_DEFAULT;

        assert_int_equal(coord_rollout_tick(tx, &c, id, now), 0);
        commit(&tx);
}

static int64_t start(StoreTx *tx, const char *files, uint64_t now, int expect) {
        _cleanup_json_ json_t *spec = json_pack("{s:s, s:[i, s], s:i}", "files", files, "waves", 1, "100%",
                                                "max_failures", 0);
        _cleanup_free_ char *error = NULL;
        CoordConfig c = COORD_CONFIG_DEFAULT;
        int64_t id = 0;

        assert_int_equal(coord_rollout_start(tx, &c, spec, "ci", now, &id, &error), expect);
        return id;
}

static RolloutState state_of(StoreTx *tx, int64_t id) {
        _cleanup_(rollout_release) Rollout ro = {};

        assert_int_equal(store_rollout_get(tx, id, &ro), 0);
        return ro.state;
}

/* How many of the selected hosts (rack r1) get digest d of their own
 * version: counts those whose desired digest equals what was saved. */
static size_t count_on(StoreTx *tx, char saved[N_HOSTS][65]) {
        size_t n = 0;

        for (size_t i = 0; i < N_HOSTS - 1; i++) {
                char d[65];
                desired(tx, hosts[i], d);
                n += streq(d, saved[i]);
        }
        return n;
}

static void save(StoreTx *tx, char saved[N_HOSTS][65]) {
        for (size_t i = 0; i < N_HOSTS; i++)
                desired(tx, hosts[i], saved[i]);
}

/* An image, and the hosts on it, healthy, slot a booted: rack r1 but
 * the last, in r2. */
static void fleet_setup(StoreTx *tx) {
        {
                _cleanup_stmt_reset_ DbStmt *st = NULL;
                assert_int_equal(store_stmt(tx,
                                            "INSERT INTO images (id, name, version, arch, manifest, signature, "
                                            "created) VALUES ('img1', 'tiny', '1.0', 'x86_64', 'm', 's', 1)",
                                            &st),
                                 0);
                assert_true(db_step(st) >= 0);
        }
        for (size_t i = 0; i < N_HOSTS; i++) {
                _cleanup_stmt_reset_ DbStmt *st = NULL;
                char mac[32];
                snprintf(mac, sizeof mac, "52:54:00:00:00:%02zx", i + 1);
                assert_int_equal(store_host_insert(tx, hosts[i], mac, NULL, 1), 0);
                assert_int_equal(store_host_label_set(tx, hosts[i], "rack", i < N_HOSTS - 1 ? "r1" : "r2"), 0);
                assert_int_equal(store_stmt(tx,
                                            "UPDATE hosts SET image = 'img1', current_image = 'img1', "
                                            "booted_slot = 'a' WHERE id = ?",
                                            &st),
                                 0);
                db_bind_text(st, 1, hosts[i]);
                assert_true(db_step(st) >= 0);
        }
}

typedef struct Fault {
        unsigned long calls, fail_at;
        bool fired;
} Fault;

static int interrupt_at(void *userdata) {
        Fault *f = userdata;

        if (++f->calls != f->fail_at)
                return 0;
        f->fired = true;
        return 1;
}

static void restore(StoreDb *db, const char *template) {
        sqlite3 *from = NULL;
        sqlite3_backup *b;

        assert_int_equal(sqlite3_exec(store_sqlite(db), "PRAGMA synchronous=OFF", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_open_v2(template, &from, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        b = sqlite3_backup_init(store_sqlite(db), "main", from, "main");
        assert_non_null(b);
        assert_int_equal(sqlite3_backup_step(b, -1), SQLITE_DONE);
        assert_int_equal(sqlite3_backup_finish(b), SQLITE_OK);
        sqlite3_close(from);
        assert_int_equal(sqlite3_exec(store_sqlite(db), "PRAGMA synchronous=OFF", NULL, NULL, NULL), SQLITE_OK);
}

/* A tick of rollout id in a transaction of its own, with f (may be NULL)
 * interrupting sqlite's steps: its result, or the commit's. */
static int fault_tick(StoreDb *db, int64_t id, Fault *f, uint64_t now) {
        CoordConfig c = COORD_CONFIG_DEFAULT;
        StoreTx *tx = NULL;
        int r;

        if (f)
                sqlite3_progress_handler(store_sqlite(db), 1, interrupt_at, f);
        r = store_tx_begin(db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_rollout_tick(tx, &c, id, now);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        sqlite3_progress_handler(store_sqlite(db), 0, NULL, NULL);
        return r;
}

/* How many hosts are assigned, each pinned to version 2 with its digest
 * recorded; fails when a host has one of the three without the others. */
static int assigned_whole(StoreDb *db, const char *when) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int n = 0, r;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_stmt(tx,
                                    "SELECT rh.status = 'assigned', rh.files_digest IS NOT NULL, EXISTS (SELECT 1 "
                                    "FROM file_pins p WHERE p.host_id = rh.host_id AND p.name = 'net' AND p.seq = "
                                    "2) FROM rollout_hosts rh",
                                    &st),
                         0);
        while ((r = db_step(st)) > 0) {
                bool a = db_column_bool(st, 0), d = db_column_bool(st, 1), p = db_column_bool(st, 2);
                if (a != d || a != p)
                        fail_msg("%s: a host assigned %d, with its digest %d, pinned %d", when, a, d, p);
                n += a;
        }
        assert_int_equal(r, 0);
        return n;
}

static void test_waves(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = begin(db);
        char v1[N_HOSTS][65], v2[N_HOSTS][65], v3[N_HOSTS][65];
        int64_t id, id2, back, live = -1, pinned = -1, busy = 0;
        _cleanup_free_ char *error = NULL;
        uint64_t now = 10000;
        (void) state;

        fleet_setup(tx);
        assert_int_equal(put_net(tx, "one {{host.id}}\n", false), 1);
        report_arrived(tx, now);
        save(tx, v1);
        /* A version held back reaches no host. */
        assert_int_equal(put_net(tx, "two {{host.id}}\n", true), 2);
        assert_int_equal(count_on(tx, v1), N_HOSTS - 1);
        /* Nothing to roll out at the live version; no such set. */
        start(tx, "net@1", now, -EBUSY);
        start(tx, "nope", now, -ENXIO);
        id = start(tx, "net", now, 0);
        assert_int_equal(store_file_set_rolling(tx, "net", &busy), 1);
        assert_int_equal(busy, id);
        commit(&tx);

        /* Wave 1: the canary alone gets version 2. */
        tick(db, id, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v1), N_HOSTS - 2);
        save(tx, v2);
        /* The host of rack r2 is not in the rollout, and keeps nothing. */
        assert_string_equal(v2[N_HOSTS - 1], v1[N_HOSTS - 1]);
        /* A host that has not rebooted yet does not finish its wave. */
        commit(&tx);
        tick(db, id, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v1), N_HOSTS - 2);
        report_arrived(tx, ++now);
        commit(&tx);
        /* The canary arrived: wave 2 takes the others. */
        tick(db, id, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v1), 0);
        assert_int_equal(count_on(tx, v2), 1);
        save(tx, v2);
        report_arrived(tx, ++now);
        commit(&tx);
        tick(db, id, ++now);
        tx = begin(db);
        assert_int_equal(state_of(tx, id), ROLLOUT_DONE);
        /* Done: version 2 is the live one, and no host is pinned. */
        assert_int_equal(store_file_set_live_get(tx, "net", &live), 1);
        assert_int_equal(live, 2);
        assert_int_equal(store_file_pins_count(tx, "net", &pinned), 0);
        assert_int_equal(pinned, 0);
        assert_int_equal(store_file_set_rolling(tx, "net", &busy), 0);
        assert_int_equal(count_on(tx, v2), N_HOSTS - 1);

        /* A bad version: the canary falls back; the rollout pauses, and
         * the later wave never gets it. */
        assert_int_equal(put_net(tx, "three {{host.id}}\n", true), 3);
        id2 = start(tx, "net@3", now, 0);
        commit(&tx);
        tick(db, id2, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v2), N_HOSTS - 2);
        save(tx, v3);
        for (size_t i = 0; i < N_HOSTS - 1; i++)
                if (!streq(v3[i], v2[i]))
                        report(tx, hosts[i], "rolled-back", v2[i], now + 1);
        now++;
        commit(&tx);
        tick(db, id2, ++now);
        tick(db, id2, ++now);
        tx = begin(db);
        assert_int_equal(state_of(tx, id2), ROLLOUT_PAUSED);
        assert_int_equal(count_on(tx, v2), N_HOSTS - 2);
        /* A set a rollout moves is still rolling while paused. */
        assert_int_equal(store_file_set_rolling(tx, "net", &busy), 1);
        assert_int_equal(busy, id2);
        /* The rollback pins the canary back to version 2. */
        assert_int_equal(coord_rollout_action(tx, id2, "rollback", "ci", now, &back, &error), 0);
        assert_int_equal(state_of(tx, id2), ROLLOUT_ABORTED);
        commit(&tx);
        tick(db, back, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v2), N_HOSTS - 1);
        report_arrived(tx, ++now);
        commit(&tx);
        /* Its second wave has no host: one tick ends the first, one the
         * second. */
        tick(db, back, ++now);
        tick(db, back, ++now);
        tx = begin(db);
        assert_int_equal(state_of(tx, back), ROLLOUT_DONE);
        assert_int_equal(store_file_set_live_get(tx, "net", &live), 1);
        assert_int_equal(live, 2);
        assert_int_equal(store_file_pins_count(tx, "net", &pinned), 0);
        assert_int_equal(pinned, 0);

        /* An abort puts the canary back too. */
        id = start(tx, "net@3", now, 0);
        commit(&tx);
        tick(db, id, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v2), N_HOSTS - 2);
        assert_int_equal(coord_rollout_action(tx, id, "abort", "ci", now, NULL, &error), 0);
        assert_int_equal(count_on(tx, v2), N_HOSTS - 1);
        assert_int_equal(store_file_pins_count(tx, "net", &pinned), 0);
        assert_int_equal(pinned, 0);
        commit(&tx);
}

/* An image and a version of the set in one rollout: each host of a wave
 * is sent both, and is done only when it runs the image with the files. */
static void test_with_image(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = begin(db);
        _cleanup_json_ json_t *spec = json_pack("{s:s, s:s, s:[i, s]}", "image", "tiny:2.0", "files", "net", "waves", 1,
                                                "100%");
        _cleanup_free_ char *error = NULL;
        CoordConfig c = COORD_CONFIG_DEFAULT;
        char v1[N_HOSTS][65], v2[N_HOSTS][65];
        uint64_t now = 10000;
        int64_t id = 0;
        size_t canary = N_HOSTS;
        (void) state;

        fleet_setup(tx);
        {
                _cleanup_stmt_reset_ DbStmt *st = NULL;
                assert_int_equal(store_stmt(tx,
                                            "INSERT INTO images (id, name, version, arch, manifest, signature, "
                                            "created) VALUES ('img2', 'tiny', '2.0', 'x86_64', 'm', 's', 2)",
                                            &st),
                                 0);
                assert_true(db_step(st) >= 0);
        }
        assert_int_equal(put_net(tx, "one {{host.id}}\n", false), 1);
        report_arrived(tx, now);
        save(tx, v1);
        assert_int_equal(put_net(tx, "two {{host.id}}\n", true), 2);
        /* Every host the selector takes, the one of rack r2 too: it gets
         * the image, and the set gives it nothing either way. */
        assert_int_equal(coord_rollout_start(tx, &c, spec, "ci", now, &id, &error), 0);
        commit(&tx);
        tick(db, id, ++now);
        tx = begin(db);
        save(tx, v2);
        for (size_t i = 0; i < N_HOSTS - 1; i++)
                if (!streq(v1[i], v2[i]))
                        canary = i;
        assert_true(canary < N_HOSTS - 1);
        assert_int_equal(count_on(tx, v1), N_HOSTS - 2);
        /* The new files on the old image do not finish it. */
        report_image(tx, hosts[canary], "healthy", "img1", v2[canary], ++now);
        commit(&tx);
        tick(db, id, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v1), N_HOSTS - 2);
        /* The image with the files does. */
        report_image(tx, hosts[canary], "healthy", "img2", v2[canary], ++now);
        commit(&tx);
        tick(db, id, ++now);
        tx = begin(db);
        assert_int_equal(count_on(tx, v1), 0);
        for (size_t i = 0; i < N_HOSTS; i++) {
                _cleanup_(host_release) Host h = {};
                assert_int_equal(store_host_get(tx, hosts[i], &h), 0);
                assert_string_equal(h.image, "img2");
        }
        commit(&tx);
}

/* The pin, the digest and the assignment of a host are one write: a tick
 * that fails at any sqlite step leaves every host of the rollout with all
 * three or none, and the next tick assigns the canary. */
static void test_assign_faults(void **state) {
        uint64_t now = 10000;
        unsigned long steps;
        int64_t id;
        Fault f = {};
        (void) state;

        {
                _cleanup_store_db_free_ StoreDb *tmpl = NULL;
                assert_int_equal(store_db_open("template.db", &tmpl), 0);
                _cleanup_store_tx_ StoreTx *tx = begin(tmpl);
                fleet_setup(tx);
                assert_int_equal(put_net(tx, "one {{host.id}}\n", false), 1);
                report_arrived(tx, now);
                assert_int_equal(put_net(tx, "two {{host.id}}\n", true), 2);
                id = start(tx, "net", now, 0);
                commit(&tx);
        }
        _cleanup_store_db_free_ StoreDb *db = NULL;
        assert_int_equal(store_db_open("state.db", &db), 0);
        restore(db, "template.db");
        assert_int_equal(fault_tick(db, id, &f, now + 1), 0);
        assert_int_equal(assigned_whole(db, "no fault"), 1);
        steps = f.calls;
        assert_true(steps > 20);
        for (unsigned long k = 1; k <= steps; k++) {
                char when[64];

                restore(db, "template.db");
                f = (Fault) { .fail_at = k };
                (void) fault_tick(db, id, &f, now + 1);
                assert_true(f.fired);
                snprintf(when, sizeof when, "a fault at step %lu of %lu", k, steps);
                int n = assigned_whole(db, when);
                if (n > 1)
                        fail_msg("%s: %d hosts assigned", when, n);
                assert_int_equal(fault_tick(db, id, NULL, now + 2), 0);
                if (assigned_whole(db, when) != 1)
                        fail_msg("%s: the next tick did not assign the canary", when);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_waves),
                test_in_dir(test_with_image),
                test_in_dir(test_assign_faults),
        };
        const struct CMUnitTest pg[] = {
                cmocka_unit_test(test_waves),
                cmocka_unit_test(test_with_image),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
