/* Pipelines as the API shows them (pipeline.h, docs/api.md "Pipelines"):
 * the stored run, its stages' rows and its spec, read in the caller's
 * transaction. */
#include <stdlib.h>

#include "json.h"
#include "pipeline.h"
#include "store-pipelines.h"
#include "util.h"

static json_t *gates_json(const PipelineStageSpec *st) {
        json_t *g = json_array();

        if (!g)
                return NULL;
        (void) json_array_append_new(g, json_string("healthy"));
        if (st->n_argv)
                (void) json_array_append_new(g, json_string("command"));
        if (st->http_url)
                (void) json_array_append_new(g, json_string("http"));
        if (st->prom_query)
                (void) json_array_append_new(g, json_string("prometheus"));
        if (st->approval)
                (void) json_array_append_new(g, json_string("approval"));
        return g;
}

int pipeline_json(StoreTx *tx, int64_t id, uint64_t now _unused_, json_t **ret) {
        _cleanup_(pipeline_run_release) PipelineRun run = {};
        _cleanup_json_ json_t *j = NULL, *sj = NULL, *stages = NULL;
        PipelineStageRow *rows = NULL;
        PipelineSpec spec;
        size_t n = 0;
        char *error = NULL;
        int r;

        r = store_pipeline_get(tx, id, &run);
        if (r < 0)
                return r;
        sj = json_loads(run.spec, 0, NULL);
        if (!sj || pipeline_spec_parse(sj, &spec, &error) < 0 || run.stage < 0 || (size_t) run.stage >= spec.n_stages) {
                free(error);
                return -EBADMSG;
        }
        r = store_pipeline_stages(tx, id, &rows, &n);
        if (r < 0)
                return r;
        stages = json_array();
        for (size_t i = 0; stages && i < spec.n_stages; i++) {
                const PipelineStageSpec *st = &spec.stages[i];
                const PipelineStageRow *row = NULL;
                const char *state = "pending";
                json_t *s;

                for (size_t k = 0; k < n; k++)
                        if (rows[k].idx == (int) i)
                                row = &rows[k];
                if (row && row->result)
                        state = row->result;
                else if ((int) i == run.stage && run.state == PIPELINE_RUNNING)
                        state = pipeline_phase_to_string(run.phase);
                s = json_pack("{s:s, s:s, s:I, s:b, s:o*}", "name", st->name, "state", state, "bake",
                              (json_int_t) st->bake, "rollback_on_failure", st->rollback, "gates", gates_json(st));
                if (!s)
                        break;
                if (row) {
                        if (row->rollout > 0)
                                (void) json_object_set_new(s, "rollout", json_integer(row->rollout));
                        (void) json_object_set_new(s, "started", json_integer((json_int_t) row->started));
                        if (row->baked)
                                (void) json_object_set_new(s, "rollout_done", json_integer((json_int_t) row->baked));
                        if (row->finished)
                                (void) json_object_set_new(s, "finished", json_integer((json_int_t) row->finished));
                        if (row->approved_by)
                                (void) json_object_set_new(s, "approved_by", json_string(row->approved_by));
                }
                if (json_array_append_new(stages, s) < 0) {
                        json_decref(stages);
                        stages = NULL;
                        break;
                }
        }
        pipeline_stage_rows_free(rows, n);
        if (!stages)
                return -ENOMEM;
        j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:O}", "id", (json_int_t) run.id, "name",
                      run.name, "image", run.image, "state", pipeline_state_to_string(run.state), "stage",
                      spec.stages[run.stage].name, "stage_index", (json_int_t) run.stage, "since",
                      (json_int_t) run.since, "actor", run.actor, "created", (json_int_t) run.created, "spec", sj);
        if (!j)
                return -ENOMEM;
        if (run.state == PIPELINE_RUNNING) {
                (void) json_object_set_new(j, "phase", json_string(pipeline_phase_to_string(run.phase)));
                if (run.phase == PIPELINE_BAKING)
                        (void) json_object_set_new(j, "bake_ends",
                                                   json_integer((json_int_t) (run.since + spec.stages[run.stage].bake)));
                if (run.checked)
                        (void) json_object_set_new(j, "checked", json_integer((json_int_t) run.checked));
                (void) json_object_set_new(j, "waiting_for_approval",
                                           json_boolean(spec.stages[run.stage].approval && !run.approved_by));
        }
        if (run.rollout > 0)
                (void) json_object_set_new(j, "rollout", json_integer(run.rollout));
        if (run.reason)
                (void) json_object_set_new(j, "reason", json_string(run.reason));
        if (run.finished)
                (void) json_object_set_new(j, "finished", json_integer((json_int_t) run.finished));
        if (json_object_set(j, "stages", stages) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(j);
        return 0;
}

json_t *pipelines_json(StoreTx *tx) {
        _cleanup_json_ json_t *l = json_array();
        int64_t *ids = NULL;
        size_t n = 0;

        if (!l || store_pipelines_list(tx, &ids, &n) < 0)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                json_t *p = NULL;
                int r = pipeline_json(tx, ids[i], 0, &p);

                if (r == -EBADMSG)
                        continue;
                if (r < 0 || json_array_append_new(l, p) < 0) {
                        free(ids);
                        return NULL;
                }
                /* The list shows where each is, not its whole spec. */
                (void) json_object_del(p, "spec");
        }
        free(ids);
        return TAKE_PTR(l);
}
