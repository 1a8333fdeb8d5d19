/* slipctl rollout plan|start|list|status|pause|resume|abort|rollback: an
 * image moved to a set of hosts in waves, gated by the budgets
 * (docs/api.md, Coordination). rollout watch is in watch.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <time.h>

#include "ctl.h"
#include "log.h"
#include "table.h"
#include "util.h"

/* Plan: host IDs shown per wave before "+N more". */
#define PLAN_MEMBERS_SHOWN 4

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static int64_t num(json_t *o, const char *key) {
        return (int64_t) json_integer_value(json_object_get(o, key));
}

char *ctl_rollout_path(const char *id, const char *suffix) {
        uint64_t v;

        if (safe_atou64(id, &v) < 0 || v == 0 || v > INT64_MAX) {
                log_error("rollout ID: expected a rollout number (see rollout list), got '%s'", id);
                return NULL;
        }
        char *p = strdup_printf("/v1/rollouts/%" PRIu64 "%s%s", v, suffix ? "/" : "", strempty(suffix));
        if (!p)
                log_oom();
        return p;
}

/* The rollout spec from the command line (docs/api.md): only what was
 * given, so the server's defaults apply to the rest. */
static json_t *spec_new(Ctl *ctl, const char *image) {
        const CtlOptions *o = &ctl->opt;
        json_t *spec = json_object();
        int r = spec ? 0 : -ENOMEM;

        if (r >= 0 && image)
                r = json_object_set_new(spec, "image", json_string(image));
        if (r >= 0 && o->files)
                r = json_object_set_new(spec, "files", json_string(o->files));
        if (r >= 0 && o->selector)
                r = json_object_set(spec, "selector", o->selector);
        if (r >= 0 && o->waves)
                r = json_object_set(spec, "waves", o->waves);
        if (r >= 0 && o->bake >= 0)
                r = json_object_set_new(spec, "bake", json_integer(o->bake));
        if (r >= 0 && o->max_failures)
                r = json_object_set(spec, "max_failures", o->max_failures);
        if (r >= 0 && o->on_failure)
                r = json_object_set_new(spec, "on_failure", json_string(o->on_failure));
        if (r >= 0 && o->order)
                r = json_object_set(spec, "order", o->order);
        if (r >= 0 && o->windows)
                r = json_object_set(spec, "windows", o->windows);
        if (r >= 0 && o->budgets)
                r = json_object_set(spec, "budgets", o->budgets);
        if (r < 0) {
                json_decref(spec);
                return NULL;
        }
        return spec;
}

/* Appends to a growing string; on failure *s becomes NULL. */
static void append(char **s, const char *format, ...) _printf_(2, 3);
static void append(char **s, const char *format, ...) {
        _cleanup_free_ char *more = NULL;
        va_list ap;
        char *n;

        if (!*s)
                return;
        va_start(ap, format);
        if (vasprintf(&more, format, ap) < 0)
                more = NULL;
        va_end(ap);
        n = more ? strdup_printf("%s%s", *s, more) : NULL;
        free(*s);
        *s = n;
}

/* A JSON count or "N%" as text. */
static char *amount_text(json_t *v) {
        if (json_is_string(v))
                return strdup(json_string_value(v));
        return strdup_printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
}

/* A spec for people: "waves 1, 50%, 100%; bake 30 s; max failures 0; on
 * failure pause; selector rack=r1; order service: db, web". Caller frees. */
static char *spec_describe(json_t *spec) {
        json_t *waves = json_object_get(spec, "waves"), *v, *order = json_object_get(spec, "order");
        json_t *mf = json_object_get(spec, "max_failures");
        char *s = strdup("waves ");
        char dur[64];
        size_t i;

        if (json_array_size(waves) == 0)
                append(&s, "100%%");
        json_array_foreach(waves, i, v) {
                _cleanup_free_ char *t = amount_text(v);
                append(&s, "%s%s", i > 0 ? ", " : "", t ? t : "?");
        }
        append(&s, "; bake %s", format_duration(dur, sizeof(dur), (uint64_t) num(spec, "bake")));
        if (mf) {
                _cleanup_free_ char *t = amount_text(mf);
                append(&s, "; max failures %s", t ? t : "?");
        } else
                append(&s, "; max failures 0");
        append(&s, "; on failure %s", str(spec, "on_failure") ? str(spec, "on_failure") : "pause");
        if (json_object_size(json_object_get(spec, "selector")) > 0) {
                _cleanup_free_ char *sel = json_inline(json_object_get(spec, "selector"));
                append(&s, "; selector %s", sel ? sel : "?");
        }
        if (order) {
                append(&s, "; order %s:", strempty(str(order, "key")));
                json_array_foreach(json_object_get(order, "values"), i, v)
                        append(&s, "%s %s", i > 0 ? "," : "", strempty(json_string_value(v)));
        }
        const char *wk;
        json_object_foreach(json_object_get(spec, "windows"), wk, v)
                append(&s, "; reboots of %s %s UTC", wk, strempty(json_string_value(v)));
        if (json_object_size(json_object_get(spec, "budgets")) > 0) {
                _cleanup_free_ char *b = ctl_budgets_describe(json_object_get(spec, "budgets"));
                _cleanup_free_ char *t = b ? text_safe(b) : NULL;
                append(&s, "; budgets %s", t ? t : "?");
        }
        return s;
}

/* The entry for wave w (1-based) in a rollout's waves, or NULL: waves
 * without hosts are left out by the server. */
static json_t *wave_entry(json_t *waves, int64_t w) {
        json_t *e;
        size_t i;

        json_array_foreach(waves, i, e)
                if (num(e, "wave") == w)
                        return e;
        return NULL;
}

static int64_t waves_count(json_t *ro) {
        json_t *e;
        size_t i;
        int64_t n = num(ro, "waves_total");

        json_array_foreach(json_object_get(ro, "waves"), i, e)
                n = MAX(n, num(e, "wave"));
        return n;
}

/* Sum of one column of the waves table. */
static int64_t waves_sum(json_t *ro, const char *key) {
        json_t *e;
        size_t i;
        int64_t n = 0;

        json_array_foreach(json_object_get(ro, "waves"), i, e)
                n += num(e, key);
        return n;
}

char *ctl_rollout_summary(json_t *ro) {
        char *s = strdup_printf("rollout %" PRIi64 ": %s, wave %" PRIi64 "/%" PRIi64 ", %" PRIi64 " hosts: %" PRIi64
                                " pending, %" PRIi64 " assigned, %" PRIi64 " done, %" PRIi64 " failed",
                                num(ro, "id"), strempty(str(ro, "state")), num(ro, "wave"), num(ro, "waves_total"),
                                waves_sum(ro, "hosts"), waves_sum(ro, "pending"), waves_sum(ro, "assigned"),
                                waves_sum(ro, "done"), waves_sum(ro, "failed"));

        if (waves_sum(ro, "skipped") > 0)
                append(&s, ", %" PRIi64 " skipped", waves_sum(ro, "skipped"));
        if (str(ro, "reason"))
                append(&s, "; %s", str(ro, "reason"));
        return s;
}

static int print_waves(json_t *ro) {
        static const char *const headers[] = { "WAVE", "HOSTS", "PENDING", "ASSIGNED", "DONE", "FAILED", "SKIPPED" };
        static const char *const keys[] = { "hosts", "pending", "assigned", "done", "failed", "skipped" };
        _cleanup_table_free_ Table *t = table_new(ELEMENTSOF(headers), headers);
        int64_t n = waves_count(ro);

        if (!t)
                return -ENOMEM;
        for (int64_t w = 1; w <= n; w++) {
                json_t *e = wave_entry(json_object_get(ro, "waves"), w);
                char cells[ELEMENTSOF(headers)][24];
                const char *row[ELEMENTSOF(headers)];

                snprintf(cells[0], sizeof(cells[0]), "%" PRIi64, w);
                for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                        snprintf(cells[k + 1], sizeof(cells[k + 1]), "%" PRIi64, e ? num(e, keys[k]) : 0);
                for (size_t k = 0; k < ELEMENTSOF(headers); k++)
                        row[k] = cells[k];
                if (table_add_row(t, row) < 0)
                        return -ENOMEM;
        }
        table_print(t, stdout, true, NULL);
        return 0;
}

static int print_groups(json_t *ro) {
        static const char *const headers[] = { "GROUP", "HOSTS", "DONE", "FAILED", "DOWN" };
        _cleanup_table_free_ Table *t = table_new(ELEMENTSOF(headers), headers);
        json_t *g;
        size_t i;

        if (!t)
                return -ENOMEM;
        json_array_foreach(json_object_get(ro, "groups"), i, g) {
                char hosts[24], done[24], failed[24], down[24];

                snprintf(hosts, sizeof(hosts), "%" PRIi64, num(g, "hosts"));
                snprintf(done, sizeof(done), "%" PRIi64, num(g, "done"));
                snprintf(failed, sizeof(failed), "%" PRIi64, num(g, "failed"));
                snprintf(down, sizeof(down), "%" PRIi64, num(g, "down"));
                if (table_add_row(t, (const char *const[]) { str(g, "group"), hosts, done, failed, down }) < 0)
                        return -ENOMEM;
        }
        return table_print_listing(t, 0, "no budgeted groups among its hosts");
}

void ctl_rollout_print(json_t *ro, int64_t now) {
        _cleanup_free_ char *spec = spec_describe(json_object_get(ro, "spec"));
        char t1[64], t2[32];

        field_print("rollout", "%" PRIi64, num(ro, "id"));
        if (streq_ptr(str(ro, "kind"), "rollback")) {
                field_print("kind", "rollback of rollout %" PRIi64, num(ro, "rollback_of"));
                field_print("image", "what each host ran before rollout %" PRIi64, num(ro, "rollback_of"));
        } else {
                field_print("kind", "%s", strempty(str(ro, "kind")));
                field_print("image", "%s", str(ro, "image")           ? str(ro, "image")
                                           : json_object_get(json_object_get(ro, "spec"), "files") ? "each host's own"
                                                                                                  : "-");
        }
        if (json_object_get(json_object_get(ro, "spec"), "files")) {
                _cleanup_free_ char *f =
                        text_safe(json_string_value(json_object_get(json_object_get(ro, "spec"), "files")));
                field_print("files", "%s%s", strempty(f),
                            streq_ptr(str(ro, "kind"), "rollback") ? " (undone: back to the version before)" : "");
        }
        field_print("state", "%s", strempty(str(ro, "state")));
        field_print("reason", "%s", str(ro, "reason") ? str(ro, "reason") : "-");
        field_print("wave", "%" PRIi64 " of %" PRIi64, num(ro, "wave"), num(ro, "waves_total"));
        field_print("hosts", "%" PRIi64, waves_sum(ro, "hosts"));
        field_print("created", "%s (%s)", format_time(t1, sizeof(t1), num(ro, "created")),
                    format_ago(t2, sizeof(t2), num(ro, "created"), now));
        field_print("spec", "%s", spec ? spec : "?");
        printf("\n");
        if (print_waves(ro) < 0) {
                log_oom();
                return;
        }
        printf("\n");
        if (print_groups(ro) < 0)
                log_oom();
}

/* Prints a plan: the image, counts and estimate, then one row per wave. */
static int print_plan(Ctl *ctl, const char *ref, json_t *plan) {
        static const char *const headers[] = { "WAVE", "HOSTS", "TOTAL", "MEMBERS" };
        _cleanup_table_free_ Table *t = table_new(ELEMENTSOF(headers), headers);
        _cleanup_free_ char *label = ctl_image_label(ctl, str(plan, "image"));
        json_t *w, *h;
        int64_t total = 0;
        char dur[64];
        size_t i, j;

        if (!t)
                return log_oom();
        if (str(plan, "image"))
                field_print("image", "%s (%.12s)", label ? label : ref, strempty(str(plan, "image")));
        else
                field_print("image", "each host's own");
        if (json_object_get(plan, "files")) {
                json_t *f = json_object_get(plan, "files");
                _cleanup_free_ char *name = text_safe(str(f, "name"));
                field_print("files", "%s: version %" PRIi64 " (live now: %" PRIi64 ")", strempty(name),
                            num(f, "version"), num(f, "from"));
        }
        field_print("hosts", "%" PRIi64, num(plan, "hosts"));
        field_print("waves", "%zu", json_array_size(json_object_get(plan, "waves")));
        field_print("bake", "%s between waves", format_duration(dur, sizeof(dur), (uint64_t) num(plan, "bake")));
        field_print("estimate", "%s at best (a reboot per wave plus the bake times)",
                    format_duration(dur, sizeof(dur), (uint64_t) num(plan, "estimate_sec")));
        printf("\n");
        json_array_foreach(json_object_get(plan, "waves"), i, w) {
                json_t *hosts = json_object_get(w, "hosts");
                char wave[24], count[24], cum[24];
                char *members = strdup("");

                total += num(w, "hosts_count");
                snprintf(wave, sizeof(wave), "%" PRIi64, num(w, "wave"));
                snprintf(count, sizeof(count), "%" PRIi64, num(w, "hosts_count"));
                snprintf(cum, sizeof(cum), "%" PRIi64, total);
                json_array_foreach(hosts, j, h) {
                        if (j == PLAN_MEMBERS_SHOWN) {
                                append(&members, " +%zu more", json_array_size(hosts) - j);
                                break;
                        }
                        append(&members, "%s%s", j > 0 ? ", " : "", strempty(json_string_value(h)));
                }
                int r = members ? table_add_row(t, (const char *const[]) { wave, count, cum, members }) : -ENOMEM;
                free(members);
                if (r < 0)
                        return log_oom();
        }
        table_print(t, stdout, true, NULL);
        if (num(plan, "hosts") == 0)
                printf("\nno host matches: a rollout of this plan would be refused\n");
        return 0;
}

/* What a rollout of args moves, for messages: the image, the file set or
 * both. Caller frees. */
static char *rollout_what(Ctl *ctl, char **args) {
        if (args[0] && ctl->opt.files)
                return strdup_printf("'%s' with file set '%s'", args[0], ctl->opt.files);
        return strdup_printf(args[0] ? "'%s'" : "file set '%s'", args[0] ? args[0] : strempty(ctl->opt.files));
}

int ctl_rollout_plan(Ctl *ctl, char **args) {
        _cleanup_free_ char *moved = rollout_what(ctl, args);
        _cleanup_free_ char *what = strdup_printf("cannot plan a rollout of %s", strempty(moved));
        json_t *spec, *plan = NULL;
        int r;

        spec = spec_new(ctl, args[0]);
        if (!spec || !what) {
                json_decref(spec);
                return log_oom();
        }
        r = ctl_call(ctl, "POST", "/v1/rollouts/plan", spec, &plan, what);
        json_decref(spec);
        if (r < 0)
                return r;
        r = ctl->json ? ctl_print_json(plan) : print_plan(ctl, args[0] ? args[0] : "-", plan);
        json_decref(plan);
        return r;
}

int ctl_rollout_start(Ctl *ctl, char **args) {
        _cleanup_free_ char *moved = rollout_what(ctl, args);
        _cleanup_free_ char *what = strdup_printf("cannot start a rollout of %s", strempty(moved));
        _cleanup_free_ char *image = NULL, *files = NULL;
        json_t *spec, *ro = NULL;
        int r;

        spec = spec_new(ctl, args[0]);
        if (!spec || !what) {
                json_decref(spec);
                return log_oom();
        }
        r = ctl_call(ctl, "POST", "/v1/rollouts", spec, &ro, what);
        json_decref(spec);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(ro);
                json_decref(ro);
                return r;
        }
        if (str(ro, "image"))
                image = text_safe(str(ro, "image"));
        if (json_is_string(json_object_get(json_object_get(ro, "spec"), "files")))
                files = text_safe(json_string_value(json_object_get(json_object_get(ro, "spec"), "files")));
        printf("started rollout %" PRIi64 ": %s%s%s to %" PRIi64 " hosts in %" PRIi64 " waves\n\n", num(ro, "id"),
               image ? image : files ? "" : "?", image && files ? " with files " : files ? "files " : "",
               strempty(files), waves_sum(ro, "hosts"), num(ro, "waves_total"));
        ctl_rollout_print(ro, (int64_t) time(NULL));
        json_decref(ro);
        return 0;
}

int ctl_rollout_list(Ctl *ctl, char **args _unused_) {
        static const char *const headers[] = { "ID", "KIND", "STATE", "WAVE", "IMAGE", "HOSTS", "DONE", "CREATED" };
        _cleanup_table_free_ Table *t = NULL;
        json_t *reply = NULL, *ro;
        int64_t now = (int64_t) time(NULL);
        size_t i;
        int r;

        r = ctl_call(ctl, "GET", "/v1/rollouts", NULL, &reply, "cannot list rollouts");
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
        json_array_foreach(json_object_get(reply, "rollouts"), i, ro) {
                char id[24], wave[48], hosts[24], done[24], created[32];

                snprintf(id, sizeof(id), "%" PRIi64, num(ro, "id"));
                snprintf(wave, sizeof(wave), "%" PRIi64 "/%" PRIi64, num(ro, "wave"), num(ro, "waves_total"));
                snprintf(hosts, sizeof(hosts), "%" PRIi64, num(ro, "hosts"));
                snprintf(done, sizeof(done), "%" PRIi64, num(ro, "done"));
                format_ago(created, sizeof(created), num(ro, "created"), now);
                r = table_add_row(t, (const char *const[]) { id, str(ro, "kind"), str(ro, "state"), wave,
                                                              str(ro, "image"), hosts, done, created });
                if (r < 0)
                        break;
        }
        json_decref(reply);
        return table_print_listing(t, r, "no rollouts");
}

static void print_status(json_t *ro, const char *id _unused_, const char *verb _unused_) {
        ctl_rollout_print(ro, (int64_t) time(NULL));
}

int ctl_rollout_status(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_rollout_path(args[0], NULL);

        return ctl_object_call(ctl, "GET", path, "rollout", args[0], "show", print_status);
}

/* The server answers an action with the rollout (for a rollback: the new
 * rollout that moves the hosts back). */
static void print_action(json_t *ro, const char *id, const char *action) {
        _cleanup_free_ char *state = text_safe(str(ro, "state"));
        _cleanup_free_ char *reason = str(ro, "reason") ? text_safe(str(ro, "reason")) : NULL;

        if (streq(action, "rollback"))
                printf("rollout %s: rolled back by rollout %" PRIi64 ", which moves %" PRIi64
                       " host(s) back to what they ran\n",
                       id, num(ro, "id"), waves_sum(ro, "hosts"));
        else
                printf("rollout %s: %s%s%s%s\n", id, state ? state : "?", reason ? " (" : "", strempty(reason),
                       reason ? ")" : "");
}

static int rollout_action(Ctl *ctl, const char *id, const char *action) {
        _cleanup_free_ char *path = ctl_rollout_path(id, action);

        return ctl_object_call(ctl, "POST", path, "rollout", id, action, print_action);
}

int ctl_rollout_pause(Ctl *ctl, char **args) {
        return rollout_action(ctl, args[0], "pause");
}

int ctl_rollout_resume(Ctl *ctl, char **args) {
        return rollout_action(ctl, args[0], "resume");
}

int ctl_rollout_abort(Ctl *ctl, char **args) {
        return rollout_action(ctl, args[0], "abort");
}

int ctl_rollout_rollback(Ctl *ctl, char **args) {
        return rollout_action(ctl, args[0], "rollback");
}
