/* The virtual agents: each wakes up on its own rhythm, checks in, stages
 * the image the coordinator wants, asks for the reboot lease, reboots (into
 * a healthy or a rolled-back system) and gives the lease back, with the
 * mishaps of real agents: leases held a while and renewed, renewals lost,
 * releases forgotten. Every call goes to the real coordinator, and every
 * answer to a lease request is judged against the model (sim-check.c). */
#include <errno.h>
#include <string.h>

#include "hosts.h"
#include "sim.h"
#include "util.h"

/* ---- the agents' calls to the coordinator -------------------------------- */

/* One check-in, in its own transaction. Returns the desired image index (-1
 * none), or -EHOSTUNREACH when the host cannot reach the server. */
int call_checkin(Sim *s, Agent *a) {
        StoreTx *tx = NULL;
        json_t *body, *desired = NULL;
        int r, want = -1;

        if (a->unreachable)
                return -EHOSTUNREACH;
        body = json_pack("{s:s, s:s, s:s, s:s?}", "state", a->report, "image", image_ids[a->running], "version",
                         image_versions[a->running], "failed_image", a->failed >= 0 ? image_ids[a->failed] : NULL);
        double t0 = mono_us();
        r = store_tx_begin(s->db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = hosts_checkin_apply(tx, a->id, body, now_s(s), "agent", &desired);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        s->res.checkin_us += mono_us() - t0;
        s->res.checkins++;
        json_decref(body);
        if (r < 0) {
                json_decref(desired);
                violation(s, "check-in of %s failed: %s", a->id, strerror(-r));
                return r;
        }
        const char *img = json_string_value(json_object_get(desired, "image"));
        for (int k = 0; img && k < N_IMAGES; k++)
                if (streq(img, image_ids[k]))
                        want = k;
        json_decref(desired);

        /* What coord_tick() reads of a host: its report and whether it is
         * reachable. A check-in that changes neither only moves the host's
         * heartbeat deadline, which tick_needed() follows. */
        if (!streq_ptr(a->m_state, a->report) || a->m_image != a->running || !model_reachable(s, a, now_s(s)))
                s->tick_dirty = true;
        a->m_last_seen = now_s(s);
        a->m_state = a->report;
        a->m_image = a->running;
        /* Proof of life lifts a quarantine: healthy, or rolled back onto the
         * image it runs (coord_on_report()). */
        if (streq(a->report, "healthy") || streq(a->report, "rolled-back")) {
                a->m_quarantined = false;
                a->m_needs_healthy = false;
        }
        return want;
}

/* Asks for (or renews) the lease. Returns 1 granted, 0 refused,
 * -EHOSTUNREACH. Checks invariants 1-3 on every grant. */
static int call_acquire(Sim *s, Agent *a) {
        StoreTx *tx = NULL;
        LeaseDecision d = {};
        uint64_t now = now_s(s);
        int i = (int) (a - s->a);
        bool renew, predicted;
        char why[160] = "";
        int r;

        if (a->unreachable)
                return -EHOSTUNREACH;
        /* What the coordinator must do, decided before it answers. */
        uint64_t overdue = a->m_epoch != 0 && a->m_expires < now ? a->m_epoch : 0;
        if (overdue)
                model_expire(s, a);
        renew = a->m_epoch != 0;
        predicted = renew || (!a->m_quarantined && model_budgets_allow(s, i, now, why, sizeof why));
        if (!renew && a->m_quarantined)
                snprintf(why, sizeof why, "quarantined");

        double t0 = mono_us();
        r = store_tx_begin(s->db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_lease_acquire(tx, &s->cc, a->id, now, "agent", &d);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        s->res.lease_us += mono_us() - t0;
        s->res.leases++;
        if (r < 0) {
                violation(s, "lease request of %s failed: %s", a->id, strerror(-r));
                return r;
        }
        /* Asking is a sign of life, as a check-in is. */
        if (!model_reachable(s, a, now))
                s->tick_dirty = true;
        a->m_last_seen = now;

        if (d.granted && renew) {
                if (d.epoch != a->m_epoch)
                        violation(s, "invariant 2: renewing lease %" PRIu64 " of %s returned epoch %" PRIu64,
                                  a->m_epoch, a->id, d.epoch);
                model_set_lease(s, a, d.epoch, d.expires);
                s->res.renewals++;
        } else if (d.granted) {
                if (overdue)
                        violation(s,
                                  "invariant 3: %s got lease %" PRIu64 " although its lease %" PRIu64
                                  " had expired and no tick had expired it yet: it must be quarantined, not given a "
                                  "new lease",
                                  a->id, d.epoch, overdue);
                else if (a->m_needs_healthy)
                        violation(s,
                                  "invariant 3: %s got lease %" PRIu64 " although its last lease expired without a "
                                  "healthy report since",
                                  a->id, d.epoch);
                else if (!predicted)
                        violation(s, "invariant 1: %s got lease %" PRIu64 " but the budgets forbid it: %s", a->id,
                                  d.epoch, why);
                if (d.epoch <= s->max_epoch)
                        violation(s, "invariant 2: %s got epoch %" PRIu64 ", not above the largest so far, %" PRIu64,
                                  a->id, d.epoch, s->max_epoch);
                s->max_epoch = MAX(s->max_epoch, d.epoch);
                if (d.expires != now + s->cc.lease_ttl)
                        violation(s, "%s got lease %" PRIu64 " expiring at %" PRIu64 ", not now + TTL", a->id, d.epoch,
                                  d.expires);
                model_set_lease(s, a, d.epoch, d.expires);
                s->res.grants++;
                trace(s, "%s granted lease %" PRIu64, a->id, d.epoch);
        } else {
                if (predicted)
                        violation(s, "liveness: %s was refused a lease the model allows (%s): %s", a->id,
                                  renew ? "a renewal" : "budgets within limits", strempty(d.reason));
                free(a->last_refusal);
                a->last_refusal = strdup(strempty(d.reason));
                s->res.refusals++;
                trace(s, "%s refused: %s", a->id, strempty(d.reason));
        }
        r = d.granted;
        if (d.granted)
                a->epoch = d.epoch;
        lease_decision_release(&d);
        return r;
}

static int call_release(Sim *s, Agent *a, uint64_t epoch) {
        StoreTx *tx = NULL;
        bool expect = a->m_epoch != 0 && (epoch == 0 || a->m_epoch == epoch);
        int r;

        if (a->unreachable)
                return -EHOSTUNREACH;
        if (a->m_epoch != 0 && a->m_expires < now_s(s))
                /* Given back late: the tick had not seen it yet. */
                a->m_needs_healthy = true;
        r = store_tx_begin(s->db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_lease_release(tx, a->id, epoch, now_s(s), "agent", NULL);
        if (r >= 0 && store_tx_commit(&tx) < 0)
                r = -EIO;
        else if (r < 0)
                store_tx_rollback(&tx);
        if (r < 0) {
                violation(s, "lease release of %s failed: %s", a->id, strerror(-r));
                return r;
        }
        if ((r == 1) != expect)
                violation(s, "releasing lease %" PRIu64 " of %s: the coordinator says %s, the model %s", epoch, a->id,
                          r ? "released" : "nothing to release", expect ? "released" : "nothing to release");
        if (r == 1)
                model_set_lease(s, a, 0, 0);
        trace(s, "%s gave lease %" PRIu64 " back%s", a->id, epoch, r ? "" : " (it was gone)");
        return r;
}

/* ---- the agents ---------------------------------------------------------- */

static void agent_start_reboot(Sim *s, Agent *a, int i) {
        a->phase = AGENT_REBOOTING;
        trace(s, "%s rebooting into %s", a->id, image_versions[a->target]);
        sim_schedule(s, s->t + rng_range(s, 20000, 60000), EV_AGENT, i);
}

static void agent_granted(Sim *s, Agent *a, int i) {
        a->lose_release = rng_chance(s, s->o->p_lost_release);
        a->report = "rebooting";
        (void) call_checkin(s, a);
        fault_lease_taken(s, a, i);
        if (rng_chance(s, s->o->p_drain)) {
                a->phase = AGENT_DRAINING;
                a->drain_until = s->t + rng_range(s, 60000, s->cc.lease_ttl * 1500);
                a->lost_from = a->lost_until = 0;
                if (rng_chance(s, 0.5)) {
                        /* Its renewals get lost for a while, perhaps past the TTL. */
                        a->lost_from = s->t + rng_range(s, 0, 60000);
                        a->lost_until = a->lost_from + rng_range(s, s->cc.lease_ttl * 667, s->cc.lease_ttl * 1333);
                }
                trace(s, "%s draining until %" PRIu64 " s", a->id, a->drain_until / 1000);
                sim_schedule(s, s->t + interval_ms(s), EV_AGENT, i);
                return;
        }
        agent_start_reboot(s, a, i);
}

/* The lease is gone before the reboot: the agent stays up on what it runs,
 * says so (a healthy report lifts a quarantine) and asks again later. */
static void agent_lease_lost(Sim *s, Agent *a, int i) {
        trace(s, "%s lost its lease before rebooting: staying on %s", a->id, image_versions[a->running]);
        a->epoch = 0;
        a->report = "healthy";
        (void) call_checkin(s, a);
        a->report = "staged";
        a->phase = AGENT_STAGED;
        sim_schedule(s, s->t + retry_ms(s), EV_AGENT, i);
}

void agent_wake(Sim *s, int i) {
        Agent *a = &s->a[i];
        int want, r;

        switch (a->phase) {
        case AGENT_IDLE:
                want = call_checkin(s, a);
                if (want >= 0 || want == -1) {
                        if (a->release_pending) {
                                (void) call_release(s, a, a->release_pending);
                                a->release_pending = 0;
                                a->epoch = 0;
                        }
                        if (!a->spell && want >= 0 && want != a->running && want != a->failed) {
                                a->phase = AGENT_STAGING;
                                a->target = want;
                                a->report = "staging";
                                (void) call_checkin(s, a);
                                trace(s, "%s staging %s", a->id, image_versions[want]);
                                sim_schedule(s, s->t + rng_range(s, 5000, 30000), EV_AGENT, i);
                                return;
                        }
                }
                sim_schedule(s, s->t + interval_ms(s), EV_AGENT, i);
                return;
        case AGENT_STAGING:
                a->phase = AGENT_STAGED;
                a->report = "staged";
                /* A round right away, as the real agent does. */
                __attribute__((fallthrough));
        case AGENT_STAGED:
                want = call_checkin(s, a);
                if (want == -EHOSTUNREACH) {
                        sim_schedule(s, s->t + retry_ms(s), EV_AGENT, i);
                        return;
                }
                if (want != a->target) {
                        /* The server changed its mind. */
                        a->phase = AGENT_IDLE;
                        a->report = a->failed >= 0 ? "rolled-back" : "healthy";
                        sim_schedule(s, s->t + interval_ms(s), EV_AGENT, i);
                        return;
                }
                r = call_acquire(s, a);
                if (r > 0)
                        agent_granted(s, a, i);
                else
                        sim_schedule(s, s->t + retry_ms(s), EV_AGENT, i);
                return;
        case AGENT_DRAINING: {
                bool lost = s->t >= a->lost_from && s->t < a->lost_until;
                (void) call_checkin(s, a);
                if (lost) {
                        trace(s, "%s: lease renewal lost", a->id);
                        sim_schedule(s, s->t + interval_ms(s), EV_AGENT, i);
                        return;
                }
                r = call_acquire(s, a);
                if (r == 0) {
                        agent_lease_lost(s, a, i);
                        return;
                }
                /* Going down only with a lease confirmed just now (fencing). */
                if (r > 0 && s->t >= a->drain_until)
                        agent_start_reboot(s, a, i);
                else
                        sim_schedule(s, s->t + interval_ms(s), EV_AGENT, i);
                return;
        }
        case AGENT_REBOOTING: {
                bool fail = rng_chance(s, s->o->p_fail);
                if (fail) {
                        a->failed = a->target;
                        a->report = "rolled-back";
                        s->res.failures++;
                } else {
                        a->running = a->target;
                        a->report = "healthy";
                }
                trace(s, "%s back up: %s on %s", a->id, a->report, image_versions[a->running]);
                a->phase = AGENT_IDLE;
                a->target = -1;
                a->release_pending = a->lose_release || (fail && s->o->keep_lease_on_failure) ? 0 : a->epoch;
                if (!a->release_pending)
                        trace(s, "%s will not give lease %" PRIu64 " back", a->id, a->epoch);
                /* Back up: check in at once, then give the lease back. */
                sim_schedule(s, s->t + 1, EV_AGENT, i);
                return;
        }
        default:
                abort();
        }
}

