/* Named API tokens with their roles, and the hosts' token hashes (store-tokens.h). */
#include <errno.h>

#include "store-db.h"
#include "store-tokens.h"

int store_token_insert(StoreTx *tx, const char *name, const char *hash, const char *role, int64_t created) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "INSERT INTO tokens (name, hash, role, created) VALUES (?, ?, ?, ?)", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_text(st, 2, hash);
        db_bind_text(st, 3, role);
        db_bind_int64(st, 4, created);
        return db_step(st);
}

int store_token_delete(StoreTx *tx, const char *name) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM tokens WHERE name = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        r = db_step(st);
        if (r >= 0 && db_changes(st) == 0)
                r = -ENOENT;
        return r;
}

int store_token_list(StoreTx *tx,
                     int (*cb)(const char *name, const char *role, long long created, void *userdata),
                     void *userdata) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT name, role, created FROM tokens ORDER BY name", &st);
        while (r >= 0 && (r = db_step(st)) > 0)
                r = cb(db_column_text(st, 0), db_column_text(st, 1), db_column_int64(st, 2), userdata);
        return r;
}

/* Runs st (hash bound to ?1 by the caller); 1 and column 0 in ret (may be
 * NULL) when a row matches. */
static int lookup(DbStmt *st, char **ret) {
        int r = db_step(st);

        if (r > 0 && ret) {
                *ret = db_column_strdup(st, 0);
                if (!*ret)
                        return -ENOMEM;
        }
        return r;
}

int store_token_admin(StoreTx *tx, const char *hash, char **ret_name, char **ret_role) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ char *name = NULL;
        int r;

        r = store_stmt(tx, "SELECT name, role FROM tokens WHERE hash = ?1", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, hash);
        r = lookup(st, &name);
        if (r > 0 && ret_role) {
                *ret_role = db_column_strdup(st, 1);
                if (!*ret_role)
                        return -ENOMEM;
        }
        if (r > 0 && ret_name)
                *ret_name = TAKE_PTR(name);
        return r;
}

int store_token_host(StoreTx *tx, const char *hash, const char *host, char **ret_actor) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT 'host:' || id FROM hosts WHERE token_hash = ?1 AND (id = ?2 OR mac = lower(?2))",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, hash);
        db_bind_text(st, 2, host);
        return lookup(st, ret_actor);
}

int store_token_is_host(StoreTx *tx, const char *hash, char **ret_actor) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT 'host:' || id FROM hosts WHERE token_hash = ?1", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, hash);
        return lookup(st, ret_actor);
}
