/* store-rollouts.h, the views: what the views of rollouts read, and what
 * planning a rollout reads of the hosts and their labels. */
#include <jansson.h>
#include <stdlib.h>

#include "store-rollouts.h"
#include "store-coord-sql.h"
#include "store-db.h"
#include "util.h"

void rollout_info_release(RolloutInfo *i) {
        rollout_release(&i->ro);
        free(i->reason);
        free(i->image);
        *i = (RolloutInfo) {};
}

void rollout_infos_free(RolloutInfo *v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                rollout_info_release(&v[i]);
        free(v);
}

/* The columns both views read: id, kind, state, wave, n_waves, reason,
 * rollback_of, spec, created, image, then the hosts and those done. */
#define INFO_COLUMNS                                                                                   \
        "SELECT r.id, r.kind, r.state, r.wave, r.n_waves, r.reason, r.rollback_of, r.spec, r.created, " \
        "i.name || ':' || i.version"

static int info_read(DbStmt *st, bool counts, RolloutInfo *ret) {
        RolloutInfo i = {
                .ro = { .id = db_column_int64(st, 0),
                        .kind = rollout_kind_from_string(db_column_text(st, 1)),
                        .state = rollout_state_from_string(db_column_text(st, 2)),
                        .wave = db_column_int(st, 3),
                        .n_waves = db_column_int(st, 4) },
                .rollback_of = db_column_int64(st, 6),
                .created = (uint64_t) db_column_int64(st, 8),
                .hosts = counts ? db_column_int64(st, 10) : 0,
                .done = counts ? db_column_int64(st, 11) : 0,
        };

        if (i.ro.kind < 0 || i.ro.state < 0)
                return -EBADMSG;
        i.reason = db_column_strdup(st, 5);
        i.ro.spec = db_column_strdup(st, 7);
        i.image = db_column_strdup(st, 9);
        if (!i.ro.spec || (!i.reason && !db_column_is_null(st, 5)) ||
            (!i.image && !db_column_is_null(st, 9))) {
                rollout_info_release(&i);
                return -ENOMEM;
        }
        *ret = i;
        return 0;
}

int store_rollout_info(StoreTx *tx, int64_t id, RolloutInfo *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, INFO_COLUMNS " FROM rollouts r LEFT JOIN images i ON i.id = r.image WHERE r.id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        return info_read(st, false, ret);
}

int store_rollouts_list(StoreTx *tx, RolloutInfo **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        RolloutInfo *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       INFO_COLUMNS ", (SELECT coalesce(sum(hosts), 0) FROM rollout_waves WHERE rollout_id = r.id), "
                                    "(SELECT coalesce(sum(done), 0) FROM rollout_waves WHERE rollout_id = r.id) FROM "
                                    "rollouts r LEFT JOIN images i ON i.id = r.image ORDER BY r.id DESC",
                       &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                r = array_reserve((void **) &v, &cap, n, sizeof *v);
                if (r >= 0)
                        r = info_read(st, true, &v[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r < 0) {
                rollout_infos_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int store_rollout_wave_counts(StoreTx *tx, int64_t id, RolloutWaveCounts **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ RolloutWaveCounts *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT wave, hosts, pending, assigned, done, failed, skipped FROM rollout_waves WHERE "
                       "rollout_id = ? AND hosts > 0 ORDER BY wave",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        while ((r = db_step(st)) > 0) {
                r = array_reserve((void **) &v, &cap, n, sizeof *v);
                if (r < 0)
                        return r;
                v[n++] = (RolloutWaveCounts) { .wave = db_column_int(st, 0),
                                               .hosts = db_column_int64(st, 1),
                                               .pending = db_column_int64(st, 2),
                                               .assigned = db_column_int64(st, 3),
                                               .done = db_column_int64(st, 4),
                                               .failed = db_column_int64(st, 5),
                                               .skipped = db_column_int64(st, 6) };
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

void rollout_group_counts_free(RolloutGroupCounts *v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i].group);
        free(v);
}

int store_rollout_group_counts(StoreTx *tx, int64_t id, uint64_t now, uint64_t heartbeat_timeout,
                               RolloutGroupCounts **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        RolloutGroupCounts *v = NULL;
        size_t n = 0, cap = 0;
        int r;

/* The groups the site's budgets name, or the rollout's own (its spec's
 * "budgets", read in each database's words). */
#define GROUP_COUNTS_SQL(ROLLOUT_BUDGETS)                                                                        \
        "SELECT l.key || '=' || l.value, count(*), sum(CASE WHEN rh.status = 'done' THEN 1 ELSE 0 END), "      \
        "sum(CASE WHEN rh.status = 'failed' THEN 1 ELSE 0 END), sum(CASE WHEN " COORD_UNAVAILABLE_SQL          \
        " THEN 1 ELSE 0 END) FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id JOIN "                     \
        "host_labels l ON l.host_id = h.id WHERE rh.rollout_id = ?3 AND (l.key IN (SELECT selector FROM "      \
        "budgets) OR l.key || '=' || l.value IN (SELECT selector FROM budgets) OR EXISTS (SELECT 1 FROM "      \
        ROLLOUT_BUDGETS " WHERE r.id = ?3 AND (b.key = l.key OR b.key = l.key || '=' || l.value))) "           \
        "GROUP BY 1 ORDER BY 1"

        r = store_stmt(tx,
                       store_tx_postgresql(tx)
                               ? GROUP_COUNTS_SQL("rollouts r CROSS JOIN LATERAL jsonb_object_keys(CASE WHEN "
                                                  "jsonb_typeof(CAST(r.spec AS jsonb) -> 'budgets') = 'object' THEN "
                                                  "CAST(r.spec AS jsonb) -> 'budgets' ELSE CAST('{}' AS jsonb) END) "
                                                  "b(key)")
                               : GROUP_COUNTS_SQL("rollouts r, json_each(CASE WHEN json_valid(r.spec) AND "
                                                  "json_type(r.spec, '$.budgets') = 'object' THEN r.spec ELSE '{}' "
                                                  "END, '$.budgets') b"),
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now);
        db_bind_int64(st, 2, heartbeat_timeout);
        db_bind_int64(st, 3, id);
        while ((r = db_step(st)) > 0) {
                r = array_reserve((void **) &v, &cap, n, sizeof *v);
                if (r < 0)
                        break;
                v[n++] = (RolloutGroupCounts) { .group = db_column_strdup(st, 0),
                                                .hosts = db_column_int64(st, 1),
                                                .done = db_column_int64(st, 2),
                                                .failed = db_column_int64(st, 3),
                                                .down = db_column_int64(st, 4) };
                if (!v[n - 1].group) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                rollout_group_counts_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int store_image_users(StoreTx *tx, const char *image, int64_t *ret_hosts, RolloutImageUse **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *h = NULL, *ro = NULL;
        _cleanup_free_ RolloutImageUse *v = NULL;
        size_t n = 0, cap = 0;
        int64_t hosts;
        int r;

        r = store_stmt(tx, "SELECT count(*) FROM hosts WHERE image = ?1 OR current_image = ?1", &h);
        if (r < 0)
                return r;
        db_bind_text(h, 1, image);
        r = db_step(h);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        hosts = db_column_int64(h, 0);
        r = store_stmt(tx,
                       "SELECT rh.rollout_id, max(CASE WHEN rh.target = ?1 AND rh.status IN ('pending', 'assigned') THEN "
                       "1 ELSE 0 END), max(CASE WHEN rh.prev_image = ?1 AND rh.status IN ('assigned', 'done', "
                       "'failed') THEN 1 ELSE 0 END) FROM rollout_hosts rh "
                       "JOIN rollouts r ON r.id = rh.rollout_id WHERE r.state != 'aborted' AND ((rh.target = ?1 AND "
                       "rh.status IN ('pending', 'assigned')) OR (rh.prev_image = ?1 AND rh.status IN ('assigned', "
                       "'done', 'failed'))) GROUP BY rh.rollout_id ORDER BY rh.rollout_id",
                       &ro);
        if (r < 0)
                return r;
        db_bind_text(ro, 1, image);
        while ((r = db_step(ro)) > 0) {
                r = array_reserve((void **) &v, &cap, n, sizeof *v);
                if (r < 0)
                        return r;
                v[n++] = (RolloutImageUse) { .rollout_id = db_column_int64(ro, 0),
                                             .assigns = db_column_bool(ro, 1),
                                             .returns = db_column_bool(ro, 2) };
        }
        if (r < 0)
                return r;
        *ret_hosts = hosts;
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

void rollout_candidates_free(RolloutCandidate *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].host);
                free(v[i].image);
                free(v[i].order_value);
        }
        free(v);
}

int store_rollout_candidates(StoreTx *tx, char *const *selector, const char *order_key, RolloutCandidate **ret,
                             size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ char *sel = NULL;
        RolloutCandidate *v = NULL;
        size_t n = 0, cap = 0;
        json_t *o;
        int r;

        /* The selector goes in as one JSON object, read by each database's
         * own function (json_each(), jsonb_each_text()). */
        o = json_object();
        for (size_t i = 0; o && selector && selector[i] && selector[i + 1]; i += 2)
                if (json_object_set_new(o, selector[i], json_string(selector[i + 1])) < 0) {
                        json_decref(o);
                        o = NULL;
                }
        sel = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!sel)
                return -ENOMEM;
        /* What a host goes back to in a rollback is the image it runs when
         * the catalog has it; a check-in may name one it does not have
         * (docs/api.md), and that can never be assigned: then the image it
         * was assigned. */
        r = store_stmt(tx,
                       store_tx_postgresql(tx)
                               ? "SELECT h.id, coalesce((SELECT i.id FROM images i WHERE i.id = h.current_image), "
                                 "h.image), (SELECT l.value FROM host_labels l WHERE l.host_id = h.id AND l.key = ?2) "
                                 "FROM hosts h WHERE NOT EXISTS (SELECT 1 FROM jsonb_each_text(CAST(?1 AS jsonb)) j "
                                 "WHERE NOT EXISTS (SELECT 1 FROM host_labels l WHERE l.host_id = h.id AND l.key = "
                                 "j.key AND l.value = j.value)) ORDER BY h.id"
                               : "SELECT h.id, coalesce((SELECT i.id FROM images i WHERE i.id = h.current_image), "
                                 "h.image), (SELECT l.value FROM host_labels l WHERE l.host_id = h.id AND l.key = ?2) "
                                 "FROM hosts h WHERE NOT EXISTS (SELECT 1 FROM json_each(?1) j WHERE NOT EXISTS "
                                 "(SELECT 1 FROM host_labels l WHERE l.host_id = h.id AND l.key = j.key AND l.value = "
                                 "j.value)) ORDER BY h.id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, sel);
        db_bind_text(st, 2, order_key);
        while ((r = db_step(st)) > 0) {
                r = array_reserve((void **) &v, &cap, n, sizeof *v);
                if (r < 0)
                        break;
                v[n++] = (RolloutCandidate) { .host = db_column_strdup(st, 0),
                                              .image = db_column_strdup(st, 1),
                                              .order_value = db_column_strdup(st, 2) };
                if (!v[n - 1].host || (!v[n - 1].image && !db_column_is_null(st, 1)) ||
                    (!v[n - 1].order_value && !db_column_is_null(st, 2))) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                rollout_candidates_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

void rollout_labels_free(RolloutLabel *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].host);
                free(v[i].key);
                free(v[i].value);
        }
        free(v);
}

int store_budgeted_labels(StoreTx *tx, RolloutLabel **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        RolloutLabel *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT host_id, key, value FROM host_labels l WHERE replace(l.key, '=', '') = l.key AND "
                       "EXISTS (SELECT 1 FROM budgets b WHERE b.selector = l.key OR substr(b.selector, 1, "
                       "length(l.key) + 1) = l.key || '=') ORDER BY host_id, key",
                       &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                r = array_reserve((void **) &v, &cap, n, sizeof *v);
                if (r < 0)
                        break;
                v[n++] = (RolloutLabel) { .host = db_column_strdup(st, 0),
                                          .key = db_column_strdup(st, 1),
                                          .value = db_column_strdup(st, 2) };
                if (!v[n - 1].host || !v[n - 1].key || !v[n - 1].value) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                rollout_labels_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int store_key_labels_unbudgeted(StoreTx *tx, const char *key, RolloutLabel **v, size_t *n, size_t *cap) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT host_id, key, value FROM host_labels l WHERE l.key = ?1 AND NOT EXISTS (SELECT 1 "
                       "FROM budgets b WHERE b.selector = ?1 OR substr(b.selector, 1, length(?1) + 1) = ?1 || '=') "
                       "ORDER BY host_id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, key);
        while ((r = db_step(st)) > 0) {
                RolloutLabel *l;

                r = array_reserve((void **) v, cap, *n, sizeof **v);
                if (r < 0)
                        return r;
                l = &(*v)[(*n)++];
                *l = (RolloutLabel) { .host = db_column_strdup(st, 0),
                                      .key = db_column_strdup(st, 1),
                                      .value = db_column_strdup(st, 2) };
                if (!l->host || !l->key || !l->value)
                        return -ENOMEM;
        }
        return r < 0 ? r : 0;
}
