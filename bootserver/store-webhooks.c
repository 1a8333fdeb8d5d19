/* The webhooks' cursors over the audit log (store-webhooks.h). */
#include <errno.h>

#include "store-db.h"
#include "store-webhooks.h"

int store_webhook_cursor_get(StoreTx *tx, const char *name, int64_t *ret_id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT last_id FROM webhook_cursors WHERE name = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        r = db_step(st);
        if (r > 0)
                *ret_id = db_column_int64(st, 0);
        return r;
}

int store_webhook_cursor_set(StoreTx *tx, const char *name, int64_t id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO webhook_cursors (name, last_id) VALUES (?1, ?2) "
                       "ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_int64(st, 2, id);
        return db_step(st);
}

int store_audit_last_id(StoreTx *tx, int64_t *ret_id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT coalesce(max(id), 0) FROM audit", &st);
        if (r < 0)
                return r;
        r = db_step(st);
        if (r > 0) {
                *ret_id = db_column_int64(st, 0);
                r = 0;
        }
        return r < 0 ? r : 0;
}
