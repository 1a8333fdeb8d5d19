/* Rollouts: a set of hosts moved to an image in waves. The waves only say
 * who may start; the reboot leases (coordinator.c) say who may go down. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit.h"
#include "coordinator.h"
#include "hosts.h"
#include "images.h"
#include "log.h"
#include "rollout.h"
#include "util.h"
#include "store-sqlite.h"

static const char *const spec_members[] = { "image", "selector", "waves", "bake", "max_failures", "on_failure",
                                            "order", "windows", NULL };

/* Sets *ret_error to a message made from format; returns -EINVAL, or
 * -ENOMEM when the message cannot be made. */
static int spec_error(char **ret_error, const char *format, ...) _printf_(2, 3);
static int spec_error(char **ret_error, const char *format, ...) {
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
                return spec_error(ret_error, "expected a JSON object");
        json_object_foreach(j, key, v) {
                bool known = false;
                for (i = 0; spec_members[i]; i++)
                        known |= streq(spec_members[i], key);
                if (!known)
                        return spec_error(ret_error, "unknown member '%s'", key);
        }
        s.image = json_string_value(json_object_get(j, "image"));
        if (!s.image || !*s.image)
                return spec_error(ret_error, "'image': an image reference is required");
        s.selector = json_object_get(j, "selector");
        if (s.selector && (!json_is_object(s.selector) || json_object_size(s.selector) > ROLLOUT_SELECTOR_MAX))
                return spec_error(ret_error, "'selector': expected {\"KEY\": \"VALUE\"} with at most %d labels",
                                  ROLLOUT_SELECTOR_MAX);
        json_object_foreach(s.selector, key, v)
                if (!hosts_label_valid(key) || !hosts_label_valid(json_string_value(v)))
                        return spec_error(ret_error, "'selector': label '%s' is not KEY: VALUE of [A-Za-z0-9._-]", key);
        waves = json_object_get(j, "waves");
        if (!waves) {
                s.n_waves = 1;
                s.wave_count[0] = -1;
                s.wave_pct[0] = 100;
        } else if (!json_is_array(waves) || json_array_size(waves) == 0 || json_array_size(waves) > ROLLOUT_WAVES_MAX)
                return spec_error(ret_error, "'waves': expected 1 to %d counts or percentages", ROLLOUT_WAVES_MAX);
        json_array_foreach(waves, i, v)
                if (budget_parse_json(v, &s.wave_count[i], &s.wave_pct[i]) < 0)
                        return spec_error(ret_error,
                                          "'waves': item %zu is not a count (0 to %d) or a percentage (\"0%%\" to "
                                          "\"100%%\")",
                                          i + 1, INT32_MAX);
        if (waves)
                s.n_waves = json_array_size(waves);
        v = json_object_get(j, "bake");
        if (v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > ROLLOUT_BAKE_MAX))
                return spec_error(ret_error, "'bake': expected seconds, 0 to %d (30 days)", ROLLOUT_BAKE_MAX);
        s.bake = v ? (uint64_t) json_integer_value(v) : 0;
        mf = json_object_get(j, "max_failures");
        if (mf && budget_parse_json(mf, &s.fail_count, &s.fail_pct) < 0)
                return spec_error(ret_error, "'max_failures': expected a count (0 to %d) or a percentage", INT32_MAX);
        of = json_string_value(json_object_get(j, "on_failure"));
        if (json_object_get(j, "on_failure") && (!of || (!streq(of, "pause") && !streq(of, "rollback"))))
                return spec_error(ret_error, "'on_failure': expected \"pause\" or \"rollback\"");
        s.rollback_on_failure = of && streq(of, "rollback");
        order = json_object_get(j, "order");
        if (order) {
                s.order_key = json_string_value(json_object_get(order, "key"));
                s.order_values = json_object_get(order, "values");
                bool ok = json_is_object(order) && json_object_size(order) == 2 && hosts_label_valid(s.order_key) &&
                          json_is_array(s.order_values) && json_array_size(s.order_values) <= ROLLOUT_ORDER_VALUES_MAX;
                json_array_foreach(s.order_values, i, v)
                        ok = ok && hosts_label_valid(json_string_value(v));
                if (!ok)
                        return spec_error(ret_error,
                                          "'order': expected {\"key\": \"service\", \"values\": [\"a\", \"b\"]}, at "
                                          "most %d label values",
                                          ROLLOUT_ORDER_VALUES_MAX);
        }
        v = json_object_get(j, "windows");
        if (v && (!json_is_object(v) || json_object_size(v) > ROLLOUT_WINDOWS_MAX))
                return spec_error(ret_error,
                                  "'windows': expected {\"rack\": \"22:00-04:00\"} (a label key or KEY=VALUE per "
                                  "window), at most %d windows",
                                  ROLLOUT_WINDOWS_MAX);
        json_object_foreach(v, key, w) {
                int a, b;
                if (!coord_selector_valid(key))
                        return spec_error(ret_error, "'windows': '%s' is not a label key or KEY=VALUE of [A-Za-z0-9._-]",
                                          key);
                if (window_parse(json_string_value(w), &a, &b) < 0)
                        return spec_error(ret_error,
                                          "'windows': the window of '%s' is not \"HH:MM-HH:MM\" (UTC, start and end "
                                          "differ)",
                                          key);
        }
        *ret = s;
        return 0;
}

/* rollout_spec_parse(), then the image resolved into ret_image. -ENXIO
 * when there is no such image. */
static int spec_parse_resolve(StoreTx *tx, json_t *j, RolloutSpec *ret, char ret_image[65], char **ret_error) {
        RolloutSpec s;
        int r;

        r = rollout_spec_parse(j, &s, ret_error);
        if (r < 0)
                return r;
        r = images_resolve(tx, s.image, ret_image);
        if (r == -ENOENT)
                return spec_error(ret_error, "'image': %s: no such image", s.image) == -EINVAL ? -ENXIO : -ENOMEM;
        if (r == -EINVAL || r == -ENOTUNIQ)
                return spec_error(ret_error, "'image': %s: %s", s.image,
                                  r == -EINVAL ? "not an image reference" : "the prefix matches several images");
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

typedef struct Member {
        char id[16];
        int phase;
        /* Where it falls in its budgeted groups, 0 to 1: in the group of
         * its phase's bottleneck key, and the latest in any other. */
        double spread, spread_other;
        char *image; /* what it runs (when the catalog has it) or was last assigned */
} Member;

static int member_compare_id(const void *a, const void *b) {
        const Member *x = a, *y = b;
        if (x->phase != y->phase)
                return x->phase < y->phase ? -1 : 1;
        return strcmp(x->id, y->id);
}

static int member_compare(const void *a, const void *b) {
        const Member *x = a, *y = b;
        if (x->phase != y->phase)
                return x->phase < y->phase ? -1 : 1;
        if (x->spread != y->spread)
                return x->spread < y->spread ? -1 : 1;
        if (x->spread_other != y->spread_other)
                return x->spread_other < y->spread_other ? -1 : 1;
        return strcmp(x->id, y->id);
}

/* Spreads each phase's hosts evenly over the groups that have budgets, so
 * that every wave takes its share of each rack (or other budgeted group)
 * instead of what the host IDs happen to give: a wave lasts as long as its
 * busiest group. Per phase, the bottleneck key is the one whose group needs
 * the most turns (its hosts in the phase over the hosts it may have down).
 * A host's place in a group is (rank + 1/2) / size, ranked within the group
 * and phase in ID order; hosts go in order of their place in the
 * bottleneck key's group, then of their latest place in another. So every
 * prefix, and every wave, holds each bottleneck group's hosts to within one
 * of its share. m is sorted by phase and ID. */
static int spread_members(StoreTx *tx, Member *m, size_t n) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        /* index: host ID -> member; groups: "phase key=value" -> {key, value,
         * phase, n, rank}; bottleneck: "phase" -> {key, turns}. */
        json_t *index = json_object(), *groups = json_object(), *bottleneck = json_object(), *g;
        const char *name;
        int r;

        if (!index || !groups || !bottleneck) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                json_object_set_new(index, m[i].id, json_integer((json_int_t) i));
        r = db_prepare(db,
                       "SELECT host_id, key, value FROM host_labels WHERE key IN (SELECT CASE WHEN instr(selector, "
                       "'=') > 0 THEN substr(selector, 1, instr(selector, '=') - 1) ELSE selector END FROM budgets) "
                       "ORDER BY host_id, key",
                       &st);
        if (r < 0)
                goto out;
        /* Twice over the labels: the groups' sizes per phase, then places. */
        for (int pass = 0; pass < 2; pass++) {
                while ((r = db_step(st)) > 0) {
                        json_t *ix = json_object_get(index, (const char *) sqlite3_column_text(st, 0));
                        const char *key = (const char *) sqlite3_column_text(st, 1);
                        const char *value = (const char *) sqlite3_column_text(st, 2);
                        if (!ix)
                                continue;
                        Member *x = &m[json_integer_value(ix)];
                        _cleanup_free_ char *gname = strdup_printf("%d %s=%s", x->phase, key, value);
                        if (!gname) {
                                r = -ENOMEM;
                                goto out;
                        }
                        g = json_object_get(groups, gname);
                        if (pass == 0) {
                                if (!g)
                                        json_object_set_new(groups, gname,
                                                            g = json_pack("{s:s, s:s, s:i, s:I, s:I}", "key", key,
                                                                          "value", value, "phase", x->phase, "n",
                                                                          (json_int_t) 0, "rank", (json_int_t) 0));
                                json_object_set_new(g, "n", json_integer(json_integer_value(json_object_get(g, "n")) + 1));
                                continue;
                        }
                        json_int_t rank = json_integer_value(json_object_get(g, "rank"));
                        json_object_set_new(g, "rank", json_integer(rank + 1));
                        double place = ((double) rank + 0.5) / (double) json_integer_value(json_object_get(g, "n"));
                        char phase[16];
                        snprintf(phase, sizeof phase, "%d", x->phase);
                        if (streq_ptr(json_string_value(json_object_get(json_object_get(bottleneck, phase), "key")), key))
                                x->spread = place;
                        else
                                x->spread_other = MAX(x->spread_other, place);
                }
                if (r < 0)
                        goto out;
                sqlite3_reset(st);
                r = 0;
                if (pass > 0)
                        break;
                /* Per phase, the key of the group that needs the most turns;
                 * a tie goes to the first key by name. */
                json_object_foreach(groups, name, g) {
                        const char *key = json_string_value(json_object_get(g, "key"));
                        int64_t allowed = 0;
                        char phase[16];

                        r = coord_group_allowed(tx, key, json_string_value(json_object_get(g, "value")), &allowed);
                        if (r < 0)
                                goto out;
                        double turns = (double) json_integer_value(json_object_get(g, "n")) / (double) MAX(allowed, 1);
                        snprintf(phase, sizeof phase, "%d", (int) json_integer_value(json_object_get(g, "phase")));
                        json_t *b = json_object_get(bottleneck, phase);
                        double bt = json_real_value(json_object_get(b, "turns"));
                        if (!b || turns > bt ||
                            (turns == bt && strcmp(key, json_string_value(json_object_get(b, "key"))) < 0))
                                json_object_set_new(bottleneck, phase, json_pack("{s:s, s:f}", "key", key, "turns", turns));
                }
                r = 0;
        }
out:
        json_decref(index);
        json_decref(groups);
        json_decref(bottleneck);
        return r;
}

static void members_free(Member *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(m[i].image);
        free(m);
}

/* The hosts the spec selects, in rollout order. */
static int select_members(StoreTx *tx, const RolloutSpec *s, Member **ret, size_t *ret_n) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sel = NULL;
        Member *m = NULL;
        size_t n = 0, cap = 0;
        int r;

        sel = s->selector ? json_dumps(s->selector, JSON_COMPACT) : strdup("{}");
        if (!sel)
                return -ENOMEM;
        /* Every selector label must match; the phase comes from the order key.
         * What a host goes back to in a rollback is the image it runs when
         * the catalog has it; a check-in may name one it does not have
         * (docs/api.md), and that can never be assigned: then the image it
         * was assigned. */
        r = db_prepare(db,
                       "SELECT h.id, coalesce((SELECT i.id FROM images i WHERE i.id = h.current_image), h.image), "
                       "(SELECT l.value FROM host_labels l WHERE "
                       "l.host_id = h.id AND l.key = ?2) FROM hosts h WHERE NOT EXISTS (SELECT 1 FROM json_each(?1) "
                       "j WHERE NOT EXISTS (SELECT 1 FROM host_labels l WHERE l.host_id = h.id AND l.key = j.key AND "
                       "l.value = j.value)) ORDER BY h.id",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, sel, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->order_key, -1, SQLITE_STATIC);
        while ((r = db_step(st)) > 0) {
                const char *pv = (const char *) sqlite3_column_text(st, 2);
                size_t i;
                json_t *v;
                if (n == cap) {
                        Member *x = realloc(m, (cap = cap ? cap * 2 : 64) * sizeof *m);
                        if (!x) {
                                members_free(m, n);
                                return -ENOMEM;
                        }
                        m = x;
                }
                m[n] = (Member) {};
                snprintf(m[n].id, sizeof m[n].id, "%s", (const char *) sqlite3_column_text(st, 0));
                m[n].image = db_column_strdup(st, 1);
                json_array_foreach(s->order_values, i, v)
                        if (pv && streq_ptr(json_string_value(v), pv))
                                m[n].phase = (int) i;
                n++;
        }
        if (r < 0) {
                members_free(m, n);
                return r;
        }
        if (n > 0) {
                qsort(m, n, sizeof *m, member_compare_id);
                r = spread_members(tx, m, n);
                if (r < 0) {
                        members_free(m, n);
                        return r;
                }
                qsort(m, n, sizeof *m, member_compare);
        }
        *ret = m;
        *ret_n = n;
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

static int wave_of(const size_t ends[ROLLOUT_WAVES_MAX], size_t n_waves, size_t i) {
        for (size_t w = 0; w < n_waves; w++)
                if (i < ends[w])
                        return (int) w;
        return (int) n_waves - 1;
}

int coord_rollout_plan(StoreTx *tx, const CoordConfig *c _unused_, json_t *spec, uint64_t reboot_estimate,
                       json_t **ret_plan, char **ret_error) {
        size_t n = 0, ends[ROLLOUT_WAVES_MAX];
        char image[65];
        Member *m = NULL;
        json_t *waves;
        RolloutSpec s;
        int r;

        r = spec_parse_resolve(tx, spec, &s, image, ret_error);
        if (r < 0)
                return r;
        r = select_members(tx, &s, &m, &n);
        if (r < 0)
                return r;
        rollout_wave_ends(&s, n, ends);
        waves = json_array();
        for (size_t w = 0, i = 0; w < s.n_waves; w++) {
                json_t *hosts = json_array();
                size_t count = 0;
                for (; i < ends[w]; i++, count++)
                        json_array_append_new(hosts, json_string(m[i].id));
                json_array_append_new(waves, json_pack("{s:i, s:I, s:o}", "wave", (int) w + 1, "hosts_count",
                                                       (json_int_t) count, "hosts", hosts));
        }
        members_free(m, n);
        *ret_plan = json_pack("{s:s, s:I, s:o, s:I, s:I}", "image", image, "hosts", (json_int_t) n, "waves", waves,
                              "bake", (json_int_t) s.bake, "estimate_sec",
                              (json_int_t) MIN(rollout_estimate(&s, ends, reboot_estimate), (uint64_t) INT64_MAX));
        return 0;
}

int coord_rollout_start(StoreTx *tx, const CoordConfig *c _unused_, json_t *spec, const char *actor, uint64_t now,
                        int64_t *ret_id, char **ret_error) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *busy = NULL, *ins = NULL, *row = NULL;
        _cleanup_free_ char *spec_text = NULL;
        size_t n = 0, ends[ROLLOUT_WAVES_MAX];
        char image[65];
        Member *m = NULL;
        int64_t id;
        RolloutSpec s;
        int r;

        r = spec_parse_resolve(tx, spec, &s, image, ret_error);
        if (r < 0)
                return r;
        r = select_members(tx, &s, &m, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                *ret_error = strdup("the selector matches no host");
                return -ENOENT;
        }
        /* One active rollout per host: a done rollout still assigns the
         * hosts that were away when it comes back. */
        r = db_prepare(db,
                       "SELECT rh.host_id, r.id FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id WHERE "
                       "r.state IN ('running', 'paused', 'done') AND rh.status IN ('pending', 'assigned') AND "
                       "rh.host_id = ?",
                       &busy);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                sqlite3_bind_text(busy, 1, m[i].id, -1, SQLITE_STATIC);
                r = db_step(busy);
                if (r > 0) {
                        *ret_error = strdup_printf("host %s is still in rollout %lld", m[i].id,
                                                   (long long) sqlite3_column_int64(busy, 1));
                        r = -EBUSY;
                }
                sqlite3_reset(busy);
        }
        spec_text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
        if (r >= 0 && !spec_text)
                r = -ENOMEM;
        if (r >= 0)
                r = db_prepare(db,
                               "INSERT INTO rollouts (kind, image, spec, state, n_waves, actor, created) VALUES "
                               "('rollout', ?, ?, 'running', ?, ?, ?)",
                               &ins);
        if (r >= 0) {
                sqlite3_bind_text(ins, 1, image, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, spec_text, -1, SQLITE_STATIC);
                sqlite3_bind_int(ins, 3, (int) s.n_waves);
                sqlite3_bind_text(ins, 4, actor, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 5, (sqlite3_int64) now);
                r = db_step(ins);
        }
        id = sqlite3_last_insert_rowid(db);
        rollout_wave_ends(&s, n, ends);
        if (r >= 0)
                r = db_prepare(db,
                               "INSERT INTO rollout_hosts (rollout_id, host_id, wave, phase, target, prev_image, status) "
                               "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                               &row);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                sqlite3_bind_int64(row, 1, id);
                sqlite3_bind_text(row, 2, m[i].id, -1, SQLITE_STATIC);
                sqlite3_bind_int(row, 3, wave_of(ends, s.n_waves, i));
                sqlite3_bind_int(row, 4, m[i].phase);
                sqlite3_bind_text(row, 5, image, -1, SQLITE_STATIC);
                sqlite3_bind_text(row, 6, m[i].image, -1, SQLITE_STATIC);
                r = db_step(row);
                sqlite3_reset(row);
        }
        members_free(m, n);
        if (r >= 0) {
                json_t *d = json_pack("{s:O, s:I}", "spec", spec, "hosts", (json_int_t) n);
                _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
                r = audit_log(tx, actor, "rollout.start", target, d);
                json_decref(d);
        }
        if (r >= 0)
                *ret_id = id;
        return r;
}

static int rollout_set_state(StoreTx *tx, int64_t id, const char *state, const char *reason, const char *actor,
                             uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        bool final = streq(state, "done") || streq(state, "aborted");
        json_t *d;
        int r;

        r = db_prepare(db, "UPDATE rollouts SET state = ?, reason = ?, finished = ? WHERE id = ?", &up);
        if (r < 0)
                return r;
        sqlite3_bind_text(up, 1, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, reason, -1, SQLITE_STATIC);
        if (final)
                sqlite3_bind_int64(up, 3, (sqlite3_int64) now);
        sqlite3_bind_int64(up, 4, id);
        r = db_step(up);
        if (r < 0)
                return r;
        d = json_pack("{s:s, s:s?}", "state", state, "reason", reason);
        r = audit_log(tx, actor, streq(state, "running") ? "rollout.resume" : streq(state, "paused") ? "rollout.pause"
                                 : streq(state, "done") ? "rollout.done" : "rollout.abort",
                      target, d);
        json_decref(d);
        return r;
}

/* What a tick reads of a rollout. */
typedef struct RolloutRow {
        char *kind, *state, *spec;
        int wave, n_waves;
        bool has_done_at;
        uint64_t done_at;
} RolloutRow;

static void rollout_row_release(RolloutRow *row) {
        free(row->kind);
        free(row->state);
        free(row->spec);
        *row = (RolloutRow) {};
}

static int rollout_row_read(sqlite3 *db, int64_t id, RolloutRow *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        RolloutRow row = {};
        int r;

        r = db_prepare(db, "SELECT kind, state, wave, n_waves, wave_done_at, spec FROM rollouts WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        row = (RolloutRow) { .kind = db_column_strdup(st, 0), .state = db_column_strdup(st, 1),
                             .spec = db_column_strdup(st, 5), .wave = sqlite3_column_int(st, 2),
                             .n_waves = sqlite3_column_int(st, 3),
                             .has_done_at = sqlite3_column_type(st, 4) != SQLITE_NULL,
                             .done_at = (uint64_t) sqlite3_column_int64(st, 4) };
        if (!row.kind || !row.state || !row.spec) {
                rollout_row_release(&row);
                return -ENOMEM;
        }
        *ret = row;
        return 0;
}

/* Host h of rollout id is skipped: its message and the audit log say why. */
static int skip_host(StoreTx *tx, int64_t id, const char *h, const char *why, const char *actor) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        json_t *d;
        int r;

        if (!target)
                return -ENOMEM;
        r = db_prepare(db, "UPDATE rollout_hosts SET status = 'skipped', message = ?3 WHERE rollout_id = ?1 AND "
                           "host_id = ?2", &up);
        if (r < 0)
                return r;
        sqlite3_bind_int64(up, 1, id);
        sqlite3_bind_text(up, 2, h, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 3, why, -1, SQLITE_STATIC);
        r = db_step(up);
        if (r < 0)
                return r;
        log_warning("rollout %" PRIi64 ": host %s skipped: %s", id, h, why);
        d = json_pack("{s:s, s:s}", "host", h, "reason", why);
        r = d ? audit_log(tx, actor, "rollout.skip", target, d) : -ENOMEM;
        json_decref(d);
        return r;
}

/* Why host h cannot be sent to image target (which the catalog has when
 * known), or NULL when it can; caller frees. */
static char *unassignable(const char *target, bool known, int64_t busy_in) {
        if (!known)
                return strdup_printf("its image %.12s is not in the catalog (unknown or deleted)", strempty(target));
        if (busy_in > 0)
                return strdup_printf("it is in rollout %" PRIi64, busy_in);
        return NULL;
}

/* The new rollback nid of rollout id skips the hosts it cannot send back:
 * those whose previous image the catalog does not have (a check-in may
 * name any image; an image may have been deleted before that was
 * refused), and those another rollout has taken on since. */
static int rollback_skip_unassignable(StoreTx *tx, int64_t nid, int64_t id, const char *actor) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_strv_free_ char **skip = NULL;
        int r;

        r = db_prepare(db,
                       "SELECT rh.host_id, rh.target, EXISTS (SELECT 1 FROM images i WHERE i.id = rh.target), "
                       "(SELECT o.rollout_id FROM rollout_hosts o JOIN rollouts ro ON ro.id = o.rollout_id WHERE "
                       "o.host_id = rh.host_id AND o.rollout_id NOT IN (?1, ?2) AND o.status IN ('pending', "
                       "'assigned') AND ro.state IN ('running', 'paused', 'done') LIMIT 1) FROM rollout_hosts rh "
                       "WHERE rh.rollout_id = ?1 ORDER BY rh.host_id",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, nid);
        sqlite3_bind_int64(st, 2, id);
        /* Read first, then written: the rows are the ones being read. */
        while ((r = db_step(st)) > 0) {
                char *why = unassignable((const char *) sqlite3_column_text(st, 1), sqlite3_column_int(st, 2),
                                         sqlite3_column_int64(st, 3));
                if (!why)
                        continue;
                if (strv_extend(&skip, (const char *) sqlite3_column_text(st, 0)) < 0) {
                        free(why);
                        return -ENOMEM;
                }
                if (strv_consume(&skip, why) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && skip && skip[i]; i += 2)
                r = skip_host(tx, nid, skip[i], skip[i + 1], actor);
        return r;
}

static int rollout_rollback(StoreTx *tx, int64_t id, const char *actor, uint64_t now, const char *reason,
                            int64_t *ret_new) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *rows = NULL;
        _cleanup_(rollout_row_release) RolloutRow row = {};
        _cleanup_free_ char *target = NULL;
        int64_t nid;
        int r;

        r = rollout_row_read(db, id, &row);
        if (r < 0)
                return r;
        r = db_prepare(db,
                       "INSERT INTO rollouts (kind, image, spec, state, n_waves, rollback_of, actor, created) VALUES "
                       "('rollback', NULL, ?, 'running', ?, ?, ?, ?)",
                       &ins);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 1, row.spec, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 2, row.n_waves);
        sqlite3_bind_int64(ins, 3, id);
        sqlite3_bind_text(ins, 4, actor, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, (sqlite3_int64) now);
        r = db_step(ins);
        if (r < 0)
                return r;
        nid = sqlite3_last_insert_rowid(db);
        /* The hosts the rollout touched go back to what they ran, in the same waves. */
        r = db_prepare(db,
                       "INSERT INTO rollout_hosts (rollout_id, host_id, wave, phase, target, prev_image, status) "
                       "SELECT ?1, host_id, wave, phase, prev_image, target, 'pending' FROM rollout_hosts WHERE "
                       "rollout_id = ?2 AND status IN ('assigned', 'done', 'failed') AND prev_image IS NOT NULL",
                       &rows);
        if (r < 0)
                return r;
        sqlite3_bind_int64(rows, 1, nid);
        sqlite3_bind_int64(rows, 2, id);
        r = db_step(rows);
        if (r >= 0)
                r = rollback_skip_unassignable(tx, nid, id, actor);
        if (r >= 0) {
                _cleanup_free_ char *why = strdup_printf("rolled back by rollout %" PRIi64 "%s%s", nid,
                                                         reason ? ": " : "", strempty(reason));
                r = rollout_set_state(tx, id, "aborted", why, actor, now);
        }
        target = strdup_printf("rollout %" PRIi64, nid);
        if (r >= 0) {
                json_t *d = json_pack("{s:I, s:s?}", "rollback_of", (json_int_t) id, "reason", reason);
                r = audit_log(tx, actor, "rollout.rollback", target, d);
                json_decref(d);
        }
        if (r >= 0 && ret_new)
                *ret_new = nid;
        return r;
}

/* Hosts of rollout id still on their way want what they ran again, when
 * the catalog still has it (else they keep the new image). */
static int revert_unfinished(sqlite3 *db, int64_t id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = db_prepare(db,
                           "UPDATE hosts SET image = (SELECT rh.prev_image FROM rollout_hosts rh WHERE rh.rollout_id = ?1 "
                           "AND rh.host_id = hosts.id), rollback = 0 WHERE id IN (SELECT host_id FROM rollout_hosts WHERE "
                           "rollout_id = ?1 AND status IN ('assigned', 'failed') AND prev_image IN (SELECT id FROM "
                           "images)) AND image = (SELECT target FROM rollout_hosts WHERE rollout_id = ?1 AND host_id = "
                           "hosts.id)",
                           &st);

        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        return db_step(st);
}

int coord_rollout_action(StoreTx *tx, int64_t id, const char *action, const char *actor, uint64_t now,
                         int64_t *ret_new_id, char **ret_error) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *skip = NULL, *ack = NULL;
        _cleanup_(rollout_row_release) RolloutRow row = {};
        const char *state;
        int r;

        r = rollout_row_read(db, id, &row);
        if (r < 0)
                return r;
        state = row.state;
        if (streq(action, "pause")) {
                if (!streq(state, "running"))
                        goto refused;
                return rollout_set_state(tx, id, "paused", "paused by an operator", actor, now);
        }
        if (streq(action, "resume")) {
                if (!streq(state, "paused"))
                        goto refused;
                /* Resuming accepts the failures so far: the threshold counts
                 * only those that come after. */
                r = db_prepare(db, "UPDATE rollout_hosts SET acked = 1 WHERE rollout_id = ? AND status = 'failed'", &ack);
                if (r >= 0) {
                        sqlite3_bind_int64(ack, 1, id);
                        r = db_step(ack);
                }
                return r < 0 ? r : rollout_set_state(tx, id, "running", NULL, actor, now);
        }
        if (streq(action, "abort")) {
                /* A done rollout is closed by an abort: it can no longer be
                 * rolled back, so the images it would go back to may be
                 * deleted (coord_image_users()). */
                if (streq(state, "aborted"))
                        goto refused;
                r = db_prepare(db, "UPDATE rollout_hosts SET status = 'skipped' WHERE rollout_id = ? AND status = 'pending'",
                               &skip);
                if (r >= 0) {
                        sqlite3_bind_int64(skip, 1, id);
                        r = db_step(skip);
                }
                /* Hosts on the way that did not arrive want what they ran again. */
                if (r >= 0)
                        r = revert_unfinished(db, id);
                return r < 0 ? r : rollout_set_state(tx, id, "aborted", "aborted by an operator", actor, now);
        }
        if (streq(action, "rollback")) {
                if (streq(state, "aborted"))
                        goto refused;
                return rollout_rollback(tx, id, actor, now, "asked by an operator", ret_new_id);
        }
        *ret_error = strdup_printf("unknown action '%s' (pause, resume, abort, rollback)", action);
        return -EINVAL;
refused:
        *ret_error = strdup_printf("rollout %" PRIi64 " is %s: cannot %s it", id, state, action);
        return -EBUSY;
}

/* Marks assigned hosts done (on the target, healthy) or failed (reported a
 * failure since they were assigned, or still reporting that they refused or
 * fell back from the target itself). In a rollback only a failure since the
 * assignment counts: a host that refused the same image earlier refused it
 * as a downgrade nobody had marked a rollback, which this one is. */
static int update_statuses(sqlite3 *db, int64_t id, bool rollback) {
        _cleanup_stmt_ sqlite3_stmt *done = NULL, *failed = NULL;
        int r;

        r = db_prepare(db,
                       "UPDATE rollout_hosts SET status = 'done' WHERE rollout_id = ?1 AND status = 'assigned' AND "
                       "EXISTS (SELECT 1 FROM hosts h WHERE h.id = host_id AND h.current_image = target AND "
                       "h.state = 'healthy')",
                       &done);
        if (r >= 0) {
                sqlite3_bind_int64(done, 1, id);
                r = db_step(done);
        }
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE rollout_hosts SET status = 'failed', message = (SELECT h.message FROM hosts h "
                               "WHERE h.id = host_id) WHERE rollout_id = ?1 AND status = 'assigned' AND EXISTS "
                               "(SELECT 1 FROM hosts h WHERE h.id = host_id AND h.state IN ('rolled-back', 'failed') "
                               "AND h.current_image IS NOT target AND (coalesce(h.state_since, 0) >= assigned_at OR "
                               "(NOT ?2 AND h.failed_image = target)))",
                               &failed);
        if (r >= 0) {
                sqlite3_bind_int64(failed, 1, id);
                sqlite3_bind_int(failed, 2, rollback);
                r = db_step(failed);
        }
        return r;
}

/* Assigns the pending hosts that may start: in a wave up to max_wave,
 * reachable, and no reachable unfinished host of an earlier phase (the
 * earliest such phase is computed once, not once per pending host). */
static int assign_ready(StoreTx *tx, const CoordConfig *c, int64_t id, bool rollback, int max_wave, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *sel = NULL, *host = NULL, *row = NULL;
        int r;

        r = db_prepare(db,
                       "SELECT rh.host_id, rh.target, EXISTS (SELECT 1 FROM images i WHERE i.id = rh.target) FROM "
                       "rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE "
                       "rh.rollout_id = ?1 AND rh.status = 'pending' AND rh.wave <= ?2 AND coalesce(h.last_seen, 0) >= "
                       "?3 - ?4 AND rh.phase <= (SELECT coalesce(min(o.phase), 2147483647) FROM rollout_hosts o JOIN "
                       "hosts oh ON oh.id = o.host_id WHERE o.rollout_id = ?1 AND o.status IN ('pending', 'assigned') "
                       "AND coalesce(oh.last_seen, 0) >= ?3 - ?4)",
                       &sel);
        if (r >= 0)
                r = db_prepare(db, "UPDATE hosts SET image = ?, rollback = ? WHERE id = ?", &host);
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE rollout_hosts SET status = 'assigned', assigned_at = ? WHERE rollout_id = ? AND "
                               "host_id = ?",
                               &row);
        if (r < 0)
                return r;
        sqlite3_bind_int64(sel, 1, id);
        sqlite3_bind_int(sel, 2, max_wave);
        sqlite3_bind_int64(sel, 3, (sqlite3_int64) now);
        sqlite3_bind_int64(sel, 4, (sqlite3_int64) c->heartbeat_timeout);
        while ((r = db_step(sel)) > 0) {
                const char *h = (const char *) sqlite3_column_text(sel, 0), *target = (const char *) sqlite3_column_text(sel, 1);

                /* An image gone from the catalog cannot be assigned: the host
                 * is skipped, and the rollout goes on without it. */
                if (!sqlite3_column_int(sel, 2)) {
                        _cleanup_free_ char *why = unassignable(target, false, 0);
                        r = why ? skip_host(tx, id, h, why, "coordinator") : -ENOMEM;
                        if (r < 0)
                                break;
                        continue;
                }
                sqlite3_bind_text(host, 1, target, -1, SQLITE_STATIC);
                sqlite3_bind_int(host, 2, rollback);
                sqlite3_bind_text(host, 3, h, -1, SQLITE_STATIC);
                r = db_step(host);
                sqlite3_reset(host);
                if (r < 0)
                        break;
                sqlite3_bind_int64(row, 1, (sqlite3_int64) now);
                sqlite3_bind_int64(row, 2, id);
                sqlite3_bind_text(row, 3, h, -1, SQLITE_STATIC);
                r = db_step(row);
                sqlite3_reset(row);
                if (r < 0)
                        break;
        }
        return r;
}

static int64_t count_rows(sqlite3 *db, const char *sql, int64_t id, int wave, uint64_t now, uint64_t hb) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (db_prepare(db, sql, &st) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, wave);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) now);
        sqlite3_bind_int64(st, 4, (sqlite3_int64) hb);
        return db_step(st) > 0 ? sqlite3_column_int64(st, 0) : -1;
}

/* The stored spec of a running rollout, read with the parser that accepted
 * it at the start. Returns 0, or 1 with *ret_why when it cannot be read. */
static int stored_spec_parse(const char *text, RolloutSpec *ret, char **ret_why) {
        _cleanup_free_ char *error = NULL;
        RolloutSpec s = {};
        json_error_t e;
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
        int r;

        r = j ? rollout_spec_parse(j, &s, &error) : spec_error(&error, "not JSON: %s", e.text);
        json_decref(j);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret_why = strdup_printf("its stored spec cannot be read: %s", strempty(error));
                return *ret_why ? 1 : -ENOMEM;
        }
        /* The tick keeps only the numbers; the rest was borrowed from j. */
        s.image = s.order_key = NULL;
        s.selector = s.order_values = NULL;
        *ret = s;
        return 0;
}

/* Pauses (or with on_failure rollback, rolls back) a running rollout whose
 * waves so far have more failures than allowed. Returns 1 when it did. */
static int check_failures(StoreTx *tx, int64_t id, const RolloutRow *row, const RolloutSpec *s, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *fw = NULL;
        int r;

        /* Every wave so far, not only this one: a host unreachable during
         * its wave reports its failure after the wave was over. */
        r = db_prepare(db,
                       "SELECT wave, count(*), sum(status = 'failed' AND NOT acked) FROM rollout_hosts WHERE rollout_id = "
                       "?1 AND wave <= ?2 GROUP BY wave ORDER BY wave",
                       &fw);
        if (r < 0)
                return r;
        sqlite3_bind_int64(fw, 1, id);
        sqlite3_bind_int(fw, 2, row->wave);
        while ((r = db_step(fw)) > 0) {
                int w = sqlite3_column_int(fw, 0);
                int64_t wave_size = sqlite3_column_int64(fw, 1), failed = sqlite3_column_int64(fw, 2);
                int64_t allowed = s->fail_count >= 0 ? s->fail_count : wave_size * s->fail_pct / 100;
                if (failed <= allowed)
                        continue;
                _cleanup_free_ char *why = strdup_printf("wave %d: %" PRIi64 " of %" PRIi64 " hosts failed, %" PRIi64
                                                         " allowed",
                                                         w + 1, failed, wave_size, allowed);
                if (!why)
                        return -ENOMEM;
                sqlite3_finalize(fw);
                fw = NULL;
                log_warning("rollout %" PRIi64 ": %s", id, why);
                if (s->rollback_on_failure && streq(row->kind, "rollout"))
                        r = rollout_rollback(tx, id, "coordinator", now, why, NULL);
                else
                        r = rollout_set_state(tx, id, "paused", why, "coordinator", now);
                return r < 0 ? r : 1;
        }
        return r;
}

int coord_rollout_tick(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_(rollout_row_release) RolloutRow row = {};
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        RolloutSpec s = {};
        int64_t open;
        int r;

        if (!target)
                return -ENOMEM;
        r = rollout_row_read(db, id, &row);
        if (r < 0)
                return r;
        r = update_statuses(db, id, streq(row.kind, "rollback"));
        if (r < 0 || (!streq(row.state, "running") && !streq(row.state, "done")))
                return r;
        if (streq(row.state, "running")) {
                _cleanup_free_ char *why = NULL;

                r = stored_spec_parse(row.spec, &s, &why);
                if (r > 0) {
                        log_warning("rollout %" PRIi64 ": %s: paused", id, why);
                        return rollout_set_state(tx, id, "paused", why, "coordinator", now);
                }
                if (r == 0)
                        r = check_failures(tx, id, &row, &s, now);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        r = assign_ready(tx, c, id, streq(row.kind, "rollback"), streq(row.state, "done") ? INT32_MAX : row.wave, now);
        if (r < 0 || !streq(row.state, "running"))
                return r;

        /* The wave is complete when none of its reachable hosts is still on the way. */
        open = count_rows(db,
                          "SELECT count(*) FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE rh.rollout_id "
                          "= ?1 AND rh.wave <= ?2 AND rh.status IN ('pending', 'assigned') AND coalesce(h.last_seen, 0) "
                          ">= ?3 - ?4",
                          id, row.wave, now, c->heartbeat_timeout);
        if (open != 0)
                return open < 0 ? -EIO : 0;
        if (!row.has_done_at) {
                r = db_prepare(db, "UPDATE rollouts SET wave_done_at = ? WHERE id = ?", &up);
                if (r >= 0) {
                        sqlite3_bind_int64(up, 1, (sqlite3_int64) now);
                        sqlite3_bind_int64(up, 2, id);
                        r = db_step(up);
                }
                if (r >= 0) {
                        json_t *d = json_pack("{s:i}", "wave", row.wave + 1);
                        r = audit_log(tx, "coordinator", "rollout.wave-complete", target, d);
                        json_decref(d);
                }
                if (r < 0)
                        return r;
                sqlite3_finalize(up);
                up = NULL;
                row.done_at = now;
        }
        /* The bake is capped (ROLLOUT_BAKE_MAX): this cannot wrap. */
        if (now < row.done_at + s.bake)
                return 0;
        if (row.wave + 1 >= row.n_waves)
                return rollout_set_state(tx, id, "done", NULL, "coordinator", now);
        r = db_prepare(db, "UPDATE rollouts SET wave = wave + 1, wave_done_at = NULL WHERE id = ?", &up);
        if (r >= 0) {
                sqlite3_bind_int64(up, 1, id);
                r = db_step(up);
        }
        if (r >= 0) {
                json_t *d = json_pack("{s:i}", "wave", row.wave + 2);
                r = audit_log(tx, "coordinator", "rollout.wave", target, d);
                json_decref(d);
        }
        /* The next wave's hosts are assigned now, not a tick later. */
        if (r >= 0)
                r = assign_ready(tx, c, id, streq(row.kind, "rollback"), row.wave + 1, now);
        return r;
}

int coord_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = db_prepare(db,
                       "SELECT id FROM rollouts WHERE state IN ('running', 'paused') OR (state = 'done' AND EXISTS "
                       "(SELECT 1 FROM rollout_hosts rh WHERE rh.rollout_id = rollouts.id AND rh.status IN ('pending', "
                       "'assigned'))) ORDER BY id",
                       &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                if (n == cap) {
                        int64_t *x = reallocarray(ids, cap = cap ? 2 * cap : 8, sizeof *ids);
                        if (!x)
                                return -ENOMEM;
                        ids = x;
                }
                ids[n++] = sqlite3_column_int64(st, 0);
        }
        if (r < 0)
                return r;
        *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

int coord_rollout_pause(StoreTx *tx, int64_t id, const char *reason, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_(rollout_row_release) RolloutRow row = {};
        int r = rollout_row_read(db, id, &row);

        if (r < 0)
                return r;
        if (!streq(row.state, "running") && !streq(row.state, "done"))
                return 0;
        r = rollout_set_state(tx, id, "paused", reason, "coordinator", now);
        return r < 0 ? r : 1;
}

/* Appends "rollout 3" or "rollouts 3, 5" and what, to *why ("; " between
 * parts). */
static int why_append_rollouts(char **why, const int64_t *ids, size_t n, const char *what) {
        _cleanup_free_ char *list = NULL;
        char *m;

        if (n == 0)
                return 0;
        list = strdup(n == 1 ? "rollout" : "rollouts");
        for (size_t i = 0; list && i < n; i++) {
                char *x = strdup_printf("%s%s %" PRIi64, list, i > 0 ? "," : "", ids[i]);
                free(list);
                list = x;
        }
        m = list ? strdup_printf("%s%s%s %s", strempty(*why), *why ? "; " : "", list, what) : NULL;
        if (!m)
                return -ENOMEM;
        free(*why);
        *why = m;
        return 0;
}

int coord_image_users(StoreTx *tx, const char *id, char **ret_why) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *h = NULL, *ro = NULL;
        _cleanup_free_ char *why = NULL;
        int64_t assigns[8], returns[8];
        size_t n_assigns = 0, n_returns = 0;
        int r;

        r = db_prepare(db, "SELECT count(*) FROM hosts WHERE image = ?1 OR current_image = ?1", &h);
        if (r < 0)
                return r;
        sqlite3_bind_text(h, 1, id, -1, SQLITE_STATIC);
        r = db_step(h);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        if (sqlite3_column_int64(h, 0) > 0) {
                why = strdup_printf("assigned to or running on %lld host(s)", (long long) sqlite3_column_int64(h, 0));
                if (!why)
                        return -ENOMEM;
        }
        /* A rollout that is not aborted would still assign it to a host on
         * the way, or may be rolled back to it (coord_rollout_action()):
         * deleting it would leave that with an image it cannot assign. */
        r = db_prepare(db,
                       "SELECT rh.rollout_id, max(rh.target = ?1 AND rh.status IN ('pending', 'assigned')), "
                       "max(rh.prev_image = ?1 AND rh.status IN ('assigned', 'done', 'failed')) FROM rollout_hosts rh "
                       "JOIN rollouts r ON r.id = rh.rollout_id WHERE r.state != 'aborted' AND ((rh.target = ?1 AND "
                       "rh.status IN ('pending', 'assigned')) OR (rh.prev_image = ?1 AND rh.status IN ('assigned', "
                       "'done', 'failed'))) GROUP BY rh.rollout_id ORDER BY rh.rollout_id",
                       &ro);
        if (r < 0)
                return r;
        sqlite3_bind_text(ro, 1, id, -1, SQLITE_STATIC);
        while ((r = db_step(ro)) > 0) {
                if (sqlite3_column_int(ro, 1) && n_assigns < ELEMENTSOF(assigns))
                        assigns[n_assigns++] = sqlite3_column_int64(ro, 0);
                else if (sqlite3_column_int(ro, 2) && n_returns < ELEMENTSOF(returns))
                        returns[n_returns++] = sqlite3_column_int64(ro, 0);
        }
        if (r < 0)
                return r;
        r = why_append_rollouts(&why, assigns, n_assigns, "would assign it");
        if (r >= 0)
                r = why_append_rollouts(&why, returns, n_returns, "may roll back to it");
        if (r < 0)
                return r;
        if (!why)
                return 0;
        *ret_why = TAKE_PTR(why);
        return 1;
}

int coord_rollout_json(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now, json_t **ret) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *w = NULL, *g = NULL;
        json_t *ro, *waves, *groups;
        int r;

        r = db_prepare(db,
                       "SELECT r.id, r.kind, r.state, r.wave, r.n_waves, r.reason, r.rollback_of, r.spec, r.created, "
                       "r.finished, i.name || ':' || i.version FROM rollouts r LEFT JOIN images i ON i.id = r.image "
                       "WHERE r.id = ?",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = db_prepare(db,
                       "SELECT wave, count(*), sum(status = 'pending'), sum(status = 'assigned'), sum(status = 'done'), "
                       "sum(status = 'failed'), sum(status = 'skipped') FROM rollout_hosts WHERE rollout_id = ? "
                       "GROUP BY wave ORDER BY wave",
                       &w);
        if (r < 0)
                return r;
        /* Per group of every budgeted label key: hosts, done, down now. */
        r = db_prepare(db,
                       "SELECT l.key || '=' || l.value, count(*), sum(rh.status = 'done'), sum(rh.status = 'failed'), "
                       "sum(" COORD_UNAVAILABLE_SQL ") FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id JOIN "
                       "host_labels l ON l.host_id = h.id WHERE rh.rollout_id = ?3 AND (l.key IN (SELECT selector FROM "
                       "budgets) OR l.key || '=' || l.value IN (SELECT selector FROM budgets)) GROUP BY 1 ORDER BY 1",
                       &g);
        if (r < 0)
                return r;
        waves = json_array();
        sqlite3_bind_int64(w, 1, id);
        while ((r = db_step(w)) > 0)
                json_array_append_new(waves, json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "wave",
                                                               sqlite3_column_int(w, 0) + 1, "hosts",
                                                               (json_int_t) sqlite3_column_int64(w, 1), "pending",
                                                               (json_int_t) sqlite3_column_int64(w, 2), "assigned",
                                                               (json_int_t) sqlite3_column_int64(w, 3), "done",
                                                               (json_int_t) sqlite3_column_int64(w, 4), "failed",
                                                               (json_int_t) sqlite3_column_int64(w, 5), "skipped",
                                                               (json_int_t) sqlite3_column_int64(w, 6)));
        groups = json_array();
        sqlite3_bind_int64(g, 1, (sqlite3_int64) now);
        sqlite3_bind_int64(g, 2, (sqlite3_int64) c->heartbeat_timeout);
        sqlite3_bind_int64(g, 3, id);
        while (r >= 0 && (r = db_step(g)) > 0)
                json_array_append_new(groups, json_pack("{s:s, s:I, s:I, s:I, s:I}", "group",
                                                                (const char *) sqlite3_column_text(g, 0), "hosts",
                                                                (json_int_t) sqlite3_column_int64(g, 1), "done",
                                                                (json_int_t) sqlite3_column_int64(g, 2), "failed",
                                                                (json_int_t) sqlite3_column_int64(g, 3), "down",
                                                                (json_int_t) sqlite3_column_int64(g, 4)));
        if (r < 0) {
                json_decref(waves);
                json_decref(groups);
                return r;
        }
#define T(i) ((const char *) sqlite3_column_text(st, (i)))
        ro = json_pack("{s:I, s:s, s:s, s:i, s:i, s:s?, s:o, s:s?, s:I, s:o, s:o, s:o}", "id",
                       (json_int_t) sqlite3_column_int64(st, 0), "kind", T(1), "state", T(2), "wave",
                       sqlite3_column_int(st, 3) + 1, "waves_total", sqlite3_column_int(st, 4), "reason", T(5),
                       "rollback_of",
                       sqlite3_column_type(st, 6) == SQLITE_NULL ? json_null() : json_integer(sqlite3_column_int64(st, 6)),
                       "image", T(10), "created", (json_int_t) sqlite3_column_int64(st, 8), "spec",
                       json_loads(T(7), 0, NULL) ?: json_null(), "waves", waves, "groups", groups);
#undef T
        if (!ro)
                return -ENOMEM;
        *ret = ro;
        return 0;
}

json_t *coord_rollouts_json(StoreTx *tx) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_t *l;
        int r;

        if (db_prepare(db,
                       "SELECT r.id, r.kind, r.state, r.wave + 1, r.n_waves, i.name || ':' || i.version, r.created, "
                       "(SELECT count(*) FROM rollout_hosts WHERE rollout_id = r.id), (SELECT count(*) FROM "
                       "rollout_hosts WHERE rollout_id = r.id AND status = 'done') FROM rollouts r LEFT JOIN images i "
                       "ON i.id = r.image ORDER BY r.id DESC",
                       &st) < 0)
                return NULL;
        l = json_array();
        while ((r = db_step(st)) > 0)
                json_array_append_new(l, json_pack("{s:I, s:s, s:s, s:i, s:i, s:s?, s:I, s:I, s:I}", "id",
                                                   (json_int_t) sqlite3_column_int64(st, 0), "kind",
                                                   (const char *) sqlite3_column_text(st, 1), "state",
                                                   (const char *) sqlite3_column_text(st, 2), "wave",
                                                   sqlite3_column_int(st, 3), "waves_total", sqlite3_column_int(st, 4),
                                                   "image", (const char *) sqlite3_column_text(st, 5), "created",
                                                   (json_int_t) sqlite3_column_int64(st, 6), "hosts",
                                                   (json_int_t) sqlite3_column_int64(st, 7), "done",
                                                   (json_int_t) sqlite3_column_int64(st, 8)));
        if (r < 0) {
                json_decref(l);
                return NULL;
        }
        return l;
}
