/* Backups and restores of a real state: a round trip; a failure at every
 * step of a backup (the target is absent or whole) and of a restore (the
 * state is the old one or the new one, never a mix); blobs missing or
 * damaged (refused, the state untouched); and the fleet being ahead of a
 * restored state: epochs never handed out twice, a release with an epoch
 * the state does not know, a check-in naming an unknown image. */
#include "tests.h"

#include <errno.h>
#include <glob.h>
#include <string.h>
#include <sys/stat.h>

#include "backup.h"
#include "blobstore.h"
#include "coordinator.h"
#include "enroll.h"
#include "fileio.h"
#include "hosts.h"
#include "json.h"
#include "store-catalog.h"
#include "store-coord.h"
#include "store-hosts.h"
#include "store-sqlite.h"
#include "tokens.h"
#include "util.h"

#define NOW 1800000000
#define MAC_A "52:54:00:00:00:0a"
#define MAC_B "52:54:00:00:00:0b"
#define GAP BACKUP_RESTORE_EPOCH_GAP

static void add_blob(StoreDb *db, const char *dir, const char *text) {
        _cleanup_blobstore_writer_free_ BlobstoreWriter *w = NULL;
        StoreTx *tx = NULL;
        char hex[65];

        assert_int_equal(blobstore_writer_new(dir, NULL, &w), 0);
        assert_int_equal(blobstore_writer_write(w, text, strlen(text)), 0);
        assert_true(blobstore_writer_commit(TAKE_PTR(w), hex, NULL) >= 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_true(store_blob_insert(tx, hex, strlen(text), NOW) >= 0);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static uint64_t lease(StoreDb *db, const char *host, uint64_t now) {
        LeaseDecision d = {};
        CoordConfig c = COORD_CONFIG_DEFAULT;
        StoreTx *tx = NULL;
        uint64_t epoch;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(coord_lease_acquire(tx, &c, host, now, "test", &d), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_true(d.granted);
        epoch = d.epoch;
        lease_decision_release(&d);
        return epoch;
}

static int release(StoreDb *db, const char *host, uint64_t epoch) {
        StoreTx *tx = NULL;
        int r;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        r = coord_lease_release(tx, host, epoch, NOW, "test", NULL);
        assert_int_equal(store_tx_commit(&tx), 0);
        return r;
}

/* A state in dir: hosts A and B, an admin token called tag, two blobs, and
 * A holding a lease after `grants` grants. */
static void make_state(const char *dir, const char *tag, int grants, char ret_a[16], char ret_b[16]) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_free_ char *path = path_join(dir, "state.db"), *token = NULL, *b1 = NULL, *b2 = NULL;
        StoreTx *tx = NULL;
        bool is_new;

        assert_int_equal(mkdir_p(dir, 0755), 0);
        {
                _cleanup_free_ char *tmp = path_join(dir, "tmp");
                assert_int_equal(mkdir_p(tmp, 0700), 0);
        }
        assert_int_equal(store_db_open(path, &db), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(hosts_ensure(tx, MAC_A, NULL, NOW, "test", ret_a, &is_new), 0);
        assert_int_equal(hosts_ensure(tx, MAC_B, NULL, NOW, "test", ret_b, &is_new), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(tokens_create(db, tag, ROLE_ADMIN, NOW, "test", &token), 0);
        b1 = strdup_printf("%s one", tag);
        b2 = strdup_printf("%s two", tag);
        add_blob(db, dir, b1);
        add_blob(db, dir, b2);
        for (int i = 1; i < grants; i++)
                assert_int_equal(release(db, ret_a, lease(db, ret_a, NOW)), 1);
        assert_int_equal(lease(db, ret_a, NOW), (uint64_t) grants);
}

static int first_token(const char *name, const char *role, long long created, void *userdata) {
        (void) role;
        (void) created;
        snprintf(userdata, 32, "%s", name);
        return 0;
}

/* The admin token's name of the state in dir ("" when none) and its
 * counter: which state it is. */
static void state_of(const char *dir, char ret_tag[32], uint64_t *ret_epoch) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_free_ char *path = path_join(dir, "state.db");
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;

        ret_tag[0] = 0;
        assert_int_equal(store_db_open(path, &db), 0);
        assert_int_equal(tokens_list(db, first_token, ret_tag), 0);
        assert_int_equal(sqlite_prepare(store_sqlite(db), "SELECT value FROM meta WHERE key = 'lease_epoch'", &st), 0);
        assert_int_equal(sqlite_step(st), 1);
        *ret_epoch = (uint64_t) sqlite3_column_int64(st, 0);
}

static size_t count_glob(const char *pattern) {
        glob_t g = {};
        size_t n = glob(pattern, 0, NULL, &g) == 0 ? g.gl_pathc : 0;

        globfree(&g);
        return n;
}

static void test_round_trip(void **state) {
        _cleanup_(backup_report_release) BackupReport rep = {};
        _cleanup_(restore_report_release) RestoreReport rr = {};
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *m = NULL;
        BackupOptions o = {};
        char a[16], b[16], tag[32], key[65], restored[65];
        uint64_t epoch;
        size_t len;
        (void) state;

        make_state("srv", "new", 3, a, b);
        assert_int_equal(enroll_key("srv", key), 0);
        assert_int_equal(backup_create("srv", "bk", &o, NOW, &rep), 0);
        assert_int_equal(rep.info.hosts, 2);
        assert_int_equal(rep.info.tokens, 1);
        assert_int_equal(rep.info.lease_epoch, 3);
        assert_int_equal(rep.info.n_blobs, 2);
        assert_int_equal(rep.linked + rep.copied, 2);
        assert_int_equal(read_full_file("bk/manifest.json", 1 << 20, &text, &len), 0);
        m = json_loads(text, 0, NULL);
        assert_non_null(m);
        assert_string_equal(json_string_value(json_object_get(m, "format")), BACKUP_FORMAT);
        assert_int_equal(json_array_size(json_object_get(m, "blobs")), 2);
        assert_int_equal(json_integer_value(json_object_get(m, "schema_version")), rep.info.schema_version);
        assert_string_equal(json_string_value(json_object_get(json_object_get(m, "database"), "sha256")),
                            rep.db_sha256);
        assert_int_equal(count_glob("bk/blobs/sha256/*/*"), 2);
        /* The target must be new or empty. */
        assert_int_equal(backup_create("srv", "bk", &o, NOW, NULL), -EEXIST);

        assert_int_equal(backup_restore("dr", NULL, "bk", NOW + 60, "test", &rr), 0);
        assert_int_equal(rr.blobs_copied, 2);
        assert_int_equal(rr.epoch_backup, 3);
        assert_int_equal(rr.leases_renumbered, 1);
        assert_int_equal(rr.epoch, 3 + GAP + 1);
        assert_null(rr.previous);
        state_of("dr", tag, &epoch);
        assert_string_equal(tag, "new");
        assert_int_equal(epoch, 3 + GAP + 1);
        assert_int_equal(count_glob("dr/blobs/sha256/*/*"), 2);
        assert_false(path_exists("dr/state.db.restore"));
        /* The enrollment key came along, where the state had none. */
        assert_true(rr.enroll_key_restored);
        assert_int_equal(enroll_key("dr", restored), 0);
        assert_string_equal(restored, key);
        restore_report_release(&rr);
        /* A state's own key stays. */
        assert_int_equal(mkdir("dst", 0755), 0);
        assert_int_equal(enroll_key("dst", key), 0);
        assert_int_equal(backup_restore("dst", NULL, "bk", NOW + 60, "test", &rr), 0);
        assert_false(rr.enroll_key_restored);
        assert_int_equal(enroll_key("dst", restored), 0);
        assert_string_equal(restored, key);
}

/* A backup cut short at any step leaves no target (an empty one as it
 * was) and no work directory. */
static void test_backup_faults(void **state) {
        BackupOptions o = {};
        RestoreReport rr = {};
        char a[16], b[16];
        unsigned n;
        int r;
        (void) state;

        make_state("srv", "new", 1, a, b);
        assert_int_equal(mkdir("bk", 0755), 0);
        for (n = 1;; n++) {
                backup_fail_at = n;
                backup_steps = 0;
                r = backup_create("srv", "bk", &o, NOW, NULL);
                if (r == 0)
                        break;
                assert_int_equal(r, -EIO);
                assert_int_equal(count_glob("bk/*"), 0);
                assert_int_equal(count_glob("bk.partial-*"), 0);
        }
        backup_fail_at = 0;
        /* begin, snapshot, digest, two blobs, manifest */
        assert_int_equal(n, 7);
        assert_int_equal(backup_restore("dr", NULL, "bk", NOW, "test", &rr), 0);
        restore_report_release(&rr);
}

/* A restore cut short at any step leaves the old state, whole, where it
 * was; one that ends leaves the new one. */
static void test_restore_faults(void **state) {
        BackupOptions o = {};
        RestoreReport rr = {};
        char a[16], b[16], tag[32];
        uint64_t epoch;
        unsigned n;
        int r;
        (void) state;

        make_state("srv", "new", 2, a, b);
        assert_int_equal(backup_create("srv", "bk", &o, NOW, NULL), 0);
        for (n = 1;; n++) {
                assert_int_equal(rm_rf("dst"), 0);
                make_state("dst", "old", 5, a, b);
                backup_fail_at = n;
                backup_steps = 0;
                r = backup_restore("dst", NULL, "bk", NOW + n, "test", &rr);
                restore_report_release(&rr);
                backup_fail_at = 0;
                state_of("dst", tag, &epoch);
                if (r == 0)
                        break;
                assert_int_equal(r, -EIO);
                assert_string_equal(tag, "old");
                assert_int_equal(epoch, 5);
                assert_false(path_exists("dst/state.db.restore"));
                assert_false(path_exists("dst/state.db.restore-wal"));
        }
        /* checked, two blobs, copy, settle, keep, prepared */
        assert_int_equal(n, 8);
        assert_string_equal(tag, "new");
        /* Above the replaced state's counter too, which was later than the backup's. */
        assert_int_equal(epoch, 5 + GAP + 1);
        assert_int_equal(count_glob("dst/state.db.before-restore-*"), 1);
}

static void test_missing_blobs(void **state) {
        _cleanup_(restore_report_release) RestoreReport rr = {};
        BackupOptions o = { .no_blobs = true };
        char a[16], b[16], tag[32];
        uint64_t epoch;
        glob_t g = {};
        (void) state;

        make_state("srv", "new", 1, a, b);
        assert_int_equal(backup_create("srv", "bk", &o, NOW, NULL), 0);
        assert_int_equal(count_glob("bk/blobs"), 0);
        make_state("dst", "old", 1, a, b);
        assert_int_equal(rm_rf("dst/blobs"), 0);
        assert_int_equal(backup_restore("dst", NULL, "bk", NOW, "test", &rr), -ENOENT);
        assert_int_equal(strv_length(rr.missing), 2);
        assert_non_null(strstr(rr.missing[0], "in neither"));
        state_of("dst", tag, &epoch);
        assert_string_equal(tag, "old");
        restore_report_release(&rr);

        /* With the blobs brought back by other means, it goes through. */
        assert_int_equal(glob("srv/blobs/sha256/*/*", 0, NULL, &g), 0);
        for (size_t i = 0; i < g.gl_pathc; i++) {
                _cleanup_free_ char *to = strdup_printf("dst/%s", g.gl_pathv[i] + strlen("srv/"));

                assert_int_equal(mkdir_parents(to, 0755), 0);
                assert_int_equal(copy_file_atomic(g.gl_pathv[i], to, 0444), 0);
        }
        globfree(&g);
        assert_int_equal(backup_restore("dst", NULL, "bk", NOW, "test", &rr), 0);
        assert_int_equal(rr.blobs_present, 2);
        state_of("dst", tag, &epoch);
        assert_string_equal(tag, "new");
}

static void test_damaged(void **state) {
        _cleanup_(restore_report_release) RestoreReport rr = {};
        BackupOptions o = {};
        char a[16], b[16];
        glob_t g = {};
        (void) state;

        make_state("srv", "new", 1, a, b);
        assert_int_equal(backup_create("srv", "bk", &o, NOW, NULL), 0);
        assert_int_equal(glob("bk/blobs/sha256/*/*", 0, NULL, &g), 0);
        /* A new file in the link's place: the state's blob stays whole. */
        assert_int_equal(unlink(g.gl_pathv[0]), 0);
        assert_int_equal(write_file_atomic(g.gl_pathv[0], "new onf", 7, 0444), 0);
        globfree(&g);
        assert_int_equal(backup_restore("dst", NULL, "bk", NOW, "test", &rr), -ENOENT);
        assert_int_equal(strv_length(rr.missing), 1);
        assert_non_null(strstr(rr.missing[0], "damaged in the backup"));
        assert_false(path_exists("dst/state.db"));
        restore_report_release(&rr);

        assert_int_equal(backup_create("srv", "bk2", &o, NOW, NULL), 0);
        assert_int_equal(write_file_atomic("bk2/state.db", "SQLite format 3", 15, 0644), 0);
        assert_int_equal(backup_restore("dst", NULL, "bk2", NOW, "test", &rr), -EBADMSG);
        assert_false(path_exists("dst/state.db"));

        /* A blob the database names that is gone from the state (deleted
         * between the snapshot and its link): no backup, try again. */
        assert_int_equal(glob("srv/blobs/sha256/*/*", 0, NULL, &g), 0);
        assert_int_equal(unlink(g.gl_pathv[0]), 0);
        globfree(&g);
        assert_int_equal(backup_create("srv", "bk3", &o, NOW, NULL), -ESTALE);
        assert_false(path_exists("bk3"));
        assert_int_equal(count_glob("bk3.partial-*"), 0);
        /* And no database, no backup. */
        assert_int_equal(backup_create("nothing", "bk4", &o, NOW, NULL), -ENOENT);
        assert_false(path_exists("bk4"));
}

/* The disk is lost after the backup while the fleet moved on: A gave its
 * lease back and took epoch 2, B took epoch 3. The restored state knows
 * only A's epoch 1. */
static void test_fleet_ahead(void **state) {
        _cleanup_store_db_free_ StoreDb *live = NULL, *db = NULL;
        _cleanup_(restore_report_release) RestoreReport rr = {};
        _cleanup_(desired_image_release) DesiredImage want = {};
        _cleanup_(host_release) Host h = {};
        CheckinRequest c = { .state = HOST_HEALTHY, .version = (char *) "9.9",
                             .image = (char *) "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed" };
        BackupOptions o = {};
        char a[16], b[16];
        StoreTx *tx = NULL;
        uint64_t e;
        (void) state;

        make_state("srv", "new", 1, a, b);
        assert_int_equal(backup_create("srv", "bk", &o, NOW, NULL), 0);
        assert_int_equal(store_db_open("srv/state.db", &live), 0);
        assert_int_equal(release(live, a, 1), 1);
        assert_int_equal(lease(live, a, NOW + 10), 2);
        assert_int_equal(lease(live, b, NOW + 10), 3);
        live = store_db_free(live);

        assert_int_equal(backup_restore("dr", NULL, "bk", NOW + 20, "test", &rr), 0);
        assert_int_equal(store_db_open("dr/state.db", &db), 0);
        /* Releases naming epochs the state never saw release nothing
         * (DELETE answers {"released": false}) and fail nothing. */
        assert_int_equal(release(db, b, 3), 0);
        assert_int_equal(release(db, a, 2), 0);
        /* A's lease from the backup counts on, under an epoch no host was
         * ever given; a renewal keeps it. */
        e = lease(db, a, NOW + 30);
        assert_int_equal(e, 1 + GAP + 1);
        assert_true(e > 3);
        e = lease(db, b, NOW + 30);
        assert_int_equal(e, 1 + GAP + 2);
        /* A check-in with an image this catalog does not know is taken and shown. */
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(hosts_checkin(tx, b, &c, NOW + 30, "agent", &want), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_host_get(tx, b, &h), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_string_equal(h.current_image, c.image);
        assert_string_equal(h.version, "9.9");
        assert_string_equal(h.state, "healthy");
}

static void test_lock(void **state) {
        _cleanup_close_ int fd = -1, again = -1;
        pid_t holder = 0;
        (void) state;

        assert_int_equal(state_lock_take(".", &fd, NULL), 0);
        assert_int_equal(state_lock_take(".", &again, &holder), -EBUSY);
        assert_int_equal(holder, getpid());
        close(TAKE_FD(fd));
        assert_int_equal(state_lock_take(".", &again, NULL), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_round_trip),   test_in_dir(test_backup_faults), test_in_dir(test_restore_faults),
                test_in_dir(test_missing_blobs), test_in_dir(test_damaged),      test_in_dir(test_fleet_ahead),
                test_in_dir(test_lock),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
