/* The instances' registry and the coordinator's leader lease in the store
 * (store-instances.h). Each statement reads the database's clock itself:
 * the text differs between the two databases in that expression only, so
 * each is a macro of it and the driver picks one of the two literals. */
#include <errno.h>
#include <stdlib.h>

#include "store-db.h"
#include "store-instances-sql.h"
#include "store-instances.h"
#include "util.h"

#define PICK(tx, SQL) (store_tx_postgresql(tx) ? SQL(NOW_MS_PG) : SQL(NOW_MS_SQLITE))

void instance_list_free(Instance *l, size_t n) {
        for (size_t i = 0; l && i < n; i++) {
                free(l[i].name);
                free(l[i].incarnation);
                free(l[i].url);
                free(l[i].version);
        }
        free(l);
}

void leader_row_release(LeaderRow *r) {
        free(r->instance);
        free(r->holder);
        *r = (LeaderRow) {};
}

/* Another incarnation's row is taken over only once it is stale. */
#define HEARTBEAT_SQL(NOW)                                                                                     \
        "INSERT INTO instances (name, incarnation, url, version, pid, started, heartbeat) "                    \
        "VALUES (?1, ?2, ?3, ?4, ?5, " NOW ", " NOW ") ON CONFLICT (name) DO UPDATE SET "                      \
        "started = CASE WHEN instances.incarnation = excluded.incarnation THEN instances.started "            \
        "ELSE excluded.started END, incarnation = excluded.incarnation, url = excluded.url, "                 \
        "version = excluded.version, pid = excluded.pid, heartbeat = excluded.heartbeat "                     \
        "WHERE instances.incarnation = excluded.incarnation OR instances.heartbeat < excluded.heartbeat - ?6"

int store_instance_heartbeat(StoreTx *tx, const Instance *i, int64_t stale_ms) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, PICK(tx, HEARTBEAT_SQL), &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, i->name);
        db_bind_text(st, 2, i->incarnation);
        db_bind_text(st, 3, i->url);
        db_bind_text(st, 4, i->version);
        db_bind_int64(st, 5, i->pid);
        db_bind_int64(st, 6, stale_ms);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) > 0;
}

int store_instance_remove(StoreTx *tx, const char *name, const char *incarnation) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM instances WHERE name = ?1 AND incarnation = ?2", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_text(st, 2, incarnation);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) > 0;
}

#define PRUNE_SQL(NOW) "DELETE FROM instances WHERE heartbeat < " NOW " - ?1"

int store_instance_prune(StoreTx *tx, int64_t age_ms) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, PICK(tx, PRUNE_SQL), &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, age_ms);
        r = db_step(st);
        if (r < 0)
                return r;
        return (int) MIN(db_changes(st), (int64_t) INT32_MAX);
}

#define LIST_SQL(NOW)                                                                                   \
        "SELECT name, incarnation, url, version, pid, started, " NOW " - heartbeat FROM instances " \
        "ORDER BY name"

int store_instance_list(StoreTx *tx, Instance **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        Instance *l = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx, PICK(tx, LIST_SQL), &st);
        while (r >= 0 && (r = db_step(st)) > 0) {
                Instance *i = ARRAY_PUSH(l, n, cap);

                if (!i) {
                        r = -ENOMEM;
                        break;
                }
                *i = (Instance) {
                        .name = db_column_strdup(st, 0),
                        .incarnation = db_column_strdup(st, 1),
                        .url = db_column_strdup(st, 2),
                        .version = db_column_strdup(st, 3),
                        .pid = db_column_int64(st, 4),
                        .started = db_column_int64(st, 5),
                        .heartbeat_age = db_column_int64(st, 6),
                };
                if (!i->name || !i->incarnation || !i->url || !i->version)
                        r = -ENOMEM;
        }
        if (r < 0) {
                instance_list_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

/* In SET every column reads the row as it was: a renewal keeps the epoch
 * and since, a take moves the epoch on and starts since. */
#define ACQUIRE_SQL(NOW)                                                                                       \
        "UPDATE coordinator_leader SET "                                                                       \
        "epoch = CASE WHEN holder = ?2 AND expires > " NOW " THEN epoch ELSE epoch + 1 END, "                 \
        "since = CASE WHEN holder = ?2 AND expires > " NOW " THEN since ELSE " NOW " END, "                   \
        "instance = ?1, holder = ?2, expires = " NOW " + ?3 "                                                  \
        "WHERE id = 1 AND (holder = ?2 OR holder IS NULL OR expires <= " NOW ") RETURNING epoch"

int store_leader_acquire(StoreTx *tx, const char *instance, const char *holder, int64_t ttl_ms, int64_t *ret_epoch) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int64_t epoch;
        int r;

        r = store_stmt(tx, PICK(tx, ACQUIRE_SQL), &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, instance);
        db_bind_text(st, 2, holder);
        db_bind_int64(st, 3, ttl_ms);
        r = db_step(st);
        if (r <= 0)
                return r;
        epoch = db_column_int64(st, 0);
        /* Run it to its end, so the update is complete before the reset. */
        r = db_step(st);
        if (r < 0)
                return r;
        *ret_epoch = epoch;
        return 1;
}

#define HOLDS_SQL(NOW) \
        "SELECT 1 FROM coordinator_leader WHERE id = 1 AND holder = ?1 AND epoch = ?2 AND expires > " NOW

int store_leader_holds(StoreTx *tx, const char *holder, int64_t epoch) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, PICK(tx, HOLDS_SQL), &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, holder);
        db_bind_int64(st, 2, epoch);
        return db_step(st);
}

int store_leader_release(StoreTx *tx, const char *holder, int64_t epoch) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "UPDATE coordinator_leader SET instance = NULL, holder = NULL, expires = 0 "
                       "WHERE id = 1 AND holder = ?1 AND epoch = ?2",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, holder);
        db_bind_int64(st, 2, epoch);
        r = db_step(st);
        if (r < 0)
                return r;
        return db_changes(st) > 0;
}

#define GET_SQL(NOW) \
        "SELECT instance, holder, epoch, expires - " NOW ", since FROM coordinator_leader WHERE id = 1"

int store_leader_get(StoreTx *tx, LeaderRow *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        LeaderRow l = {};
        int r;

        r = store_stmt(tx, PICK(tx, GET_SQL), &st);
        if (r < 0)
                return r;
        r = db_step(st);
        if (r < 0)
                return r;
        if (r == 0)
                return -EIO; /* the row is made with the table */
        l = (LeaderRow) {
                .instance = db_column_strdup(st, 0),
                .holder = db_column_strdup(st, 1),
                .epoch = db_column_int64(st, 2),
                .expires_in = db_column_int64(st, 3),
                .since = db_column_int64(st, 4),
        };
        if ((!l.instance && !db_column_is_null(st, 0)) || (!l.holder && !db_column_is_null(st, 1))) {
                leader_row_release(&l);
                return -ENOMEM;
        }
        *ret = l;
        return 0;
}
