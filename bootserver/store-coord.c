/* The coordinator's store (store-coord.h). Every statement is a
 * cached one (store_stmt()): a lease request and a tick run them often. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-coord.h"
#include "store-coord-sql.h"
#include "store-db.h"
#include "util.h"

void budget_list_free(Budget *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                free(l[i].selector);
        free(l);
}

void host_group_list_free(HostGroup *l, size_t n) {
        for (size_t i = 0; l && i < n; i++) {
                free(l[i].key);
                free(l[i].value);
        }
        free(l);
}

void reboot_window_list_free(RebootWindow *l, size_t n) {
        for (size_t i = 0; l && i < n; i++) {
                free(l[i].selector);
                free(l[i].window);
                free(l[i].group);
        }
        free(l);
}

void host_rollout_budgets_free(HostRolloutBudgets *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                free(l[i].budgets);
        free(l);
}

static int64_t column_amount(DbStmt *st, int col) {
        return db_column_is_null(st, col) ? -1 : db_column_int64(st, col);
}

static void bind_amount(DbStmt *st, int col, int64_t v) {
        if (v >= 0)
                db_bind_int64(st, col, v);
}

int store_budget_set(StoreTx *tx, const Budget *b) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO budgets (selector, max_unavailable, max_unavailable_pct, min_available) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (selector) DO UPDATE SET max_unavailable = "
                       "excluded.max_unavailable, max_unavailable_pct = excluded.max_unavailable_pct, min_available = "
                       "excluded.min_available",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, b->selector);
        bind_amount(st, 2, b->max_unavailable);
        bind_amount(st, 3, b->max_unavailable_pct);
        bind_amount(st, 4, b->min_available);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_budget_delete(StoreTx *tx, const char *selector) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM budgets WHERE selector = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, selector);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) == 0 ? -ENOENT : 0;
}

int store_budget_list(StoreTx *tx, Budget **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        Budget *l = NULL, *b;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT selector, max_unavailable, max_unavailable_pct, min_available FROM budgets "
                       "ORDER BY selector",
                       &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                b = ARRAY_PUSH(l, n, cap);
                if (!b) {
                        r = -ENOMEM;
                        break;
                }
                *b = (Budget) { .selector = db_column_strdup(st, 0),
                                .max_unavailable = column_amount(st, 1),
                                .max_unavailable_pct = column_amount(st, 2),
                                .min_available = column_amount(st, 3) };
                if (!b->selector) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                budget_list_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

int store_budget_for_group(StoreTx *tx, const char *key, const char *value, Budget *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ char *group = strdup_printf("%s=%s", key, value);
        int r;

        if (!group)
                return -ENOMEM;
        r = store_stmt(tx,
                       "SELECT max_unavailable, max_unavailable_pct, min_available FROM budgets WHERE selector IN "
                       "(?1, ?2) ORDER BY selector = ?1 DESC LIMIT 1",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, group);
        db_bind_text(st, 2, key);
        r = db_step(st);
        if (r <= 0)
                return r;
        *ret = (Budget) { .max_unavailable = column_amount(st, 0),
                          .max_unavailable_pct = column_amount(st, 1),
                          .min_available = column_amount(st, 2) };
        return 1;
}

int store_coord_host_groups(StoreTx *tx, const char *host, HostGroup **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        HostGroup *l = NULL, *g;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx, "SELECT key, value FROM host_labels WHERE host_id = ? ORDER BY key", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        while ((r = db_step(st)) > 0) {
                g = ARRAY_PUSH(l, n, cap);
                if (!g) {
                        r = -ENOMEM;
                        break;
                }
                g->key = db_column_strdup(st, 0);
                g->value = db_column_strdup(st, 1);
                if (!g->key || !g->value) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                host_group_list_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

int store_group_size(StoreTx *tx, const char *key, const char *value, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* group_counts keeps the members of every group (its triggers
         * follow host_labels), so this is one row, not a count */
        r = store_stmt(tx, "SELECT coalesce((SELECT members FROM group_counts WHERE key = ? AND value = ?), 0)",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, key);
        db_bind_text(st, 2, value);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = db_column_int64(st, 0);
        return 0;
}

int store_group_unavailable(StoreTx *tx, const char *key, const char *value, const char *host, uint64_t now,
                            uint64_t heartbeat_timeout, int64_t *ret_n, int64_t *ret_down) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, COORD_GROUP_UNAVAILABLE_SQL, &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now);
        db_bind_int64(st, 2, heartbeat_timeout);
        db_bind_text(st, 3, key);
        db_bind_text(st, 4, value);
        db_bind_text(st, 5, host);
        r = db_step(st);
        if (r < 0)
                return r;
        /* no row: no host has the label */
        *ret_n = r > 0 ? db_column_int64(st, 0) : 0;
        *ret_down = r > 0 ? db_column_int64(st, 1) : 0;
        return 0;
}

int store_coord_host_unavailable(StoreTx *tx, const char *host, uint64_t now, uint64_t heartbeat_timeout) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT " COORD_UNAVAILABLE_SQL " FROM hosts h WHERE h.id = ?3", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now);
        db_bind_int64(st, 2, heartbeat_timeout);
        db_bind_text(st, 3, host);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        return db_column_bool(st, 0) ? 1 : 0;
}

int store_lease_get(StoreTx *tx, const char *host, Lease *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT lease_epoch, lease_expires, quarantined FROM hosts WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        *ret = (Lease) { .held = !db_column_is_null(st, 0),
                         .epoch = (uint64_t) db_column_int64(st, 0),
                         .expires = (uint64_t) db_column_int64(st, 1),
                         .quarantined = db_column_bool(st, 2) };
        return 0;
}

int store_lease_set(StoreTx *tx, const char *host, uint64_t epoch, uint64_t expires) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE hosts SET lease_epoch = ?, lease_expires = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, epoch);
        db_bind_int64(st, 2, expires);
        db_bind_text(st, 3, host);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_lease_release(StoreTx *tx, const char *host, uint64_t epoch) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "UPDATE hosts SET lease_epoch = NULL, lease_expires = NULL WHERE id = ?1 AND "
                       "lease_epoch IS NOT NULL AND (?2 = 0 OR lease_epoch = ?2)",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        db_bind_int64(st, 2, epoch);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) > 0;
}

int store_lease_next_epoch(StoreTx *tx, uint64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *up = NULL, *sel = NULL;
        int r;

        r = store_stmt(tx, "UPDATE meta SET value = value + 1 WHERE key = 'lease_epoch'", &up);
        if (r >= 0)
                r = db_step(up);
        if (r >= 0)
                r = store_stmt(tx, "SELECT value FROM meta WHERE key = 'lease_epoch'", &sel);
        if (r >= 0)
                r = db_step(sel);
        if (r == 0)
                r = -EIO;
        if (r < 0)
                return r;
        *ret = (uint64_t) db_column_int64(sel, 0);
        return 0;
}

int store_lease_expired(StoreTx *tx, const char *host, uint64_t now, char ***ret_hosts) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_strv_free_ char **ids = NULL;
        int r;

        r = store_stmt(tx,
                       host ? "SELECT id FROM hosts WHERE id = ?2 AND lease_epoch IS NOT NULL AND lease_expires < ?1"
                            : "SELECT id FROM hosts WHERE lease_epoch IS NOT NULL AND lease_expires < ?1",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now);
        if (host)
                db_bind_text(st, 2, host);
        while ((r = db_step(st)) > 0)
                if (strv_extend(&ids, db_column_text(st, 0)) < 0)
                        return -ENOMEM;
        if (r < 0)
                return r;
        *ret_hosts = TAKE_PTR(ids);
        return 0;
}

int store_lease_quarantine(StoreTx *tx, const char *host) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE hosts SET lease_epoch = NULL, lease_expires = NULL, quarantined = 1 WHERE id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_coord_host_unquarantine(StoreTx *tx, const char *host, bool healthy) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "UPDATE hosts SET quarantined = 0 WHERE id = ?1 AND quarantined <> 0 AND (?2 <> 0 OR "
                       "current_image IS NOT NULL)",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        db_bind_bool(st, 2, healthy);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) > 0;
}

int store_coord_host_seen(StoreTx *tx, const char *host, uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE hosts SET last_seen = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now);
        db_bind_text(st, 2, host);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_coord_host_windows(StoreTx *tx, const char *host, RebootWindow **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        RebootWindow *l = NULL, *w;
        size_t n = 0, cap = 0;
        int r;

        /* A window that is no string reads as NULL: not valid. An object or
         * an array is JSON text, which the window's parse refuses (its
         * spacing is each database's own). The spec is JSON, which each
         * database reads in its own words. */
        r = store_stmt(tx,
                       store_tx_postgresql(tx)
                               ? "SELECT w.key, CASE jsonb_typeof(w.value) WHEN 'string' THEN w.value #>> '{}' WHEN "
                                 "'object' THEN CAST(w.value AS text) WHEN 'array' THEN CAST(w.value AS text) END, "
                                 "l.key || '=' || l.value FROM rollout_hosts rh "
                                 "JOIN rollouts r ON r.id = rh.rollout_id CROSS JOIN LATERAL jsonb_each(CASE WHEN "
                                 "jsonb_typeof(CAST(r.spec AS jsonb) -> 'windows') = 'object' THEN CAST(r.spec AS "
                                 "jsonb) -> 'windows' END) w "
                                 "JOIN host_labels l ON l.host_id = rh.host_id AND "
                                 "  (l.key = w.key OR l.key || '=' || l.value = w.key) "
                                 "WHERE rh.host_id = ? AND r.state = 'running' AND rh.status = 'assigned' "
                                 "ORDER BY w.key"
                               : "SELECT w.key, CASE WHEN typeof(w.value) = 'text' THEN w.value END, "
                                 "l.key || '=' || l.value FROM rollout_hosts rh "
                                 "JOIN rollouts r ON r.id = rh.rollout_id, json_each(r.spec, '$.windows') w "
                                 "JOIN host_labels l ON l.host_id = rh.host_id AND "
                                 "  (l.key = w.key OR l.key || '=' || l.value = w.key) "
                                 "WHERE rh.host_id = ? AND r.state = 'running' AND rh.status = 'assigned' "
                                 "ORDER BY w.key",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        while ((r = db_step(st)) > 0) {
                w = ARRAY_PUSH(l, n, cap);
                if (!w) {
                        r = -ENOMEM;
                        break;
                }
                w->selector = db_column_strdup(st, 0);
                w->window = db_column_strdup(st, 1);
                w->group = db_column_strdup(st, 2);
                if (!w->selector || !w->group || (!w->window && !db_column_is_null(st, 1))) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                reboot_window_list_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}


int store_coord_host_rollout_budgets(StoreTx *tx, const char *host, HostRolloutBudgets **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        HostRolloutBudgets *l = NULL, *b;
        size_t n = 0, cap = 0;
        int r;

        /* One row per rollout (a host is in one at a time); the coordinator
         * reads the object. A host is on its way in a paused rollout too,
         * and in a done one that assigned it late. */
        r = store_stmt(tx,
                       store_tx_postgresql(tx)
                               ? "SELECT r.id, CAST(CAST(r.spec AS jsonb) -> 'budgets' AS text) FROM rollout_hosts rh "
                                 "JOIN rollouts r ON r.id = rh.rollout_id "
                                 "WHERE rh.host_id = ? AND rh.status = 'assigned' AND "
                                 "r.state IN ('running', 'paused', 'done') AND "
                                 "CAST(r.spec AS jsonb) -> 'budgets' IS NOT NULL ORDER BY r.id"
                               : "SELECT r.id, json_extract(r.spec, '$.budgets') FROM rollout_hosts rh "
                                 "JOIN rollouts r ON r.id = rh.rollout_id "
                                 "WHERE rh.host_id = ? AND rh.status = 'assigned' AND "
                                 "r.state IN ('running', 'paused', 'done') AND "
                                 "json_type(r.spec, '$.budgets') IS NOT NULL ORDER BY r.id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        while ((r = db_step(st)) > 0) {
                b = ARRAY_PUSH(l, n, cap);
                if (!b) {
                        r = -ENOMEM;
                        break;
                }
                b->rollout = db_column_int64(st, 0);
                b->budgets = db_column_strdup(st, 1);
                if (!b->budgets && !db_column_is_null(st, 1)) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                host_rollout_budgets_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}
