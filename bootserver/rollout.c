/* Rollouts: a set of hosts moved to an image in waves. The waves only say
 * who may start; the reboot leases (coordinator.c) say who may go down. */
#include <inttypes.h>

#include "audit.h"
#include "coordinator.h"
#include "db.h"
#include "hosts.h"
#include "images.h"
#include "log.h"
#include "util.h"

#define WAVES_MAX 16

typedef struct Spec {
        char image[65];
        json_t *selector;          /* borrowed: {"k": "v"} or NULL */
        size_t n_waves;
        int64_t wave_count[WAVES_MAX], wave_pct[WAVES_MAX];
        uint64_t bake;
        int64_t fail_count, fail_pct;
        bool rollback_on_failure;
        const char *order_key;     /* borrowed */
        json_t *order_values;      /* borrowed array */
} Spec;

static const char *const spec_members[] = { "image", "selector", "waves", "bake", "max_failures", "on_failure",
                                            "order", "windows", NULL };

/* Parses and checks spec; ret_error gets a message naming the member. */
static int spec_parse(sqlite3 *db, json_t *j, Spec *s, char **ret_error) {
        const char *key, *ref, *of;
        json_t *v, *waves, *mf, *order;
        size_t i;
        int r;

        *s = (Spec) { .fail_count = 0, .fail_pct = -1 };
        json_object_foreach(j, key, v) {
                bool known = false;
                for (i = 0; spec_members[i]; i++)
                        known |= streq(spec_members[i], key);
                if (!known) {
                        *ret_error = strdup_printf("unknown member '%s'", key);
                        return -EINVAL;
                }
        }
        ref = json_string_value(json_object_get(j, "image"));
        if (!ref) {
                *ret_error = strdup("'image': an image reference is required");
                return -EINVAL;
        }
        r = images_resolve(db, ref, s->image);
        if (r < 0) {
                *ret_error = strdup_printf("'image': %s: %s", ref, r == -ENOENT ? "no such image" : "not an image reference");
                return r == -ENOENT ? -ENXIO : -EINVAL;
        }
        s->selector = json_object_get(j, "selector");
        if (s->selector && !json_is_object(s->selector)) {
                *ret_error = strdup("'selector': expected {\"KEY\": \"VALUE\"}");
                return -EINVAL;
        }
        json_object_foreach(s->selector, key, v)
                if (!hosts_label_valid(key) || !hosts_label_valid(json_string_value(v))) {
                        *ret_error = strdup_printf("'selector': label '%s' is not KEY: VALUE of [A-Za-z0-9._-]", key);
                        return -EINVAL;
                }
        waves = json_object_get(j, "waves");
        if (!waves)
                waves = json_pack("[s]", "100%");
        else
                json_incref(waves);
        if (!json_is_array(waves) || json_array_size(waves) == 0 || json_array_size(waves) > WAVES_MAX) {
                json_decref(waves);
                *ret_error = strdup_printf("'waves': expected 1 to %d counts or percentages", WAVES_MAX);
                return -EINVAL;
        }
        json_array_foreach(waves, i, v) {
                if (budget_parse_json(v, &s->wave_count[i], &s->wave_pct[i]) < 0) {
                        json_decref(waves);
                        *ret_error = strdup_printf("'waves': item %zu is not a count or a percentage", i);
                        return -EINVAL;
                }
        }
        s->n_waves = json_array_size(waves);
        json_decref(waves);
        v = json_object_get(j, "bake");
        if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
                *ret_error = strdup("'bake': expected seconds");
                return -EINVAL;
        }
        s->bake = v ? (uint64_t) json_integer_value(v) : 0;
        mf = json_object_get(j, "max_failures");
        if (mf && budget_parse_json(mf, &s->fail_count, &s->fail_pct) < 0) {
                *ret_error = strdup("'max_failures': expected a count or a percentage");
                return -EINVAL;
        }
        of = json_string_value(json_object_get(j, "on_failure"));
        if (json_object_get(j, "on_failure") && (!of || (!streq(of, "pause") && !streq(of, "rollback")))) {
                *ret_error = strdup("'on_failure': expected \"pause\" or \"rollback\"");
                return -EINVAL;
        }
        s->rollback_on_failure = of && streq(of, "rollback");
        order = json_object_get(j, "order");
        if (order) {
                s->order_key = json_string_value(json_object_get(order, "key"));
                s->order_values = json_object_get(order, "values");
                if (!hosts_label_valid(s->order_key) || !json_is_array(s->order_values)) {
                        *ret_error = strdup("'order': expected {\"key\": \"service\", \"values\": [\"a\", \"b\"]}");
                        return -EINVAL;
                }
        }
        v = json_object_get(j, "windows");
        if (v && !json_is_object(v)) {
                *ret_error = strdup("'windows': expected {\"rack\": \"22:00-04:00\"} (a label key or KEY=VALUE per window)");
                return -EINVAL;
        }
        json_t *w;
        json_object_foreach(v, key, w) {
                int a, b;
                if (!coord_selector_valid(key)) {
                        *ret_error = strdup_printf("'windows': '%s' is not a label key or KEY=VALUE of [A-Za-z0-9._-]", key);
                        return -EINVAL;
                }
                if (window_parse(json_string_value(w), &a, &b) < 0) {
                        *ret_error = strdup_printf("'windows': the window of '%s' is not \"HH:MM-HH:MM\" (UTC, start and "
                                                   "end differ)", key);
                        return -EINVAL;
                }
        }
        return 0;
}

typedef struct Member {
        char id[16];
        int phase;
        /* Where it falls in its budgeted groups, 0 to 1: in the group of
         * its phase's bottleneck key, and the latest in any other. */
        double spread, spread_other;
        char *image; /* what it runs or was last assigned */
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
static int spread_members(sqlite3 *db, Member *m, size_t n) {
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

                        r = coord_group_allowed(db, key, json_string_value(json_object_get(g, "value")), &allowed);
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
static int select_members(sqlite3 *db, const Spec *s, Member **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sel = NULL;
        Member *m = NULL;
        size_t n = 0, cap = 0;
        int r;

        sel = s->selector ? json_dumps(s->selector, JSON_COMPACT) : strdup("{}");
        if (!sel)
                return -ENOMEM;
        /* Every selector label must match; the phase comes from the order key. */
        r = db_prepare(db,
                       "SELECT h.id, coalesce(h.current_image, h.image), (SELECT l.value FROM host_labels l WHERE "
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
                r = spread_members(db, m, n);
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

/* Cumulative host counts at the end of each wave for n hosts. */
static void wave_ends(const Spec *s, size_t n, size_t ret[WAVES_MAX]) {
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

static int wave_of(const size_t ends[WAVES_MAX], size_t n_waves, size_t i) {
        for (size_t w = 0; w < n_waves; w++)
                if (i < ends[w])
                        return (int) w;
        return (int) n_waves - 1;
}

int coord_rollout_plan(sqlite3 *db, const CoordConfig *c _unused_, json_t *spec, uint64_t reboot_estimate,
                       json_t **ret_plan, char **ret_error) {
        size_t n = 0, ends[WAVES_MAX];
        Member *m = NULL;
        json_t *waves;
        uint64_t total = 0;
        Spec s;
        int r;

        r = spec_parse(db, spec, &s, ret_error);
        if (r < 0)
                return r;
        r = select_members(db, &s, &m, &n);
        if (r < 0)
                return r;
        wave_ends(&s, n, ends);
        waves = json_array();
        for (size_t w = 0, i = 0; w < s.n_waves; w++) {
                json_t *hosts = json_array();
                size_t count = 0;
                for (; i < ends[w]; i++, count++)
                        json_array_append_new(hosts, json_string(m[i].id));
                /* Hosts of a wave go down as fast as the budgets let them: the
                 * estimate assumes each wave's hosts can overlap up to the
                 * tightest budget, one reboot at a time otherwise. */
                uint64_t t = count > 0 ? reboot_estimate : 0;
                total += t + (w + 1 < s.n_waves ? s.bake : 0);
                json_array_append_new(waves, json_pack("{s:i, s:I, s:o}", "wave", (int) w + 1, "hosts_count",
                                                       (json_int_t) count, "hosts", hosts));
        }
        members_free(m, n);
        *ret_plan = json_pack("{s:s, s:I, s:o, s:I, s:I}", "image", s.image, "hosts", (json_int_t) n, "waves", waves,
                              "bake", (json_int_t) s.bake, "estimate_sec", (json_int_t) total);
        return 0;
}

int coord_rollout_start(sqlite3 *db, const CoordConfig *c _unused_, json_t *spec, const char *actor, uint64_t now,
                        int64_t *ret_id, char **ret_error) {
        _cleanup_stmt_ sqlite3_stmt *busy = NULL, *ins = NULL, *row = NULL;
        _cleanup_free_ char *spec_text = NULL;
        size_t n = 0, ends[WAVES_MAX];
        Member *m = NULL;
        int64_t id;
        Spec s;
        int r;

        r = spec_parse(db, spec, &s, ret_error);
        if (r < 0)
                return r;
        r = select_members(db, &s, &m, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                *ret_error = strdup("the selector matches no host");
                return -ENOENT;
        }
        /* One active rollout per host. */
        r = db_prepare(db,
                       "SELECT rh.host_id, r.id FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id WHERE "
                       "r.state IN ('running', 'paused') AND rh.status IN ('pending', 'assigned') AND rh.host_id = ?",
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
                sqlite3_bind_text(ins, 1, s.image, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, spec_text, -1, SQLITE_STATIC);
                sqlite3_bind_int(ins, 3, (int) s.n_waves);
                sqlite3_bind_text(ins, 4, actor, -1, SQLITE_STATIC);
                sqlite3_bind_int64(ins, 5, (sqlite3_int64) now);
                r = db_errno(sqlite3_step(ins));
        }
        id = sqlite3_last_insert_rowid(db);
        wave_ends(&s, n, ends);
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
                sqlite3_bind_text(row, 5, s.image, -1, SQLITE_STATIC);
                sqlite3_bind_text(row, 6, m[i].image, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(row));
                sqlite3_reset(row);
        }
        members_free(m, n);
        if (r >= 0) {
                json_t *d = json_pack("{s:O, s:I}", "spec", spec, "hosts", (json_int_t) n);
                _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
                r = audit_log(db, actor, "rollout.start", target, d);
                json_decref(d);
        }
        if (r >= 0)
                *ret_id = id;
        return r;
}

static int rollout_set_state(sqlite3 *db, int64_t id, const char *state, const char *reason, const char *actor,
                             uint64_t now) {
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
        r = db_errno(sqlite3_step(up));
        if (r < 0)
                return r;
        d = json_pack("{s:s, s:s?}", "state", state, "reason", reason);
        r = audit_log(db, actor, streq(state, "running") ? "rollout.resume" : streq(state, "paused") ? "rollout.pause"
                                 : streq(state, "done") ? "rollout.done" : "rollout.abort",
                      target, d);
        json_decref(d);
        return r;
}

static int rollout_rollback(sqlite3 *db, int64_t id, const char *actor, uint64_t now, const char *reason,
                            int64_t *ret_new) {
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *rows = NULL, *spec = NULL;
        _cleanup_free_ char *target = NULL;
        int64_t nid;
        int r;

        r = db_prepare(db, "SELECT spec, n_waves FROM rollouts WHERE id = ?", &spec);
        if (r < 0)
                return r;
        sqlite3_bind_int64(spec, 1, id);
        r = db_step(spec);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = db_prepare(db,
                       "INSERT INTO rollouts (kind, image, spec, state, n_waves, rollback_of, actor, created) VALUES "
                       "('rollback', NULL, ?, 'running', ?, ?, ?, ?)",
                       &ins);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 1, (const char *) sqlite3_column_text(spec, 0), -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 2, sqlite3_column_int(spec, 1));
        sqlite3_bind_int64(ins, 3, id);
        sqlite3_bind_text(ins, 4, actor, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, (sqlite3_int64) now);
        r = db_errno(sqlite3_step(ins));
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
        r = db_errno(sqlite3_step(rows));
        if (r >= 0) {
                _cleanup_free_ char *why = strdup_printf("rolled back by rollout %" PRIi64 "%s%s", nid,
                                                         reason ? ": " : "", strempty(reason));
                r = rollout_set_state(db, id, "aborted", why, actor, now);
        }
        target = strdup_printf("rollout %" PRIi64, nid);
        if (r >= 0) {
                json_t *d = json_pack("{s:I, s:s?}", "rollback_of", (json_int_t) id, "reason", reason);
                r = audit_log(db, actor, "rollout.rollback", target, d);
                json_decref(d);
        }
        if (r >= 0 && ret_new)
                *ret_new = nid;
        return r;
}

static int revert_unfinished(sqlite3 *db, int64_t id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = db_prepare(db,
                           "UPDATE hosts SET image = (SELECT rh.prev_image FROM rollout_hosts rh WHERE rh.rollout_id = ?1 "
                           "AND rh.host_id = hosts.id), rollback = 0 WHERE id IN (SELECT host_id FROM rollout_hosts WHERE "
                           "rollout_id = ?1 AND status IN ('assigned', 'failed') AND prev_image IS NOT NULL) AND image = "
                           "(SELECT target FROM rollout_hosts WHERE rollout_id = ?1 AND host_id = hosts.id)",
                           &st);

        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        return db_errno(sqlite3_step(st));
}

int coord_rollout_action(sqlite3 *db, int64_t id, const char *action, const char *actor, uint64_t now,
                         int64_t *ret_new_id, char **ret_error) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *skip = NULL, *ack = NULL;
        _cleanup_free_ char *state = NULL;
        int r;

        r = db_prepare(db, "SELECT state FROM rollouts WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        state = db_column_strdup(st, 0);
        if (!state)
                return -ENOMEM;
        if (streq(action, "pause")) {
                if (!streq(state, "running"))
                        goto refused;
                return rollout_set_state(db, id, "paused", "paused by an operator", actor, now);
        }
        if (streq(action, "resume")) {
                if (!streq(state, "paused"))
                        goto refused;
                /* Resuming accepts the failures so far: the threshold counts
                 * only those that come after. */
                r = db_prepare(db, "UPDATE rollout_hosts SET acked = 1 WHERE rollout_id = ? AND status = 'failed'", &ack);
                if (r >= 0) {
                        sqlite3_bind_int64(ack, 1, id);
                        r = db_errno(sqlite3_step(ack));
                }
                return r < 0 ? r : rollout_set_state(db, id, "running", NULL, actor, now);
        }
        if (streq(action, "abort")) {
                if (!streq(state, "running") && !streq(state, "paused"))
                        goto refused;
                r = db_prepare(db, "UPDATE rollout_hosts SET status = 'skipped' WHERE rollout_id = ? AND status = 'pending'",
                               &skip);
                if (r >= 0) {
                        sqlite3_bind_int64(skip, 1, id);
                        r = db_errno(sqlite3_step(skip));
                }
                /* Hosts on the way that did not arrive want what they ran again. */
                if (r >= 0)
                        r = revert_unfinished(db, id);
                return r < 0 ? r : rollout_set_state(db, id, "aborted", "aborted by an operator", actor, now);
        }
        if (streq(action, "rollback")) {
                if (streq(state, "aborted"))
                        goto refused;
                return rollout_rollback(db, id, actor, now, "asked by an operator", ret_new_id);
        }
        *ret_error = strdup_printf("unknown action '%s' (pause, resume, abort, rollback)", action);
        return -EINVAL;
refused:
        *ret_error = strdup_printf("rollout %" PRIi64 " is %s: cannot %s it", id, state, action);
        return -EBUSY;
}

/* Marks assigned hosts done (on the target, healthy) or failed (reported a
 * failure since they were assigned, or still reporting that they refused or
 * fell back from the target itself). */
static int update_statuses(sqlite3 *db, int64_t id) {
        _cleanup_stmt_ sqlite3_stmt *done = NULL, *failed = NULL;
        int r;

        r = db_prepare(db,
                       "UPDATE rollout_hosts SET status = 'done' WHERE rollout_id = ?1 AND status = 'assigned' AND "
                       "EXISTS (SELECT 1 FROM hosts h WHERE h.id = host_id AND h.current_image = target AND "
                       "h.state = 'healthy')",
                       &done);
        if (r >= 0) {
                sqlite3_bind_int64(done, 1, id);
                r = db_errno(sqlite3_step(done));
        }
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE rollout_hosts SET status = 'failed', message = (SELECT h.message FROM hosts h "
                               "WHERE h.id = host_id) WHERE rollout_id = ?1 AND status = 'assigned' AND EXISTS "
                               "(SELECT 1 FROM hosts h WHERE h.id = host_id AND h.state IN ('rolled-back', 'failed') "
                               "AND h.current_image IS NOT target AND (coalesce(h.state_since, 0) >= assigned_at OR "
                               "h.failed_image = target))",
                               &failed);
        if (r >= 0) {
                sqlite3_bind_int64(failed, 1, id);
                r = db_errno(sqlite3_step(failed));
        }
        return r;
}

/* Assigns the pending hosts that may start: in a wave up to max_wave,
 * reachable, and no reachable unfinished host of an earlier phase (the
 * earliest such phase is computed once, not once per pending host). */
static int assign_ready(sqlite3 *db, const CoordConfig *c, int64_t id, bool rollback, int max_wave, uint64_t now) {
        _cleanup_stmt_ sqlite3_stmt *sel = NULL, *host = NULL, *row = NULL;
        int r;

        r = db_prepare(db,
                       "SELECT rh.host_id, rh.target FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE "
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

                sqlite3_bind_text(host, 1, target, -1, SQLITE_STATIC);
                sqlite3_bind_int(host, 2, rollback);
                sqlite3_bind_text(host, 3, h, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(host));
                sqlite3_reset(host);
                if (r < 0)
                        break;
                sqlite3_bind_int64(row, 1, (sqlite3_int64) now);
                sqlite3_bind_int64(row, 2, id);
                sqlite3_bind_text(row, 3, h, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(row));
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

static int rollout_tick(sqlite3 *db, const CoordConfig *c, int64_t id, const char *kind, const char *state, int wave,
                        int n_waves, bool has_done_at, uint64_t done_at, const char *spec_text, uint64_t now) {
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        json_t *spec = json_loads(spec_text, 0, NULL);
        int64_t fail_count = 0, fail_pct = -1, failed, wave_size, open;
        uint64_t bake = (uint64_t) json_integer_value(json_object_get(spec, "bake"));
        bool rollback_on_failure = streq_ptr(json_string_value(json_object_get(spec, "on_failure")), "rollback");
        json_t *mf = json_object_get(spec, "max_failures");
        int r;

        if (mf)
                (void) budget_parse_json(mf, &fail_count, &fail_pct);
        json_decref(spec);

        r = update_statuses(db, id);
        if (r < 0)
                return r;
        if (streq(state, "paused"))
                return 0;
        if (streq(state, "running")) {
                _cleanup_stmt_ sqlite3_stmt *fw = NULL;

                /* Every wave so far, not only this one: a host unreachable during
                 * its wave reports its failure after the wave was over. */
                r = db_prepare(db,
                               "SELECT wave, count(*), sum(status = 'failed' AND NOT acked) FROM rollout_hosts WHERE rollout_id = ?1 AND "
                               "wave <= ?2 GROUP BY wave ORDER BY wave",
                               &fw);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(fw, 1, id);
                sqlite3_bind_int(fw, 2, wave);
                while ((r = db_step(fw)) > 0) {
                        int w = sqlite3_column_int(fw, 0);
                        wave_size = sqlite3_column_int64(fw, 1);
                        failed = sqlite3_column_int64(fw, 2);
                        int64_t allowed = fail_count >= 0 ? fail_count : wave_size * fail_pct / 100;
                        if (failed > allowed) {
                                _cleanup_free_ char *why = strdup_printf("wave %d: %" PRIi64 " of %" PRIi64
                                                                         " hosts failed, %" PRIi64 " allowed",
                                                                         w + 1, failed, wave_size, allowed);
                                log_warning("rollout %" PRIi64 ": %s", id, strempty(why));
                                if (rollback_on_failure && streq(kind, "rollout"))
                                        return rollout_rollback(db, id, "coordinator", now, why, NULL);
                                return rollout_set_state(db, id, "paused", why, "coordinator", now);
                        }
                }
                if (r < 0)
                        return r;
        }
        r = assign_ready(db, c, id, streq(kind, "rollback"), streq(state, "done") ? INT32_MAX : wave, now);
        if (r < 0 || !streq(state, "running"))
                return r;

        /* The wave is complete when none of its reachable hosts is still on the way. */
        open = count_rows(db,
                          "SELECT count(*) FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE rh.rollout_id "
                          "= ?1 AND rh.wave <= ?2 AND rh.status IN ('pending', 'assigned') AND coalesce(h.last_seen, 0) "
                          ">= ?3 - ?4",
                          id, wave, now, c->heartbeat_timeout);
        if (open != 0)
                return open < 0 ? -EIO : 0;
        if (!has_done_at) {
                r = db_prepare(db, "UPDATE rollouts SET wave_done_at = ? WHERE id = ?", &up);
                if (r >= 0) {
                        sqlite3_bind_int64(up, 1, (sqlite3_int64) now);
                        sqlite3_bind_int64(up, 2, id);
                        r = db_errno(sqlite3_step(up));
                }
                if (r >= 0) {
                        json_t *d = json_pack("{s:i}", "wave", wave + 1);
                        r = audit_log(db, "coordinator", "rollout.wave-complete", target, d);
                        json_decref(d);
                }
                if (r < 0)
                        return r;
                sqlite3_finalize(up);
                up = NULL;
                done_at = now;
        }
        if (now < done_at + bake)
                return 0;
        if (wave + 1 >= n_waves)
                return rollout_set_state(db, id, "done", NULL, "coordinator", now);
        r = db_prepare(db, "UPDATE rollouts SET wave = wave + 1, wave_done_at = NULL WHERE id = ?", &up);
        if (r >= 0) {
                sqlite3_bind_int64(up, 1, id);
                r = db_errno(sqlite3_step(up));
        }
        if (r >= 0) {
                json_t *d = json_pack("{s:i}", "wave", wave + 2);
                r = audit_log(db, "coordinator", "rollout.wave", target, d);
                json_decref(d);
        }
        /* The next wave's hosts are assigned now, not a tick later. */
        if (r >= 0)
                r = assign_ready(db, c, id, streq(kind, "rollback"), wave + 1, now);
        return r;
}

int coord_rollouts_tick(sqlite3 *db, const CoordConfig *c, uint64_t now) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = db_prepare(db,
                       "SELECT id, kind, state, wave, n_waves, wave_done_at, spec FROM rollouts WHERE state IN "
                       "('running', 'paused') OR (state = 'done' AND EXISTS (SELECT 1 FROM rollout_hosts rh WHERE "
                       "rh.rollout_id = rollouts.id AND rh.status IN ('pending', 'assigned'))) ORDER BY id",
                       &st);
        if (r < 0)
                return r;
        /* Rows are read first: a rollback inserts into the table being read. */
        json_t *list = json_array();
        while ((r = db_step(st)) > 0)
                json_array_append_new(
                        list, json_pack("{s:I, s:s, s:s, s:i, s:i, s:b, s:I, s:s}", "id",
                                        (json_int_t) sqlite3_column_int64(st, 0), "kind",
                                        (const char *) sqlite3_column_text(st, 1), "state",
                                        (const char *) sqlite3_column_text(st, 2), "wave", sqlite3_column_int(st, 3),
                                        "n_waves", sqlite3_column_int(st, 4), "has_done_at",
                                        sqlite3_column_type(st, 5) != SQLITE_NULL, "done_at",
                                        (json_int_t) sqlite3_column_int64(st, 5), "spec",
                                        (const char *) sqlite3_column_text(st, 6)));
        size_t i;
        json_t *o;
        if (r < 0) {
                json_decref(list);
                return r;
        }
        json_array_foreach(list, i, o) {
                r = rollout_tick(db, c, json_integer_value(json_object_get(o, "id")),
                                 json_string_value(json_object_get(o, "kind")),
                                 json_string_value(json_object_get(o, "state")),
                                 (int) json_integer_value(json_object_get(o, "wave")),
                                 (int) json_integer_value(json_object_get(o, "n_waves")),
                                 json_is_true(json_object_get(o, "has_done_at")),
                                 (uint64_t) json_integer_value(json_object_get(o, "done_at")),
                                 json_string_value(json_object_get(o, "spec")), now);
                if (r < 0)
                        break;
        }
        json_decref(list);
        return r;
}

int coord_rollout_json(sqlite3 *db, const CoordConfig *c, int64_t id, uint64_t now, json_t **ret) {
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

json_t *coord_rollouts_json(sqlite3 *db) {
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
