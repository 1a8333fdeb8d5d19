/* Fleet counts (store-stats.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-coord-sql.h"
#include "store-db.h"
#include "store-stats.h"
#include "util.h"

void stats_counts_free(StatsCount *l, size_t n) {
        for (size_t k = 0; l && k < n; k++)
                free(l[k].key);
        free(l);
}

void fleet_stats_release(FleetStats *s) {
        if (!s)
                return;
        stats_counts_free(s->by_state, s->n_by_state);
        stats_counts_free(s->by_version, s->n_by_version);
        stats_counts_free(s->health_failed, s->n_health_failed);
        *s = (FleetStats) {};
}

/* The rows (key, n) of sql. */
static int group(StoreTx *tx, const char *sql, StatsCount **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        StatsCount *l = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                StatsCount *t = ARRAY_PUSH(l, n, cap);
                const char *v = db_column_text(st, 0);
                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                *t = (StatsCount) { .key = strdup(v ? v : ""), .n = db_column_int64(st, 1) };
                if (!t->key) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                stats_counts_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

/* The one number sql selects. */
static int count(StoreTx *tx, const char *sql, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r >= 0)
                r = db_step(st);
        if (r == 0)
                r = -EIO;
        if (r < 0)
                return r;
        *ret = db_column_int64(st, 0);
        return 0;
}

/* Adds n to key's count in *l (n_l of them, cap *cap). */
static int count_add(StatsCount **l, size_t *n_l, size_t *cap, const char *key, int64_t n) {
        StatsCount *c = NULL;

        for (size_t k = 0; !c && k < *n_l; k++)
                if (streq((*l)[k].key, key))
                        c = &(*l)[k];
        if (!c) {
                c = ARRAY_PUSH(*l, *n_l, *cap);
                if (!c || !(c->key = strdup(key)))
                        return -ENOMEM;
        }
        c->n += n;
        return 0;
}

static int count_cmp(const void *a, const void *b) {
        return strcmp(((const StatsCount *) a)->key, ((const StatsCount *) b)->key);
}

/* One pass over the hosts, grouped by state, version and the image a
 * failing host fails on (few rows: states times versions), summed here
 * into each count. A host fails on the image it runs while unhealthy, and
 * on the one it fell back from or could not install after. */
static int read_hosts(StoreTx *tx, FleetStats *s) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        size_t cap_state = 0, cap_version = 0, cap_failed = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT state, coalesce(version, ''), CASE WHEN state = 'unhealthy' THEN "
                       "coalesce(nullif(current_image, ''), 'none') WHEN state IN ('rolled-back', 'failed') THEN "
                       "coalesce(nullif(failed_image, ''), 'none') END, count(*), count(lease_epoch), "
                       "coalesce(sum(CASE WHEN quarantined <> 0 THEN 1 ELSE 0 END), 0), "
                       "coalesce(max(CASE WHEN mac IS NOT NULL THEN last_seen END), 0) FROM hosts "
                       "GROUP BY 1, 2, 3 ORDER BY 1",
                       &st);
        while (r >= 0 && (r = db_step(st)) > 0) {
                const char *state = db_column_text(st, 0), *version = db_column_text(st, 1);
                const char *failed = db_column_text(st, 2);
                int64_t n = db_column_int64(st, 3), seen = db_column_int64(st, 6);

                r = count_add(&s->by_state, &s->n_by_state, &cap_state, strempty(state), n);
                if (r >= 0)
                        r = count_add(&s->by_version, &s->n_by_version, &cap_version, strempty(version), n);
                if (r >= 0 && failed)
                        r = count_add(&s->health_failed, &s->n_health_failed, &cap_failed, failed, n);
                s->leases += db_column_int64(st, 4);
                s->quarantined += db_column_int64(st, 5);
                s->last_seen = MAX(s->last_seen, seen);
        }
        if (r < 0)
                return r;
        /* qsort() takes no NULL, which an empty list is. */
        if (s->n_by_version > 1)
                qsort(s->by_version, s->n_by_version, sizeof *s->by_version, count_cmp);
        if (s->n_health_failed > 1)
                qsort(s->health_failed, s->n_health_failed, sizeof *s->health_failed, count_cmp);
        return 0;
}

int store_stats_read(StoreTx *tx, bool groups, FleetStats *ret) {
        FleetStats s = {};
        int r = 0;

        if (groups) {
                r = read_hosts(tx, &s);
                if (r >= 0)
                        r = count(tx, "SELECT coalesce(sum(size), 0) FROM blobs", &s.blob_bytes);
        }
        if (r >= 0)
                r = count(tx, "SELECT count(*) FROM images", &s.images);
        if (r >= 0)
                r = count(tx, "SELECT count(*) FROM hosts", &s.hosts);
        if (r < 0) {
                fleet_stats_release(&s);
                return r;
        }
        *ret = s;
        return 0;
}

void ops_stats_release(OpsStats *s) {
        if (!s)
                return;
        stats_counts_free(s->rollouts, s->n_rollouts);
        for (size_t k = 0; s->active && k < s->n_active; k++) {
                free(s->active[k].state);
                free(s->active[k].kind);
                free(s->active[k].spec);
        }
        free(s->active);
        for (size_t k = 0; s->groups && k < s->n_groups; k++)
                free(s->groups[k].group);
        free(s->groups);
        for (size_t k = 0; s->pipelines && k < s->n_pipelines; k++) {
                StatsPipeline *p = &s->pipelines[k];

                free(p->name);
                free(p->image);
                free(p->state);
                free(p->phase);
                free(p->spec);
        }
        free(s->pipelines);
        *s = (OpsStats) {};
}

static int64_t column_amount(DbStmt *st, int col) {
        return db_column_is_null(st, col) ? -1 : db_column_int64(st, col);
}

/* The running and paused rollouts, with their hosts by status summed over
 * the waves. */
static int read_active(StoreTx *tx, OpsStats *s) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        size_t cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT r.id, r.state, r.kind, r.spec, r.wave + 1, r.n_waves, "
                       "CAST(coalesce(sum(w.pending), 0) AS BIGINT), CAST(coalesce(sum(w.assigned), 0) AS BIGINT), "
                       "CAST(coalesce(sum(w.done), 0) AS BIGINT), CAST(coalesce(sum(w.failed), 0) AS BIGINT), "
                       "CAST(coalesce(sum(w.skipped), 0) AS BIGINT) FROM rollouts r "
                       "LEFT JOIN rollout_waves w ON w.rollout_id = r.id WHERE r.state IN ('running', 'paused') "
                       "GROUP BY r.id, r.state, r.kind, r.spec, r.wave, r.n_waves ORDER BY r.id",
                       &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                StatsRollout *t = ARRAY_PUSH(s->active, s->n_active, cap);
                if (!t)
                        return -ENOMEM;
                *t = (StatsRollout) { .id = db_column_int64(st, 0),
                                      .state = db_column_strdup(st, 1),
                                      .kind = db_column_strdup(st, 2),
                                      .spec = db_column_strdup(st, 3),
                                      .wave = db_column_int64(st, 4),
                                      .n_waves = db_column_int64(st, 5),
                                      .pending = db_column_int64(st, 6),
                                      .assigned = db_column_int64(st, 7),
                                      .done = db_column_int64(st, 8),
                                      .failed = db_column_int64(st, 9),
                                      .skipped = db_column_int64(st, 10) };
                if (!t->state || !t->kind || !t->spec)
                        return -ENOMEM;
        }
        return r;
}

/* The running pipelines and those finished since now - STATS_PIPELINE_KEEP
 * (a row per pipeline ever started: a few a day). */
static int read_pipelines(StoreTx *tx, uint64_t now, OpsStats *s) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        size_t cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT id, name, image, state, phase, stage, spec FROM pipelines "
                       "WHERE state = 'running' OR finished >= ? ORDER BY id",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now > STATS_PIPELINE_KEEP ? (int64_t) (now - STATS_PIPELINE_KEEP) : 0);
        while ((r = db_step(st)) > 0) {
                StatsPipeline *t = ARRAY_PUSH(s->pipelines, s->n_pipelines, cap);
                if (!t)
                        return -ENOMEM;
                *t = (StatsPipeline) { .id = db_column_int64(st, 0),
                                       .name = db_column_strdup(st, 1),
                                       .image = db_column_strdup(st, 2),
                                       .state = db_column_strdup(st, 3),
                                       .phase = db_column_strdup(st, 4),
                                       .stage = db_column_int64(st, 5),
                                       .spec = db_column_strdup(st, 6) };
                if (!t->name || !t->image || !t->state || !t->phase || !t->spec)
                        return -ENOMEM;
        }
        return r;
}

/* The group of name in l, or NULL. */
static StatsCount *count_find(StatsCount *l, size_t n, const char *name) {
        for (size_t k = 0; k < n; k++)
                if (streq(l[k].key, name))
                        return &l[k];
        return NULL;
}

/* The budgeted groups: group_counts' rows with the budget that holds for
 * each (the group's own before its key's), and their leases and silent
 * hosts, each read once for the fleet: few hosts hold a lease or are
 * silent (hosts_silent finds those; CROSS JOIN keeps sqlite from reading
 * every label first). */
static int read_groups(StoreTx *tx, uint64_t now, uint64_t heartbeat_timeout, OpsStats *s) {
        _cleanup_stmt_reset_ DbStmt *st = NULL, *sil = NULL;
        StatsCount *leases = NULL, *silent = NULL;
        size_t n_leases = 0, n_silent = 0, cap = 0;
        int r;

        /* A lease always has its expiry: the bound, true of every lease,
         * has both databases find them through hosts_lease_expires instead
         * of reading every label. */
        r = group(tx,
                  "SELECT l.key || '=' || l.value, count(*) FROM hosts h JOIN host_labels l ON l.host_id = h.id "
                  "WHERE h.lease_epoch IS NOT NULL AND h.lease_expires >= 0 GROUP BY 1",
                  &leases, &n_leases);
        if (r < 0)
                return r;
        r = store_stmt(tx,
                       "SELECT l.key || '=' || l.value, count(*) FROM hosts h CROSS JOIN host_labels l "
                       "WHERE l.host_id = h.id AND " COORD_SILENT_SQL("h") " AND coalesce(h.last_seen, 0) >= 0 AND NOT "
                       COORD_HELD_SQL("h") " GROUP BY 1",
                       &sil);
        if (r >= 0) {
                db_bind_int64(sil, 1, (int64_t) now);
                db_bind_int64(sil, 2, (int64_t) heartbeat_timeout);
                while ((r = db_step(sil)) > 0) {
                        StatsCount *t = ARRAY_PUSH(silent, n_silent, cap);
                        if (!t || !(t->key = db_column_strdup(sil, 0))) {
                                r = -ENOMEM;
                                break;
                        }
                        t->n = db_column_int64(sil, 1);
                }
        }
        if (r >= 0)
                r = store_stmt(tx,
                               "SELECT g.key || '=' || g.value, g.members, g.held, b.max_unavailable, "
                               "b.max_unavailable_pct, b.min_available FROM group_counts g JOIN budgets b ON "
                               "b.selector IN (g.key || '=' || g.value, g.key) WHERE b.selector <> g.key OR NOT "
                               "EXISTS (SELECT 1 FROM budgets o WHERE o.selector = g.key || '=' || g.value) "
                               "ORDER BY g.key, g.value",
                               &st);
        cap = 0;
        while (r >= 0 && (r = db_step(st)) > 0) {
                StatsGroup *t = ARRAY_PUSH(s->groups, s->n_groups, cap);
                const StatsCount *c;

                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                *t = (StatsGroup) { .group = db_column_strdup(st, 0),
                                    .members = db_column_int64(st, 1),
                                    .held = db_column_int64(st, 2),
                                    .max_unavailable = column_amount(st, 3),
                                    .max_unavailable_pct = column_amount(st, 4),
                                    .min_available = column_amount(st, 5) };
                if (!t->group) {
                        r = -ENOMEM;
                        break;
                }
                c = count_find(leases, n_leases, t->group);
                t->leases = c ? c->n : 0;
                c = count_find(silent, n_silent, t->group);
                t->silent = c ? c->n : 0;
        }
        stats_counts_free(leases, n_leases);
        stats_counts_free(silent, n_silent);
        return r;
}

int store_stats_ops_read(StoreTx *tx, uint64_t now, uint64_t heartbeat_timeout, OpsStats *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        OpsStats s = {};
        int r;

        r = store_stmt(tx, "SELECT count(*) FROM hosts h WHERE " COORD_SILENT_SQL("h") " AND coalesce(h.last_seen, 0) >= 0",
                       &st);
        if (r >= 0) {
                db_bind_int64(st, 1, (int64_t) now);
                db_bind_int64(st, 2, (int64_t) heartbeat_timeout);
                r = db_step(st);
                if (r == 0)
                        r = -EIO;
                if (r > 0)
                        s.silent = db_column_int64(st, 0);
        }
        if (r >= 0)
                r = group(tx, "SELECT state, count(*) FROM rollouts GROUP BY state ORDER BY state", &s.rollouts,
                          &s.n_rollouts);
        if (r >= 0)
                r = read_active(tx, &s);
        if (r >= 0)
                r = read_groups(tx, now, heartbeat_timeout, &s);
        if (r >= 0)
                r = read_pipelines(tx, now, &s);
        if (r < 0) {
                ops_stats_release(&s);
                return r;
        }
        *ret = s;
        return 0;
}
