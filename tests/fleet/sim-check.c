/* What the simulator holds the coordinator to. Its model of what the
 * coordinator must know (leases, quarantine, last check-in, last report) is
 * kept next to the real database; after every tick the rollout's waves and
 * assignments are judged on that model, and the model is compared with the
 * database every few virtual seconds. The invariants are numbered as in
 * docs/coordinator.md. */
#include <string.h>

#include "sim.h"
#include "util.h"

/* ---- the model ----------------------------------------------------------- */

static bool model_unavailable(const Sim *s, const Agent *a, uint64_t now) {
        return a->m_epoch != 0 || a->m_quarantined || streq_ptr(a->m_state, "unhealthy") ||
               a->m_last_seen + s->cc.heartbeat_timeout < now;
}

bool model_reachable(const Sim *s, const Agent *a, uint64_t now) {
        return a->m_last_seen + s->cc.heartbeat_timeout >= now;
}

/* Done (healthy on the target) or failed (reported a failed switch) as a
 * tick sees it; once seen, it stays so (rollout_hosts.status). */
static bool model_finished(const Agent *a) {
        return a->m_finished;
}

static void model_update_finished(Sim *s, Agent *a) {
        if (a->m_finished)
                return;
        if (a->m_image == 1 && streq_ptr(a->m_state, "healthy"))
                a->m_finished = true;
        else if (a->m_image != 1 && (streq_ptr(a->m_state, "rolled-back") || streq_ptr(a->m_state, "failed"))) {
                a->m_finished = true;
                s->wave_failed[a->wave]++;
                /* Its wave is over: no failure threshold will count it. */
                if (a->wave < s->wave)
                        s->res.late_failures++;
        }
}

void model_set_lease(Sim *s, Agent *a, uint64_t epoch, uint64_t expires) {
        int d = (epoch != 0) - (a->m_epoch != 0);

        s->services[a->service].leased += d;
        s->racks[a->rack].leased += d;
        a->m_epoch = epoch;
        a->m_expires = expires;
}

/* A lease found past its expiry: the coordinator must quarantine the host,
 * and the host may not go down again before it reports healthy. */
void model_expire(Sim *s, Agent *a) {
        trace(s, "%s lease %" PRIu64 " expired (at %" PRIu64 "): quarantined", a->id, a->m_epoch, a->m_expires);
        model_set_lease(s, a, 0, 0);
        a->m_quarantined = true;
        a->m_needs_healthy = true;
        s->res.quarantines++;
}

/* Whether the budgets let host i go down now, per the model. */
bool model_budgets_allow(Sim *s, int i, uint64_t now, char *why, size_t size) {
        Group *groups[2] = { &s->services[s->a[i].service], &s->racks[s->a[i].rack] };
        /* A host on its way in the rollout is held to the smaller of the
         * site's budget and the rollout's. */
        bool on_way = s->a[i].m_assigned && !s->a[i].m_finished;

        for (size_t k = 0; k < ELEMENTSOF(groups); k++) {
                Group *g = groups[k];
                int64_t down = 0, allowed = on_way ? g->allowed_rollout : g->allowed;
                for (size_t m = 0; m < g->n; m++)
                        if (g->members[m] != i && model_unavailable(s, &s->a[g->members[m]], now))
                                down++;
                if (down + 1 > allowed) {
                        snprintf(why, size, "group %s: %" PRIi64 " of %zu down, %" PRIi64 " allowed%s", g->name, down,
                                 g->n, allowed, on_way ? " (the rollout's)" : "");
                        return false;
                }
        }
        return true;
}

/* ---- the coordinator's tick and the checks after it ---------------------- */

/* Invariant 4 for every host the tick just assigned: an s1 host only when no
 * reachable s0 host is unfinished. */
static void check_assignments(Sim *s) {
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;
        uint64_t now = now_s(s);
        sqlite3 *db = store_sqlite(s->db);
        int r;

        if (sqlite_prepare(db,
                       "SELECT host_id FROM rollout_hosts WHERE rollout_id = ? AND assigned_at = ? ORDER BY host_id",
                       &st) < 0) {
                violation(s, "cannot read the assignments");
                return;
        }
        sqlite3_bind_int64(st, 1, s->rollout);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) now);
        while ((r = sqlite_step(st)) > 0) {
                unsigned i;
                if (sscanf((const char *) sqlite3_column_text(st, 0), "h-%u", &i) != 1 || i >= s->n) {
                        violation(s, "unknown host %s assigned", (const char *) sqlite3_column_text(st, 0));
                        break;
                }
                trace(s, "%s assigned %s (wave %d, service s%d)", s->a[i].id, image_versions[1], s->a[i].wave + 1,
                      s->a[i].service);
                s->a[i].m_assigned = true;
                if (s->a[i].wave > s->wave)
                        violation(s, "waves: %s of wave %d assigned during wave %d", s->a[i].id, s->a[i].wave + 1,
                                  s->wave + 1);
                if (s->a[i].service != 1)
                        continue;
                for (size_t m = 0; m < s->services[0].n; m++) {
                        Agent *o = &s->a[s->services[0].members[m]];
                        if (model_reachable(s, o, now) && !model_finished(o)) {
                                violation(s,
                                          "invariant 4: %s (service s1) assigned while %s (service s0) is reachable "
                                          "and not finished (%s on %s, agent %s)",
                                          s->a[i].id, o->id, o->m_state, image_versions[o->m_image],
                                          phase_names[o->phase]);
                                break;
                        }
                }
        }
        if (r < 0)
                violation(s, "cannot read the assignments: %s", strerror(-r));
}

/* A wave's failures that count against its threshold: those since the
 * operator last resumed. */
int wave_failures(const Sim *s, int w) {
        return s->wave_failed[w] - s->wave_acked[w];
}

/* The rollout's state and wave after a tick: waves move on only when their
 * reachable hosts are finished, the bake is over and the failures are within
 * the threshold; a pause is justified by the failures. */
static void check_rollout(Sim *s) {
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *db = store_sqlite(s->db);
        uint64_t now = now_s(s);
        char state[16] = "", reason[200] = "";
        int wave = 0;

        if (sqlite_prepare(db, "SELECT state, wave, wave_done_at, reason FROM rollouts WHERE id = ?", &st) >= 0) {
                sqlite3_bind_int64(st, 1, s->rollout);
                int r = sqlite_step(st);
                if (r < 0)
                        violation(s, "cannot read the rollout: %s", strerror(-r));
                if (r > 0) {
                        snprintf(state, sizeof state, "%s", (const char *) sqlite3_column_text(st, 0));
                        snprintf(reason, sizeof reason, "%s", strempty((const char *) sqlite3_column_text(st, 3)));
                        wave = sqlite3_column_int(st, 1);
                        if (sqlite3_column_type(st, 2) != SQLITE_NULL && !s->wave_done_seen) {
                                s->wave_done_seen = true;
                                s->wave_done_at = (uint64_t) sqlite3_column_int64(st, 2);
                                trace(s, "rollout: wave %d complete", wave + 1);
                        }
                }
        }
        if (!*state) {
                violation(s, "cannot read rollout %" PRIi64, s->rollout);
                return;
        }
        int64_t allowed = s->wave_size[s->wave] * 5 / 100;
        if (wave != s->wave) {
                trace(s, "rollout: wave %d starts", wave + 1);
                if (wave != s->wave + 1)
                        violation(s, "waves: the rollout went from wave %d to %d", s->wave + 1, wave + 1);
                if (!s->wave_done_seen || now < s->wave_done_at + 30)
                        violation(s, "waves: wave %d started before wave %d baked (done at %" PRIu64 ")", wave + 1,
                                  s->wave + 1, s->wave_done_at);
                if (wave_failures(s, s->wave) > allowed)
                        violation(s, "waves: wave %d started although %d hosts of wave %d failed (%" PRIi64 " allowed)",
                                  wave + 1, wave_failures(s, s->wave), s->wave + 1, allowed);
                for (unsigned i = 0; i < s->n; i++)
                        if (s->a[i].wave <= s->wave && model_reachable(s, &s->a[i], now) && !model_finished(&s->a[i])) {
                                violation(s, "waves: wave %d started while %s of wave %d is reachable and unfinished",
                                          wave + 1, s->a[i].id, s->a[i].wave + 1);
                                break;
                        }
                s->wave = wave;
                s->wave_done_seen = false;
        }
        /* A failure beyond a wave's allowance pauses the rollout, also when
         * it is reported after the wave was over (the host was unreachable). */
        for (int w = 0; streq(state, "running") && w <= wave; w++)
                if (wave_failures(s, w) > s->wave_size[w] * 5 / 100) {
                        violation(s,
                                  "failure threshold: %d hosts of wave %d failed, %d allowed, and the rollout is "
                                  "running in wave %d",
                                  wave_failures(s, w), w + 1, s->wave_size[w] * 5 / 100, wave + 1);
                        break;
                }
        if (!streq(state, s->rollout_state)) {
                trace(s, "rollout: %s -> %s%s%s", s->rollout_state, state, *reason ? ": " : "", reason);
                bool over = false;
                for (int w = 0; w <= s->wave; w++)
                        over |= wave_failures(s, w) > s->wave_size[w] * 5 / 100;
                if (streq(state, "paused") && !over)
                        violation(s, "the rollout paused in wave %d with %d failures, %" PRIi64 " allowed: %s",
                                  s->wave + 1, wave_failures(s, s->wave), allowed, reason);
                if (streq(state, "paused"))
                        operator_on_pause(s);
                if (streq(state, "paused") && !*reason)
                        violation(s, "the rollout paused without a reason");
                if (streq(state, "done") || streq(state, "paused"))
                        s->res.duration = (s->t - s->rollout_started) / 1000;
                else if (!streq(state, "running"))
                        violation(s, "the rollout is %s", state);
                snprintf(s->rollout_state, sizeof s->rollout_state, "%s", state);
        }
}

/* The whole model against the database: leases, epochs, quarantine, last
 * check-in, reports. */
void check_model(Sim *s) {
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *db = store_sqlite(s->db);
        unsigned seen = 0;
        int r = 0;

        if (sqlite_prepare(db, "SELECT id, lease_epoch, lease_expires, quarantined, last_seen, state, current_image FROM "
                           "hosts ORDER BY id",
                       &st) < 0) {
                violation(s, "cannot read the hosts");
                return;
        }
        while (!s->failed && (r = sqlite_step(st)) > 0) {
                if (seen >= s->n) {
                        seen++;
                        break;
                }
                Agent *a = &s->a[seen++];
                uint64_t epoch = (uint64_t) sqlite3_column_int64(st, 1);
                uint64_t expires = (uint64_t) sqlite3_column_int64(st, 2);
                const char *state = (const char *) sqlite3_column_text(st, 5);
                const char *image = (const char *) sqlite3_column_text(st, 6);

                if (!streq((const char *) sqlite3_column_text(st, 0), a->id))
                        violation(s, "the hosts table does not list the simulated hosts");
                else if (epoch != a->m_epoch || (epoch && expires != a->m_expires))
                        violation(s, "%s: the database has lease %" PRIu64 " until %" PRIu64 ", the model %" PRIu64
                                     " until %" PRIu64,
                                  a->id, epoch, expires, a->m_epoch, a->m_expires);
                else if (sqlite3_column_int(st, 3) != a->m_quarantined)
                        violation(s, "%s: quarantined is %d in the database, %d in the model", a->id,
                                  sqlite3_column_int(st, 3), a->m_quarantined);
                else if ((uint64_t) sqlite3_column_int64(st, 4) != a->m_last_seen || !streq_ptr(state, a->m_state) ||
                         !streq_ptr(image, image_ids[a->m_image]))
                        violation(s,
                                  "%s: the database says %s on %s seen at %" PRIu64 ", the model %s on %s at %" PRIu64,
                                  a->id, strempty(state), strempty(image), (uint64_t) sqlite3_column_int64(st, 4),
                                  a->m_state, image_ids[a->m_image], a->m_last_seen);
        }
        if (r < 0)
                violation(s, "cannot read the hosts: %s", strerror(-r));
        if (!s->failed && seen != s->n)
                violation(s, "the database has %u hosts, the simulation %u", seen, s->n);
        if (!s->failed && query_int(db, "SELECT count(*) FROM (SELECT lease_epoch FROM hosts WHERE lease_epoch IS NOT "
                                        "NULL GROUP BY lease_epoch HAVING count(*) > 1) WHERE ?1 = ?2",
                                    0, 0) != 0)
                violation(s, "invariant 2: two live leases share an epoch");
        for (unsigned g = 0; !s->failed && g < s->n_racks + N_SERVICES; g++) {
                Group *grp = g < N_SERVICES ? &s->services[g] : &s->racks[g - N_SERVICES];
                if (grp->leased > grp->allowed)
                        violation(s, "invariant 1: group %s has %" PRIi64 " leases, %" PRIi64 " allowed", grp->name,
                                  grp->leased, grp->allowed);
        }
}

/* Whether coord_tick() at now can do anything. Calling it every second is
 * what slipwayd does, but most seconds it finds nothing to do and it costs
 * more than everything else the simulator does. It reads the hosts' reports
 * and heartbeats, the leases' expiries, the rollouts and the clock; so a
 * tick can act only after a tick that acted, after a report that changed or
 * a host that came back (tick_dirty), or when the clock crosses a lease's
 * expiry, a host's heartbeat deadline or the end of a bake. --every-second
 * runs every tick and fails when one this function calls idle acts. */
static bool tick_needed(Sim *s, uint64_t now) {
        uint64_t hb = s->cc.heartbeat_timeout, last = s->last_tick_now;

        if (s->tick_dirty || s->tick_changed)
                return true;
        if (s->wave_done_seen && last < s->wave_done_at + 30 && now >= s->wave_done_at + 30)
                return true;
        for (unsigned i = 0; i < s->n; i++) {
                const Agent *a = &s->a[i];
                if (a->m_epoch != 0 && a->m_expires < now)
                        return true;
                if (a->m_last_seen + hb >= last && a->m_last_seen + hb < now)
                        return true;
        }
        return false;
}

void sim_tick(Sim *s) {
        uint64_t now = now_s(s);
        bool needed = tick_needed(s, now);
        sqlite3 *db;
        int r, changes;

        if (!needed && !s->o->every_second) {
                s->res.skipped++;
                return;
        }
        /* The model first: every lease past its expiry is quarantined now,
         * and the rollout sees the reports made since the last tick. */
        for (unsigned i = 0; i < s->n; i++) {
                if (s->a[i].m_epoch != 0 && s->a[i].m_expires < now)
                        model_expire(s, &s->a[i]);
                if (s->rollout > 0 && s->a[i].wave >= 0)
                        model_update_finished(s, &s->a[i]);
        }

        double t0 = mono_us();
        db = store_sqlite(s->db);
        changes = sqlite3_total_changes(db);
        profile_in_tick = true;
        r = coord_tick(s->db, &s->cc, now);
        profile_in_tick = false;
        changes = sqlite3_total_changes(db) - changes;
        double us = mono_us() - t0;
        s->res.tick_us_sum += us;
        s->res.tick_us_max = MAX(s->res.tick_us_max, us);
        if (s->n_tick_us == s->cap_tick_us) {
                s->cap_tick_us = s->cap_tick_us ? 2 * s->cap_tick_us : 1024;
                s->tick_us = realloc(s->tick_us, s->cap_tick_us * sizeof *s->tick_us);
                if (!s->tick_us)
                        abort();
        }
        s->tick_us[s->n_tick_us++] = us;
        s->res.ticks++;
        if (r < 0) {
                violation(s, "coord_tick failed: %s", strerror(-r));
                return;
        }
        if (!needed && changes > 0)
                violation(s, "a tick the simulator would have skipped changed %d rows: tick_needed() is wrong",
                          changes);
        s->tick_dirty = false;
        s->tick_changed = changes > 0;
        s->last_tick_now = now;
        /* The wave first: a tick that moves to the next wave assigns its
         * hosts too. */
        if (s->rollout > 0) {
                check_rollout(s);
                check_assignments(s);
        }
        /* The full comparison is O(hosts): every 10 s, every 60 s for big fleets. */
        if (s->t / 1000 >= s->last_check + (s->n > 2000 ? 60 : 10)) {
                s->last_check = s->t / 1000;
                check_model(s);
        }
}

/* ---- the end ------------------------------------------------------------- */

/* Whether nothing is left to happen: the rollout done (no host left to
 * assign) or paused (no assigned host left), every agent idle, no lease. */
bool settled(Sim *s) {
        if (s->pending_disruptions > 0 || (!streq(s->rollout_state, "done") && !streq(s->rollout_state, "paused")))
                return false;
        for (unsigned i = 0; i < s->n; i++) {
                const Agent *a = &s->a[i];
                if (a->phase != AGENT_IDLE || a->release_pending || a->m_epoch || a->spell || a->m_quarantined ||
                    !streq_ptr(a->m_state, a->report) || a->m_image != a->running)
                        return false;
        }
        sqlite3 *db = store_sqlite(s->db);
        int64_t open = query_int(db,
                                 "SELECT count(*) FROM rollout_hosts WHERE rollout_id = ?1 AND (status = 'assigned' OR "
                                 "(status = 'pending' AND ?2))",
                                 s->rollout, streq(s->rollout_state, "done"));
        return open == 0;
}

/* Invariant 5: where every host ended. */
void check_end(Sim *s, bool done) {
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *db;
        int r = 0;

        if (!done) {
                unsigned shown = 0;
                violation(s, "invariant 5: the rollout did not finish within %" PRIu64 " s: it is %s in wave %d",
                          s->o->limit_s, s->rollout_state, s->wave + 1);
                for (unsigned i = 0; i < s->n && shown < 8; i++) {
                        Agent *a = &s->a[i];
                        if (a->phase == AGENT_IDLE && !a->m_epoch && !a->m_quarantined)
                                continue;
                        fprintf(stderr, "  %s (s%d, r%d, wave %d): agent %s on %s, lease %" PRIu64 "%s%s%s\n", a->id,
                                a->service, a->rack, a->wave + 1, phase_names[a->phase], image_versions[a->running],
                                a->m_epoch, a->m_quarantined ? ", quarantined" : "",
                                a->last_refusal ? ", last refusal: " : "", strempty(a->last_refusal));
                        shown++;
                }
                return;
        }
        check_model(s);
        db = store_sqlite(s->db);
        if (sqlite_prepare(db,
                       "SELECT h.id, rh.status, h.quarantined FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id "
                       "WHERE rh.rollout_id = ? ORDER BY h.id",
                       &st) < 0) {
                violation(s, "cannot read the rollout's hosts");
                return;
        }
        sqlite3_bind_int64(st, 1, s->rollout);
        for (unsigned i = 0; !s->failed && (r = sqlite_step(st)) > 0; i++) {
                Agent *a = &s->a[i];
                const char *status = (const char *) sqlite3_column_text(st, 1);
                bool failed = a->failed >= 0;
                bool ok = streq(status, "done")      ? !failed && a->running == 1 && streq(a->m_state, "healthy")
                          : streq(status, "failed")  ? failed && a->running == 0 && streq(a->m_state, "rolled-back")
                          : streq(status, "pending") ? streq(s->rollout_state, "paused") && a->running == 0 &&
                                                               streq(a->m_state, "healthy")
                                                     : false;
                if (!ok)
                        violation(s, "invariant 5: %s ended %s in the rollout%s, running %s, reported %s%s", a->id,
                                  status, a->had_outage ? " (it was unreachable for a while)" : "",
                                  image_versions[a->running], a->m_state, failed ? " after a failed boot" : "");
                else if (sqlite3_column_int(st, 2))
                        violation(s, "invariant 5: %s is still quarantined at the end", a->id);
        }
        if (r < 0)
                violation(s, "cannot read the rollout's hosts: %s", strerror(-r));
}

