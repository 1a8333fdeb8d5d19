/* The store of rollouts (store-rollouts.h): a rollout, its waves and hosts,
 * what a tick and an action read and write. */
#include <assert.h>
#include <stdlib.h>

#include "store-rollouts.h"
#include "store-db.h"
#include "util.h"

static const char *const state_names[_ROLLOUT_STATE_MAX] = {
        [ROLLOUT_RUNNING] = "running",
        [ROLLOUT_PAUSED] = "paused",
        [ROLLOUT_DONE] = "done",
        [ROLLOUT_ABORTED] = "aborted",
};

static const char *const kind_names[_ROLLOUT_KIND_MAX] = {
        [ROLLOUT_KIND_ROLLOUT] = "rollout",
        [ROLLOUT_KIND_ROLLBACK] = "rollback",
};

const char *rollout_state_to_string(RolloutState s) {
        return s >= 0 && s < _ROLLOUT_STATE_MAX ? state_names[s] : NULL;
}

RolloutState rollout_state_from_string(const char *s) {
        for (int i = 0; s && i < _ROLLOUT_STATE_MAX; i++)
                if (streq(state_names[i], s))
                        return (RolloutState) i;
        return _ROLLOUT_STATE_INVALID;
}

const char *rollout_kind_to_string(RolloutKind k) {
        return k >= 0 && k < _ROLLOUT_KIND_MAX ? kind_names[k] : NULL;
}

RolloutKind rollout_kind_from_string(const char *s) {
        for (int i = 0; s && i < _ROLLOUT_KIND_MAX; i++)
                if (streq(kind_names[i], s))
                        return (RolloutKind) i;
        return _ROLLOUT_KIND_INVALID;
}

void rollout_release(Rollout *r) {
        free(r->spec);
        *r = (Rollout) {};
}

int store_rollout_get(StoreTx *tx, int64_t id, Rollout *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        Rollout ro;
        int r;

        r = store_stmt(tx, "SELECT kind, state, wave, n_waves, wave_done_at, spec FROM rollouts WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        ro = (Rollout) { .id = id,
                         .kind = rollout_kind_from_string(db_column_text(st, 0)),
                         .state = rollout_state_from_string(db_column_text(st, 1)),
                         .wave = db_column_int(st, 2),
                         .n_waves = db_column_int(st, 3),
                         .has_done_at = !db_column_is_null(st, 4),
                         .done_at = (uint64_t) db_column_int64(st, 4) };
        if (ro.kind < 0 || ro.state < 0)
                return -EBADMSG;
        ro.spec = db_column_strdup(st, 5);
        if (!ro.spec)
                return -ENOMEM;
        *ret = ro;
        return 0;
}

int store_rollout_set_state(StoreTx *tx, int64_t id, RolloutState state, const char *reason, bool finished,
                            uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *up = NULL;
        int r;

        assert(rollout_state_to_string(state));
        r = store_stmt(tx, "UPDATE rollouts SET state = ?, reason = ?, finished = ? WHERE id = ?", &up);
        if (r < 0)
                return r;
        db_bind_text(up, 1, rollout_state_to_string(state));
        db_bind_text(up, 2, reason);
        if (finished)
                db_bind_int64(up, 3, now);
        db_bind_int64(up, 4, id);
        r = db_step(up);
        return r < 0 ? r : 0;
}

int store_rollout_skip_host(StoreTx *tx, int64_t id, const char *host, const char *why) {
        _cleanup_stmt_reset_ DbStmt *up = NULL;
        int r;

        r = store_stmt(tx, "UPDATE rollout_hosts SET status = 'skipped', message = ?3 WHERE rollout_id = ?1 AND "
                           "host_id = ?2", &up);
        if (r < 0)
                return r;
        db_bind_int64(up, 1, id);
        db_bind_text(up, 2, host);
        db_bind_text(up, 3, why);
        r = db_step(up);
        return r < 0 ? r : 0;
}

int store_rollout_set_wave_done(StoreTx *tx, int64_t id, uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *up = NULL;
        int r;

        r = store_stmt(tx, "UPDATE rollouts SET wave_done_at = ? WHERE id = ?", &up);
        if (r < 0)
                return r;
        db_bind_int64(up, 1, now);
        db_bind_int64(up, 2, id);
        r = db_step(up);
        return r < 0 ? r : 0;
}

int store_rollout_next_wave(StoreTx *tx, int64_t id) {
        _cleanup_stmt_reset_ DbStmt *up = NULL;
        int r;

        r = store_stmt(tx, "UPDATE rollouts SET wave = wave + 1, wave_done_at = NULL WHERE id = ?", &up);
        if (r < 0)
                return r;
        db_bind_int64(up, 1, id);
        r = db_step(up);
        return r < 0 ? r : 0;
}

/* A row the trigger rollout_hosts_report marked: whether it is done or
 * failed (with message) now, or neither. */
typedef struct StatusChange {
        char *host, *message;
        bool finished, done;
} StatusChange;

static void status_changes_free(StatusChange *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].host);
                free(v[i].message);
        }
        free(v);
}

/* Whether assigned row rh of a rollout (a rollback when ?2) is finished by
 * what its host h reports: done (on the target, healthy) or failed. The
 * trigger rollout_hosts_report (migration 11) and store_rollout_ready()
 * (for store_rollout_assign()) test the same to mark a row. */
#define ROW_FINISHED                                                                                            \
        "((h.current_image = rh.target AND h.state = 'healthy') OR (h.state IN ('rolled-back', 'failed') AND " \
        "h.current_image IS DISTINCT FROM rh.target AND (coalesce(h.state_since, 0) >= rh.assigned_at OR "    \
        "(?2 = 0 AND h.failed_image = rh.target))))"

static int status_change_row(DbStmt *st, void *item) {
        StatusChange *c = item;
        int r;

        c->finished = db_column_bool(st, 1);
        c->done = db_column_bool(st, 2);
        if ((r = db_column_dup(st, 0, &c->host)) < 0 || (r = db_column_dup(st, 3, &c->message)) < 0)
                return r;
        return c->host ? 0 : -ENOMEM;
}

int store_rollout_update_statuses(StoreTx *tx, int64_t id, bool rollback) {
        _cleanup_stmt_reset_ DbStmt *sel = NULL;
        StatusChange *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        /* Only the marked rows, through the partial index (its predicate,
         * reported <> 0, word for word: sqlite uses it for no other): a
         * host's report marked them since the last tick, or their
         * assignment did. One read finds both outcomes: none can be done
         * (on the target) and failed (off it) at once. A marked row that is
         * not finished any more (its host reported again) loses its mark.
         * Read first, then written. */
        r = store_stmt(tx,
                       "SELECT rh.host_id, rh.status = 'assigned' AND " ROW_FINISHED ", h.current_image = "
                       "rh.target AND h.state = 'healthy', h.message FROM rollout_hosts rh JOIN hosts h ON h.id = "
                       "rh.host_id WHERE rh.rollout_id = ?1 AND rh.reported <> 0",
                       &sel);
        if (r < 0)
                return r;
        db_bind_int64(sel, 1, id);
        db_bind_bool(sel, 2, rollback);
        r = DB_ROWS(sel, v, n, cap, status_change_row);
        db_reset(sel);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_stmt_reset_ DbStmt *up = NULL;

                if (!v[i].finished)
                        r = store_stmt(tx, "UPDATE rollout_hosts SET reported = 0 WHERE rollout_id = ? AND "
                                           "host_id = ?", &up);
                else if (v[i].done)
                        r = store_stmt(tx, "UPDATE rollout_hosts SET status = 'done', reported = 0 WHERE "
                                           "rollout_id = ? AND host_id = ?", &up);
                else
                        r = store_stmt(tx, "UPDATE rollout_hosts SET status = 'failed', message = ?3, reported = 0 "
                                           "WHERE rollout_id = ?1 AND host_id = ?2", &up);
                if (r < 0)
                        break;
                db_bind_int64(up, 1, id);
                db_bind_text(up, 2, v[i].host);
                if (v[i].finished && !v[i].done)
                        db_bind_text(up, 3, v[i].message);
                r = db_step(up);
        }
        status_changes_free(v, n);
        return r < 0 ? r : 0;
}

int store_rollout_wave_open(StoreTx *tx, int64_t id, int wave, uint64_t now, uint64_t heartbeat_timeout) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* Whether there is one, not how many: the first found ends it. */
        r = store_stmt(tx,
                       "SELECT EXISTS (SELECT 1 FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE "
                       "rh.rollout_id = ?1 AND rh.status IN ('pending', 'assigned') AND rh.wave <= ?2 AND "
                       "coalesce(h.last_seen, 0) >= ?3 - ?4)",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_int(st, 2, wave);
        db_bind_int64(st, 3, now);
        db_bind_int64(st, 4, heartbeat_timeout);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        return db_column_bool(st, 0) ? 1 : 0;
}

static int tally_row(DbStmt *st, void *item) {
        *(RolloutWaveTally *) item = (RolloutWaveTally) { .wave = db_column_int(st, 0),
                                                          .hosts = db_column_int64(st, 1),
                                                          .failed = db_column_int64(st, 2) };
        return 0;
}

int store_rollout_wave_tallies(StoreTx *tx, int64_t id, int wave, RolloutWaveTally **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ RolloutWaveTally *t = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT wave, hosts, failed_new FROM rollout_waves WHERE rollout_id = ?1 AND wave <= ?2 AND "
                       "hosts > 0 ORDER BY wave",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_int(st, 2, wave);
        r = DB_ROWS(st, t, n, cap, tally_row);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        *ret_n = n;
        return 0;
}

void rollout_ready_free(RolloutReady *r, size_t n) {
        for (size_t i = 0; r && i < n; i++) {
                free(r[i].host);
                free(r[i].target);
        }
        free(r);
}

/* The earliest phase of rollout ?1 with a host of status that was seen
 * since ?3 - ?4: in phase order (rollout_hosts_phase), so that it ends at
 * the first one found. */
#define EARLIEST_PHASE(status)                                                                          \
        "SELECT (SELECT o.phase FROM rollout_hosts o JOIN hosts oh ON oh.id = o.host_id WHERE "         \
        "o.rollout_id = ?1 AND o.status = '" status "' AND coalesce(oh.last_seen, 0) >= ?3 - ?4 ORDER BY " \
        "o.phase LIMIT 1) AS p"

/* The pending hosts are found wave by wave (the waves so far that have
 * one, from rollout_waves), each from its earliest phase up to the
 * earliest open one (rollout_hosts_status): the hosts of later phases,
 * which wait, are not read. Every host found that is reachable is in that
 * phase (no earlier one has a reachable pending host), so they come by
 * wave and, within one, in the order they were added: the ORDER BY is
 * the index's own order, so sqlite sorts nothing (its rowid is the order
 * rows were added; PostgreSQL's rollout_hosts has seq for it).
 *
 * The earliest open phase is the rollout's, not the wave's: a host is
 * assigned only when no reachable host of an earlier phase is pending or
 * assigned in any wave (docs/coordinator.md, step 3). The plan sorts the
 * hosts by phase before it cuts the waves, so a later wave never holds
 * an earlier phase than the waves before it. */
#define ROLLOUT_READY_SQL(added)                                                                                \
        "SELECT rh.host_id, rh.target, EXISTS (SELECT 1 FROM images i WHERE i.id = rh.target), "               \
        "(h.current_image = rh.target AND h.state = 'healthy') OR (h.state IN ('rolled-back', "                \
        "'failed') AND h.current_image IS DISTINCT FROM rh.target AND (coalesce(h.state_since, 0) >= ?3 "       \
        "OR (?5 = 0 AND h.failed_image = rh.target))) FROM rollout_waves w CROSS JOIN rollout_hosts rh JOIN "    \
        "hosts h ON h.id = rh.host_id WHERE w.rollout_id = ?1 AND w.wave <= ?2 AND w.pending > 0 AND "          \
        "rh.rollout_id = ?1 AND rh.status = 'pending' AND rh.wave = w.wave AND coalesce(h.last_seen, 0) >= "    \
        "?3 - ?4 AND rh.phase <= (SELECT coalesce(min(p), 2147483647) FROM (" EARLIEST_PHASE("pending")         \
        " UNION ALL " EARLIEST_PHASE("assigned") ") AS e) ORDER BY w.wave, rh.phase, " added " LIMIT ?6"

static int ready_row(DbStmt *st, void *item) {
        RolloutReady *x = item;

        *x = (RolloutReady) { .host = db_column_strdup(st, 0), .target = db_column_strdup(st, 1),
                              .known = db_column_bool(st, 2), .finished = db_column_bool(st, 3) };
        return x->host && x->target ? 0 : -ENOMEM;
}

int store_rollout_ready(StoreTx *tx, int64_t id, int max_wave, uint64_t now, uint64_t heartbeat_timeout,
                        bool rollback, unsigned limit, RolloutReady **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *sel = NULL;
        RolloutReady *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       store_tx_postgresql(tx) ? ROLLOUT_READY_SQL("rh.seq") : ROLLOUT_READY_SQL("rh.rowid"),
                       &sel);
        if (r < 0)
                return r;
        db_bind_int64(sel, 1, id);
        db_bind_int(sel, 2, max_wave);
        db_bind_int64(sel, 3, now);
        db_bind_int64(sel, 4, heartbeat_timeout);
        db_bind_bool(sel, 5, rollback);
        db_bind_int64(sel, 6, limit);
        r = DB_ROWS(sel, v, n, cap, ready_row);
        if (r < 0) {
                rollout_ready_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int store_rollout_assign(StoreTx *tx, int64_t id, const char *host, const char *target, bool rollback,
                         bool finished, uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *h = NULL, *row = NULL;
        int r;

        /* Cached: a wave assigns its hosts one after the other. */
        r = store_stmt(tx, "UPDATE hosts SET image = ?, rollback = ? WHERE id = ?", &h);
        if (r < 0)
                return r;
        db_bind_text(h, 1, target);
        db_bind_bool(h, 2, rollback);
        db_bind_text(h, 3, host);
        r = db_step(h);
        if (r < 0)
                return r;
        /* Marked when its host's report already finishes it (a host that
         * runs the target, or still names it as the image it failed): no
         * later report would. */
        r = store_stmt(tx, "UPDATE rollout_hosts SET status = 'assigned', assigned_at = ?, reported = ? WHERE "
                           "rollout_id = ? AND host_id = ?", &row);
        if (r < 0)
                return r;
        db_bind_int64(row, 1, now);
        db_bind_bool(row, 2, finished);
        db_bind_int64(row, 3, id);
        db_bind_text(row, 4, host);
        r = db_step(row);
        return r < 0 ? r : 0;
}

/* Runs sql (its statement is cached) with ?1 = id. */
static int exec_id(StoreTx *tx, const char *sql, int64_t id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_rollout_ack_failures(StoreTx *tx, int64_t id) {
        return exec_id(tx, "UPDATE rollout_hosts SET acked = 1 WHERE rollout_id = ? AND status = 'failed'", id);
}

int store_rollout_skip_pending(StoreTx *tx, int64_t id) {
        return exec_id(tx, "UPDATE rollout_hosts SET status = 'skipped' WHERE rollout_id = ? AND status = 'pending'", id);
}

static int id_row(DbStmt *st, void *item) {
        *(int64_t *) item = db_column_int64(st, 0);
        return 0;
}

int store_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT id FROM rollouts WHERE state IN ('running', 'paused') OR (state = 'done' AND EXISTS "
                       "(SELECT 1 FROM rollout_hosts rh WHERE rh.rollout_id = rollouts.id AND rh.status IN ('pending', "
                       "'assigned'))) ORDER BY id",
                       &st);
        if (r < 0)
                return r;
        r = DB_ROWS(st, ids, n, cap, id_row);
        if (r < 0)
                return r;
        *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

int store_rollout_insert(StoreTx *tx, RolloutKind kind, const char *image, const char *spec, int n_waves,
                         int64_t rollback_of, const char *actor, uint64_t now, int64_t *ret_id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        assert(rollout_kind_to_string(kind));
        r = store_stmt(tx,
                       "INSERT INTO rollouts (kind, image, spec, state, n_waves, rollback_of, actor, created) VALUES "
                       "(?, ?, ?, 'running', ?, ?, ?, ?) RETURNING id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, rollout_kind_to_string(kind));
        db_bind_text(st, 2, image);
        db_bind_text(st, 3, spec);
        db_bind_int(st, 4, n_waves);
        if (rollback_of > 0)
                db_bind_int64(st, 5, rollback_of);
        db_bind_text(st, 6, actor);
        db_bind_int64(st, 7, now);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret_id = db_column_int64(st, 0);
        return 0;
}

int store_rollout_add_host(StoreTx *tx, int64_t id, const char *host, int wave, int phase, const char *target,
                           const char *prev_image) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO rollout_hosts (rollout_id, host_id, wave, phase, target, prev_image, status) "
                       "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_text(st, 2, host);
        db_bind_int(st, 3, wave);
        db_bind_int(st, 4, phase);
        db_bind_text(st, 5, target);
        db_bind_text(st, 6, prev_image);
        r = db_step(st);
        return r < 0 ? r : 0;
}

#define ROLLBACK_HOSTS_SQL(added)                                                                             \
        "INSERT INTO rollout_hosts (rollout_id, host_id, wave, phase, target, prev_image, status, files_seq, "   \
        "files_prev) SELECT ?1, host_id, wave, phase, prev_image, target, 'pending', files_prev, files_seq FROM " \
        "rollout_hosts WHERE rollout_id = ?2 AND "                                                              \
        "status IN ('assigned', 'done', 'failed') AND prev_image IS NOT NULL ORDER BY status, wave, phase, "     \
        added

int store_rollout_add_rollback_hosts(StoreTx *tx, int64_t id, int64_t of) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* Added in the order of rollout_hosts_status, which sqlite reads
         * them by, so that both drivers assign them in the same order. */
        r = store_stmt(tx,
                       store_tx_postgresql(tx) ? ROLLBACK_HOSTS_SQL("seq") : ROLLBACK_HOSTS_SQL("rowid"), &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_int64(st, 2, of);
        r = db_step(st);
        return r < 0 ? r : 0;
}

void rollout_back_hosts_free(RolloutBackHost *v, size_t n) {
        for (size_t i = 0; v && i < n; i++) {
                free(v[i].host);
                free(v[i].target);
        }
        free(v);
}

static int back_host_row(DbStmt *st, void *item) {
        RolloutBackHost *x = item;

        *x = (RolloutBackHost) { .host = db_column_strdup(st, 0), .known = db_column_bool(st, 2),
                                 .busy_in = db_column_int64(st, 3) };
        if (!x->host)
                return -ENOMEM;
        return db_column_dup(st, 1, &x->target);
}

int store_rollout_back_hosts(StoreTx *tx, int64_t id, int64_t of, RolloutBackHost **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        RolloutBackHost *v = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx,
                       "SELECT rh.host_id, rh.target, EXISTS (SELECT 1 FROM images i WHERE i.id = rh.target), "
                       "(SELECT o.rollout_id FROM rollout_hosts o JOIN rollouts ro ON ro.id = o.rollout_id WHERE "
                       "o.host_id = rh.host_id AND o.rollout_id NOT IN (?1, ?2) AND o.status IN ('pending', "
                       "'assigned') AND ro.state IN ('running', 'paused', 'done') LIMIT 1) FROM rollout_hosts rh "
                       "WHERE rh.rollout_id = ?1 ORDER BY rh.host_id",
                       &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, id);
        db_bind_int64(st, 2, of);
        r = DB_ROWS(st, v, n, cap, back_host_row);
        if (r < 0) {
                rollout_back_hosts_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int store_rollout_revert_unfinished(StoreTx *tx, int64_t id) {
        return exec_id(tx,
                       "UPDATE hosts SET image = (SELECT rh.prev_image FROM rollout_hosts rh WHERE rh.rollout_id = ?1 "
                       "AND rh.host_id = hosts.id), rollback = 0 WHERE id IN (SELECT host_id FROM rollout_hosts WHERE "
                       "rollout_id = ?1 AND status IN ('assigned', 'failed') AND prev_image IN (SELECT id FROM "
                       "images)) AND image = (SELECT target FROM rollout_hosts WHERE rollout_id = ?1 AND host_id = "
                       "hosts.id)",
                       id);
}

int store_rollout_host_busy(StoreTx *tx, const char *host, int64_t *ret_id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT r.id FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id WHERE "
                       "r.state IN ('running', 'paused', 'done') AND rh.status IN ('pending', 'assigned') AND "
                       "rh.host_id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        r = db_step(st);
        if (r <= 0)
                return r;
        *ret_id = db_column_int64(st, 0);
        return 1;
}
