/* The store of rollouts that move a host file set
 * (store-rollout-files.h). */
#include <stdlib.h>

#include "store-db.h"
#include "store-rollout-files.h"
#include "util.h"

int store_rollout_set_files(StoreTx *tx, int64_t id, const char *name, int64_t seq, int64_t from) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE rollouts SET files = ?, files_seq = ?, files_from = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_int64(st, 2, seq);
        db_bind_int64(st, 3, from);
        db_bind_int64(st, 4, id);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_rollout_files(StoreTx *tx, int64_t id, char **ret_name, int64_t *ret_seq, int64_t *ret_from) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        char *name;
        int r;

        r = store_stmt(tx, "SELECT files, files_seq, files_from FROM rollouts WHERE id = ? AND files IS NOT NULL",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r;
        name = db_column_strdup(st, 0);
        if (!name)
                return -ENOMEM;
        if (ret_seq)
                *ret_seq = db_column_int64(st, 1);
        if (ret_from)
                *ret_from = db_column_int64(st, 2);
        if (ret_name)
                *ret_name = name;
        else
                free(name);
        return 1;
}

int store_rollout_host_set_files(StoreTx *tx, int64_t id, const char *host, int64_t seq, int64_t prev) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE rollout_hosts SET files_seq = ?, files_prev = ? WHERE rollout_id = ? AND "
                           "host_id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, seq);
        db_bind_int64(st, 2, prev);
        db_bind_int64(st, 3, id);
        db_bind_text(st, 4, host);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_rollout_host_files(StoreTx *tx, int64_t id, const char *host, int64_t *ret_seq, int64_t *ret_prev) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT coalesce(files_seq, 0), coalesce(files_prev, 0) FROM rollout_hosts WHERE "
                           "rollout_id = ? AND host_id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_text(st, 2, host);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        *ret_seq = db_column_int64(st, 0);
        *ret_prev = db_column_int64(st, 1);
        return 0;
}

int store_rollout_host_set_digest(StoreTx *tx, int64_t id, const char *host, const char *digest) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE rollout_hosts SET files_digest = ? WHERE rollout_id = ? AND host_id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, digest);
        db_bind_int64(st, 2, id);
        db_bind_text(st, 3, host);
        r = db_step(st);
        return r < 0 ? r : 0;
}

void rollout_files_hosts_free(RolloutFilesHost *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].host);
                free(v[i].target);
                free(v[i].digest);
                free(v[i].state);
                free(v[i].current_image);
                free(v[i].failed_image);
                free(v[i].message);
                free(v[i].slots);
        }
        free(v);
}

static int files_host_row(DbStmt *st, void *item) {
        RolloutFilesHost *x = item;
        const char *slot = db_column_text(st, 9);
        int r;

        x->assigned_at = (uint64_t) db_column_int64(st, 3);
        x->state_since = (uint64_t) db_column_int64(st, 8);
        x->booted_slot = slot && (streq(slot, "a") || streq(slot, "b")) ? slot[0] : 0;
        if ((r = db_column_dup(st, 0, &x->host)) < 0 || (r = db_column_dup(st, 1, &x->target)) < 0 ||
            (r = db_column_dup(st, 2, &x->digest)) < 0 || (r = db_column_dup(st, 4, &x->state)) < 0 ||
            (r = db_column_dup(st, 5, &x->current_image)) < 0 || (r = db_column_dup(st, 6, &x->failed_image)) < 0 ||
            (r = db_column_dup(st, 7, &x->message)) < 0 || (r = db_column_dup(st, 10, &x->slots)) < 0)
                return r;
        return 0;
}

int store_rollout_files_assigned(StoreTx *tx, int64_t id, RolloutFilesHost **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *sel = NULL, *clear = NULL;
        RolloutFilesHost *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT rh.host_id, rh.target, rh.files_digest, coalesce(rh.assigned_at, 0), h.state, "
                       "h.current_image, h.failed_image, h.message, coalesce(h.state_since, 0), h.booted_slot, "
                       "h.slots FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE rh.rollout_id = ? "
                       "AND rh.status = 'assigned' ORDER BY rh.host_id",
                       &sel);
        if (r < 0)
                return r;
        db_bind_int64(sel, 1, id);
        r = DB_ROWS(sel, v, n, cap, files_host_row);
        if (r >= 0) {
                r = store_stmt(tx, "UPDATE rollout_hosts SET reported = 0 WHERE rollout_id = ? AND reported <> 0",
                               &clear);
                if (r >= 0) {
                        db_bind_int64(clear, 1, id);
                        r = db_step(clear);
                }
        }
        if (r < 0) {
                rollout_files_hosts_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int store_rollout_files_unfinished(StoreTx *tx, int64_t id, char ***ret_hosts, int64_t **ret_prev, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_strv_free_ char **hosts = NULL;
        _cleanup_free_ int64_t *prev = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT host_id, coalesce(files_prev, 0) FROM rollout_hosts WHERE rollout_id = ? AND status "
                       "IN ('assigned', 'failed') ORDER BY host_id",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        while ((r = db_step(st)) > 0) {
                r = array_reserve((void **) &prev, &cap, n, sizeof *prev);
                if (r < 0)
                        return r;
                r = strv_extend(&hosts, db_column_text(st, 0));
                if (r < 0)
                        return r;
                prev[n++] = db_column_int64(st, 1);
        }
        if (r < 0)
                return r;
        *ret_hosts = TAKE_PTR(hosts);
        *ret_prev = TAKE_PTR(prev);
        *ret_n = n;
        return 0;
}

int store_rollout_host_finish(StoreTx *tx, int64_t id, const char *host, bool done, const char *message) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       done ? "UPDATE rollout_hosts SET status = 'done', reported = 0 WHERE rollout_id = ?1 AND "
                              "host_id = ?2 AND status = 'assigned'"
                            : "UPDATE rollout_hosts SET status = 'failed', message = ?3, reported = 0 WHERE "
                              "rollout_id = ?1 AND host_id = ?2 AND status = 'assigned'",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_text(st, 2, host);
        if (!done)
                db_bind_text(st, 3, message);
        r = db_step(st);
        return r < 0 ? r : 0;
}
