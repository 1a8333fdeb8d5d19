/* Rollout specs (docs/api.md, Rollouts): parsing and checking a spec, and
 * what follows from it alone (the waves' ends, the estimate). No database:
 * the checks made when a rollout starts are the ones its tick reads the
 * stored spec with, and a fuzzer drives them alone. */
#include <stdarg.h>
#include <stdio.h>

#include "coordinator.h"
#include "labels.h"
#include "rollout-spec.h"
#include "util.h"

static const char *const spec_members[] = { "image", "selector", "waves", "bake", "max_failures", "on_failure",
                                            "order", "windows", "files", "budgets", NULL };

int rollout_spec_error(char **ret_error, const char *format, ...) {
        va_list ap;
        char *m = NULL;

        va_start(ap, format);
        if (vasprintf(&m, format, ap) < 0)
                m = NULL;
        va_end(ap);
        *ret_error = m;
        return m ? -EINVAL : -ENOMEM;
}

int rollout_spec_parse(json_t *j, RolloutSpec *ret, char **ret_error) {
        RolloutSpec s = { .fail_count = 0, .fail_pct = -1 };
        const char *key, *of;
        json_t *v, *waves, *mf, *order, *w;
        size_t i;

        if (!json_is_object(j))
                return rollout_spec_error(ret_error, "expected a JSON object");
        json_object_foreach(j, key, v) {
                bool known = false;
                for (i = 0; spec_members[i]; i++)
                        known |= streq(spec_members[i], key);
                if (!known)
                        return rollout_spec_error(ret_error, "unknown member '%s'", key);
        }
        v = json_object_get(j, "files");
        if (v) {
                const char *f = json_string_value(v), *at = f ? strchr(f, '@') : NULL;
                size_t len = at ? (size_t) (at - f) : strlen(strempty(f));
                uint64_t version = 0;

                if (!f || len == 0 || len > LABEL_MAX ||
                    (at && (safe_atou64(at + 1, &version) < 0 || version == 0 || version > INT64_MAX)))
                        return rollout_spec_error(ret_error, "'files': expected a file set \"NAME\" or "
                                                             "\"NAME@VERSION\"");
                memcpy(s.files_name, f, len);
                s.files_name[len] = 0;
                if (!label_valid(s.files_name))
                        return rollout_spec_error(ret_error, "'files': '%s' is not a file set name", s.files_name);
                s.files_version = (int64_t) version;
        }
        s.image = json_string_value(json_object_get(j, "image"));
        if (json_object_get(j, "image") && (!s.image || !*s.image))
                return rollout_spec_error(ret_error, "'image': expected an image reference");
        if (!s.image && !v)
                return rollout_spec_error(ret_error, "'image': an image reference, or 'files', is required");
        s.selector = json_object_get(j, "selector");
        if (s.selector && (!json_is_object(s.selector) || json_object_size(s.selector) > ROLLOUT_SELECTOR_MAX))
                return rollout_spec_error(ret_error, "'selector': expected {\"KEY\": \"VALUE\"} with at most %d labels",
                                  ROLLOUT_SELECTOR_MAX);
        json_object_foreach(s.selector, key, v)
                if (!label_valid(key) || !label_valid(json_string_value(v)))
                        return rollout_spec_error(ret_error, "'selector': label '%s' is not KEY: VALUE of [A-Za-z0-9._-]", key);
        waves = json_object_get(j, "waves");
        if (!waves) {
                s.n_waves = 1;
                s.wave_count[0] = -1;
                s.wave_pct[0] = 100;
        } else if (!json_is_array(waves) || json_array_size(waves) == 0 || json_array_size(waves) > ROLLOUT_WAVES_MAX)
                return rollout_spec_error(ret_error, "'waves': expected 1 to %d counts or percentages", ROLLOUT_WAVES_MAX);
        json_array_foreach(waves, i, v)
                if (budget_parse_json(v, &s.wave_count[i], &s.wave_pct[i]) < 0)
                        return rollout_spec_error(ret_error,
                                          "'waves': item %zu is not a count (0 to %d) or a percentage (\"0%%\" to "
                                          "\"100%%\")",
                                          i + 1, INT32_MAX);
        if (waves)
                s.n_waves = json_array_size(waves);
        v = json_object_get(j, "bake");
        if (v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > ROLLOUT_BAKE_MAX))
                return rollout_spec_error(ret_error, "'bake': expected seconds, 0 to %d (30 days)", ROLLOUT_BAKE_MAX);
        s.bake = v ? (uint64_t) json_integer_value(v) : 0;
        mf = json_object_get(j, "max_failures");
        if (mf && budget_parse_json(mf, &s.fail_count, &s.fail_pct) < 0)
                return rollout_spec_error(ret_error, "'max_failures': expected a count (0 to %d) or a percentage", INT32_MAX);
        of = json_string_value(json_object_get(j, "on_failure"));
        if (json_object_get(j, "on_failure") && (!of || (!streq(of, "pause") && !streq(of, "rollback"))))
                return rollout_spec_error(ret_error, "'on_failure': expected \"pause\" or \"rollback\"");
        s.rollback_on_failure = of && streq(of, "rollback");
        order = json_object_get(j, "order");
        if (order) {
                s.order_key = json_string_value(json_object_get(order, "key"));
                s.order_values = json_object_get(order, "values");
                bool ok = json_is_object(order) && json_object_size(order) == 2 && label_valid(s.order_key) &&
                          json_is_array(s.order_values) && json_array_size(s.order_values) <= ROLLOUT_ORDER_VALUES_MAX;
                json_array_foreach(s.order_values, i, v)
                        ok = ok && label_valid(json_string_value(v));
                if (!ok)
                        return rollout_spec_error(ret_error,
                                          "'order': expected {\"key\": \"service\", \"values\": [\"a\", \"b\"]}, at "
                                          "most %d label values",
                                          ROLLOUT_ORDER_VALUES_MAX);
        }
        v = json_object_get(j, "windows");
        if (v && (!json_is_object(v) || json_object_size(v) > ROLLOUT_WINDOWS_MAX))
                return rollout_spec_error(ret_error,
                                  "'windows': expected {\"rack\": \"22:00-04:00\"} (a label key or KEY=VALUE per "
                                  "window), at most %d windows",
                                  ROLLOUT_WINDOWS_MAX);
        json_object_foreach(v, key, w) {
                int a, b;
                if (!coord_selector_valid(key))
                        return rollout_spec_error(ret_error, "'windows': '%s' is not a label key or KEY=VALUE of [A-Za-z0-9._-]",
                                          key);
                if (window_parse(json_string_value(w), &a, &b) < 0)
                        return rollout_spec_error(ret_error,
                                          "'windows': the window of '%s' is not \"HH:MM-HH:MM\" (UTC, start and end "
                                          "differ)",
                                          key);
        }
        s.budgets = json_object_get(j, "budgets");
        if (s.budgets && (!json_is_object(s.budgets) || json_object_size(s.budgets) > ROLLOUT_BUDGETS_MAX))
                return rollout_spec_error(ret_error,
                                          "'budgets': expected {\"rack\": 1, \"service\": \"10%%\"} (a label key or "
                                          "KEY=VALUE per budget), at most %d budgets",
                                          ROLLOUT_BUDGETS_MAX);
        json_object_foreach(s.budgets, key, w) {
                Budget b;
                if (!coord_selector_valid(key))
                        return rollout_spec_error(ret_error, "'budgets': '%s' is not a label key or KEY=VALUE of [A-Za-z0-9._-]",
                                                  key);
                if (budget_from_json(w, &b) < 0)
                        return rollout_spec_error(ret_error,
                                                  "'budgets': the budget of '%s' is not a count, a percentage "
                                                  "(\"10%%\"), {\"max_unavailable\": N or \"N%%\"} or "
                                                  "{\"min_available\": N}",
                                                  key);
        }
        *ret = s;
        return 0;
}

int rollout_spec_parse_stored(const char *text, RolloutSpec *ret, char **ret_why) {
        _cleanup_free_ char *error = NULL;
        RolloutSpec s = {};
        json_error_t e;
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
        int r;

        r = j ? rollout_spec_parse(j, &s, &error) : rollout_spec_error(&error, "not JSON: %s", e.text);
        json_decref(j);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret_why = strdup_printf("its stored spec cannot be read: %s", strempty(error));
                return *ret_why ? 1 : -ENOMEM;
        }
        /* The tick keeps only the numbers; the rest was borrowed from j. */
        s.image = s.order_key = NULL;
        s.selector = s.order_values = s.budgets = NULL;
        *ret = s;
        return 0;
}

void rollout_wave_ends(const RolloutSpec *s, size_t n, size_t ret[ROLLOUT_WAVES_MAX]) {
        size_t prev = 0;

        for (size_t w = 0; w < s->n_waves; w++) {
                size_t t = s->wave_count[w] >= 0 ? (size_t) s->wave_count[w]
                                                 : (size_t) ((n * (size_t) s->wave_pct[w] + 99) / 100);
                t = MIN(MAX(t, prev), n);
                if (w == s->n_waves - 1)
                        t = n;
                ret[w] = prev = t;
        }
}

static uint64_t add_saturating(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t rollout_estimate(const RolloutSpec *s, const size_t ends[ROLLOUT_WAVES_MAX], uint64_t reboot_estimate) {
        uint64_t total = 0;

        /* Hosts of a wave go down as fast as the budgets let them: the
         * estimate assumes each wave's hosts can overlap up to the tightest
         * budget, one reboot at a time otherwise. */
        for (size_t w = 0; w < s->n_waves; w++) {
                bool has_hosts = ends[w] > (w > 0 ? ends[w - 1] : 0);
                total = add_saturating(total, has_hosts ? reboot_estimate : 0);
                total = add_saturating(total, w + 1 < s->n_waves ? s->bake : 0);
        }
        return total;
}

int rollout_wave_of(const size_t ends[ROLLOUT_WAVES_MAX], size_t n_waves, size_t i) {
        for (size_t w = 0; w < n_waves; w++)
                if (i < ends[w])
                        return (int) w;
        return (int) n_waves - 1;
}

