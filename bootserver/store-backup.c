/* The store's part of a backup (store-backup.h): what a state holds, and
 * the lease epochs of a restored one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-backup.h"
#include "store-db.h"
#include "util.h"

void store_snapshot_info_release(StoreSnapshotInfo *i) {
        free(i->blobs);
        *i = (StoreSnapshotInfo) {};
}

/* The integer of a one-row, one-column query; 0 when there is no row. */
static int query_u64(StoreTx *tx, const char *sql, uint64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r = store_stmt(tx, sql, &st);

        if (r >= 0)
                r = db_step(st);
        if (r < 0)
                return r;
        *ret = r > 0 ? (uint64_t) db_column_int64(st, 0) : 0;
        return 0;
}

static int read_blobs(StoreTx *tx, StoreSnapshotInfo *i) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        size_t cap = 0;
        int r;

        /* A blob recorded in the catalog, or one an artifact names (which the
         * catalog records too, unless the state was changed by hand). */
        r = store_stmt(tx,
                       "SELECT sha256, max(size) FROM (SELECT sha256, size FROM blobs UNION ALL "
                       "SELECT sha256, size FROM artifacts) b GROUP BY sha256 ORDER BY sha256",
                       &st);
        while (r >= 0 && (r = db_step(st)) > 0) {
                const char *hex = db_column_text(st, 0);
                StoreBlobRef *ref;

                if (!hex || !sha256_hex_valid(hex))
                        return -EBADMSG;
                ref = array_push((void **) &i->blobs, &i->n_blobs, &cap, sizeof *ref);
                if (!ref)
                        return -ENOMEM;
                memcpy(ref->sha256, hex, 65);
                ref->size = (uint64_t) db_column_int64(st, 1);
        }
        return r;
}

int store_snapshot_read(StoreTx *tx, StoreSnapshotInfo *ret) {
        StoreSnapshotInfo i = {};
        uint64_t version = 0;
        int r;

        /* The drivers' schema versions (store-sqlite.c's migrate(),
         * store-pg-schema.c). */
        r = store_tx_postgresql(tx) ? query_u64(tx, "SELECT version FROM schema_version", &version)
                                    : query_u64(tx, "PRAGMA user_version", &version);
        if (r >= 0)
                r = query_u64(tx, "SELECT value FROM meta WHERE key = 'lease_epoch'", &i.lease_epoch);
        if (r >= 0)
                r = query_u64(tx, "SELECT count(*) FROM hosts", &i.hosts);
        if (r >= 0)
                r = query_u64(tx, "SELECT count(*) FROM images", &i.images);
        if (r >= 0)
                r = query_u64(tx, "SELECT count(*) FROM rollouts", &i.rollouts);
        if (r >= 0)
                r = query_u64(tx, "SELECT count(*) FROM audit", &i.audit);
        if (r >= 0)
                r = query_u64(tx, "SELECT count(*) FROM tokens", &i.tokens);
        if (r >= 0)
                r = read_blobs(tx, &i);
        if (r < 0) {
                store_snapshot_info_release(&i);
                return r;
        }
        i.schema_version = (int) version;
        *ret = i;
        return 0;
}

int store_restore_epochs(StoreTx *tx, uint64_t floor, uint64_t *ret_epoch, uint64_t *ret_leases) {
        _cleanup_stmt_reset_ DbStmt *up = NULL, *renumber = NULL, *past = NULL, *sel = NULL;
        int r;

        if (floor > INT64_MAX / 2)
                return -ERANGE;
        r = store_stmt(tx, "UPDATE meta SET value = CASE WHEN value < ?1 THEN ?1 ELSE value END WHERE key = 'lease_epoch'",
                       &up);
        if (r < 0)
                return r;
        db_bind_int64(up, 1, (int64_t) floor);
        r = db_step(up);
        /* The held leases in the order of their old epochs, numbered on
         * from the counter; then the counter past them. */
        if (r >= 0)
                r = store_stmt(tx,
                               "UPDATE hosts SET lease_epoch = (SELECT value FROM meta WHERE key = 'lease_epoch') +"
                               "  (SELECT count(*) FROM hosts h WHERE h.lease_epoch IS NOT NULL AND"
                               "   (h.lease_epoch < hosts.lease_epoch OR (h.lease_epoch = hosts.lease_epoch AND"
                               "    h.id <= hosts.id)))"
                               "  WHERE lease_epoch IS NOT NULL",
                               &renumber);
        if (r >= 0)
                r = db_step(renumber);
        if (r >= 0)
                r = store_stmt(tx,
                               "UPDATE meta SET value = value + (SELECT count(*) FROM hosts WHERE lease_epoch IS NOT NULL)"
                               "  WHERE key = 'lease_epoch'",
                               &past);
        if (r >= 0)
                r = db_step(past);
        if (r >= 0)
                r = store_stmt(tx,
                               "SELECT value, (SELECT count(*) FROM hosts WHERE lease_epoch IS NOT NULL) FROM meta "
                               "WHERE key = 'lease_epoch'",
                               &sel);
        if (r >= 0)
                r = db_step(sel);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        *ret_epoch = (uint64_t) db_column_int64(sel, 0);
        if (ret_leases)
                *ret_leases = (uint64_t) db_column_int64(sel, 1);
        return 0;
}

/* The text of a one-row, one-column query (caller frees). */
static int query_text(StoreTx *tx, const char *sql, char **ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r = store_stmt(tx, sql, &st);

        if (r >= 0)
                r = db_step(st);
        if (r < 0)
                return r;
        if (r == 0 || db_column_is_null(st, 0))
                return -EBADMSG;
        *ret = db_column_strdup(st, 0);
        return *ret ? 0 : -ENOMEM;
}

int store_pg_snapshot_export(StoreTx *tx, char **ret_id) {
        if (!store_tx_postgresql(tx))
                return -EOPNOTSUPP;
        return query_text(tx, "SELECT pg_export_snapshot()", ret_id);
}

int store_pg_server_version(StoreTx *tx, int *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        if (!store_tx_postgresql(tx))
                return -EOPNOTSUPP;
        r = query_text(tx, "SELECT current_setting('server_version_num')", &text);
        if (r < 0)
                return r;
        return safe_atoi(text, ret);
}

int store_pg_other_sessions(StoreTx *tx, uint64_t *ret) {
        if (!store_tx_postgresql(tx))
                return -EOPNOTSUPP;
        return query_u64(tx,
                         "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                         "pid <> pg_backend_pid() AND backend_type = 'client backend'",
                         ret);
}
