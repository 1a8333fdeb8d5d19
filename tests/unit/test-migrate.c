/* slipwayd migrate (migrate.h) into a PostgreSQL server of the test's own:
 * every table of a sqlite state arrives with the same rows (counts and
 * checksums compared, and looked at), the rows triggers derive are not
 * doubled, identity sequences go on past what sqlite handed out, images
 * keep their order; a target with a fleet, a target that lacks a column
 * and a missing state are refused with nothing written. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "tests.h"

#include "fileio.h"
#include "hash.h"
#include "migrate.h"
#include "pgserver.h"
#include "store-db.h"
#include "util.h"

static void exec_sql(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        while ((r = db_step(st)) > 0)
                ;
        assert_int_equal(r, 0);
}

static int64_t query_int(StoreDb *db, const char *sql) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_int_equal(db_step(st), 1);
        return db_column_int64(st, 0);
}

/* A state in dir/state.db: images in an order their IDs do not sort in,
 * hosts (one holding a lease), a rollout whose hosts the triggers count
 * in rollout_waves, labels, tokens, and an audit log whose last entries
 * were removed (sqlite's AUTOINCREMENT counter is past the highest id). */
static void make_state(const char *dir) {
        _cleanup_free_ char *path = path_join(dir, "state.db");
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;

        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(store_db_open(path, &db), 0);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        exec_sql(tx, "INSERT INTO images (id, name, version, arch, manifest, signature, created) VALUES "
                     "('ffff', 'tiny', '1.0', 'x86_64', '{}', 'sig', 1), ('0000', 'tiny', '2.0', 'x86_64', '{}', "
                     "'sig', 2), ('8888', 'tiny', '3.0', 'x86_64', '{}', 'sig', 3)");
        exec_sql(tx, "INSERT INTO hosts (id, mac, hostname, image, state, registered, lease_epoch, lease_expires) "
                     "VALUES ('h1', '52:54:00:00:00:01', 'web-1', 'ffff', 'healthy', 10, 41, 1000), "
                     "('h2', '52:54:00:00:00:02', 'it''s \"quoted\", ünïcode', '0000', 'healthy', 11, NULL, NULL), "
                     "('h3', NULL, '', NULL, 'registered', 12, NULL, NULL)");
        exec_sql(tx, "INSERT INTO host_labels (host_id, key, value) VALUES ('h1', 'rack', 'r1'), ('h2', 'rack', 'r2')");
        exec_sql(tx, "UPDATE meta SET value = 42 WHERE key = 'lease_epoch'");
        exec_sql(tx, "INSERT INTO tokens (name, hash, created) VALUES ('ci', 'abc', 5)");
        exec_sql(tx, "INSERT INTO rollouts (kind, image, spec, state, n_waves, created) VALUES "
                     "('update', '0000', '{}', 'running', 2, 20), ('update', '8888', '{}', 'done', 1, 30)");
        exec_sql(tx, "DELETE FROM rollouts WHERE id = 2");
        exec_sql(tx, "INSERT INTO rollout_hosts (rollout_id, host_id, wave, target, status) VALUES "
                     "(1, 'h1', 0, '0000', 'done'), (1, 'h2', 1, '0000', 'pending'), (1, 'h3', 1, '0000', 'assigned')");
        for (int i = 0; i < 250; i++)
                exec_sql(tx, "INSERT INTO audit (time, actor, action, target, detail) VALUES "
                             "(100, 'ci', 'host.label', 'h1', '{\"n\": 1}')");
        exec_sql(tx, "DELETE FROM audit WHERE id > 240");
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_copy(void **state) {
        _cleanup_(migrate_report_release) MigrateReport rep = {};
        _cleanup_store_db_free_ StoreDb *pg = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        (void) state;

        make_state("copy");
        assert_int_equal(migrate_run("copy", test_pg_conninfo, NULL, NULL, &rep), 0);
        assert_true(rep.n_tables >= 12);
        for (size_t i = 0; i < rep.n_tables; i++) {
                assert_string_equal(rep.source[i].name, rep.target[i].name);
                assert_int_equal(rep.source[i].rows, rep.target[i].rows);
                assert_string_equal(rep.source[i].sha256, rep.target[i].sha256);
                if (streq(rep.source[i].name, "rollout_waves"))
                        assert_int_equal(rep.source[i].rows, 2);
                if (streq(rep.source[i].name, "audit"))
                        assert_int_equal(rep.source[i].rows, 240);
        }
        assert_int_equal(rep.info.hosts, 3);
        assert_int_equal(rep.info.lease_epoch, 42);

        /* The counts the triggers keep are the copied ones, not doubled. */
        assert_int_equal(query_int(pg, "SELECT hosts FROM rollout_waves WHERE rollout_id = 1 AND wave = 1"), 2);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM hosts WHERE hostname = 'it''s \"quoted\", ünïcode'"), 1);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM hosts WHERE mac IS NULL AND hostname = ''"), 1);
        assert_int_equal(query_int(pg, "SELECT lease_epoch FROM hosts WHERE id = 'h1'"), 41);
        /* The images in the order they were added. */
        assert_int_equal(query_int(pg, "SELECT count(*) FROM (SELECT string_agg(version, ',' ORDER BY seq) v FROM "
                                       "images) x WHERE v = '1.0,2.0,3.0'"),
                         1);
        /* New rows go on past every id sqlite handed out, and the
         * triggers work again. */
        assert_int_equal(store_tx_begin(pg, STORE_TX_WRITE, &tx), 0);
        exec_sql(tx, "INSERT INTO audit (time, actor, action) VALUES (200, 'ci', 'x')");
        exec_sql(tx, "INSERT INTO rollouts (kind, spec, state, n_waves, created) VALUES ('update', '{}', 'done', 1, 40)");
        exec_sql(tx, "INSERT INTO images (id, name, version, arch, manifest, signature, created) VALUES "
                     "('1111', 'tiny', '4.0', 'x86_64', '{}', 'sig', 4)");
        exec_sql(tx, "INSERT INTO rollout_hosts (rollout_id, host_id, wave, target, status) VALUES "
                     "(1, 'h1', 1, '0000', 'pending') ON CONFLICT DO NOTHING");
        exec_sql(tx, "UPDATE rollout_hosts SET status = 'done' WHERE rollout_id = 1 AND host_id = 'h2'");
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(query_int(pg, "SELECT max(id) FROM audit"), 251);
        assert_int_equal(query_int(pg, "SELECT max(id) FROM rollouts"), 3);
        assert_int_equal(query_int(pg, "SELECT version = '4.0' FROM images ORDER BY seq DESC LIMIT 1"), 1);
        assert_int_equal(query_int(pg, "SELECT done FROM rollout_waves WHERE rollout_id = 1 AND wave = 1"), 1);
        migrate_report_release(&rep);

        /* Again: the target holds a fleet now. */
        assert_int_equal(migrate_run("copy", test_pg_conninfo, NULL, NULL, &rep), -ENOTEMPTY);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM audit"), 241);
}

static void test_target_lacks_column(void **state) {
        _cleanup_(migrate_report_release) MigrateReport rep = {};
        _cleanup_store_db_free_ StoreDb *pg = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        (void) state;

        make_state("lacks");
        assert_int_equal(store_tx_begin(pg, STORE_TX_WRITE, &tx), 0);
        exec_sql(tx, "ALTER TABLE hosts DROP COLUMN pxe_seen");
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(migrate_run("lacks", test_pg_conninfo, NULL, NULL, &rep), -ENOENT);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM audit"), 0);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM images"), 0);
}

static void test_half_way(void **state) {
        _cleanup_(migrate_report_release) MigrateReport rep = {};
        _cleanup_store_db_free_ StoreDb *pg = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char before[SHA256_HEX_SIZE], after[SHA256_HEX_SIZE];
        (void) state;

        make_state("half");
        assert_int_equal(sha256_file_hex("half/state.db", before, NULL), 0);
        /* A row of the last tables breaks it: the ones before are copied
         * by then. */
        assert_int_equal(store_tx_begin(pg, STORE_TX_WRITE, &tx), 0);
        exec_sql(tx, "ALTER TABLE host_labels ADD CONSTRAINT no_r2 CHECK (value <> 'r2')");
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(migrate_run("half", test_pg_conninfo, NULL, NULL, &rep), -EEXIST);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM audit"), 0);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM hosts"), 0);
        assert_int_equal(query_int(pg, "SELECT value FROM meta WHERE key = 'lease_epoch'"), 0);
        assert_int_equal(sha256_file_hex("half/state.db", after, NULL), 0);
        assert_string_equal(before, after);
}

static void test_no_state(void **state) {
        _cleanup_(migrate_report_release) MigrateReport rep = {};
        _cleanup_store_db_free_ StoreDb *pg = test_store_open();
        (void) state;

        assert_int_equal(mkdir("none", 0755), 0);
        assert_int_equal(migrate_run("none", test_pg_conninfo, NULL, NULL, &rep), -ENOENT);
        assert_false(path_exists("none/state.db"));
        assert_int_equal(migrate_run("none", "none/other.db", NULL, NULL, &rep), -EINVAL);
        assert_false(path_exists("none/other.db"));
}

int main(void) {
        const struct CMUnitTest pg[] = {
                cmocka_unit_test(test_copy),
                cmocka_unit_test(test_target_lacks_column),
                cmocka_unit_test(test_half_way),
                cmocka_unit_test(test_no_state),
        };
        return cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
