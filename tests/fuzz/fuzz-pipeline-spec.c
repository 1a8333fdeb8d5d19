/* Fuzzes pipeline specs: pipeline_spec_parse(), which checks a spec when a
 * pipeline starts and reads it back, as stored, at every tick, and the
 * stage rollout specs it makes from one it accepts. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "pipeline.h"
#include "rollout-spec.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *error = NULL, *error2 = NULL;
        PipelineSpec s, back;
        json_t *j, *k;
        int r;

        j = fuzz_spec_json(data, size);
        if (!j)
                return 0;
        r = pipeline_spec_parse(j, &s, &error);
        if (!fuzz_spec_accepted(r, error)) {
                json_decref(j);
                return 0;
        }
        if (s.n_stages < 1 || s.n_stages > PIPELINE_STAGES_MAX || !s.image)
                abort();
        for (size_t i = 0; i < s.n_stages; i++) {
                const PipelineStageSpec *st = &s.stages[i];
                _cleanup_free_ char *e = NULL;
                RolloutSpec rs;
                json_t *ro;

                if (!st->name || st->bake > ROLLOUT_BAKE_MAX || st->n_argv > PIPELINE_ARGV_MAX ||
                    (st->n_argv && st->argv[st->n_argv]) || (st->prom_query && (!s.prometheus || !st->interval)))
                        abort();
                /* What the stage starts is a rollout spec that passes. */
                ro = pipeline_stage_rollout_spec(&s, i);
                if (ro && rollout_spec_parse(ro, &rs, &e) < 0)
                        abort();
                json_decref(ro);
        }
        /* What a start stores, a tick reads back the same. */
        k = fuzz_spec_stored(j);
        if (k && (pipeline_spec_parse(k, &back, &error2) < 0 || back.n_stages != s.n_stages))
                abort();
        json_decref(k);
        json_decref(j);
        return 0;
}
