#include <inttypes.h>
#include <time.h>

#include "log.h"
#include "units.h"
#include "util.h"

/* What systemctl's answers keep at most. */
#define SYSTEMCTL_OUTPUT_MAX (64 * 1024)
#define BOOT_COMPLETE "boot-complete.target"

typedef struct UnitState {
        char *load;     /* LoadState: loaded, not-found, masked, ... */
        char *active;   /* ActiveState: active, activating, failed, ... */
        char *sub;      /* SubState */
} UnitState;

static void unit_states_free(UnitState *s, size_t n) {
        for (size_t i = 0; s && i < n; i++) {
                free(s[i].load);
                free(s[i].active);
                free(s[i].sub);
        }
        free(s);
}

typedef struct Verdicts {
        const HealthConfig *config;
        json_t *report;
        size_t *used;
        char *failed;
        uint64_t timeout_usec;
} Verdicts;

bool unit_name_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > 255 || name[0] == '-')
                return false;
        for (const char *p = name; *p; p++)
                if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
                    !strchr(":-_.\\@", *p))
                        return false;
        return true;
}

/* Notes the first required failure. */
static void verdicts_fail(Verdicts *v, char *reason) {
        if (!v->failed)
                v->failed = reason;
        else
                free(reason);
}

/* Records that a command the judgement needs could not run or failed. */
static void command_failed(Verdicts *v, const char *what, int r, const char *out) {
        _cleanup_free_ char *msg = NULL;

        if (r == -ETIMEDOUT)
                msg = strdup_printf("%s: timed out after %" PRIu64 " s", what, v->timeout_usec / 1000000);
        else if (r < 0)
                msg = strdup_printf("%s: cannot run: %s", what, strerror(-r));
        else
                msg = strdup_printf("%s: exit status %d: %s", what, r, isempty(out) ? "(no output)" : out);
        log_warning("%s", strempty(msg));
        health_report_add(v->report, v->used, what, json_pack("{s:b, s:b, s:i}", "required", true, "ok", false, "exit", r),
                          strempty(msg));
        verdicts_fail(v, strdup(strempty(msg)));
}

/* The last log lines of unit in this boot, or why there are none. */
static char *unit_log(Verdicts *v, const char *unit) {
        char lines[16];
        char *argv[] = { (char *) "journalctl", (char *) "--no-pager", (char *) "--no-hostname", (char *) "-b",
                         (char *) "-n", lines, (char *) "-u", (char *) unit, NULL };
        char *out = NULL;
        int r;

        snprintf(lines, sizeof lines, "%u", v->config->log_lines ? v->config->log_lines : 10);
        r = health_command(argv, v->timeout_usec, HEALTH_OUTPUT_MAX, true, &out);
        if (r == 0)
                return out;
        free(out);
        return strdup_printf("(no log: journalctl %s)", r < 0 ? strerror(-r) : "failed");
}

/* Reports unit: ok, or not and why (state), with its log lines. */
static void unit_verdict(Verdicts *v, const char *unit, bool required, bool ok, const char *state, const char *why) {
        _cleanup_free_ char *log = ok ? NULL : unit_log(v, unit);

        health_report_add(v->report, v->used, unit,
                          json_pack("{s:b, s:b, s:s}", "required", required, "ok", ok, "state", state), strempty(log));
        if (ok) {
                log_info("unit '%s' is %s", unit, state);
                return;
        }
        log_warning("unit '%s' (%s) %s", unit, required ? "required" : "reported", why);
        if (required)
                verdicts_fail(v, strdup_printf("%s %s; last log lines:\n%s", unit, why, strempty(log)));
}

/* systemctl show's answer for units: blocks of KEY=value lines, one per
 * unit in the order asked, separated by blank lines. Returns 0, or
 * systemctl's failure (recorded). */
static int show_states(Verdicts *v, char *const *units, size_t n, UnitState **ret) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *out = NULL;
        UnitState *s = calloc(n ? n : 1, sizeof *s);
        size_t i = 0;
        bool in_block = false;
        int r;

        if (!s || strv_extend(&argv, "systemctl") < 0 || strv_extend(&argv, "--no-pager") < 0 ||
            strv_extend(&argv, "show") < 0 || strv_extend(&argv, "--property=Id,LoadState,ActiveState,SubState") < 0 ||
            strv_extend(&argv, "--") < 0) {
                free(s);
                return -ENOMEM;
        }
        for (size_t k = 0; k < n; k++)
                if (strv_extend(&argv, units[k]) < 0) {
                        free(s);
                        return -ENOMEM;
                }
        r = health_command(argv, v->timeout_usec, SYSTEMCTL_OUTPUT_MAX, false, &out);
        if (r != 0) {
                command_failed(v, "systemctl show", r, out);
                free(s);
                return 1;
        }
        for (char *line = out, *next; line && *line && i < n; line = next) {
                char **field = NULL;
                const char *val;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (!*line) {
                        if (in_block)
                                i++;
                        in_block = false;
                        continue;
                }
                in_block = true;
                if ((val = startswith(line, "LoadState=")))
                        field = &s[i].load;
                else if ((val = startswith(line, "ActiveState=")))
                        field = &s[i].active;
                else if ((val = startswith(line, "SubState=")))
                        field = &s[i].sub;
                if (field && !*field && !(*field = strdup(val))) {
                        unit_states_free(s, n);
                        return -ENOMEM;
                }
        }
        *ret = s;
        return 0;
}

/* Why unit, in state s, is not what a required unit must be; NULL when it
 * is active. final: the deadline has come. */
static char *not_active_why(const UnitState *s, bool final) {
        if (!streq_ptr(s->load, "loaded"))
                return strdup_printf("is %s", s->load ? s->load : "unknown to systemctl");
        if (streq_ptr(s->active, "active"))
                return NULL;
        if (streq_ptr(s->active, "failed") || final)
                return strdup_printf("is %s (%s)%s", strempty(s->active), strempty(s->sub),
                                     final && !streq_ptr(s->active, "failed") ? " at the deadline" : "");
        return strdup("");
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t) (usec / 1000000), .tv_nsec = (long) (usec % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Waits until every required unit is active, one has failed or cannot be
 * (not found, masked), or the deadline. */
static int judge_required(Verdicts *v) {
        char *const *units = v->config->required_units;
        size_t n = strv_length(units);
        uint64_t poll = v->config->poll_usec ? v->config->poll_usec : 500 * 1000;
        UnitState *s = NULL;
        int r;

        for (;;) {
                bool final = now_usec() >= v->config->units_deadline, settled = true, broken = false;

                unit_states_free(s, n);
                s = NULL;
                r = show_states(v, units, n, &s);
                if (r != 0)
                        return r < 0 ? r : 0;
                for (size_t i = 0; i < n; i++) {
                        _cleanup_free_ char *why = not_active_why(&s[i], false);
                        if (why && !*why)
                                settled = false;
                        else if (why)
                                broken = true;
                }
                if (settled || broken || final) {
                        /* The broken ones first: the reason names one of them. */
                        for (int pass = 0; pass < 2; pass++)
                                for (size_t i = 0; i < n; i++) {
                                        _cleanup_free_ char *why = not_active_why(&s[i], final);
                                        const char *state = streq_ptr(s[i].load, "loaded") ? s[i].active : s[i].load;

                                        if (pass == 0 && why && *why)
                                                unit_verdict(v, units[i], true, false, strempty(state), why);
                                        else if (pass == 1 && !why)
                                                unit_verdict(v, units[i], true, true, "active", NULL);
                                        else if (pass == 1 && !*why)
                                                /* Still coming up when another broke:
                                                 * reported as it is, not waited for. */
                                                unit_verdict(v, units[i], true, false, strempty(state),
                                                             "is still coming up");
                                }
                        break;
                }
                uint64_t now = now_usec();
                sleep_usec(MIN(poll, v->config->units_deadline > now ? v->config->units_deadline - now : 0));
        }
        unit_states_free(s, n);
        return 0;
}

/* The units systemctl lists as failed (at most UNITS_FAILED_REPORTED, and
 * *ret_more counts the rest). Returns 0, 1 when systemctl failed
 * (recorded), negative errno. */
static int list_failed(Verdicts *v, char ***ret, size_t *ret_more) {
        char *argv[] = { (char *) "systemctl", (char *) "--no-pager", (char *) "list-units", (char *) "--state=failed",
                         (char *) "--plain", (char *) "--no-legend", NULL };
        _cleanup_free_ char *out = NULL;
        _cleanup_strv_free_ char **l = NULL;
        size_t more = 0;
        int r;

        r = health_command(argv, v->timeout_usec, SYSTEMCTL_OUTPUT_MAX, false, &out);
        if (r != 0) {
                command_failed(v, "systemctl list-units", r, out);
                return 1;
        }
        for (char *line = out, *next; line && *line; line = next) {
                _cleanup_strv_free_ char **w = NULL;
                size_t k = 0;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                w = strv_split_words(line);
                if (!w)
                        return -ENOMEM;
                /* Without --plain, or in older versions, a marker comes first. */
                if (w[0] && !unit_name_valid(w[0]))
                        k = 1;
                if (!w[k] || !unit_name_valid(w[k]))
                        continue;
                if (strv_length(l) >= UNITS_FAILED_REPORTED)
                        more++;
                else if (strv_extend(&l, w[k]) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        *ret_more = more;
        return 0;
}

/* Every failed unit, reported with its log lines; required: the failure
 * decides. */
static int judge_failed(Verdicts *v, bool required) {
        _cleanup_strv_free_ char **failed = NULL;
        size_t more = 0;
        int r = list_failed(v, &failed, &more);

        if (r != 0)
                return r < 0 ? r : 0;
        for (size_t i = 0; failed && failed[i]; i++)
                unit_verdict(v, failed[i], required, false, "failed", "is failed");
        if (more > 0) {
                _cleanup_free_ char *msg = strdup_printf("%zu more failed units not shown", more);
                health_report_add(v->report, v->used, "failed units not shown",
                                  json_pack("{s:b, s:b, s:I}", "required", required, "ok", false, "count",
                                            (json_int_t) more),
                                  strempty(msg));
        }
        return 0;
}

/* boot-complete.target's Requires=, as systemd-bless-boot.service would
 * wait for them. */
static int boot_complete_requires(Verdicts *v, char ***ret) {
        char *argv[] = { (char *) "systemctl", (char *) "--no-pager", (char *) "show", (char *) "--property=Requires",
                         (char *) "--value", (char *) BOOT_COMPLETE, NULL };
        _cleanup_free_ char *out = NULL;
        int r = health_command(argv, v->timeout_usec, SYSTEMCTL_OUTPUT_MAX, false, &out);

        if (r != 0) {
                command_failed(v, "systemctl show " BOOT_COMPLETE, r, out);
                return 1;
        }
        *ret = strv_split_words(out);
        return *ret ? 0 : -ENOMEM;
}

/* Names the units boot-complete.target requires that failed. Returns how
 * many, or negative errno. */
static int report_failed_requires(Verdicts *v, char **requires) {
        UnitState *s = NULL;
        size_t n = MIN(strv_length(requires), (size_t) UNITS_MAX);
        int r, count = 0;

        if (n == 0)
                return 0;
        r = show_states(v, requires, n, &s);
        if (r != 0)
                return r < 0 ? r : 0;
        for (size_t i = 0; i < n; i++)
                if (streq_ptr(s[i].active, "failed")) {
                        unit_verdict(v, requires[i], true, false, "failed",
                                     "is failed, and " BOOT_COMPLETE " requires it");
                        count++;
                }
        unit_states_free(s, n);
        return count;
}

/* boot-complete.target reached: the agent pulls it in and waits for it,
 * as systemd-bless-boot.service does by requiring it. A unit it requires
 * that already failed fails it without being started again. */
static int judge_boot_complete(Verdicts *v) {
        char *argv[] = { (char *) "systemctl", (char *) "--no-pager", (char *) "start", (char *) BOOT_COMPLETE, NULL };
        _cleanup_strv_free_ char **requires = NULL;
        _cleanup_free_ char *out = NULL, *why = NULL;
        uint64_t now, limit;
        int r;

        r = boot_complete_requires(v, &requires);
        if (r != 0)
                return r < 0 ? r : 0;
        r = report_failed_requires(v, requires);
        if (r < 0)
                return r;
        if (r == 0) {
                /* Past the deadline it still gets a moment: reached already is
                 * an answer systemctl gives at once. */
                now = now_usec();
                limit = MAX(v->config->units_deadline > now ? v->config->units_deadline - now : 0, 1000000ULL);
                r = health_command(argv, limit, HEALTH_OUTPUT_MAX, false, &out);
                if (r == 0) {
                        unit_verdict(v, BOOT_COMPLETE, true, true, "active", NULL);
                        return 0;
                }
                /* systemctl's one-line message, without its newline. */
                if (out) {
                        size_t n = strlen(out);
                        while (n > 0 && strchr(" \t\n", out[n - 1]))
                                out[--n] = 0;
                }
                why = r == -ETIMEDOUT ? strdup("not reached by the deadline")
                                      : strdup_printf("not reached: %s", isempty(out) ? strerror(r < 0 ? -r : EIO) : out);
                /* Which of its units failed on the way. */
                r = report_failed_requires(v, requires);
                if (r < 0)
                        return r;
        } else
                why = strdup_printf("not reached: %d unit%s it requires failed", r, r == 1 ? "" : "s");
        if (!why)
                return -ENOMEM;
        log_warning("%s %s", BOOT_COMPLETE, why);
        health_report_add(v->report, v->used, BOOT_COMPLETE,
                          json_pack("{s:b, s:b, s:s}", "required", true, "ok", false, "state", "inactive"), why);
        verdicts_fail(v, strdup_printf("%s %s", BOOT_COMPLETE, why));
        return 0;
}

int units_judge(const HealthConfig *c, json_t *report, size_t *used, char **ret_failed) {
        Verdicts v = { .config = c, .report = report, .used = used, .timeout_usec = c->timeout_sec * 1000000ULL };
        int r = 0;

        if (c->required_units)
                r = judge_required(&v);
        if (r >= 0 && c->boot_complete)
                r = judge_boot_complete(&v);
        if (r >= 0 && c->no_failed_units)
                r = judge_failed(&v, true);
        if (r < 0) {
                free(v.failed);
                return r;
        }
        if (!v.failed)
                return 1;
        *ret_failed = v.failed;
        return 0;
}
