/* The store of pipelines (store-pipelines.h) on both drivers: the same
 * calls give the same results on a sqlite file and on a PostgreSQL server
 * of the test's own. */
#include <errno.h>
#include <string.h>

#include "tests.h"

#include "pgserver.h"
#include "store-db.h"
#include "store-pipelines.h"
#include "store-stats.h"
#include "log.h"
#include "util.h"

static void exec(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_int_equal(db_step(st), 0);
}

static void test_pipelines(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_(pipeline_run_release) PipelineRun p = {};
        int64_t id1, id2, *ids = NULL;
        size_t n = 0;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_pipeline_insert(tx, "web", "web:2", "{\"a\": 1}", "alice", 100, &id1), 0);
        assert_int_equal(store_pipeline_insert(tx, "db", "db:7", "{}", "bob", 110, &id2), 0);
        assert_true(id2 > id1);
        assert_int_equal(store_pipeline_get(tx, id1, &p), 0);
        assert_string_equal(p.name, "web");
        assert_string_equal(p.image, "web:2");
        assert_string_equal(p.spec, "{\"a\": 1}");
        assert_int_equal(p.state, PIPELINE_RUNNING);
        assert_int_equal(p.stage, 0);
        assert_int_equal(p.phase, PIPELINE_ROLLING);
        assert_int_equal(p.since, 100);
        assert_int_equal(p.checked, 0);
        assert_int_equal(p.rollout, 0);
        assert_null(p.approved_by);
        assert_null(p.reason);
        assert_string_equal(p.actor, "alice");
        assert_int_equal(p.created, 100);
        assert_int_equal(p.finished, 0);

        p.stage = 1;
        p.phase = PIPELINE_BAKING;
        p.since = 150;
        p.checked = 160;
        p.rollout = 7;
        p.approved_by = strdup("carol");
        assert_int_equal(store_pipeline_update(tx, &p), 0);
        pipeline_run_release(&p);
        assert_int_equal(store_pipeline_get(tx, id1, &p), 0);
        assert_int_equal(p.stage, 1);
        assert_int_equal(p.phase, PIPELINE_BAKING);
        assert_int_equal(p.since, 150);
        assert_int_equal(p.checked, 160);
        assert_int_equal(p.rollout, 7);
        assert_string_equal(p.approved_by, "carol");

        p.state = PIPELINE_FAILED;
        p.reason = strdup("stage staging: no");
        p.finished = 170;
        assert_int_equal(store_pipeline_update(tx, &p), 0);
        pipeline_run_release(&p);
        assert_int_equal(store_pipeline_get(tx, id1, &p), 0);
        assert_int_equal(p.state, PIPELINE_FAILED);
        assert_string_equal(p.reason, "stage staging: no");
        assert_int_equal(p.finished, 170);

        assert_int_equal(store_pipelines_running(tx, &ids, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], id2);
        free(ids);
        assert_int_equal(store_pipelines_list(tx, &ids, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(ids[0], id2);
        assert_int_equal(ids[1], id1);
        free(ids);

        pipeline_run_release(&p);
        assert_int_equal(store_pipeline_get(tx, id1 + id2 + 100, &p), -ENOENT);
        exec(tx, "UPDATE pipelines SET phase = 'dreaming' WHERE id = 1");
        assert_int_equal(store_pipeline_get(tx, 1, &p), -EBADMSG);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_stages(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        PipelineStageRow *v = NULL;
        size_t n = 0;
        int64_t id;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_pipeline_insert(tx, "web", "web:2", "{}", "alice", 100, &id), 0);
        assert_int_equal(store_pipeline_stages(tx, id, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);
        assert_int_equal(store_pipeline_stage_put(tx, id, &(PipelineStageRow) { .idx = 1, .rollout = 4, .started = 200 }),
                         0);
        assert_int_equal(store_pipeline_stage_put(tx, id,
                                                  &(PipelineStageRow) { .idx = 0, .rollout = 3, .started = 100 }),
                         0);
        /* The same stage again replaces its row. */
        assert_int_equal(store_pipeline_stage_put(tx, id,
                                                  &(PipelineStageRow) { .idx = 0, .rollout = 3, .started = 100,
                                                                        .baked = 150, .finished = 190,
                                                                        .approved_by = (char *) "dave",
                                                                        .result = (char *) "promoted" }),
                         0);
        assert_int_equal(store_pipeline_stages(tx, id, &v, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[0].idx, 0);
        assert_int_equal(v[0].rollout, 3);
        assert_int_equal(v[0].started, 100);
        assert_int_equal(v[0].baked, 150);
        assert_int_equal(v[0].finished, 190);
        assert_string_equal(v[0].approved_by, "dave");
        assert_string_equal(v[0].result, "promoted");
        assert_int_equal(v[1].idx, 1);
        assert_int_equal(v[1].rollout, 4);
        assert_int_equal(v[1].baked, 0);
        assert_null(v[1].approved_by);
        assert_null(v[1].result);
        pipeline_stage_rows_free(v, n);
        assert_int_equal(store_tx_commit(&tx), 0);
}

static void test_unhealthy(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *reason = NULL;
        int64_t count = -1;
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        exec(tx, "INSERT INTO hosts (id, mac, registered, state, image, current_image) VALUES "
                 "('h-1', '52:54:00:00:00:01', 0, 'healthy', NULL, 'new'),"
                 "('h-2', '52:54:00:00:00:02', 0, 'unhealthy', NULL, 'new'),"
                 "('h-3', '52:54:00:00:00:03', 0, 'healthy', NULL, 'old'),"
                 "('h-4', '52:54:00:00:00:04', 0, 'healthy', NULL, NULL),"
                 "('h-5', '52:54:00:00:00:05', 0, 'healthy', NULL, 'new')");
        exec(tx, "INSERT INTO rollouts (id, kind, spec, state, n_waves, created, reason) VALUES "
                 "(1, 'rollout', '{}', 'done', 1, 0, NULL), (2, 'rollout', '{}', 'aborted', 1, 0, 'aborted by bob')");
        exec(tx, "INSERT INTO rollout_hosts (rollout_id, host_id, wave, target, status) VALUES "
                 "(1, 'h-1', 0, 'new', 'done'), (1, 'h-2', 0, 'new', 'done'), (1, 'h-3', 0, 'new', 'failed'),"
                 "(1, 'h-4', 0, 'new', 'skipped'), (2, 'h-5', 0, 'new', 'done')");
        assert_int_equal(store_rollout_unhealthy(tx, 1, &count), 0);
        assert_int_equal(count, 3);
        assert_int_equal(store_rollout_unhealthy(tx, 2, &count), 0);
        assert_int_equal(count, 0);
        assert_int_equal(store_rollout_unhealthy(tx, 9, &count), 0);
        assert_int_equal(count, 0);
        assert_int_equal(store_rollout_reason(tx, 1, &reason), 0);
        assert_null(reason);
        assert_int_equal(store_rollout_reason(tx, 2, &reason), 0);
        assert_string_equal(reason, "aborted by bob");
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* /metrics's pipelines: the running ones and those finished within
 * STATS_PIPELINE_KEEP, not older ones. */
static void test_metrics_window(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        const uint64_t now = 10 * STATS_PIPELINE_KEEP;
        int64_t id[4];
        OpsStats o = {};
        (void) state;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        for (size_t k = 0; k < ELEMENTSOF(id); k++) {
                _cleanup_(pipeline_run_release) PipelineRun p = {};

                assert_int_equal(store_pipeline_insert(tx, "web", "web:2", "{}", "alice", 100, &id[k]), 0);
                assert_int_equal(store_pipeline_get(tx, id[k], &p), 0);
                /* running at its stage 2, baking; failed just in the window;
                 * done just out of it; aborted an hour ago */
                p.stage = 1;
                p.phase = PIPELINE_BAKING;
                p.state = (PipelineState[]) { PIPELINE_RUNNING, PIPELINE_FAILED, PIPELINE_DONE, PIPELINE_ABORTED }[k];
                p.finished = (uint64_t[]) { 0, now - STATS_PIPELINE_KEEP, now - STATS_PIPELINE_KEEP - 1, now - 3600 }[k];
                assert_int_equal(store_pipeline_update(tx, &p), 0);
        }
        assert_int_equal(store_stats_ops_read(tx, now, 90, &o), 0);
        assert_int_equal(o.n_pipelines, 3);
        assert_int_equal(o.pipelines[0].id, id[0]);
        assert_string_equal(o.pipelines[0].state, "running");
        assert_string_equal(o.pipelines[0].phase, "baking");
        assert_int_equal(o.pipelines[0].stage, 1);
        assert_string_equal(o.pipelines[0].name, "web");
        assert_string_equal(o.pipelines[0].image, "web:2");
        assert_string_equal(o.pipelines[0].spec, "{}");
        assert_int_equal(o.pipelines[1].id, id[1]);
        assert_string_equal(o.pipelines[1].state, "failed");
        assert_int_equal(o.pipelines[2].id, id[3]);
        assert_string_equal(o.pipelines[2].state, "aborted");
        ops_stats_release(&o);
        assert_int_equal(store_tx_commit(&tx), 0);
}

#define CASES(test) test(test_pipelines), test(test_stages), test(test_unhealthy), test(test_metrics_window)

int main(void) {
        if (getenv("TEST_DEBUG"))
                log_set_level(LOG_LEVEL_DEBUG);
        const struct CMUnitTest sqlite[] = { CASES(test_in_dir) };
        const struct CMUnitTest pg[] = { CASES(cmocka_unit_test) };
        int r;

        r = cmocka_run_group_tests_name("sqlite", sqlite, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
