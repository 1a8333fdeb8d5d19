/* Pipelines (docs/operations.md, "Pipelines"; docs/api.md): an image taken
 * through an ordered list of stages, each a rollout of its own, promoted
 * from one stage to the next when the stage's rollout is done, its bake
 * time has passed and its gates pass.
 *
 * pipeline-spec.c parses a pipeline's spec (no database); this file's
 * pipeline_decide() is the stage state machine, a pure function of the
 * stored run, what the database says of the stage's rollout, the gate
 * results and the time, so that a test drives it with a fake clock;
 * pipeline.c applies its steps in a transaction (rollouts started and
 * rolled back, the audit log), and pipeline-gates.c runs the gates that
 * take time (a command, an HTTP check, a Prometheus query) on threads of
 * their own, outside any transaction. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "coordinator.h"
#include "store-pipelines.h"
#include "store.h"

#define PIPELINE_STAGES_MAX 8
#define PIPELINE_ARGV_MAX 32
#define PIPELINE_TIMEOUT_MAX 3600 /* a command's or a check's limit, seconds */
#define PIPELINE_INTERVAL_DEFAULT 10
#define PIPELINE_COMMAND_TIMEOUT_DEFAULT 60
#define PIPELINE_HTTP_TIMEOUT_DEFAULT 10

typedef enum PromCompare {
        PROM_LT,
        PROM_LE,
        PROM_GT,
        PROM_GE,
        PROM_EQ,
        PROM_NE,
        _PROM_COMPARE_MAX,
        _PROM_COMPARE_INVALID = -EINVAL,
} PromCompare;

/* One stage of a spec. Strings and JSON are borrowed from the spec's JSON. */
typedef struct PipelineStageSpec {
        const char *name;
        json_t *rollout;         /* the rollout spec without "image" */
        uint64_t bake;           /* seconds after the rollout is done */
        bool rollback;           /* on_failure "rollback" (else "stop") */
        bool approval;           /* a person approves the promotion */
        size_t n_argv;           /* the command gate: 0 for none */
        const char *argv[PIPELINE_ARGV_MAX + 1];
        uint64_t command_timeout;
        const char *http_url;    /* the HTTP gate, NULL for none */
        const char *http_body;   /* a string the body must hold, or NULL */
        uint64_t http_timeout;
        const char *prom_query;  /* the Prometheus gate, NULL for none */
        PromCompare prom_cmp;
        double prom_value;
        uint64_t interval;       /* seconds between the Prometheus checks in the bake */
} PipelineStageSpec;

typedef struct PipelineSpec {
        const char *name;
        const char *image;
        const char *prometheus; /* the site's Prometheus URL, or NULL */
        size_t n_stages;
        PipelineStageSpec stages[PIPELINE_STAGES_MAX];
} PipelineSpec;

/* Parses and checks spec j (docs/api.md, "Pipelines"); *ret borrows from
 * j. The rollout spec of each stage is checked with rollout_spec_parse()
 * with the pipeline's image. On failure *ret_error names the member
 * (caller frees); -EINVAL, or -ENOMEM. */
int pipeline_spec_parse(json_t *j, PipelineSpec *ret, char **ret_error);

/* Parses a condition such as "< 0.01" (<, <=, >, >=, ==, !=, then a
 * number). */
int prom_condition_parse(const char *s, PromCompare *ret_cmp, double *ret_value);
/* Whether v satisfies the condition. NaN satisfies none but "!=". */
bool prom_condition_holds(PromCompare cmp, double value, double v);
const char *prom_compare_to_string(PromCompare c);

/* The stage's rollout spec with the pipeline's image, as a new object
 * (NULL when out of memory). */
json_t *pipeline_stage_rollout_spec(const PipelineSpec *s, size_t stage);

/* What the state machine knows of the current stage beside the stored run. */
typedef struct PipelineFacts {
        bool has_rollout;          /* the stage's rollout exists */
        RolloutState rollout_state;
        const char *rollout_reason; /* why it stopped, or NULL */
        int64_t unhealthy;         /* hosts of the stage not healthy on the target (read when done) */
        /* The last result of the gates that take time, for this stage and
         * phase start (run->since): none, a check in the bake, or the final
         * check at the bake's end. */
        bool has_check;
        bool check_final;
        bool check_ok;
        const char *check_reason;  /* what failed */
        uint64_t check_at;         /* when the check was asked for */
} PipelineFacts;

typedef enum PipelineStepKind {
        PIPELINE_STEP_WAIT,          /* nothing to do now */
        PIPELINE_STEP_START_ROLLOUT, /* the stage's rollout must start */
        PIPELINE_STEP_STAGE_DONE,    /* the rollout is done: the bake starts */
        PIPELINE_STEP_CHECK,         /* ask for a check (want_final says which) */
        PIPELINE_STEP_CHECKED,       /* a check in the bake passed: record it */
        PIPELINE_STEP_AWAIT_APPROVAL,/* the gates passed; a person must approve */
        PIPELINE_STEP_PROMOTE,       /* on to the next stage */
        PIPELINE_STEP_DONE,          /* the last stage passed */
        PIPELINE_STEP_FAIL,          /* a gate failed or the rollout stopped */
        _PIPELINE_STEP_MAX,
} PipelineStepKind;

typedef struct PipelineStep {
        PipelineStepKind kind;
        bool want_final;   /* CHECK: the final check of every gate */
        bool rollback;     /* FAIL: roll the stage back */
        char *reason;      /* FAIL: why (caller frees) */
        uint64_t wake;     /* WAIT: the time something is due next, 0 for none */
} PipelineStep;

void pipeline_step_release(PipelineStep *s);

/* The next step of run (running) under spec at now; a check in flight is
 * the caller's to know (it asks only when none is). Returns 0 or -ENOMEM. */
int pipeline_decide(const PipelineSpec *spec, const PipelineRun *run, const PipelineFacts *facts, uint64_t now,
                    PipelineStep *ret);

/* The API's side, each in the caller's write transaction. */

/* Starts a pipeline from spec j: checked, stored, its first stage's
 * rollout started (and ticked once), audited "pipeline.start". -EINVAL
 * with *ret_error for a spec, the rollout's own errors otherwise. */
int pipeline_start(StoreTx *tx, const CoordConfig *c, json_t *j, const char *actor, uint64_t now, int64_t *ret_id,
                   char **ret_error);
/* action "approve" or "abort" on pipeline id by actor. -ENOENT, or -EBUSY
 * with *ret_error when the pipeline is not in a state for it. */
int pipeline_action(StoreTx *tx, int64_t id, const char *action, const char *actor, uint64_t now, char **ret_error);
/* Pipeline id as the API shows it (docs/api.md). */
int pipeline_json(StoreTx *tx, int64_t id, uint64_t now, json_t **ret);
/* Every pipeline, newest first; NULL on an error. */
json_t *pipelines_json(StoreTx *tx);

/* The leader's side: moves every running pipeline on, each in a write
 * transaction of its own that begins by checking that holder still holds
 * the leader lease with epoch (holder NULL: no check). The gates that take
 * time run on threads; their results are applied at a later tick. */
void pipelines_tick(StoreDb *store, const CoordConfig *c, const char *holder, int64_t epoch, uint64_t now);
/* Stops the gates still running (their commands are killed) and forgets
 * them; called when slipwayd stops. */
void pipelines_stop(void);

/* The gate checks (pipeline-gates.c). */
typedef struct GateCheck GateCheck;
/* Starts a check of stage's gates of spec on a thread: only the
 * Prometheus query when !final, all of them when final. spec_text is the
 * pipeline's stored spec (copied). NULL when out of memory or the thread
 * cannot start. */
GateCheck *gate_check_start(const char *spec_text, size_t stage, bool final);
/* Whether c finished; then *ret_ok and *ret_reason (borrowed from c). */
bool gate_check_done(GateCheck *c, bool *ret_ok, const char **ret_reason);
/* Asks c to stop: its command killed, its transfer ended. */
void gate_check_stop(GateCheck *c);
/* Whether c's thread finished. */
bool gate_check_finished(GateCheck *c);
/* Stops c (its command killed, its transfer ended) and lets go of it
 * without waiting: its thread frees it when it ends. NULL. */
GateCheck *gate_check_free(GateCheck *c);
/* The gates run now, in this thread (for the tests): 1 passed, 0 failed
 * with *ret_reason (caller frees), or a negative errno. */
int gate_run(const PipelineSpec *s, size_t stage, bool final, const atomic_bool *stop, char **ret_reason);
