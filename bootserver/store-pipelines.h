/* The store of pipelines (migration 23, store-pipelines-sql.h): a row per
 * pipeline with its current stage, a row per stage it reached. Typed
 * values in and out; the decisions are pipeline.c's. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "store-rollouts.h"
#include "store.h"

typedef enum PipelineState {
        PIPELINE_RUNNING,
        PIPELINE_DONE,
        PIPELINE_FAILED,
        PIPELINE_ABORTED,
        _PIPELINE_STATE_MAX,
        _PIPELINE_STATE_INVALID = -EINVAL,
} PipelineState;

/* Where the current stage is. */
typedef enum PipelinePhase {
        PIPELINE_ROLLING,  /* its rollout runs */
        PIPELINE_BAKING,   /* its rollout is done; the bake and the gates */
        PIPELINE_APPROVAL, /* the gates passed; waiting for a person */
        _PIPELINE_PHASE_MAX,
        _PIPELINE_PHASE_INVALID = -EINVAL,
} PipelinePhase;

const char *pipeline_state_to_string(PipelineState s);
PipelineState pipeline_state_from_string(const char *s);
const char *pipeline_phase_to_string(PipelinePhase p);
PipelinePhase pipeline_phase_from_string(const char *s);

/* A pipeline as stored. */
typedef struct PipelineRun {
        int64_t id;
        char *name, *image;
        char *spec;          /* the spec (JSON text) */
        PipelineState state;
        int stage;           /* the current stage, 0-based */
        PipelinePhase phase;
        uint64_t since;      /* when the phase began */
        uint64_t checked;    /* the last check in the bake that passed, 0 for none */
        int64_t rollout;     /* the stage's rollout, 0 before it starts */
        char *approved_by;   /* who approved the stage's promotion, or NULL */
        char *reason;        /* why it failed or stopped, or NULL */
        char *actor;
        uint64_t created, finished; /* finished 0 while running */
} PipelineRun;

void pipeline_run_release(PipelineRun *r);

/* A stage the pipeline reached. */
typedef struct PipelineStageRow {
        int idx;
        int64_t rollout;
        uint64_t started, baked, finished; /* baked: the rollout done, 0 for not yet */
        char *approved_by;
        char *result;       /* "promoted", "done", "failed", "aborted", or NULL while current */
} PipelineStageRow;

void pipeline_stage_rows_free(PipelineStageRow *v, size_t n);

/* A new running pipeline at stage 0, rolling since now. */
int store_pipeline_insert(StoreTx *tx, const char *name, const char *image, const char *spec, const char *actor,
                          uint64_t now, int64_t *ret_id);
/* Reads pipeline id; -ENOENT when none, -EBADMSG for a state not known. */
int store_pipeline_get(StoreTx *tx, int64_t id, PipelineRun *ret);
/* Writes r's state, stage, phase, since, checked, rollout, approved_by,
 * reason and finished. */
int store_pipeline_update(StoreTx *tx, const PipelineRun *r);
/* The running pipelines, oldest first; *ret_ids (caller frees). */
int store_pipelines_running(StoreTx *tx, int64_t **ret_ids, size_t *ret_n);
/* Every pipeline's ID, newest first, at most 1000. */
int store_pipelines_list(StoreTx *tx, int64_t **ret_ids, size_t *ret_n);
/* Writes stage row s of pipeline id (inserted or replaced). */
int store_pipeline_stage_put(StoreTx *tx, int64_t id, const PipelineStageRow *s);
/* The stage rows of pipeline id in order; *ret (free with
 * pipeline_stage_rows_free()). */
int store_pipeline_stages(StoreTx *tx, int64_t id, PipelineStageRow **ret, size_t *ret_n);

/* The hosts of rollout id that are not healthy on its target (a host
 * skipped counts: it never got there). */
int store_rollout_unhealthy(StoreTx *tx, int64_t id, int64_t *ret);

/* The reason rollout id stopped (*ret NULL for none; caller frees). */
int store_rollout_reason(StoreTx *tx, int64_t id, char **ret);
