/* slipctl pipeline start|list|status|approve|abort: an image through
 * stages, staging then production (docs/operations.md, "Pipelines"). A
 * pipeline file (INI) becomes the JSON spec of docs/api.md; the server
 * checks it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "ini.h"
#include "json.h"
#include "log.h"
#include "table.h"
#include "util.h"

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static int64_t num(json_t *o, const char *key) {
        return (int64_t) json_integer_value(json_object_get(o, key));
}

typedef struct FileState {
        json_t *spec;  /* what the file says so far */
        json_t *stage; /* the stage of the last [stage NAME] header */
} FileState;

/* "1, 10%, 100%" as [1, "10%", "100%"] (with strings, all as strings);
 * NULL when an item is empty. */
static json_t *item_list(const char *s, bool strings) {
        _cleanup_json_ json_t *a = json_array();

        for (const char *p = s; a;) {
                const char *e = strchrnul(p, ',');
                _cleanup_free_ char *item = NULL;
                uint64_t v;
                size_t l;

                p += strspn(p, " \t");
                l = (size_t) (e - p);
                while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
                        l--;
                if (l == 0 || !(item = strndup(p, l)))
                        return NULL;
                if (json_array_append_new(a, !strings && safe_atou64(item, &v) >= 0 ? json_integer((json_int_t) v)
                                                                                    : json_string(item)) < 0)
                        return NULL;
                if (!*e)
                        break;
                p = e + 1;
        }
        return TAKE_PTR(a);
}

/* The words of s split at blanks: the command's argv (no shell, no quotes). */
static json_t *word_list(const char *s) {
        _cleanup_json_ json_t *a = json_array();

        for (const char *p = s; a;) {
                size_t l;

                p += strspn(p, " \t");
                if (!*p)
                        break;
                l = strcspn(p, " \t");
                if (json_array_append_new(a, json_stringn(p, l)) < 0)
                        return NULL;
                p += l;
        }
        return a && json_array_size(a) > 0 ? TAKE_PTR(a) : NULL;
}

/* A number of seconds, set as an integer at o[key]. */
static int set_seconds(json_t *o, const char *key, const char *value) {
        uint64_t v;

        if (safe_atou64(value, &v) < 0 || v > INT32_MAX)
                return -EINVAL;
        return json_object_set_new(o, key, json_integer((json_int_t) v)) < 0 ? -ENOMEM : 0;
}

/* o[key] as an object, made when missing. */
static json_t *sub(json_t *o, const char *key) {
        json_t *s = json_object_get(o, key);

        if (!s && (!(s = json_object()) || json_object_set_new(o, key, s) < 0))
                return NULL;
        return s;
}

static int stage_key(json_t *stage, const char *key, const char *value) {
        json_t *ro = sub(stage, "rollout"), *gates = sub(stage, "gates"), *v;
        int b;

        if (!ro || !gates)
                return -ENOMEM;
        if (streq(key, "selector")) {
                json_t *sel = sub(ro, "selector");
                _cleanup_json_ json_t *items = word_list(value);
                size_t i;

                if (!sel || !items)
                        return -EINVAL;
                json_array_foreach(items, i, v) {
                        const char *kv = json_string_value(v);
                        const char *eq = strchr(kv, '=');
                        _cleanup_free_ char *k = eq ? strndup(kv, (size_t) (eq - kv)) : NULL;

                        if (!k || !*k || !eq[1] || json_object_set_new(sel, k, json_string(eq + 1)) < 0)
                                return -EINVAL;
                }
                return 0;
        }
        if (streq(key, "waves") || streq(key, "max-failures")) {
                json_t *a = item_list(value, false);
                if (!a)
                        return -EINVAL;
                if (streq(key, "waves"))
                        return json_object_set_new(ro, "waves", a) < 0 ? -ENOMEM : 0;
                v = json_incref(json_array_get(a, 0));
                json_decref(a);
                return json_object_set_new(ro, "max_failures", v) < 0 ? -ENOMEM : 0;
        }
        if (streq(key, "wave-bake"))
                return set_seconds(ro, "bake", value);
        if (streq(key, "on-failure")) {
                /* One choice for both: a rollout over its failures and a
                 * gate that fails. */
                if (!streq(value, "stop") && !streq(value, "rollback"))
                        return -EINVAL;
                if (json_object_set_new(stage, "on_failure", json_string(value)) < 0 ||
                    json_object_set_new(ro, "on_failure", json_string(streq(value, "stop") ? "pause" : "rollback")) < 0)
                        return -ENOMEM;
                return 0;
        }
        if (streq(key, "order")) {
                const char *eq = strchr(value, '=');
                _cleanup_free_ char *k = eq ? strndup(value, (size_t) (eq - value)) : NULL;
                json_t *vals = eq ? item_list(eq + 1, true) : NULL;

                if (!k || !vals)
                        return -EINVAL;
                return json_object_set_new(ro, "order", json_pack("{s:s, s:o}", "key", k, "values", vals)) < 0
                               ? -ENOMEM
                               : 0;
        }
        if (streq(key, "window")) {
                const char *at = strchr(value, '@');
                _cleanup_free_ char *k = at ? strndup(value, (size_t) (at - value)) : NULL;
                json_t *w = sub(ro, "windows");

                if (!k || !w)
                        return -EINVAL;
                return json_object_set_new(w, k, json_string(at + 1)) < 0 ? -ENOMEM : 0;
        }
        if (streq(key, "budget")) {
                /* "rack:1, service:10%", as --budget takes each; the
                 * key may be given again. */
                json_t *budgets = sub(ro, "budgets");
                _cleanup_free_ char *list = strdup(value);
                char *p = list;

                if (!budgets || !list)
                        return -ENOMEM;
                while (p) {
                        char *comma = strchr(p, ',');
                        _cleanup_free_ char *sel = NULL;
                        json_t *amount = NULL;
                        int r;

                        if (comma)
                                *comma = 0;
                        p += strspn(p, " \t");
                        p[strcspn(p, " \t")] = 0;
                        r = ctl_budget_item(p, &sel, &amount);
                        if (r < 0)
                                return r;
                        if (json_object_set_new(budgets, sel, amount) < 0)
                                return -ENOMEM;
                        p = comma ? comma + 1 : NULL;
                }
                return 0;
        }
        if (streq(key, "bake"))
                return set_seconds(stage, "bake", value);
        if (streq(key, "approval")) {
                b = parse_boolean(value);
                if (b < 0)
                        return b;
                return json_object_set_new(gates, "approval", json_boolean(b)) < 0 ? -ENOMEM : 0;
        }
        if (streq(key, "command")) {
                json_t *argv = word_list(value), *c = sub(gates, "command");
                if (!argv || !c) {
                        json_decref(argv);
                        return -EINVAL;
                }
                return json_object_set_new(c, "argv", argv) < 0 ? -ENOMEM : 0;
        }
        if (streq(key, "command-timeout"))
                return (v = sub(gates, "command")) ? set_seconds(v, "timeout", value) : -ENOMEM;
        if (streq(key, "http"))
                return (v = sub(gates, "http")) && json_object_set_new(v, "url", json_string(value)) >= 0 ? 0 : -ENOMEM;
        if (streq(key, "http-body"))
                return (v = sub(gates, "http")) && json_object_set_new(v, "body", json_string(value)) >= 0 ? 0 : -ENOMEM;
        if (streq(key, "http-timeout"))
                return (v = sub(gates, "http")) ? set_seconds(v, "timeout", value) : -ENOMEM;
        if (streq(key, "prometheus"))
                return (v = sub(gates, "prometheus")) && json_object_set_new(v, "query", json_string(value)) >= 0
                               ? 0
                               : -ENOMEM;
        if (streq(key, "condition"))
                return (v = sub(gates, "prometheus")) && json_object_set_new(v, "condition", json_string(value)) >= 0
                               ? 0
                               : -ENOMEM;
        if (streq(key, "interval"))
                return (v = sub(gates, "prometheus")) ? set_seconds(v, "interval", value) : -ENOMEM;
        return -ENOKEY;
}

static int file_key(const char *file, unsigned line, const char *section, const char *key, const char *value,
                    void *userdata, Error *error) {
        FileState *fs = userdata;
        int r;

        if (streq(section, "pipeline")) {
                if (!streq(key, "name") && !streq(key, "image") && !streq(key, "prometheus"))
                        return error_set_at(error, -EINVAL, file, line, "unknown key '%s' in [pipeline]", key);
                if (json_object_set_new(fs->spec, key, json_string(value)) < 0)
                        return error_set_at(error, -ENOMEM, file, line, "out of memory");
                return 0;
        }
        if (strncmp(section, "stage ", 6) == 0) {
                const char *name = section + 6;

                if (!fs->stage || !streq_ptr(str(fs->stage, "name"), name)) {
                        json_t *stages = json_object_get(fs->spec, "stages"), *s;
                        size_t i;

                        if (!stages && (!(stages = json_array()) || json_object_set_new(fs->spec, "stages", stages) < 0))
                                return error_set_at(error, -ENOMEM, file, line, "out of memory");
                        json_array_foreach(stages, i, s)
                                if (streq_ptr(str(s, "name"), name))
                                        return error_set_at(error, -EINVAL, file, line,
                                                            "stage '%s' is given twice", name);
                        fs->stage = json_pack("{s:s}", "name", name);
                        if (!fs->stage || json_array_append_new(stages, fs->stage) < 0)
                                return error_set_at(error, -ENOMEM, file, line, "out of memory");
                }
                r = stage_key(fs->stage, key, value);
                if (r == -ENOKEY)
                        return error_set_at(error, -EINVAL, file, line, "unknown key '%s' in [%s]", key, section);
                if (r < 0)
                        return error_set_at(error, r, file, line, "%s: '%s' is not a value it takes", key, value);
                return 0;
        }
        return error_set_at(error, -EINVAL, file, line, "unknown section [%s] ([pipeline] or [stage NAME])", section);
}

/* The stages that gained no gates lose the empty object the parser made. */
static void tidy(json_t *spec) {
        json_t *s;
        size_t i;

        json_array_foreach(json_object_get(spec, "stages"), i, s) {
                json_t *g = json_object_get(s, "gates");
                if (g && json_object_size(g) == 0)
                        (void) json_object_del(s, "gates");
        }
}

int ctl_pipeline_file(const char *path, json_t **ret, Error *error) {
        FileState fs = { .spec = json_object() };
        int r;

        if (!fs.spec)
                return -ENOMEM;
        r = ini_parse_file(path, file_key, &fs, error);
        if (r < 0) {
                json_decref(fs.spec);
                return r;
        }
        tidy(fs.spec);
        *ret = fs.spec;
        return 0;
}

static void stage_line(json_t *s, int64_t now) {
        _cleanup_free_ char *name = text_safe(str(s, "name")), *state = text_safe(str(s, "state"));
        _cleanup_free_ char *gates = json_inline(json_object_get(s, "gates"));
        char ago[64] = "", ro[32] = "";

        if (json_object_get(s, "rollout"))
                snprintf(ro, sizeof ro, "rollout %" PRIi64, num(s, "rollout"));
        if (json_object_get(s, "finished"))
                format_ago(ago, sizeof ago, num(s, "finished"), now);
        field_continue(2, "%-16s %-10s %-12s gates %s%s%s%s%s", name ? name : "?", state ? state : "?", ro,
                       gates ? gates : "-", *ago ? ", finished " : "", ago,
                       str(s, "approved_by") ? ", approved by " : "", strempty(str(s, "approved_by")));
}

static void pipeline_print(json_t *p, int64_t now) {
        _cleanup_free_ char *name = text_safe(str(p, "name")), *image = text_safe(str(p, "image"));
        _cleanup_free_ char *reason = str(p, "reason") ? text_safe(str(p, "reason")) : NULL;
        char buf[64];
        json_t *s;
        size_t i;

        field_print("Pipeline", "%" PRIi64 " %s", num(p, "id"), name ? name : "?");
        field_print("Image", "%s", image ? image : "?");
        field_print("State", "%s", strempty(str(p, "state")));
        if (streq_ptr(str(p, "state"), "running")) {
                field_print("Stage", "%s, %s since %s", strempty(str(p, "stage")), strempty(str(p, "phase")),
                            format_ago(buf, sizeof buf, num(p, "since"), now));
                if (json_object_get(p, "bake_ends") && num(p, "bake_ends") > now)
                        field_print("Bake", "%s left", format_duration(buf, sizeof buf,
                                                                      (uint64_t) (num(p, "bake_ends") - now)));
                if (json_is_true(json_object_get(p, "waiting_for_approval")))
                        field_print("Approval", "needed (slipctl pipeline approve %" PRIi64 ")", num(p, "id"));
        }
        if (reason)
                field_print("Reason", "%s", reason);
        field_print("Started", "%s by %s", format_ago(buf, sizeof buf, num(p, "created"), now),
                    strempty(str(p, "actor")));
        field_print("Stages", "%s", "");
        json_array_foreach(json_object_get(p, "stages"), i, s)
                stage_line(s, now);
}

int ctl_pipeline_start(Ctl *ctl, char **args) {
        _cleanup_error_ Error error = {};
        json_t *spec = NULL, *p = NULL;
        int r;

        r = ctl_pipeline_file(args[0], &spec, &error);
        if (r < 0)
                return error.message ? error_log(&error) : log_error_errno(r, "cannot read '%s': %m", args[0]);
        r = ctl_call(ctl, "POST", "/v1/pipelines", spec, &p, "cannot start the pipeline");
        json_decref(spec);
        if (r < 0)
                return r;
        if (ctl->json)
                r = ctl_print_json(p);
        else
                printf("pipeline %" PRIi64 " started: stage %s, rollout %" PRIi64 "\n", num(p, "id"),
                       strempty(str(p, "stage")), num(p, "rollout"));
        json_decref(p);
        return r;
}

int ctl_pipeline_list(Ctl *ctl, char **args _unused_) {
        static const char *const headers[] = { "ID", "NAME", "IMAGE", "STATE", "STAGE", "REASON" };
        _cleanup_table_free_ Table *t = NULL;
        json_t *reply = NULL, *p;
        size_t i;
        int r;

        r = ctl_call(ctl, "GET", "/v1/pipelines", NULL, &reply, "cannot list pipelines");
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t) {
                json_decref(reply);
                return log_oom();
        }
        json_array_foreach(json_object_get(reply, "pipelines"), i, p) {
                char id[32], stage[96];

                snprintf(id, sizeof id, "%" PRIi64, num(p, "id"));
                snprintf(stage, sizeof stage, "%s%s%s", strempty(str(p, "stage")), str(p, "phase") ? " " : "",
                         strempty(str(p, "phase")));
                r = table_add_row(t, (const char *const[]) { id, str(p, "name"), str(p, "image"), str(p, "state"),
                                                              stage, str(p, "reason") ? str(p, "reason") : "-" });
                if (r < 0)
                        break;
        }
        json_decref(reply);
        return table_print_listing(t, r, "no pipelines");
}

static char *pipeline_path(const char *id, const char *suffix) {
        uint64_t v;

        if (safe_atou64(id, &v) < 0 || v == 0) {
                log_error("'%s' is not a pipeline number", id);
                return NULL;
        }
        return ctl_path("/v1/pipelines/", id, suffix);
}

static void print_status(json_t *p, const char *id _unused_, const char *verb _unused_) {
        pipeline_print(p, (int64_t) time(NULL));
}

int ctl_pipeline_status(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = pipeline_path(args[0], NULL);

        return ctl_object_call(ctl, "GET", path, "pipeline", args[0], "show", print_status);
}

static void print_action(json_t *p, const char *id, const char *verb _unused_) {
        _cleanup_free_ char *reason = str(p, "reason") ? text_safe(str(p, "reason")) : NULL;

        printf("pipeline %s: %s, stage %s%s%s\n", id, strempty(str(p, "state")), strempty(str(p, "stage")),
               reason ? ": " : "", strempty(reason));
}

static int pipeline_action(Ctl *ctl, const char *id, const char *action) {
        _cleanup_free_ char *suffix = strdup_printf("/%s", action);
        _cleanup_free_ char *path = NULL;

        if (!suffix)
                return log_oom();
        path = pipeline_path(id, suffix);
        return ctl_object_call(ctl, "POST", path, "pipeline", id, action, print_action);
}

int ctl_pipeline_approve(Ctl *ctl, char **args) {
        return pipeline_action(ctl, args[0], "approve");
}

int ctl_pipeline_abort(Ctl *ctl, char **args) {
        return pipeline_action(ctl, args[0], "abort");
}
