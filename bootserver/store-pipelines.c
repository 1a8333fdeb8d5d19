/* The store of pipelines (store-pipelines.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-db.h"
#include "store-pipelines.h"
#include "util.h"

/* The most pipelines a list hands back. */
#define PIPELINE_LIST_MAX 1000

static const char *const state_names[_PIPELINE_STATE_MAX] = {
        [PIPELINE_RUNNING] = "running",
        [PIPELINE_DONE] = "done",
        [PIPELINE_FAILED] = "failed",
        [PIPELINE_ABORTED] = "aborted",
};

static const char *const phase_names[_PIPELINE_PHASE_MAX] = {
        [PIPELINE_ROLLING] = "rolling",
        [PIPELINE_BAKING] = "baking",
        [PIPELINE_APPROVAL] = "approval",
};

const char *pipeline_state_to_string(PipelineState s) {
        return s >= 0 && s < _PIPELINE_STATE_MAX ? state_names[s] : NULL;
}

PipelineState pipeline_state_from_string(const char *s) {
        for (int i = 0; s && i < _PIPELINE_STATE_MAX; i++)
                if (streq(state_names[i], s))
                        return (PipelineState) i;
        return _PIPELINE_STATE_INVALID;
}

const char *pipeline_phase_to_string(PipelinePhase p) {
        return p >= 0 && p < _PIPELINE_PHASE_MAX ? phase_names[p] : NULL;
}

PipelinePhase pipeline_phase_from_string(const char *s) {
        for (int i = 0; s && i < _PIPELINE_PHASE_MAX; i++)
                if (streq(phase_names[i], s))
                        return (PipelinePhase) i;
        return _PIPELINE_PHASE_INVALID;
}

void pipeline_run_release(PipelineRun *r) {
        if (!r)
                return;
        free(r->name);
        free(r->image);
        free(r->spec);
        free(r->approved_by);
        free(r->reason);
        free(r->actor);
        *r = (PipelineRun) {};
}

void pipeline_stage_rows_free(PipelineStageRow *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].approved_by);
                free(v[i].result);
        }
        free(v);
}

int store_pipeline_insert(StoreTx *tx, const char *name, const char *image, const char *spec, const char *actor,
                          uint64_t now, int64_t *ret_id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO pipelines (name, image, spec, state, stage, phase, since, actor, created) VALUES "
                       "(?1, ?2, ?3, 'running', 0, 'rolling', ?5, ?4, ?5) RETURNING id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_text(st, 2, image);
        db_bind_text(st, 3, spec);
        db_bind_text(st, 4, actor);
        db_bind_int64(st, 5, (int64_t) now);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret_id = db_column_int64(st, 0);
        return 0;
}

int store_pipeline_get(StoreTx *tx, int64_t id, PipelineRun *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        PipelineRun p;
        int r;

        r = store_stmt(tx,
                       "SELECT id, name, image, spec, state, stage, phase, since, checked, rollout, approved_by, "
                       "reason, actor, created, finished FROM pipelines WHERE id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        r = db_step(st);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        p = (PipelineRun) {
                .id = db_column_int64(st, 0),
                .name = db_column_strdup(st, 1),
                .image = db_column_strdup(st, 2),
                .spec = db_column_strdup(st, 3),
                .state = pipeline_state_from_string(db_column_text(st, 4)),
                .stage = db_column_int(st, 5),
                .phase = pipeline_phase_from_string(db_column_text(st, 6)),
                .since = (uint64_t) db_column_int64(st, 7),
                .checked = (uint64_t) db_column_int64(st, 8),
                .rollout = db_column_int64(st, 9),
                .approved_by = db_column_strdup(st, 10),
                .reason = db_column_strdup(st, 11),
                .actor = db_column_strdup(st, 12),
                .created = (uint64_t) db_column_int64(st, 13),
                .finished = (uint64_t) db_column_int64(st, 14),
        };
        if (!p.name || !p.image || !p.spec || !p.actor || (!p.approved_by && !db_column_is_null(st, 10)) ||
            (!p.reason && !db_column_is_null(st, 11))) {
                pipeline_run_release(&p);
                return -ENOMEM;
        }
        if (p.state < 0 || p.phase < 0) {
                pipeline_run_release(&p);
                return -EBADMSG;
        }
        *ret = p;
        return 0;
}

int store_pipeline_update(StoreTx *tx, const PipelineRun *p) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "UPDATE pipelines SET state = ?2, stage = ?3, phase = ?4, since = ?5, checked = ?6, "
                       "rollout = ?7, approved_by = ?8, reason = ?9, finished = ?10 WHERE id = ?1",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, p->id);
        db_bind_text(st, 2, pipeline_state_to_string(p->state));
        db_bind_int(st, 3, p->stage);
        db_bind_text(st, 4, pipeline_phase_to_string(p->phase));
        db_bind_int64(st, 5, (int64_t) p->since);
        db_bind_int64(st, 6, (int64_t) p->checked);
        if (p->rollout > 0)
                db_bind_int64(st, 7, p->rollout);
        db_bind_text(st, 8, p->approved_by);
        db_bind_text(st, 9, p->reason);
        if (p->finished > 0)
                db_bind_int64(st, 10, (int64_t) p->finished);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) == 1 ? 0 : -ENOENT;
}

/* Runs st and collects the IDs in its first column, at most max. */
static int ids_collect(DbStmt *st, size_t max, int64_t **ret_ids, size_t *ret_n) {
        int64_t *ids = NULL;
        size_t n = 0;
        int r;

        while ((r = db_step(st)) > 0) {
                int64_t *m;

                if (n >= max)
                        break;
                m = reallocarray(ids, n + 1, sizeof *ids);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                ids = m;
                ids[n++] = db_column_int64(st, 0);
        }
        if (r < 0) {
                free(ids);
                return r;
        }
        *ret_ids = ids;
        *ret_n = n;
        return 0;
}

int store_pipelines_running(StoreTx *tx, int64_t **ret_ids, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM pipelines WHERE state = 'running' ORDER BY id", &st);
        if (r < 0)
                return r;
        return ids_collect(st, SIZE_MAX, ret_ids, ret_n);
}

int store_pipelines_list(StoreTx *tx, int64_t **ret_ids, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM pipelines ORDER BY id DESC", &st);
        if (r < 0)
                return r;
        return ids_collect(st, PIPELINE_LIST_MAX, ret_ids, ret_n);
}

int store_pipeline_stage_put(StoreTx *tx, int64_t id, const PipelineStageRow *s) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO pipeline_stages (pipeline_id, idx, rollout, started, baked, finished, "
                       "approved_by, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (pipeline_id, idx) "
                       "DO UPDATE SET rollout = excluded.rollout, started = excluded.started, baked = excluded.baked, "
                       "finished = excluded.finished, approved_by = excluded.approved_by, result = excluded.result",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_int(st, 2, s->idx);
        if (s->rollout > 0)
                db_bind_int64(st, 3, s->rollout);
        db_bind_int64(st, 4, (int64_t) s->started);
        if (s->baked > 0)
                db_bind_int64(st, 5, (int64_t) s->baked);
        if (s->finished > 0)
                db_bind_int64(st, 6, (int64_t) s->finished);
        db_bind_text(st, 7, s->approved_by);
        db_bind_text(st, 8, s->result);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_pipeline_stages(StoreTx *tx, int64_t id, PipelineStageRow **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        PipelineStageRow *v = NULL;
        size_t n = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT idx, rollout, started, baked, finished, approved_by, result FROM pipeline_stages "
                       "WHERE pipeline_id = ? ORDER BY idx",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        while ((r = db_step(st)) > 0) {
                PipelineStageRow *m = reallocarray(v, n + 1, sizeof *v);

                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                v = m;
                v[n] = (PipelineStageRow) {
                        .idx = db_column_int(st, 0),
                        .rollout = db_column_int64(st, 1),
                        .started = (uint64_t) db_column_int64(st, 2),
                        .baked = (uint64_t) db_column_int64(st, 3),
                        .finished = (uint64_t) db_column_int64(st, 4),
                        .approved_by = db_column_strdup(st, 5),
                        .result = db_column_strdup(st, 6),
                };
                n++;
                if ((!v[n - 1].approved_by && !db_column_is_null(st, 5)) ||
                    (!v[n - 1].result && !db_column_is_null(st, 6))) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                pipeline_stage_rows_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int store_rollout_unhealthy(StoreTx *tx, int64_t id, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT count(*) FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE "
                       "rh.rollout_id = ?1 AND NOT (h.state = 'healthy' AND coalesce(h.current_image, '') = rh.target)",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = db_column_int64(st, 0);
        return 0;
}

int store_rollout_reason(StoreTx *tx, int64_t id, char **ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        char *reason = NULL;
        int r;

        r = store_stmt(tx, "SELECT reason FROM rollouts WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        r = db_step(st);
        if (r < 0)
                return r;
        if (r > 0 && !db_column_is_null(st, 0) && !(reason = db_column_strdup(st, 0)))
                return -ENOMEM;
        *ret = reason;
        return 0;
}
