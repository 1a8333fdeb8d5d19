/* The faults the simulator injects: hosts that drop off the network for a
 * while (some of them while they hold a lease), hosts that report unhealthy
 * for a while, and coordinator restarts. */
#include "sim.h"
#include "util.h"

void fault_plan(Sim *s, int i) {
        Agent *a = &s->a[i];

        a->had_outage = rng_chance(s, s->o->p_outage);
        /* Half of them drop off while holding a lease, the others at a random time. */
        if (a->had_outage && rng_chance(s, 0.5))
                a->outage_on_lease = true;
        else if (a->had_outage) {
                s->pending_disruptions++;
                sim_schedule(s, rng_range(s, 0, s->window), EV_OUTAGE_START, i);
        }
        if (rng_chance(s, s->o->p_spell)) {
                s->pending_disruptions++;
                sim_schedule(s, rng_range(s, 0, s->window), EV_SPELL_START, i);
        }
}

void fault_lease_taken(Sim *s, Agent *a, int i) {
        if (!a->outage_on_lease)
                return;
        /* This host drops off the network while it holds the lease. */
        a->outage_on_lease = false;
        s->pending_disruptions++;
        sim_schedule(s, s->t + rng_range(s, 0, 30000), EV_OUTAGE_START, i);
}

void fault_outage_start(Sim *s, int i) {
        Agent *a = &s->a[i];

        a->unreachable = true;
        s->res.outages++;
        trace(s, "%s unreachable (agent %s, lease %" PRIu64 ")", a->id, phase_names[a->phase], a->epoch);
        /* Long enough, often, for a lease held meanwhile to expire. */
        sim_schedule(s, s->t + rng_range(s, 120000, (2 * s->cc.lease_ttl + 300) * 1000), EV_OUTAGE_END, i);
}

void fault_outage_end(Sim *s, int i) {
        Agent *a = &s->a[i];

        a->unreachable = false;
        s->pending_disruptions--;
        trace(s, "%s reachable again", a->id);
}

void fault_spell_start(Sim *s, int i) {
        Agent *a = &s->a[i];

        /* Only an idle host: one in the middle of an update tries again later. */
        if (a->phase != AGENT_IDLE) {
                sim_schedule(s, s->t + 60000, EV_SPELL_START, i);
                return;
        }
        a->spell = true;
        a->report = "unhealthy";
        trace(s, "%s unhealthy for a while", a->id);
        sim_schedule(s, s->t + rng_range(s, 60000, 600000), EV_SPELL_END, i);
}

void fault_spell_end(Sim *s, int i) {
        Agent *a = &s->a[i];

        a->spell = false;
        a->report = a->failed >= 0 ? "rolled-back" : "healthy";
        s->pending_disruptions--;
        trace(s, "%s healthy again", a->id);
}

void fault_restart(Sim *s) {
        int r;

        trace(s, "coordinator restart");
        r = sim_db_reopen(s);
        if (r < 0)
                violation(s, "cannot reopen the database: %s", strerror(-r));
        s->res.restarts++;
        check_model(s);
        sim_schedule(s, s->t + rng_range(s, 300000, 1200000), EV_RESTART, -1);
}
