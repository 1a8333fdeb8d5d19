/* Fuzzes rollout specs: rollout_spec_parse(), which checks a spec when a
 * rollout starts and reads it back, as stored, at every tick; then the
 * waves and the plan's estimate of every spec it accepts, and its budgets. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "coordinator.h"
#include "fuzz.h"
#include "rollout-spec.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_numbers(const RolloutSpec *a, const RolloutSpec *b) {
        if (a->n_waves != b->n_waves || a->bake != b->bake || a->fail_count != b->fail_count ||
            a->fail_pct != b->fail_pct || a->rollback_on_failure != b->rollback_on_failure ||
            !streq(a->files_name, b->files_name) || a->files_version != b->files_version)
                return false;
        for (size_t w = 0; w < a->n_waves; w++)
                if (a->wave_count[w] != b->wave_count[w] || a->wave_pct[w] != b->wave_pct[w])
                        return false;
        return true;
}

/* The waves of s over n hosts and the estimate keep their promises. */
static void check_waves(const RolloutSpec *s, size_t n) {
        const uint64_t reboot = 60;
        size_t ends[ROLLOUT_WAVES_MAX];
        uint64_t est, most;

        rollout_wave_ends(s, n, ends);
        for (size_t w = 0; w < s->n_waves; w++)
                if (ends[w] > n || (w > 0 && ends[w] < ends[w - 1]))
                        abort();
        if (ends[s->n_waves - 1] != n)
                abort();
        /* Bounded by the caps: a reboot per wave and a bake between two. */
        est = rollout_estimate(s, ends, reboot);
        most = s->n_waves * reboot + (s->n_waves - 1) * s->bake;
        if (est > most || est < (s->n_waves - 1) * s->bake)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *error = NULL, *error2 = NULL;
        RolloutSpec s, back;
        json_t *j, *k;
        int r;

        j = fuzz_spec_json(data, size);
        if (!j)
                return 0;
        r = rollout_spec_parse(j, &s, &error);
        if (!fuzz_spec_accepted(r, error)) {
                json_decref(j);
                return 0;
        }
        if (s.n_waves < 1 || s.n_waves > ROLLOUT_WAVES_MAX || s.bake > ROLLOUT_BAKE_MAX ||
            (!s.image && !s.files_name[0]) || s.files_version < 0)
                abort();
        /* What a start stores, a tick reads back the same. */
        k = fuzz_spec_stored(j);
        if (k && (rollout_spec_parse(k, &back, &error2) < 0 || !same_numbers(&s, &back)))
                abort();
        /* Every budget it accepted reads as the lease decision reads it,
         * and allows no fewer than none of a group. */
        {
                const char *sel;
                json_t *b;
                json_object_foreach(s.budgets, sel, b) {
                        Budget x;
                        if (budget_from_json(b, &x) < 0 || budget_allowed(&x, 0) < 0 || budget_allowed(&x, 1000) < 0)
                                abort();
                }
        }
        for (size_t n = 0; n < 12; n++)
                check_waves(&s, n);
        check_waves(&s, 1000);
        check_waves(&s, 100003);
        json_decref(k);
        json_decref(j);
        return 0;
}
