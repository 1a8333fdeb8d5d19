/* The audit log (store-audit.h): append, list. */
#include <errno.h>
#include <stdlib.h>

#include "macro.h"
#include "store-audit-sql.h"
#include "store-audit.h"
#include "store-db.h"
#include "util.h"

void audit_entries_free(AuditEntry *e, size_t n) {
        for (size_t i = 0; e && i < n; i++) {
                free(e[i].actor);
                free(e[i].action);
                free(e[i].target);
                free(e[i].detail);
        }
        free(e);
}

int store_audit_append(StoreTx *tx, int64_t time, const char *actor, const char *action, const char *target,
                       const char *detail) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "INSERT INTO audit (time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, time);
        db_bind_text(st, 2, actor);
        db_bind_text(st, 3, action);
        db_bind_text(st, 4, target);
        db_bind_text(st, 5, detail);
        r = db_step(st);
        if (r >= 0)
                store_tx_audited(tx);
        return r;
}

int store_audit_list(StoreTx *tx, const AuditQuery *q, AuditEntry **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        AuditEntry *l = NULL;
        size_t n = 0, cap = 0;
        int r;

        /* One target's (a host's page): through its index, schema 24. */
        r = store_stmt(tx, q->target ? AUDIT_LIST_TARGET_SQL : AUDIT_LIST_SQL, &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, q->since);
        db_bind_int64(st, 2, q->last ? q->last : q->limit);
        db_bind_text(st, 3, q->action);
        /* last: the newest N, still returned oldest first */
        db_bind_int(st, 4, q->last ? -1 : 1);
        if (q->target)
                db_bind_text(st, 5, q->target);
        while ((r = db_step(st)) > 0) {
                AuditEntry *e = ARRAY_PUSH(l, n, cap);
                if (!e) {
                        r = -ENOMEM;
                        break;
                }
                *e = (AuditEntry) {
                        .id = db_column_int64(st, 0),
                        .time = db_column_int64(st, 1),
                        .actor = db_column_strdup(st, 2),
                        .action = db_column_strdup(st, 3),
                        .target = db_column_strdup(st, 4),
                        .detail = db_column_strdup(st, 5),
                };
                if (!e->actor || !e->action) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                audit_entries_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}
