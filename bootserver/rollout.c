/* Rollouts: a set of hosts moved to an image in waves. The waves only say
 * who may start; the reboot leases (coordinator.c) say who may go down. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit.h"
#include "coordinator.h"
#include "labels.h"
#include "images.h"
#include "log.h"
#include "rollout.h"
#include "util.h"
#include "store-rollouts.h"
#include "store-sqlite.h"

static int rollout_set_state(StoreTx *tx, int64_t id, RolloutState state, const char *reason, const char *actor,
                             uint64_t now) {
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        bool final = state == ROLLOUT_DONE || state == ROLLOUT_ABORTED;
        json_t *d;
        int r;

        r = store_rollout_set_state(tx, id, state, reason, final, now);
        if (r < 0)
                return r;
        d = json_pack("{s:s, s:s?}", "state", rollout_state_to_string(state), "reason", reason);
        r = audit_log(tx, actor, state == ROLLOUT_RUNNING ? "rollout.resume" : state == ROLLOUT_PAUSED ? "rollout.pause"
                                 : state == ROLLOUT_DONE ? "rollout.done" : "rollout.abort",
                      target, d);
        json_decref(d);
        return r;
}

/* Host h of rollout id is skipped: its message and the audit log say why. */
static int skip_host(StoreTx *tx, int64_t id, const char *h, const char *why, const char *actor) {
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        json_t *d;
        int r;

        if (!target)
                return -ENOMEM;
        r = store_rollout_skip_host(tx, id, h, why);
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
        _cleanup_(rollout_release) Rollout row = {};
        _cleanup_free_ char *target = NULL;
        int64_t nid;
        int r;

        r = store_rollout_get(tx, id, &row);
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
                r = rollout_set_state(tx, id, ROLLOUT_ABORTED, why, actor, now);
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
        _cleanup_(rollout_release) Rollout row = {};
        RolloutState state;
        int r;

        r = store_rollout_get(tx, id, &row);
        if (r < 0)
                return r;
        state = row.state;
        if (streq(action, "pause")) {
                if (state != ROLLOUT_RUNNING)
                        goto refused;
                return rollout_set_state(tx, id, ROLLOUT_PAUSED, "paused by an operator", actor, now);
        }
        if (streq(action, "resume")) {
                if (state != ROLLOUT_PAUSED)
                        goto refused;
                /* Resuming accepts the failures so far: the threshold counts
                 * only those that come after. */
                r = store_rollout_ack_failures(tx, id);
                return r < 0 ? r : rollout_set_state(tx, id, ROLLOUT_RUNNING, NULL, actor, now);
        }
        if (streq(action, "abort")) {
                /* A done rollout is closed by an abort: it can no longer be
                 * rolled back, so the images it would go back to may be
                 * deleted (coord_image_users()). */
                if (state == ROLLOUT_ABORTED)
                        goto refused;
                r = store_rollout_skip_pending(tx, id);
                /* Hosts on the way that did not arrive want what they ran again. */
                if (r >= 0)
                        r = revert_unfinished(db, id);
                return r < 0 ? r : rollout_set_state(tx, id, ROLLOUT_ABORTED, "aborted by an operator", actor, now);
        }
        if (streq(action, "rollback")) {
                if (state == ROLLOUT_ABORTED)
                        goto refused;
                return rollout_rollback(tx, id, actor, now, "asked by an operator", ret_new_id);
        }
        *ret_error = strdup_printf("unknown action '%s' (pause, resume, abort, rollback)", action);
        return -EINVAL;
refused:
        *ret_error = strdup_printf("rollout %" PRIi64 " is %s: cannot %s it", id, rollout_state_to_string(state), action);
        return -EBUSY;
}

/* Assigns the pending hosts that may start: in a wave up to max_wave,
 * reachable, and no reachable unfinished host of an earlier phase (the
 * earliest such phase is computed once, not once per pending host). */
static int assign_ready(StoreTx *tx, const CoordConfig *c, int64_t id, bool rollback, int max_wave, uint64_t now) {
        RolloutReady *v = NULL;
        size_t n = 0;
        int r;

        r = store_rollout_ready(tx, id, max_wave, now, c->heartbeat_timeout, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                /* An image gone from the catalog cannot be assigned: the host
                 * is skipped, and the rollout goes on without it. */
                if (!v[i].known) {
                        _cleanup_free_ char *why = unassignable(v[i].target, false, 0);
                        r = why ? skip_host(tx, id, v[i].host, why, "coordinator") : -ENOMEM;
                } else
                        r = store_rollout_assign(tx, id, v[i].host, v[i].target, rollback, now);
                if (r < 0)
                        break;
        }
        rollout_ready_free(v, n);
        return r;
}

/* Pauses (or with on_failure rollback, rolls back) a running rollout whose
 * waves so far have more failures than allowed. Returns 1 when it did. */
static int check_failures(StoreTx *tx, const Rollout *ro, const RolloutSpec *s, uint64_t now) {
        _cleanup_free_ RolloutWaveTally *t = NULL;
        size_t n = 0;
        int r;

        /* Every wave so far, not only this one: a host unreachable during
         * its wave reports its failure after the wave was over. */
        r = store_rollout_wave_tallies(tx, ro->id, ro->wave, &t, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                int64_t allowed = s->fail_count >= 0 ? s->fail_count : t[i].hosts * s->fail_pct / 100;
                if (t[i].failed <= allowed)
                        continue;
                _cleanup_free_ char *why = strdup_printf("wave %d: %" PRIi64 " of %" PRIi64 " hosts failed, %" PRIi64
                                                         " allowed",
                                                         t[i].wave + 1, t[i].failed, t[i].hosts, allowed);
                if (!why)
                        return -ENOMEM;
                log_warning("rollout %" PRIi64 ": %s", ro->id, why);
                if (s->rollback_on_failure && ro->kind == ROLLOUT_KIND_ROLLOUT)
                        r = rollout_rollback(tx, ro->id, "coordinator", now, why, NULL);
                else
                        r = rollout_set_state(tx, ro->id, ROLLOUT_PAUSED, why, "coordinator", now);
                return r < 0 ? r : 1;
        }
        return 0;
}

int coord_rollout_tick(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now) {
        _cleanup_(rollout_release) Rollout ro = {};
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        RolloutSpec s = {};
        bool rollback;
        int64_t open;
        int r;

        if (!target)
                return -ENOMEM;
        r = store_rollout_get(tx, id, &ro);
        if (r < 0)
                return r;
        rollback = ro.kind == ROLLOUT_KIND_ROLLBACK;
        r = store_rollout_update_statuses(tx, id, rollback);
        if (r < 0 || (ro.state != ROLLOUT_RUNNING && ro.state != ROLLOUT_DONE))
                return r;
        if (ro.state == ROLLOUT_RUNNING) {
                _cleanup_free_ char *why = NULL;

                r = rollout_spec_parse_stored(ro.spec, &s, &why);
                if (r > 0) {
                        log_warning("rollout %" PRIi64 ": %s: paused", id, why);
                        return rollout_set_state(tx, id, ROLLOUT_PAUSED, why, "coordinator", now);
                }
                if (r == 0)
                        r = check_failures(tx, &ro, &s, now);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        r = assign_ready(tx, c, id, rollback, ro.state == ROLLOUT_DONE ? INT32_MAX : ro.wave, now);
        if (r < 0 || ro.state != ROLLOUT_RUNNING)
                return r;

        /* The wave is complete when none of its reachable hosts is still on the way. */
        r = store_rollout_count_open(tx, id, ro.wave, now, c->heartbeat_timeout, &open);
        if (r < 0)
                return r;
        if (open != 0)
                return 0;
        if (!ro.has_done_at) {
                r = store_rollout_set_wave_done(tx, id, now);
                if (r >= 0) {
                        json_t *d = json_pack("{s:i}", "wave", ro.wave + 1);
                        r = audit_log(tx, "coordinator", "rollout.wave-complete", target, d);
                        json_decref(d);
                }
                if (r < 0)
                        return r;
                ro.done_at = now;
        }
        /* The bake is capped (ROLLOUT_BAKE_MAX): this cannot wrap. */
        if (now < ro.done_at + s.bake)
                return 0;
        if (ro.wave + 1 >= ro.n_waves)
                return rollout_set_state(tx, id, ROLLOUT_DONE, NULL, "coordinator", now);
        r = store_rollout_next_wave(tx, id);
        if (r >= 0) {
                json_t *d = json_pack("{s:i}", "wave", ro.wave + 2);
                r = audit_log(tx, "coordinator", "rollout.wave", target, d);
                json_decref(d);
        }
        /* The next wave's hosts are assigned now, not a tick later. */
        if (r >= 0)
                r = assign_ready(tx, c, id, rollback, ro.wave + 1, now);
        return r;
}

int coord_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n) {
        return store_rollouts_active(tx, ret_ids, ret_n);
}

int coord_rollout_pause(StoreTx *tx, int64_t id, const char *reason, uint64_t now) {
        _cleanup_(rollout_release) Rollout row = {};
        int r = store_rollout_get(tx, id, &row);

        if (r < 0)
                return r;
        if (row.state != ROLLOUT_RUNNING && row.state != ROLLOUT_DONE)
                return 0;
        r = rollout_set_state(tx, id, ROLLOUT_PAUSED, reason, "coordinator", now);
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
