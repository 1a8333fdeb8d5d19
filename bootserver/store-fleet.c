/* The fleet page's reads of the inventory (store-fleet.h). */
#include "store-db.h"
#include "store-fleet.h"

int store_fleet_rows(StoreTx *tx, const char *x, const char *y, int (*fn)(const FleetRow *row, void *userdata),
                     void *userdata) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT h.id, COALESCE(lx.value, ''), COALESCE(ly.value, ''), COALESCE(h.version, ''), "
                       "COALESCE(h.state, ''), h.lease_epoch, h.lease_expires, h.quarantined FROM hosts h "
                       "LEFT JOIN host_labels lx ON lx.host_id = h.id AND lx.key = ?1 "
                       "LEFT JOIN host_labels ly ON ly.host_id = h.id AND ly.key = ?2 ORDER BY h.id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, x);
        db_bind_text(st, 2, y);
        while ((r = db_step(st)) > 0) {
                FleetRow row = {
                        .id = db_column_text(st, 0),
                        .x = db_column_text(st, 1),
                        .y = db_column_text(st, 2),
                        .version = db_column_text(st, 3),
                        .state = db_column_text(st, 4),
                        .has_lease = !db_column_is_null(st, 5),
                        .lease_epoch = db_column_is_null(st, 5) ? 0 : (uint64_t) db_column_int64(st, 5),
                        .lease_expires = db_column_is_null(st, 6) ? 0 : (uint64_t) db_column_int64(st, 6),
                        .quarantined = db_column_bool(st, 7),
                };

                r = fn(&row, userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int store_fleet_keys(StoreTx *tx, int (*fn)(const char *key, int64_t hosts, void *userdata), void *userdata) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT key, COUNT(*) FROM host_labels GROUP BY key ORDER BY key", &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                r = fn(db_column_text(st, 0), db_column_int64(st, 1), userdata);
                if (r < 0)
                        return r;
        }
        return r;
}
