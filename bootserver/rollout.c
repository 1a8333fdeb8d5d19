/* Rollouts: a set of hosts moved to an image in waves. The waves only say
 * who may start; the reboot leases (coordinator.c) say who may go down. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit.h"
#include "coordinator.h"
#include "hosts.h"
#include "images.h"
#include "log.h"
#include "rollout.h"
#include "util.h"
#include "store-sqlite.h"

static int rollout_set_state(StoreTx *tx, int64_t id, const char *state, const char *reason, const char *actor,
                             uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        bool final = streq(state, "done") || streq(state, "aborted");
        json_t *d;
        int r;

        r = db_prepare(db, "UPDATE rollouts SET state = ?, reason = ?, finished = ? WHERE id = ?", &up);
        if (r < 0)
                return r;
        sqlite3_bind_text(up, 1, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, reason, -1, SQLITE_STATIC);
        if (final)
                sqlite3_bind_int64(up, 3, (sqlite3_int64) now);
        sqlite3_bind_int64(up, 4, id);
        r = db_step(up);
        if (r < 0)
                return r;
        d = json_pack("{s:s, s:s?}", "state", state, "reason", reason);
        r = audit_log(tx, actor, streq(state, "running") ? "rollout.resume" : streq(state, "paused") ? "rollout.pause"
                                 : streq(state, "done") ? "rollout.done" : "rollout.abort",
                      target, d);
        json_decref(d);
        return r;
}

/* What a tick reads of a rollout. */
typedef struct RolloutRow {
        char *kind, *state, *spec;
        int wave, n_waves;
        bool has_done_at;
        uint64_t done_at;
} RolloutRow;

static void rollout_row_release(RolloutRow *row) {
        free(row->kind);
        free(row->state);
        free(row->spec);
        *row = (RolloutRow) {};
}

static int rollout_row_read(sqlite3 *db, int64_t id, RolloutRow *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        RolloutRow row = {};
        int r;

        r = db_prepare(db, "SELECT kind, state, wave, n_waves, wave_done_at, spec FROM rollouts WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        row = (RolloutRow) { .kind = db_column_strdup(st, 0), .state = db_column_strdup(st, 1),
                             .spec = db_column_strdup(st, 5), .wave = sqlite3_column_int(st, 2),
                             .n_waves = sqlite3_column_int(st, 3),
                             .has_done_at = sqlite3_column_type(st, 4) != SQLITE_NULL,
                             .done_at = (uint64_t) sqlite3_column_int64(st, 4) };
        if (!row.kind || !row.state || !row.spec) {
                rollout_row_release(&row);
                return -ENOMEM;
        }
        *ret = row;
        return 0;
}

/* Host h of rollout id is skipped: its message and the audit log say why. */
static int skip_host(StoreTx *tx, int64_t id, const char *h, const char *why, const char *actor) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        json_t *d;
        int r;

        if (!target)
                return -ENOMEM;
        r = db_prepare(db, "UPDATE rollout_hosts SET status = 'skipped', message = ?3 WHERE rollout_id = ?1 AND "
                           "host_id = ?2", &up);
        if (r < 0)
                return r;
        sqlite3_bind_int64(up, 1, id);
        sqlite3_bind_text(up, 2, h, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 3, why, -1, SQLITE_STATIC);
        r = db_step(up);
        if (r < 0)
                return r;
        log_warning("rollout %" PRIi64 ": host %s skipped: %s", id, h, why);
        d = json_pack("{s:s, s:s}", "host", h, "reason", why);
        r = d ? audit_log(tx, actor, "rollout.skip", target, d) : -ENOMEM;
        json_decref(d);
        return r;
}

/* Why host h cannot be sent to image target (which the catalog has when
 * known), or NULL when it can; caller frees. */
static char *unassignable(const char *target, bool known, int64_t busy_in) {
        if (!known)
                return strdup_printf("its image %.12s is not in the catalog (unknown or deleted)", strempty(target));
        if (busy_in > 0)
                return strdup_printf("it is in rollout %" PRIi64, busy_in);
        return NULL;
}

/* The new rollback nid of rollout id skips the hosts it cannot send back:
 * those whose previous image the catalog does not have (a check-in may
 * name any image; an image may have been deleted before that was
 * refused), and those another rollout has taken on since. */
static int rollback_skip_unassignable(StoreTx *tx, int64_t nid, int64_t id, const char *actor) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_strv_free_ char **skip = NULL;
        int r;

        r = db_prepare(db,
                       "SELECT rh.host_id, rh.target, EXISTS (SELECT 1 FROM images i WHERE i.id = rh.target), "
                       "(SELECT o.rollout_id FROM rollout_hosts o JOIN rollouts ro ON ro.id = o.rollout_id WHERE "
                       "o.host_id = rh.host_id AND o.rollout_id NOT IN (?1, ?2) AND o.status IN ('pending', "
                       "'assigned') AND ro.state IN ('running', 'paused', 'done') LIMIT 1) FROM rollout_hosts rh "
                       "WHERE rh.rollout_id = ?1 ORDER BY rh.host_id",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, nid);
        sqlite3_bind_int64(st, 2, id);
        /* Read first, then written: the rows are the ones being read. */
        while ((r = db_step(st)) > 0) {
                char *why = unassignable((const char *) sqlite3_column_text(st, 1), sqlite3_column_int(st, 2),
                                         sqlite3_column_int64(st, 3));
                if (!why)
                        continue;
                if (strv_extend(&skip, (const char *) sqlite3_column_text(st, 0)) < 0) {
                        free(why);
                        return -ENOMEM;
                }
                if (strv_consume(&skip, why) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && skip && skip[i]; i += 2)
                r = skip_host(tx, nid, skip[i], skip[i + 1], actor);
        return r;
}

static int rollout_rollback(StoreTx *tx, int64_t id, const char *actor, uint64_t now, const char *reason,
                            int64_t *ret_new) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *rows = NULL;
        _cleanup_(rollout_row_release) RolloutRow row = {};
        _cleanup_free_ char *target = NULL;
        int64_t nid;
        int r;

        r = rollout_row_read(db, id, &row);
        if (r < 0)
                return r;
        r = db_prepare(db,
                       "INSERT INTO rollouts (kind, image, spec, state, n_waves, rollback_of, actor, created) VALUES "
                       "('rollback', NULL, ?, 'running', ?, ?, ?, ?)",
                       &ins);
        if (r < 0)
                return r;
        sqlite3_bind_text(ins, 1, row.spec, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 2, row.n_waves);
        sqlite3_bind_int64(ins, 3, id);
        sqlite3_bind_text(ins, 4, actor, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, (sqlite3_int64) now);
        r = db_step(ins);
        if (r < 0)
                return r;
        nid = sqlite3_last_insert_rowid(db);
        /* The hosts the rollout touched go back to what they ran, in the same waves. */
        r = db_prepare(db,
                       "INSERT INTO rollout_hosts (rollout_id, host_id, wave, phase, target, prev_image, status) "
                       "SELECT ?1, host_id, wave, phase, prev_image, target, 'pending' FROM rollout_hosts WHERE "
                       "rollout_id = ?2 AND status IN ('assigned', 'done', 'failed') AND prev_image IS NOT NULL",
                       &rows);
        if (r < 0)
                return r;
        sqlite3_bind_int64(rows, 1, nid);
        sqlite3_bind_int64(rows, 2, id);
        r = db_step(rows);
        if (r >= 0)
                r = rollback_skip_unassignable(tx, nid, id, actor);
        if (r >= 0) {
                _cleanup_free_ char *why = strdup_printf("rolled back by rollout %" PRIi64 "%s%s", nid,
                                                         reason ? ": " : "", strempty(reason));
                r = rollout_set_state(tx, id, "aborted", why, actor, now);
        }
        target = strdup_printf("rollout %" PRIi64, nid);
        if (r >= 0) {
                json_t *d = json_pack("{s:I, s:s?}", "rollback_of", (json_int_t) id, "reason", reason);
                r = audit_log(tx, actor, "rollout.rollback", target, d);
                json_decref(d);
        }
        if (r >= 0 && ret_new)
                *ret_new = nid;
        return r;
}

/* Hosts of rollout id still on their way want what they ran again, when
 * the catalog still has it (else they keep the new image). */
static int revert_unfinished(sqlite3 *db, int64_t id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = db_prepare(db,
                           "UPDATE hosts SET image = (SELECT rh.prev_image FROM rollout_hosts rh WHERE rh.rollout_id = ?1 "
                           "AND rh.host_id = hosts.id), rollback = 0 WHERE id IN (SELECT host_id FROM rollout_hosts WHERE "
                           "rollout_id = ?1 AND status IN ('assigned', 'failed') AND prev_image IN (SELECT id FROM "
                           "images)) AND image = (SELECT target FROM rollout_hosts WHERE rollout_id = ?1 AND host_id = "
                           "hosts.id)",
                           &st);

        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        return db_step(st);
}

int coord_rollout_action(StoreTx *tx, int64_t id, const char *action, const char *actor, uint64_t now,
                         int64_t *ret_new_id, char **ret_error) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *skip = NULL, *ack = NULL;
        _cleanup_(rollout_row_release) RolloutRow row = {};
        const char *state;
        int r;

        r = rollout_row_read(db, id, &row);
        if (r < 0)
                return r;
        state = row.state;
        if (streq(action, "pause")) {
                if (!streq(state, "running"))
                        goto refused;
                return rollout_set_state(tx, id, "paused", "paused by an operator", actor, now);
        }
        if (streq(action, "resume")) {
                if (!streq(state, "paused"))
                        goto refused;
                /* Resuming accepts the failures so far: the threshold counts
                 * only those that come after. */
                r = db_prepare(db, "UPDATE rollout_hosts SET acked = 1 WHERE rollout_id = ? AND status = 'failed'", &ack);
                if (r >= 0) {
                        sqlite3_bind_int64(ack, 1, id);
                        r = db_step(ack);
                }
                return r < 0 ? r : rollout_set_state(tx, id, "running", NULL, actor, now);
        }
        if (streq(action, "abort")) {
                /* A done rollout is closed by an abort: it can no longer be
                 * rolled back, so the images it would go back to may be
                 * deleted (coord_image_users()). */
                if (streq(state, "aborted"))
                        goto refused;
                r = db_prepare(db, "UPDATE rollout_hosts SET status = 'skipped' WHERE rollout_id = ? AND status = 'pending'",
                               &skip);
                if (r >= 0) {
                        sqlite3_bind_int64(skip, 1, id);
                        r = db_step(skip);
                }
                /* Hosts on the way that did not arrive want what they ran again. */
                if (r >= 0)
                        r = revert_unfinished(db, id);
                return r < 0 ? r : rollout_set_state(tx, id, "aborted", "aborted by an operator", actor, now);
        }
        if (streq(action, "rollback")) {
                if (streq(state, "aborted"))
                        goto refused;
                return rollout_rollback(tx, id, actor, now, "asked by an operator", ret_new_id);
        }
        *ret_error = strdup_printf("unknown action '%s' (pause, resume, abort, rollback)", action);
        return -EINVAL;
refused:
        *ret_error = strdup_printf("rollout %" PRIi64 " is %s: cannot %s it", id, state, action);
        return -EBUSY;
}

/* Marks assigned hosts done (on the target, healthy) or failed (reported a
 * failure since they were assigned, or still reporting that they refused or
 * fell back from the target itself). In a rollback only a failure since the
 * assignment counts: a host that refused the same image earlier refused it
 * as a downgrade nobody had marked a rollback, which this one is. */
static int update_statuses(sqlite3 *db, int64_t id, bool rollback) {
        _cleanup_stmt_ sqlite3_stmt *done = NULL, *failed = NULL;
        int r;

        r = db_prepare(db,
                       "UPDATE rollout_hosts SET status = 'done' WHERE rollout_id = ?1 AND status = 'assigned' AND "
                       "EXISTS (SELECT 1 FROM hosts h WHERE h.id = host_id AND h.current_image = target AND "
                       "h.state = 'healthy')",
                       &done);
        if (r >= 0) {
                sqlite3_bind_int64(done, 1, id);
                r = db_step(done);
        }
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE rollout_hosts SET status = 'failed', message = (SELECT h.message FROM hosts h "
                               "WHERE h.id = host_id) WHERE rollout_id = ?1 AND status = 'assigned' AND EXISTS "
                               "(SELECT 1 FROM hosts h WHERE h.id = host_id AND h.state IN ('rolled-back', 'failed') "
                               "AND h.current_image IS NOT target AND (coalesce(h.state_since, 0) >= assigned_at OR "
                               "(NOT ?2 AND h.failed_image = target)))",
                               &failed);
        if (r >= 0) {
                sqlite3_bind_int64(failed, 1, id);
                sqlite3_bind_int(failed, 2, rollback);
                r = db_step(failed);
        }
        return r;
}

/* Assigns the pending hosts that may start: in a wave up to max_wave,
 * reachable, and no reachable unfinished host of an earlier phase (the
 * earliest such phase is computed once, not once per pending host). */
static int assign_ready(StoreTx *tx, const CoordConfig *c, int64_t id, bool rollback, int max_wave, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *sel = NULL, *host = NULL, *row = NULL;
        int r;

        r = db_prepare(db,
                       "SELECT rh.host_id, rh.target, EXISTS (SELECT 1 FROM images i WHERE i.id = rh.target) FROM "
                       "rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE "
                       "rh.rollout_id = ?1 AND rh.status = 'pending' AND rh.wave <= ?2 AND coalesce(h.last_seen, 0) >= "
                       "?3 - ?4 AND rh.phase <= (SELECT coalesce(min(o.phase), 2147483647) FROM rollout_hosts o JOIN "
                       "hosts oh ON oh.id = o.host_id WHERE o.rollout_id = ?1 AND o.status IN ('pending', 'assigned') "
                       "AND coalesce(oh.last_seen, 0) >= ?3 - ?4)",
                       &sel);
        if (r >= 0)
                r = db_prepare(db, "UPDATE hosts SET image = ?, rollback = ? WHERE id = ?", &host);
        if (r >= 0)
                r = db_prepare(db,
                               "UPDATE rollout_hosts SET status = 'assigned', assigned_at = ? WHERE rollout_id = ? AND "
                               "host_id = ?",
                               &row);
        if (r < 0)
                return r;
        sqlite3_bind_int64(sel, 1, id);
        sqlite3_bind_int(sel, 2, max_wave);
        sqlite3_bind_int64(sel, 3, (sqlite3_int64) now);
        sqlite3_bind_int64(sel, 4, (sqlite3_int64) c->heartbeat_timeout);
        while ((r = db_step(sel)) > 0) {
                const char *h = (const char *) sqlite3_column_text(sel, 0), *target = (const char *) sqlite3_column_text(sel, 1);

                /* An image gone from the catalog cannot be assigned: the host
                 * is skipped, and the rollout goes on without it. */
                if (!sqlite3_column_int(sel, 2)) {
                        _cleanup_free_ char *why = unassignable(target, false, 0);
                        r = why ? skip_host(tx, id, h, why, "coordinator") : -ENOMEM;
                        if (r < 0)
                                break;
                        continue;
                }
                sqlite3_bind_text(host, 1, target, -1, SQLITE_STATIC);
                sqlite3_bind_int(host, 2, rollback);
                sqlite3_bind_text(host, 3, h, -1, SQLITE_STATIC);
                r = db_step(host);
                sqlite3_reset(host);
                if (r < 0)
                        break;
                sqlite3_bind_int64(row, 1, (sqlite3_int64) now);
                sqlite3_bind_int64(row, 2, id);
                sqlite3_bind_text(row, 3, h, -1, SQLITE_STATIC);
                r = db_step(row);
                sqlite3_reset(row);
                if (r < 0)
                        break;
        }
        return r;
}

static int64_t count_rows(sqlite3 *db, const char *sql, int64_t id, int wave, uint64_t now, uint64_t hb) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (db_prepare(db, sql, &st) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, wave);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) now);
        sqlite3_bind_int64(st, 4, (sqlite3_int64) hb);
        return db_step(st) > 0 ? sqlite3_column_int64(st, 0) : -1;
}

/* Pauses (or with on_failure rollback, rolls back) a running rollout whose
 * waves so far have more failures than allowed. Returns 1 when it did. */
static int check_failures(StoreTx *tx, int64_t id, const RolloutRow *row, const RolloutSpec *s, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *fw = NULL;
        int r;

        /* Every wave so far, not only this one: a host unreachable during
         * its wave reports its failure after the wave was over. */
        r = db_prepare(db,
                       "SELECT wave, count(*), sum(status = 'failed' AND NOT acked) FROM rollout_hosts WHERE rollout_id = "
                       "?1 AND wave <= ?2 GROUP BY wave ORDER BY wave",
                       &fw);
        if (r < 0)
                return r;
        sqlite3_bind_int64(fw, 1, id);
        sqlite3_bind_int(fw, 2, row->wave);
        while ((r = db_step(fw)) > 0) {
                int w = sqlite3_column_int(fw, 0);
                int64_t wave_size = sqlite3_column_int64(fw, 1), failed = sqlite3_column_int64(fw, 2);
                int64_t allowed = s->fail_count >= 0 ? s->fail_count : wave_size * s->fail_pct / 100;
                if (failed <= allowed)
                        continue;
                _cleanup_free_ char *why = strdup_printf("wave %d: %" PRIi64 " of %" PRIi64 " hosts failed, %" PRIi64
                                                         " allowed",
                                                         w + 1, failed, wave_size, allowed);
                if (!why)
                        return -ENOMEM;
                sqlite3_finalize(fw);
                fw = NULL;
                log_warning("rollout %" PRIi64 ": %s", id, why);
                if (s->rollback_on_failure && streq(row->kind, "rollout"))
                        r = rollout_rollback(tx, id, "coordinator", now, why, NULL);
                else
                        r = rollout_set_state(tx, id, "paused", why, "coordinator", now);
                return r < 0 ? r : 1;
        }
        return r;
}

int coord_rollout_tick(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_(rollout_row_release) RolloutRow row = {};
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        RolloutSpec s = {};
        int64_t open;
        int r;

        if (!target)
                return -ENOMEM;
        r = rollout_row_read(db, id, &row);
        if (r < 0)
                return r;
        r = update_statuses(db, id, streq(row.kind, "rollback"));
        if (r < 0 || (!streq(row.state, "running") && !streq(row.state, "done")))
                return r;
        if (streq(row.state, "running")) {
                _cleanup_free_ char *why = NULL;

                r = rollout_spec_parse_stored(row.spec, &s, &why);
                if (r > 0) {
                        log_warning("rollout %" PRIi64 ": %s: paused", id, why);
                        return rollout_set_state(tx, id, "paused", why, "coordinator", now);
                }
                if (r == 0)
                        r = check_failures(tx, id, &row, &s, now);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        r = assign_ready(tx, c, id, streq(row.kind, "rollback"), streq(row.state, "done") ? INT32_MAX : row.wave, now);
        if (r < 0 || !streq(row.state, "running"))
                return r;

        /* The wave is complete when none of its reachable hosts is still on the way. */
        open = count_rows(db,
                          "SELECT count(*) FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id WHERE rh.rollout_id "
                          "= ?1 AND rh.wave <= ?2 AND rh.status IN ('pending', 'assigned') AND coalesce(h.last_seen, 0) "
                          ">= ?3 - ?4",
                          id, row.wave, now, c->heartbeat_timeout);
        if (open != 0)
                return open < 0 ? -EIO : 0;
        if (!row.has_done_at) {
                r = db_prepare(db, "UPDATE rollouts SET wave_done_at = ? WHERE id = ?", &up);
                if (r >= 0) {
                        sqlite3_bind_int64(up, 1, (sqlite3_int64) now);
                        sqlite3_bind_int64(up, 2, id);
                        r = db_step(up);
                }
                if (r >= 0) {
                        json_t *d = json_pack("{s:i}", "wave", row.wave + 1);
                        r = audit_log(tx, "coordinator", "rollout.wave-complete", target, d);
                        json_decref(d);
                }
                if (r < 0)
                        return r;
                sqlite3_finalize(up);
                up = NULL;
                row.done_at = now;
        }
        /* The bake is capped (ROLLOUT_BAKE_MAX): this cannot wrap. */
        if (now < row.done_at + s.bake)
                return 0;
        if (row.wave + 1 >= row.n_waves)
                return rollout_set_state(tx, id, "done", NULL, "coordinator", now);
        r = db_prepare(db, "UPDATE rollouts SET wave = wave + 1, wave_done_at = NULL WHERE id = ?", &up);
        if (r >= 0) {
                sqlite3_bind_int64(up, 1, id);
                r = db_step(up);
        }
        if (r >= 0) {
                json_t *d = json_pack("{s:i}", "wave", row.wave + 2);
                r = audit_log(tx, "coordinator", "rollout.wave", target, d);
                json_decref(d);
        }
        /* The next wave's hosts are assigned now, not a tick later. */
        if (r >= 0)
                r = assign_ready(tx, c, id, streq(row.kind, "rollback"), row.wave + 1, now);
        return r;
}

int coord_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ int64_t *ids = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = db_prepare(db,
                       "SELECT id FROM rollouts WHERE state IN ('running', 'paused') OR (state = 'done' AND EXISTS "
                       "(SELECT 1 FROM rollout_hosts rh WHERE rh.rollout_id = rollouts.id AND rh.status IN ('pending', "
                       "'assigned'))) ORDER BY id",
                       &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                if (n == cap) {
                        int64_t *x = reallocarray(ids, cap = cap ? 2 * cap : 8, sizeof *ids);
                        if (!x)
                                return -ENOMEM;
                        ids = x;
                }
                ids[n++] = sqlite3_column_int64(st, 0);
        }
        if (r < 0)
                return r;
        *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

int coord_rollout_pause(StoreTx *tx, int64_t id, const char *reason, uint64_t now) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_(rollout_row_release) RolloutRow row = {};
        int r = rollout_row_read(db, id, &row);

        if (r < 0)
                return r;
        if (!streq(row.state, "running") && !streq(row.state, "done"))
                return 0;
        r = rollout_set_state(tx, id, "paused", reason, "coordinator", now);
        return r < 0 ? r : 1;
}

/* Appends "rollout 3" or "rollouts 3, 5" and what, to *why ("; " between
 * parts). */
static int why_append_rollouts(char **why, const int64_t *ids, size_t n, const char *what) {
        _cleanup_free_ char *list = NULL;
        char *m;

        if (n == 0)
                return 0;
        list = strdup(n == 1 ? "rollout" : "rollouts");
        for (size_t i = 0; list && i < n; i++) {
                char *x = strdup_printf("%s%s %" PRIi64, list, i > 0 ? "," : "", ids[i]);
                free(list);
                list = x;
        }
        m = list ? strdup_printf("%s%s%s %s", strempty(*why), *why ? "; " : "", list, what) : NULL;
        if (!m)
                return -ENOMEM;
        free(*why);
        *why = m;
        return 0;
}

int coord_image_users(StoreTx *tx, const char *id, char **ret_why) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *h = NULL, *ro = NULL;
        _cleanup_free_ char *why = NULL;
        int64_t assigns[8], returns[8];
        size_t n_assigns = 0, n_returns = 0;
        int r;

        r = db_prepare(db, "SELECT count(*) FROM hosts WHERE image = ?1 OR current_image = ?1", &h);
        if (r < 0)
                return r;
        sqlite3_bind_text(h, 1, id, -1, SQLITE_STATIC);
        r = db_step(h);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        if (sqlite3_column_int64(h, 0) > 0) {
                why = strdup_printf("assigned to or running on %lld host(s)", (long long) sqlite3_column_int64(h, 0));
                if (!why)
                        return -ENOMEM;
        }
        /* A rollout that is not aborted would still assign it to a host on
         * the way, or may be rolled back to it (coord_rollout_action()):
         * deleting it would leave that with an image it cannot assign. */
        r = db_prepare(db,
                       "SELECT rh.rollout_id, max(rh.target = ?1 AND rh.status IN ('pending', 'assigned')), "
                       "max(rh.prev_image = ?1 AND rh.status IN ('assigned', 'done', 'failed')) FROM rollout_hosts rh "
                       "JOIN rollouts r ON r.id = rh.rollout_id WHERE r.state != 'aborted' AND ((rh.target = ?1 AND "
                       "rh.status IN ('pending', 'assigned')) OR (rh.prev_image = ?1 AND rh.status IN ('assigned', "
                       "'done', 'failed'))) GROUP BY rh.rollout_id ORDER BY rh.rollout_id",
                       &ro);
        if (r < 0)
                return r;
        sqlite3_bind_text(ro, 1, id, -1, SQLITE_STATIC);
        while ((r = db_step(ro)) > 0) {
                if (sqlite3_column_int(ro, 1) && n_assigns < ELEMENTSOF(assigns))
                        assigns[n_assigns++] = sqlite3_column_int64(ro, 0);
                else if (sqlite3_column_int(ro, 2) && n_returns < ELEMENTSOF(returns))
                        returns[n_returns++] = sqlite3_column_int64(ro, 0);
        }
        if (r < 0)
                return r;
        r = why_append_rollouts(&why, assigns, n_assigns, "would assign it");
        if (r >= 0)
                r = why_append_rollouts(&why, returns, n_returns, "may roll back to it");
        if (r < 0)
                return r;
        if (!why)
                return 0;
        *ret_why = TAKE_PTR(why);
        return 1;
}

int coord_rollout_json(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now, json_t **ret) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *w = NULL, *g = NULL;
        json_t *ro, *waves, *groups;
        int r;

        r = db_prepare(db,
                       "SELECT r.id, r.kind, r.state, r.wave, r.n_waves, r.reason, r.rollback_of, r.spec, r.created, "
                       "r.finished, i.name || ':' || i.version FROM rollouts r LEFT JOIN images i ON i.id = r.image "
                       "WHERE r.id = ?",
                       &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = db_prepare(db,
                       "SELECT wave, count(*), sum(status = 'pending'), sum(status = 'assigned'), sum(status = 'done'), "
                       "sum(status = 'failed'), sum(status = 'skipped') FROM rollout_hosts WHERE rollout_id = ? "
                       "GROUP BY wave ORDER BY wave",
                       &w);
        if (r < 0)
                return r;
        /* Per group of every budgeted label key: hosts, done, down now. */
        r = db_prepare(db,
                       "SELECT l.key || '=' || l.value, count(*), sum(rh.status = 'done'), sum(rh.status = 'failed'), "
                       "sum(" COORD_UNAVAILABLE_SQL ") FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id JOIN "
                       "host_labels l ON l.host_id = h.id WHERE rh.rollout_id = ?3 AND (l.key IN (SELECT selector FROM "
                       "budgets) OR l.key || '=' || l.value IN (SELECT selector FROM budgets)) GROUP BY 1 ORDER BY 1",
                       &g);
        if (r < 0)
                return r;
        waves = json_array();
        sqlite3_bind_int64(w, 1, id);
        while ((r = db_step(w)) > 0)
                json_array_append_new(waves, json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "wave",
                                                               sqlite3_column_int(w, 0) + 1, "hosts",
                                                               (json_int_t) sqlite3_column_int64(w, 1), "pending",
                                                               (json_int_t) sqlite3_column_int64(w, 2), "assigned",
                                                               (json_int_t) sqlite3_column_int64(w, 3), "done",
                                                               (json_int_t) sqlite3_column_int64(w, 4), "failed",
                                                               (json_int_t) sqlite3_column_int64(w, 5), "skipped",
                                                               (json_int_t) sqlite3_column_int64(w, 6)));
        groups = json_array();
        sqlite3_bind_int64(g, 1, (sqlite3_int64) now);
        sqlite3_bind_int64(g, 2, (sqlite3_int64) c->heartbeat_timeout);
        sqlite3_bind_int64(g, 3, id);
        while (r >= 0 && (r = db_step(g)) > 0)
                json_array_append_new(groups, json_pack("{s:s, s:I, s:I, s:I, s:I}", "group",
                                                                (const char *) sqlite3_column_text(g, 0), "hosts",
                                                                (json_int_t) sqlite3_column_int64(g, 1), "done",
                                                                (json_int_t) sqlite3_column_int64(g, 2), "failed",
                                                                (json_int_t) sqlite3_column_int64(g, 3), "down",
                                                                (json_int_t) sqlite3_column_int64(g, 4)));
        if (r < 0) {
                json_decref(waves);
                json_decref(groups);
                return r;
        }
#define T(i) ((const char *) sqlite3_column_text(st, (i)))
        ro = json_pack("{s:I, s:s, s:s, s:i, s:i, s:s?, s:o, s:s?, s:I, s:o, s:o, s:o}", "id",
                       (json_int_t) sqlite3_column_int64(st, 0), "kind", T(1), "state", T(2), "wave",
                       sqlite3_column_int(st, 3) + 1, "waves_total", sqlite3_column_int(st, 4), "reason", T(5),
                       "rollback_of",
                       sqlite3_column_type(st, 6) == SQLITE_NULL ? json_null() : json_integer(sqlite3_column_int64(st, 6)),
                       "image", T(10), "created", (json_int_t) sqlite3_column_int64(st, 8), "spec",
                       json_loads(T(7), 0, NULL) ?: json_null(), "waves", waves, "groups", groups);
#undef T
        if (!ro)
                return -ENOMEM;
        *ret = ro;
        return 0;
}

json_t *coord_rollouts_json(StoreTx *tx) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_t *l;
        int r;

        if (db_prepare(db,
                       "SELECT r.id, r.kind, r.state, r.wave + 1, r.n_waves, i.name || ':' || i.version, r.created, "
                       "(SELECT count(*) FROM rollout_hosts WHERE rollout_id = r.id), (SELECT count(*) FROM "
                       "rollout_hosts WHERE rollout_id = r.id AND status = 'done') FROM rollouts r LEFT JOIN images i "
                       "ON i.id = r.image ORDER BY r.id DESC",
                       &st) < 0)
                return NULL;
        l = json_array();
        while ((r = db_step(st)) > 0)
                json_array_append_new(l, json_pack("{s:I, s:s, s:s, s:i, s:i, s:s?, s:I, s:I, s:I}", "id",
                                                   (json_int_t) sqlite3_column_int64(st, 0), "kind",
                                                   (const char *) sqlite3_column_text(st, 1), "state",
                                                   (const char *) sqlite3_column_text(st, 2), "wave",
                                                   sqlite3_column_int(st, 3), "waves_total", sqlite3_column_int(st, 4),
                                                   "image", (const char *) sqlite3_column_text(st, 5), "created",
                                                   (json_int_t) sqlite3_column_int64(st, 6), "hosts",
                                                   (json_int_t) sqlite3_column_int64(st, 7), "done",
                                                   (json_int_t) sqlite3_column_int64(st, 8)));
        if (r < 0) {
                json_decref(l);
                return NULL;
        }
        return l;
}
