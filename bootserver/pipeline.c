/* Pipelines (pipeline.h): the stage state machine, its steps applied in a
 * transaction, the API's start, actions and views, and the leader's tick. */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "json.h"
#include "log.h"
#include "pipeline.h"
#include "store-instances.h"
#include "store-pipelines.h"
#include "store-rollouts.h"
#include "util.h"

static int free_and_strdup(char **p, const char *s) {
        char *d = strdup(s);

        if (!d)
                return -ENOMEM;
        free(*p);
        *p = d;
        return 0;
}

void pipeline_step_release(PipelineStep *s) {
        if (!s)
                return;
        free(s->reason);
        *s = (PipelineStep) {};
}

static bool stage_has_slow_gates(const PipelineStageSpec *st) {
        return st->n_argv > 0 || st->http_url || st->prom_query;
}

/* The step after the stage's gates all passed. */
static PipelineStepKind after_gates(const PipelineSpec *spec, const PipelineRun *run) {
        const PipelineStageSpec *st = &spec->stages[run->stage];

        if (st->approval && !run->approved_by)
                return PIPELINE_STEP_AWAIT_APPROVAL;
        return (size_t) run->stage + 1 < spec->n_stages ? PIPELINE_STEP_PROMOTE : PIPELINE_STEP_DONE;
}

static int step_fail(PipelineStep *ret, bool rollback, const char *format, ...) _printf_(3, 4);
static int step_fail(PipelineStep *ret, bool rollback, const char *format, ...) {
        va_list ap;
        char *m = NULL;

        va_start(ap, format);
        if (vasprintf(&m, format, ap) < 0)
                m = NULL;
        va_end(ap);
        if (!m)
                return -ENOMEM;
        *ret = (PipelineStep) { .kind = PIPELINE_STEP_FAIL, .rollback = rollback, .reason = m };
        return 0;
}

int pipeline_decide(const PipelineSpec *spec, const PipelineRun *run, const PipelineFacts *f, uint64_t now,
                    PipelineStep *ret) {
        const PipelineStageSpec *st;
        uint64_t end, due;

        assert(run->state == PIPELINE_RUNNING);
        assert(run->stage >= 0 && (size_t) run->stage < spec->n_stages);
        st = &spec->stages[run->stage];
        *ret = (PipelineStep) { .kind = PIPELINE_STEP_WAIT };

        switch (run->phase) {
        case PIPELINE_ROLLING:
                if (!f->has_rollout) {
                        ret->kind = PIPELINE_STEP_START_ROLLOUT;
                        return 0;
                }
                if (f->rollout_state == ROLLOUT_ABORTED)
                        return step_fail(ret, false, "stage %s: its rollout %" PRIi64 " was aborted%s%s", st->name,
                                         run->rollout, f->rollout_reason ? ": " : "", strempty(f->rollout_reason));
                if (f->rollout_state == ROLLOUT_DONE)
                        ret->kind = PIPELINE_STEP_STAGE_DONE;
                return 0;

        case PIPELINE_BAKING:
                end = run->since + st->bake;
                if (f->has_check && f->check_at >= run->since) {
                        if (!f->check_ok)
                                return step_fail(ret, st->rollback, "stage %s: %s", st->name,
                                                 strempty(f->check_reason));
                        if (f->check_final) {
                                if (f->unhealthy > 0)
                                        return step_fail(ret, st->rollback,
                                                         "stage %s: %" PRIi64 " host(s) not healthy on the image",
                                                         st->name, f->unhealthy);
                                ret->kind = after_gates(spec, run);
                                return 0;
                        }
                        if (f->check_at > run->checked) {
                                ret->kind = PIPELINE_STEP_CHECKED;
                                return 0;
                        }
                }
                if (now >= end) {
                        /* Every host healthy on the image first: it needs no
                         * thread, and a stage that fails it runs no command. */
                        if (f->unhealthy > 0)
                                return step_fail(ret, st->rollback,
                                                 "stage %s: %" PRIi64 " host(s) not healthy on the image", st->name,
                                                 f->unhealthy);
                        if (stage_has_slow_gates(st)) {
                                ret->kind = PIPELINE_STEP_CHECK;
                                ret->want_final = true;
                                return 0;
                        }
                        ret->kind = after_gates(spec, run);
                        return 0;
                }
                if (st->prom_query) {
                        due = run->checked ? run->checked + st->interval : run->since;
                        if (now >= due) {
                                ret->kind = PIPELINE_STEP_CHECK;
                                return 0;
                        }
                        ret->wake = MIN(due, end);
                } else
                        ret->wake = end;
                return 0;

        case PIPELINE_APPROVAL:
                if (run->approved_by)
                        ret->kind = (size_t) run->stage + 1 < spec->n_stages ? PIPELINE_STEP_PROMOTE
                                                                              : PIPELINE_STEP_DONE;
                return 0;

        default:
                return -EINVAL;
        }
}

/* The stage row of run's current stage, as it is now. */
static int stage_get(StoreTx *tx, const PipelineRun *run, PipelineStageRow *ret) {
        PipelineStageRow *v = NULL;
        size_t n = 0;
        int r;

        r = store_pipeline_stages(tx, run->id, &v, &n);
        if (r < 0)
                return r;
        *ret = (PipelineStageRow) { .idx = run->stage };
        for (size_t i = 0; i < n; i++)
                if (v[i].idx == run->stage) {
                        *ret = v[i];
                        v[i] = (PipelineStageRow) {};
                }
        pipeline_stage_rows_free(v, n);
        return 0;
}

static void stage_row_release(PipelineStageRow *s) {
        free(s->approved_by);
        free(s->result);
        *s = (PipelineStageRow) {};
}

/* Updates the current stage's row: f called on it, then written. */
static int stage_update(StoreTx *tx, const PipelineRun *run, int64_t rollout, uint64_t baked, uint64_t finished,
                        const char *approved_by, const char *result) {
        _cleanup_(stage_row_release) PipelineStageRow s = {};
        int r;

        r = stage_get(tx, run, &s);
        if (r < 0)
                return r;
        if (rollout > 0)
                s.rollout = rollout;
        if (!s.started)
                s.started = finished ?: baked ?: run->since;
        if (baked)
                s.baked = baked;
        if (finished)
                s.finished = finished;
        if (approved_by && free_and_strdup(&s.approved_by, approved_by) < 0)
                return -ENOMEM;
        if (result && free_and_strdup(&s.result, result) < 0)
                return -ENOMEM;
        return store_pipeline_stage_put(tx, run->id, &s);
}

static int audit_pipeline(StoreTx *tx, uint64_t now, const char *actor, const char *action, const PipelineRun *run,
                          const PipelineSpec *spec, json_t *detail) {
        _cleanup_free_ char *target = strdup_printf("pipeline %" PRIi64, run->id);
        int r;

        if (!detail)
                detail = json_object();
        if (!target || !detail) {
                json_decref(detail);
                return -ENOMEM;
        }
        (void) json_object_set_new(detail, "pipeline", json_integer(run->id));
        (void) json_object_set_new(detail, "name", json_string(run->name));
        (void) json_object_set_new(detail, "image", json_string(run->image));
        if (spec && run->stage >= 0 && (size_t) run->stage < spec->n_stages)
                (void) json_object_set_new(detail, "stage", json_string(spec->stages[run->stage].name));
        r = audit_log_at(tx, (int64_t) now, actor, action, target, detail);
        json_decref(detail);
        return r;
}

/* Ends run as state (failed or aborted) for reason (taken, NULL when it
 * could not be made): its stage's row finished with the state's name as
 * its result, the run written and action audited by actor with detail
 * (taken, NULL for none). */
static int pipeline_fail(StoreTx *tx, const PipelineSpec *spec, PipelineRun *run, PipelineState state, char *reason,
                         const char *actor, const char *action, json_t *detail, uint64_t now) {
        int r;

        if (!reason) {
                json_decref(detail);
                return -ENOMEM;
        }
        free(run->reason);
        run->reason = reason;
        run->state = state;
        run->finished = now;
        r = stage_update(tx, run, 0, 0, now, NULL, pipeline_state_to_string(state));
        if (r >= 0)
                r = store_pipeline_update(tx, run);
        if (r < 0) {
                json_decref(detail);
                return r;
        }
        return audit_pipeline(tx, now, actor, action, run, spec, detail);
}

/* Starts the current stage's rollout. A rollout that cannot start (its
 * spec, the image, hosts taken by another rollout) fails the pipeline:
 * returns 1 then, with run failed. */
static int start_rollout(StoreTx *tx, const CoordConfig *c, const PipelineSpec *spec, PipelineRun *run,
                         uint64_t now, char **ret_error) {
        _cleanup_free_ char *actor = strdup_printf("pipeline %" PRIi64, run->id);
        _cleanup_free_ char *error = NULL;
        json_t *ro = pipeline_stage_rollout_spec(spec, (size_t) run->stage);
        int64_t rid = 0;
        int r;

        if (!ro || !actor) {
                json_decref(ro);
                return -ENOMEM;
        }
        r = coord_rollout_start(tx, c, ro, actor, now, &rid, &error);
        json_decref(ro);
        if (r >= 0)
                r = coord_rollout_tick(tx, c, rid, now);
        if (r == -EINVAL || r == -EBUSY || r == -ENOENT || r == -ENXIO) {
                if (ret_error) {
                        *ret_error = TAKE_PTR(error);
                        return r;
                }
                char *reason = strdup_printf("stage %s: its rollout cannot start: %s", spec->stages[run->stage].name,
                                             error ?: strerror(-r));

                r = pipeline_fail(tx, spec, run, PIPELINE_FAILED, reason, "coordinator", "pipeline.gate-failed",
                                  reason ? json_pack("{s:s}", "reason", reason) : NULL, now);
                return r < 0 ? r : 1;
        }
        if (r < 0)
                return r;
        run->rollout = rid;
        run->since = now;
        r = stage_update(tx, run, rid, 0, 0, NULL, NULL);
        return r < 0 ? r : 0;
}

/* Applies step to run (running, read in this transaction) and writes it. */
static int apply_step(StoreTx *tx, const CoordConfig *c, const PipelineSpec *spec, PipelineRun *run,
                      const PipelineFacts *f, PipelineStep *step, uint64_t now) {
        const PipelineStageSpec *st = &spec->stages[run->stage];
        int r;

        switch (step->kind) {
        case PIPELINE_STEP_WAIT:
        case PIPELINE_STEP_CHECK:
                return 0;

        case PIPELINE_STEP_START_ROLLOUT:
                r = start_rollout(tx, c, spec, run, now, NULL);
                if (r != 0)
                        return r < 0 ? r : 0;
                return store_pipeline_update(tx, run);

        case PIPELINE_STEP_STAGE_DONE:
                run->phase = PIPELINE_BAKING;
                run->since = now;
                run->checked = 0;
                r = stage_update(tx, run, 0, now, 0, NULL, NULL);
                if (r >= 0)
                        r = store_pipeline_update(tx, run);
                if (r >= 0)
                        r = audit_pipeline(tx, now, "coordinator", "pipeline.stage-done", run, spec,
                                           json_pack("{s:I, s:I}", "rollout", (json_int_t) run->rollout, "bake",
                                                     (json_int_t) st->bake));
                return r;

        case PIPELINE_STEP_CHECKED:
                run->checked = f->check_at;
                return store_pipeline_update(tx, run);

        case PIPELINE_STEP_AWAIT_APPROVAL:
                run->phase = PIPELINE_APPROVAL;
                run->since = now;
                log_info("pipeline %" PRIi64 ": stage %s waits for an approval", run->id, st->name);
                r = store_pipeline_update(tx, run);
                if (r >= 0)
                        r = audit_pipeline(tx, now, "coordinator", "pipeline.await-approval", run, spec, NULL);
                return r;

        case PIPELINE_STEP_PROMOTE: {
                const char *from = st->name, *to = spec->stages[run->stage + 1].name;

                r = stage_update(tx, run, 0, 0, now, NULL, "promoted");
                if (r >= 0)
                        r = audit_pipeline(tx, now, "coordinator", "pipeline.promote", run, spec,
                                           json_pack("{s:s, s:s}", "from", from, "to", to));
                if (r < 0)
                        return r;
                log_info("pipeline %" PRIi64 ": stage %s promoted to %s", run->id, from, to);
                run->stage++;
                run->phase = PIPELINE_ROLLING;
                run->since = now;
                run->checked = 0;
                run->rollout = 0;
                free(run->approved_by);
                run->approved_by = NULL;
                r = start_rollout(tx, c, spec, run, now, NULL);
                if (r != 0)
                        return r < 0 ? r : 0;
                return store_pipeline_update(tx, run);
        }

        case PIPELINE_STEP_DONE:
                run->state = PIPELINE_DONE;
                run->finished = now;
                r = stage_update(tx, run, 0, 0, now, NULL, "done");
                if (r >= 0)
                        r = store_pipeline_update(tx, run);
                if (r >= 0)
                        r = audit_pipeline(tx, now, "coordinator", "pipeline.done", run, spec, NULL);
                if (r >= 0)
                        log_info("pipeline %" PRIi64 ": done", run->id);
                return r;

        case PIPELINE_STEP_FAIL: {
                _cleanup_free_ char *actor = strdup_printf("pipeline %" PRIi64, run->id);
                _cleanup_free_ char *error = NULL;
                int64_t nid = 0;

                if (!actor)
                        return -ENOMEM;
                /* A rollout aborted already went back if it was asked to. */
                if (step->rollback && run->rollout > 0 && f->rollout_state != ROLLOUT_ABORTED) {
                        r = coord_rollout_action(tx, run->rollout, "rollback", actor, now, &nid, &error);
                        if (r == -EBUSY)
                                log_warning("pipeline %" PRIi64 ": cannot roll back rollout %" PRIi64 ": %s", run->id,
                                            run->rollout, strempty(error));
                        else if (r < 0)
                                return r;
                }
                r = pipeline_fail(tx, spec, run, PIPELINE_FAILED,
                                  nid ? strdup_printf("%s; rolled back by rollout %" PRIi64, step->reason, nid)
                                      : strdup(step->reason),
                                  "coordinator", "pipeline.gate-failed",
                                  json_pack("{s:s, s:b, s:I*}", "reason", step->reason, "rollback", nid > 0,
                                            "rollback_rollout", (json_int_t) nid),
                                  now);
                if (r >= 0)
                        log_warning("pipeline %" PRIi64 ": stopped: %s", run->id, run->reason);
                return r;
        }

        default:
                return -EINVAL;
        }
}

/* What the database says of run's current stage. */
static int facts_read(StoreTx *tx, const PipelineRun *run, PipelineFacts *f, Rollout *ro) {
        int r;

        if (run->rollout <= 0)
                return 0;
        r = store_rollout_get(tx, run->rollout, ro);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        f->has_rollout = true;
        f->rollout_state = ro->state;
        if (ro->state == ROLLOUT_DONE || ro->state == ROLLOUT_ABORTED) {
                r = store_rollout_unhealthy(tx, run->rollout, &f->unhealthy);
                if (r < 0)
                        return r;
        }
        return 0;
}

int pipeline_start(StoreTx *tx, const CoordConfig *c, json_t *j, const char *actor, uint64_t now, int64_t *ret_id,
                   char **ret_error) {
        _cleanup_(pipeline_run_release) PipelineRun run = {};
        _cleanup_free_ char *text = NULL;
        PipelineSpec spec;
        int64_t id;
        int r;

        r = pipeline_spec_parse(j, &spec, ret_error);
        if (r < 0)
                return r;
        text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        r = store_pipeline_insert(tx, spec.name ?: spec.image, spec.image, text, actor, now, &id);
        if (r < 0)
                return r;
        r = store_pipeline_get(tx, id, &run);
        if (r < 0)
                return r;
        r = audit_pipeline(tx, now, actor, "pipeline.start", &run, &spec,
                           json_pack("{s:I}", "stages", (json_int_t) spec.n_stages));
        if (r >= 0)
                r = start_rollout(tx, c, &spec, &run, now, ret_error);
        if (r < 0)
                return r;
        r = store_pipeline_update(tx, &run);
        if (r < 0)
                return r;
        *ret_id = id;
        return 0;
}

int pipeline_action(StoreTx *tx, int64_t id, const char *action, const char *actor, uint64_t now, char **ret_error) {
        _cleanup_(pipeline_run_release) PipelineRun run = {};
        _cleanup_json_ json_t *j = NULL;
        PipelineSpec spec;
        int r;

        r = store_pipeline_get(tx, id, &run);
        if (r < 0)
                return r;
        j = json_loads(run.spec, 0, NULL);
        if (!j || pipeline_spec_parse(j, &spec, ret_error) < 0 || run.stage < 0 || (size_t) run.stage >= spec.n_stages) {
                free(*ret_error);
                *ret_error = strdup_printf("pipeline %" PRIi64 ": its stored spec cannot be read", id);
                return -EBADMSG;
        }
        if (run.state != PIPELINE_RUNNING) {
                *ret_error = strdup_printf("pipeline %" PRIi64 " is %s: cannot %s it", id,
                                           pipeline_state_to_string(run.state), action);
                return -EBUSY;
        }
        if (streq(action, "approve")) {
                if (!spec.stages[run.stage].approval) {
                        *ret_error = strdup_printf("pipeline %" PRIi64 ": stage %s needs no approval", id,
                                                   spec.stages[run.stage].name);
                        return -EBUSY;
                }
                if (run.approved_by) {
                        *ret_error = strdup_printf("pipeline %" PRIi64 ": stage %s was approved by %s", id,
                                                   spec.stages[run.stage].name, run.approved_by);
                        return -EBUSY;
                }
                if (free_and_strdup(&run.approved_by, actor) < 0)
                        return -ENOMEM;
                r = stage_update(tx, &run, 0, 0, 0, actor, NULL);
                if (r >= 0)
                        r = store_pipeline_update(tx, &run);
                if (r >= 0)
                        r = audit_pipeline(tx, now, actor, "pipeline.approve", &run, &spec,
                                           json_pack("{s:s}", "approved_by", actor));
                return r;
        }
        if (streq(action, "abort")) {
                _cleanup_(rollout_release) Rollout ro = {};
                _cleanup_free_ char *error = NULL;

                /* The stage's rollout stops with it; one done stays. */
                if (run.rollout > 0 && store_rollout_get(tx, run.rollout, &ro) >= 0 &&
                    (ro.state == ROLLOUT_RUNNING || ro.state == ROLLOUT_PAUSED)) {
                        r = coord_rollout_action(tx, run.rollout, "abort", actor, now, NULL, &error);
                        if (r < 0)
                                return r;
                }
                return pipeline_fail(tx, &spec, &run, PIPELINE_ABORTED, strdup_printf("aborted by %s", actor), actor,
                                     "pipeline.abort", NULL, now);
        }
        *ret_error = strdup_printf("unknown action '%s' (approve, abort)", action);
        return -EINVAL;
}

/* The leader's tick. Checks in flight are this instance's own: another
 * leader starts them again (the bake's checks from the stored last one). */

typedef struct Pending {
        int64_t id;
        int stage;
        uint64_t since; /* the phase start the check belongs to */
        uint64_t at;    /* when it was asked for */
        bool final;
        GateCheck *check;
} Pending;

/* Seconds without a tick after which the checks in flight are dropped. */
#define PIPELINE_TICK_GAP 10

static Pending *pending;
static size_t n_pending, cap_pending;

static Pending *pending_find(int64_t id) {
        for (size_t i = 0; i < n_pending; i++)
                if (pending[i].id == id)
                        return &pending[i];
        return NULL;
}

static void pending_drop(Pending *p) {
        gate_check_free(p->check);
        *p = pending[--n_pending];
}

static int tx_begin_fenced(StoreDb *store, const char *holder, int64_t epoch, StoreTx **ret) {
        int r = store_tx_begin(store, STORE_TX_WRITE, ret);

        if (r >= 0 && holder) {
                r = store_leader_holds(*ret, holder, epoch);
                if (r == 0)
                        r = -ESTALE;
                if (r < 0)
                        store_tx_rollback(ret);
        }
        return r < 0 ? r : 0;
}

/* Moves pipeline id on. Returns 0, or a negative errno (-ESTALE: no longer
 * the leader). */
static int pipeline_tick_one(StoreDb *store, const CoordConfig *c, const char *holder, int64_t epoch, int64_t id,
                             uint64_t now) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_(pipeline_run_release) PipelineRun run = {};
        _cleanup_(rollout_release) Rollout ro = {};
        _cleanup_(pipeline_step_release) PipelineStep step = {};
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *error = NULL, *why = NULL;
        PipelineFacts f = {};
        PipelineSpec spec;
        Pending *p = pending_find(id);
        bool ok = false, used = false;
        const char *reason = NULL;
        int r;

        r = tx_begin_fenced(store, holder, epoch, &tx);
        if (r < 0)
                return r;
        r = store_pipeline_get(tx, id, &run);
        if (r < 0)
                return r;
        if (run.state != PIPELINE_RUNNING)
                return 0;
        j = json_loads(run.spec, 0, NULL);
        if (!j || pipeline_spec_parse(j, &spec, &error) < 0 || run.stage < 0 || (size_t) run.stage >= spec.n_stages) {
                /* Checked at the start: a spec that no longer reads stops it. */
                step = (PipelineStep) { .kind = PIPELINE_STEP_FAIL,
                                        .reason = strdup_printf("its stored spec cannot be read: %s", strempty(error)) };
                if (!step.reason)
                        return -ENOMEM;
                run.stage = 0;
                spec = (PipelineSpec) { .n_stages = 1, .stages[0].name = "-" };
                r = apply_step(tx, c, &spec, &run, &f, &step, now);
                return r < 0 ? r : store_tx_commit(&tx);
        }
        r = facts_read(tx, &run, &f, &ro);
        if (r < 0)
                return r;
        if (f.has_rollout && f.rollout_state == ROLLOUT_ABORTED) {
                r = store_rollout_reason(tx, run.rollout, &why);
                if (r < 0)
                        return r;
                f.rollout_reason = why;
        }
        if (p && p->check && p->stage == run.stage && p->since == run.since && run.phase == PIPELINE_BAKING &&
            gate_check_done(p->check, &ok, &reason)) {
                f.has_check = true;
                f.check_final = p->final;
                f.check_ok = ok;
                f.check_reason = reason;
                f.check_at = p->at;
                used = true;
        }
        r = pipeline_decide(&spec, &run, &f, now, &step);
        if (r < 0)
                return r;
        r = apply_step(tx, c, &spec, &run, &f, &step, now);
        if (r < 0)
                return r;
        r = store_tx_commit(&tx);
        if (r < 0)
                return r;
        if (used || (p && (p->stage != run.stage || p->since != run.since))) {
                pending_drop(p);
                p = NULL;
        }
        if (step.kind == PIPELINE_STEP_CHECK && !p) {
                Pending *np = ARRAY_PUSH(pending, n_pending, cap_pending);

                if (!np)
                        return -ENOMEM;
                *np = (Pending) { .id = id, .stage = run.stage, .since = run.since, .at = now, .final = step.want_final,
                                  .check = gate_check_start(run.spec, (size_t) run.stage, step.want_final) };
                if (!np->check) {
                        n_pending--;
                        return -ENOMEM;
                }
        }
        return 0;
}

void pipelines_tick(StoreDb *store, const CoordConfig *c, const char *holder, int64_t epoch, uint64_t now) {
        static uint64_t last;
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0;
        int r;

        /* Checks from before a pause in the ticks (this instance did not
         * lead for a while) may answer for a world that moved on: ask
         * again. */
        if (last && now > last + PIPELINE_TICK_GAP)
                while (n_pending > 0)
                        pending_drop(&pending[n_pending - 1]);
        last = now;

        {
                _cleanup_store_tx_ StoreTx *tx = NULL;

                r = tx_begin_fenced(store, holder, epoch, &tx);
                if (r >= 0)
                        r = store_pipelines_running(tx, &ids, &n);
                if (r < 0) {
                        if (r != -ESTALE)
                                log_debug("pipelines: cannot list them: %s", strerror(-r));
                        return;
                }
        }
        for (size_t i = 0; i < n; i++) {
                r = pipeline_tick_one(store, c, holder, epoch, ids[i], now);
                if (r == -ESTALE)
                        return;
                if (r < 0)
                        log_error("pipeline %" PRIi64 ": cannot move it on: %s%s%s", ids[i], strerror(-r),
                                  store_last_error() ? ": " : "", strempty(store_last_error()));
        }
        /* The checks of pipelines that stopped are of no use. */
        for (size_t i = 0; i < n_pending;) {
                bool running = false;
                for (size_t k = 0; k < n; k++)
                        running |= ids[k] == pending[i].id;
                if (running)
                        i++;
                else
                        pending_drop(&pending[i]);
        }
}

void pipelines_stop(void) {
        /* Commands are killed at once; their threads get a moment to see to
         * it before the process ends. */
        for (size_t i = 0; i < n_pending; i++)
                gate_check_stop(pending[i].check);
        for (unsigned k = 0; k < 20; k++) {
                bool running = false;
                struct timespec ts = { .tv_nsec = 100 * 1000 * 1000 };

                for (size_t i = 0; i < n_pending; i++)
                        running |= !gate_check_finished(pending[i].check);
                if (!running)
                        break;
                (void) nanosleep(&ts, NULL);
        }
        while (n_pending > 0)
                pending_drop(&pending[n_pending - 1]);
        free(pending);
        pending = NULL;
        cap_pending = 0;
}
