/* Pipeline specs (docs/api.md, "Pipelines"): parsing and checking, with no
 * database. The check made when a pipeline starts is the one each tick
 * reads its stored spec with. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "pipeline.h"
#include "rollout-spec.h"
#include "util.h"

#define PIPELINE_NAME_MAX LABEL_MAX
#define PIPELINE_TEXT_MAX 4096 /* a URL, a query, an argument, a body string */

static const char *const pipeline_members[] = { "name", "image", "prometheus", "stages", NULL };
static const char *const stage_members[] = { "name", "rollout", "bake", "on_failure", "gates", NULL };
static const char *const gate_members[] = { "approval", "command", "http", "prometheus", NULL };
static const char *const command_members[] = { "argv", "timeout", NULL };
static const char *const http_members[] = { "url", "body", "timeout", NULL };
static const char *const prom_members[] = { "query", "condition", "interval", NULL };

static const char *const compare_names[_PROM_COMPARE_MAX] = {
        [PROM_LT] = "<", [PROM_LE] = "<=", [PROM_GT] = ">", [PROM_GE] = ">=", [PROM_EQ] = "==", [PROM_NE] = "!=",
};

const char *prom_compare_to_string(PromCompare c) {
        return c >= 0 && c < _PROM_COMPARE_MAX ? compare_names[c] : NULL;
}

int prom_condition_parse(const char *s, PromCompare *ret_cmp, double *ret_value) {
        PromCompare cmp = _PROM_COMPARE_INVALID;
        size_t len = 0;
        char *end;
        double v;

        if (!s)
                return -EINVAL;
        s += strspn(s, " \t");
        /* The longest operator that matches ("<=" before "<"). */
        for (int i = 0; i < _PROM_COMPARE_MAX; i++) {
                size_t l = strlen(compare_names[i]);
                if (strncmp(s, compare_names[i], l) == 0 && l > len) {
                        cmp = (PromCompare) i;
                        len = l;
                }
        }
        if (cmp < 0)
                return -EINVAL;
        s += len;
        s += strspn(s, " \t");
        if (!*s)
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno != 0 || end == s || !isfinite(v))
                return -EINVAL;
        end += strspn(end, " \t");
        if (*end)
                return -EINVAL;
        *ret_cmp = cmp;
        *ret_value = v;
        return 0;
}

bool prom_condition_holds(PromCompare cmp, double value, double v) {
        switch (cmp) {
        case PROM_LT:
                return v < value;
        case PROM_LE:
                return v <= value;
        case PROM_GT:
                return v > value;
        case PROM_GE:
                return v >= value;
        case PROM_EQ:
                return v == value;
        case PROM_NE:
                return !(v == value);
        default:
                return false;
        }
}

/* Whether every member of object o is listed in known; else *ret_bad. */
static bool members_known(json_t *o, const char *const *known, const char **ret_bad) {
        const char *key;
        json_t *v;

        json_object_foreach(o, key, v) {
                bool ok = false;
                for (size_t i = 0; known[i]; i++)
                        ok |= streq(known[i], key);
                if (!ok) {
                        *ret_bad = key;
                        return false;
                }
        }
        return true;
}

static bool name_valid(const char *s) {
        return s && *s && strlen(s) <= PIPELINE_NAME_MAX && label_valid(s);
}

static bool text_valid(const char *s) {
        return s && *s && strlen(s) <= PIPELINE_TEXT_MAX;
}

/* A number of seconds in 1..max (or 0..max when zero_ok) from v, or def
 * when v is NULL. */
static int seconds_get(json_t *v, uint64_t def, uint64_t max, bool zero_ok, uint64_t *ret) {
        json_int_t i;

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v))
                return -EINVAL;
        i = json_integer_value(v);
        if (i < (zero_ok ? 0 : 1) || (uint64_t) i > max)
                return -EINVAL;
        *ret = (uint64_t) i;
        return 0;
}

static int gates_parse(json_t *g, size_t n, PipelineStageSpec *st, bool has_prometheus, char **ret_error) {
        const char *bad = NULL;
        json_t *v, *c, *h, *p;

        if (!g)
                return 0;
        if (!json_is_object(g))
                return rollout_spec_error(ret_error, "'stages[%zu].gates': expected an object", n);
        if (!members_known(g, gate_members, &bad))
                return rollout_spec_error(ret_error, "'stages[%zu].gates': unknown member '%s'", n, bad);
        v = json_object_get(g, "approval");
        if (v && !json_is_boolean(v))
                return rollout_spec_error(ret_error, "'stages[%zu].gates.approval': expected true or false", n);
        st->approval = json_is_true(v);

        c = json_object_get(g, "command");
        if (c) {
                json_t *argv = json_object_get(c, "argv"), *a;
                size_t i;

                if (!json_is_object(c) || !members_known(c, command_members, &bad))
                        return rollout_spec_error(ret_error,
                                                  "'stages[%zu].gates.command': expected {\"argv\": [...], "
                                                  "\"timeout\": seconds}",
                                                  n);
                if (!json_is_array(argv) || json_array_size(argv) < 1 || json_array_size(argv) > PIPELINE_ARGV_MAX)
                        return rollout_spec_error(ret_error,
                                                  "'stages[%zu].gates.command.argv': expected 1 to %d strings, the "
                                                  "program first",
                                                  n, PIPELINE_ARGV_MAX);
                json_array_foreach(argv, i, a) {
                        const char *s = json_string_value(a);
                        if (!s || strlen(s) > PIPELINE_TEXT_MAX || (i == 0 && !*s))
                                return rollout_spec_error(ret_error,
                                                          "'stages[%zu].gates.command.argv': item %zu is not a "
                                                          "string of at most %d bytes",
                                                          n, i, PIPELINE_TEXT_MAX);
                        st->argv[i] = s;
                }
                st->n_argv = json_array_size(argv);
                st->argv[st->n_argv] = NULL;
                if (seconds_get(json_object_get(c, "timeout"), PIPELINE_COMMAND_TIMEOUT_DEFAULT, PIPELINE_TIMEOUT_MAX,
                                false, &st->command_timeout) < 0)
                        return rollout_spec_error(ret_error, "'stages[%zu].gates.command.timeout': expected 1 to %d seconds",
                                                  n, PIPELINE_TIMEOUT_MAX);
        }

        h = json_object_get(g, "http");
        if (h) {
                const char *url = json_string_value(json_object_get(h, "url"));
                json_t *body = json_object_get(h, "body");

                if (!json_is_object(h) || !members_known(h, http_members, &bad) || !text_valid(url) ||
                    (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
                        return rollout_spec_error(ret_error,
                                                  "'stages[%zu].gates.http': expected {\"url\": \"http(s)://...\", "
                                                  "\"body\": text it holds, \"timeout\": seconds}",
                                                  n);
                if (body && !text_valid(json_string_value(body)))
                        return rollout_spec_error(ret_error, "'stages[%zu].gates.http.body': expected a string", n);
                st->http_url = url;
                st->http_body = json_string_value(body);
                if (seconds_get(json_object_get(h, "timeout"), PIPELINE_HTTP_TIMEOUT_DEFAULT, PIPELINE_TIMEOUT_MAX,
                                false, &st->http_timeout) < 0)
                        return rollout_spec_error(ret_error, "'stages[%zu].gates.http.timeout': expected 1 to %d seconds",
                                                  n, PIPELINE_TIMEOUT_MAX);
        }

        p = json_object_get(g, "prometheus");
        if (p) {
                const char *q = json_string_value(json_object_get(p, "query"));
                const char *cond = json_string_value(json_object_get(p, "condition"));

                if (!json_is_object(p) || !members_known(p, prom_members, &bad) || !text_valid(q))
                        return rollout_spec_error(ret_error,
                                                  "'stages[%zu].gates.prometheus': expected {\"query\": \"...\", "
                                                  "\"condition\": \"< 0.01\", \"interval\": seconds}",
                                                  n);
                if (prom_condition_parse(cond, &st->prom_cmp, &st->prom_value) < 0)
                        return rollout_spec_error(ret_error,
                                                  "'stages[%zu].gates.prometheus.condition': expected an operator "
                                                  "(<, <=, >, >=, ==, !=) and a number, such as \"< 0.01\"",
                                                  n);
                if (!has_prometheus)
                        return rollout_spec_error(ret_error,
                                                  "'stages[%zu].gates.prometheus': the pipeline names no "
                                                  "'prometheus' to query",
                                                  n);
                st->prom_query = q;
                if (seconds_get(json_object_get(p, "interval"), PIPELINE_INTERVAL_DEFAULT, 3600, false,
                                &st->interval) < 0)
                        return rollout_spec_error(ret_error,
                                                  "'stages[%zu].gates.prometheus.interval': expected 1 to 3600 seconds",
                                                  n);
        }
        return 0;
}

static int stage_parse(json_t *j, size_t n, const char *image, bool has_prometheus, PipelineStageSpec *st,
                       char **ret_error) {
        _cleanup_free_ char *rerr = NULL;
        const char *bad = NULL, *of;
        json_t *ro, *full;
        RolloutSpec rs;
        int r;

        if (!json_is_object(j))
                return rollout_spec_error(ret_error, "'stages[%zu]': expected an object", n);
        if (!members_known(j, stage_members, &bad))
                return rollout_spec_error(ret_error, "'stages[%zu]': unknown member '%s'", n, bad);
        st->name = json_string_value(json_object_get(j, "name"));
        if (!name_valid(st->name))
                return rollout_spec_error(ret_error, "'stages[%zu].name': expected a name of [A-Za-z0-9._-], at most %d",
                                          n, PIPELINE_NAME_MAX);
        ro = json_object_get(j, "rollout");
        if (!json_is_object(ro) || json_object_get(ro, "image"))
                return rollout_spec_error(ret_error,
                                          "'stages[%zu].rollout': expected a rollout spec without 'image' (the "
                                          "pipeline's)",
                                          n);
        full = json_deep_copy(ro);
        if (!full || json_object_set_new(full, "image", json_string(image)) < 0) {
                json_decref(full);
                return -ENOMEM;
        }
        r = rollout_spec_parse(full, &rs, &rerr);
        json_decref(full);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return rollout_spec_error(ret_error, "'stages[%zu].rollout': %s", n, strempty(rerr));
        st->rollout = ro;
        if (seconds_get(json_object_get(j, "bake"), 0, ROLLOUT_BAKE_MAX, true, &st->bake) < 0)
                return rollout_spec_error(ret_error, "'stages[%zu].bake': expected seconds, 0 to %d (30 days)", n,
                                          ROLLOUT_BAKE_MAX);
        of = json_string_value(json_object_get(j, "on_failure"));
        if (json_object_get(j, "on_failure") && (!of || (!streq(of, "stop") && !streq(of, "rollback"))))
                return rollout_spec_error(ret_error, "'stages[%zu].on_failure': expected \"stop\" or \"rollback\"", n);
        st->rollback = of && streq(of, "rollback");
        return gates_parse(json_object_get(j, "gates"), n, st, has_prometheus, ret_error);
}

int pipeline_spec_parse(json_t *j, PipelineSpec *ret, char **ret_error) {
        PipelineSpec s = {};
        const char *bad = NULL;
        json_t *stages, *st;
        size_t i;
        int r;

        if (!json_is_object(j))
                return rollout_spec_error(ret_error, "expected a JSON object");
        if (!members_known(j, pipeline_members, &bad))
                return rollout_spec_error(ret_error, "unknown member '%s'", bad);
        s.image = json_string_value(json_object_get(j, "image"));
        if (!text_valid(s.image))
                return rollout_spec_error(ret_error, "'image': an image reference is required");
        s.name = json_string_value(json_object_get(j, "name"));
        if (json_object_get(j, "name") && !name_valid(s.name))
                return rollout_spec_error(ret_error, "'name': expected a name of [A-Za-z0-9._-], at most %d",
                                          PIPELINE_NAME_MAX);
        s.prometheus = json_string_value(json_object_get(j, "prometheus"));
        if (json_object_get(j, "prometheus") &&
            (!text_valid(s.prometheus) ||
             (strncmp(s.prometheus, "http://", 7) != 0 && strncmp(s.prometheus, "https://", 8) != 0)))
                return rollout_spec_error(ret_error, "'prometheus': expected the URL of a Prometheus server");
        stages = json_object_get(j, "stages");
        if (!json_is_array(stages) || json_array_size(stages) < 1 || json_array_size(stages) > PIPELINE_STAGES_MAX)
                return rollout_spec_error(ret_error, "'stages': expected 1 to %d stages", PIPELINE_STAGES_MAX);
        json_array_foreach(stages, i, st) {
                r = stage_parse(st, i, s.image, !!s.prometheus, &s.stages[i], ret_error);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < i; k++)
                        if (streq(s.stages[k].name, s.stages[i].name))
                                return rollout_spec_error(ret_error, "'stages[%zu].name': '%s' is taken by stage %zu",
                                                          i, s.stages[i].name, k);
        }
        s.n_stages = json_array_size(stages);
        *ret = s;
        return 0;
}

json_t *pipeline_stage_rollout_spec(const PipelineSpec *s, size_t stage) {
        json_t *j = json_deep_copy(s->stages[stage].rollout);

        if (j && json_object_set_new(j, "image", json_string(s->image)) < 0) {
                json_decref(j);
                return NULL;
        }
        return j;
}
