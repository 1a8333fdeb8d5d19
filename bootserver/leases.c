#include <time.h>

#include "audit.h"
#include "hosts.h"
#include "leases.h"
#include "server.h"
#include "util.h"

/* With the lock held, in a transaction: the next fencing epoch. */
static int next_epoch(sqlite3 *db, uint64_t *ret) {
        _cleanup_stmt_ sqlite3_stmt *up = NULL, *sel = NULL;
        int r;

        r = db_prepare(db, "UPDATE meta SET value = value + 1 WHERE key = 'lease_epoch'", &up);
        if (r >= 0)
                r = db_errno(sqlite3_step(up));
        if (r >= 0)
                r = db_prepare(db, "SELECT value FROM meta WHERE key = 'lease_epoch'", &sel);
        if (r >= 0 && sqlite3_step(sel) != SQLITE_ROW)
                r = -EIO;
        if (r >= 0)
                *ret = (uint64_t) sqlite3_column_int64(sel, 0);
        return r;
}

enum MHD_Result handle_lease_acquire(Request *req) {
        _cleanup_stmt_ sqlite3_stmt *cur = NULL, *up = NULL;
        uint64_t epoch = 0;
        int64_t now = (int64_t) time(NULL), expires = now + LEASE_TTL_DEFAULT;
        bool renewed = false;
        char id[16];
        sqlite3 *db;
        int r;

        db = db_lock(req->server->db);
        r = db_begin(db);
        if (r >= 0)
                r = hosts_find(db, req->args[0], id);
        if (r >= 0)
                r = db_prepare(db, "SELECT lease_epoch, lease_expires FROM hosts WHERE id = ?", &cur);
        if (r >= 0) {
                sqlite3_bind_text(cur, 1, id, -1, SQLITE_STATIC);
                if (sqlite3_step(cur) == SQLITE_ROW && sqlite3_column_type(cur, 0) != SQLITE_NULL &&
                    sqlite3_column_int64(cur, 1) >= now) {
                        /* A live lease is renewed under its epoch. */
                        epoch = (uint64_t) sqlite3_column_int64(cur, 0);
                        renewed = true;
                }
        }
        if (r >= 0 && !renewed)
                r = next_epoch(db, &epoch);
        if (r >= 0)
                r = db_prepare(db, "UPDATE hosts SET lease_epoch = ?, lease_expires = ? WHERE id = ?", &up);
        if (r >= 0) {
                sqlite3_bind_int64(up, 1, (sqlite3_int64) epoch);
                sqlite3_bind_int64(up, 2, expires);
                sqlite3_bind_text(up, 3, id, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(up));
        }
        if (r >= 0 && !renewed) {
                json_t *d = json_pack("{s:I, s:I}", "epoch", (json_int_t) epoch, "ttl", (json_int_t) LEASE_TTL_DEFAULT);
                r = audit_log(db, req->actor, "lease.grant", id, d);
                json_decref(d);
        }
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        db_unlock(req->server->db);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "lease");
        return reply_json(req, 200, json_pack("{s:b, s:I, s:I}", "granted", true, "epoch", (json_int_t) epoch, "ttl",
                                              (json_int_t) LEASE_TTL_DEFAULT));
}

enum MHD_Result handle_lease_release(Request *req) {
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        char id[16];
        sqlite3 *db;
        int r;

        db = db_lock(req->server->db);
        r = db_begin(db);
        if (r >= 0)
                r = hosts_find(db, req->args[0], id);
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE hosts SET lease_epoch = NULL, lease_expires = NULL WHERE id = ? AND "
                               "lease_epoch IS NOT NULL",
                               &up);
        if (r >= 0) {
                sqlite3_bind_text(up, 1, id, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(up));
        }
        if (r >= 0 && sqlite3_changes(db) > 0)
                r = audit_log(db, req->actor, "lease.release", id, NULL);
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        db_unlock(req->server->db);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "lease");
        return reply_json(req, 200, json_pack("{s:b}", "released", true));
}
