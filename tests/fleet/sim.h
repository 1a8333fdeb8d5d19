/* The fleet simulator's shared types: the options, the virtual agents and
 * the model the coordinator is judged on, the event queue, a seed's results.
 *
 *   sim.c           the command: options, seeds run in parallel, the summary
 *   sim-world.c     randomness, the virtual clock, the event queue and loop,
 *                   the database, tracing and violations
 *   sim-fleet.c     the fleet of one seed: hosts, services, racks, budgets
 *   sim-agent.c     what an agent does and its calls to the coordinator
 *   sim-fault.c     outages, unhealthy spells, coordinator restarts
 *   sim-operator.c  the operator: starts the rollout, resumes it after a pause
 *   sim-check.c     the model, the coordinator's tick and the invariants
 *
 * Everything random comes from one splitmix64 stream per seed, drawn in the
 * order the events run, so that a seed replays identically. */
#pragma once

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator.h"
#include "store-sqlite.h"
#include "macro.h"

#define T0 UINT64_C(1000000000) /* the virtual epoch: coordinator time at t = 0 */
#define N_SERVICES 5
#define N_IMAGES 2
#define MAX_WAVES 16

extern const char *const image_ids[N_IMAGES];
extern const char *const image_versions[N_IMAGES];

typedef struct Options {
        uint64_t seed, seeds;
        unsigned hosts, rack_size, jobs;
        uint64_t limit_s;        /* virtual time limit per seed */
        uint64_t checkin_s;      /* agents' check-in interval */
        double p_fail;           /* a reboot fails its health checks */
        double p_outage;         /* a host goes unreachable once */
        double p_lost_release;   /* an agent does not give its lease back */
        double p_drain;          /* an agent holds its lease a while before rebooting, renewing it */
        double p_spell;          /* an idle host reports unhealthy for a while */
        bool keep_lease_on_failure; /* like agent/cycle.c's give_up(): no release after a failed boot */
        bool every_second;       /* run coord_tick every second, not only when it can act */
        uint64_t ttl;            /* lease TTL */
        uint64_t heartbeat_s;    /* 0: 3 check-ins, as slipwayd */
        bool verbose, profile;
        const char *dir;
        char replay[256]; /* the options that shape a run, for the replay line */
} Options;

typedef enum AgentPhase {
        AGENT_IDLE,
        AGENT_STAGING,
        AGENT_STAGED,
        AGENT_DRAINING,
        AGENT_REBOOTING,
        _AGENT_PHASE_MAX,
} AgentPhase;

extern const char *const phase_names[_AGENT_PHASE_MAX];

typedef struct Agent {
        char id[16];
        int service, rack, wave;
        /* The agent's own state. */
        AgentPhase phase;
        int running, target, failed; /* image indexes; -1 none */
        const char *report;          /* what it says at its next check-in */
        uint64_t epoch;              /* the lease it believes it holds */
        uint64_t release_pending;    /* epoch to give back at the next check-in */
        bool lose_release;           /* this lease will not be given back */
        uint64_t drain_until, lost_from, lost_until; /* ms */
        bool unreachable, spell, outage_on_lease, had_outage;
        char *last_refusal;
        /* The model: what the coordinator must know about this host. */
        uint64_t m_epoch, m_expires, m_last_seen;
        bool m_quarantined, m_needs_healthy;
        bool m_finished; /* the coordinator has seen it done or failed */
        bool m_assigned; /* the rollout assigned it: on its way until finished */
        const char *m_state;
        int m_image;
} Agent;

typedef struct Group {
        char name[32];
        int *members;
        size_t n;
        int64_t allowed;
        int64_t allowed_rollout; /* for a host on its way: the smaller of the site's and the rollout's */
        int64_t leased; /* model: members holding a lease */
} Group;

typedef enum EventKind {
        EV_TICK,
        EV_AGENT,
        EV_ROLLOUT,
        EV_RESTART,
        EV_OUTAGE_START,
        EV_OUTAGE_END,
        EV_SPELL_START,
        EV_SPELL_END,
        EV_RESUME,
} EventKind;

typedef struct Event {
        uint64_t t; /* ms since the start */
        uint64_t seq;
        EventKind kind;
        int host;
} Event;

typedef struct Result {
        uint64_t seed;
        int ok;
        char state[16];     /* done, paused, or what it was stuck in */
        uint64_t duration;  /* rollout start to done or pause, s */
        uint64_t settled;   /* rollout start to the last host converged, s */
        uint64_t grants, renewals, refusals, quarantines, failures, late_failures, outages, restarts, ticks, skipped;
        uint64_t resumes;
        double tick_us_sum, tick_us_max, tick_us_p50, tick_us_p99;
        uint64_t checkins, leases;
        double checkin_us, lease_us;
} Result;

typedef struct Sim {
        const Options *o;
        uint64_t rng;
        uint64_t t; /* ms */
        char path[4096];
        StoreDb *db;
        CoordConfig cc;
        Agent *a;
        unsigned n;
        Group services[N_SERVICES], *racks;
        unsigned n_racks;
        Event *heap;
        size_t n_heap, cap_heap;
        uint64_t seq;
        int64_t rollout;
        uint64_t rollout_started, max_epoch, pending_disruptions, last_check;
        uint64_t window; /* ms: when outages and unhealthy spells start */
        int wave;
        bool wave_done_seen;
        uint64_t wave_done_at;
        char rollout_state[16];
        bool tick_dirty, tick_changed; /* see tick_needed() in sim-check.c */
        uint64_t last_tick_now;
        int *wave_size, *wave_failed; /* MAX_WAVES each */
        int *wave_acked; /* failures an operator resumed past */
        double *tick_us; /* every tick's duration, for the percentiles */
        size_t n_tick_us, cap_tick_us;
        Result res;
        bool failed;
} Sim;

/* ---- sim-world.c ---------------------------------------------------------- */

/* The seed's stream: the next number; uniform in [lo, hi]; true with p. */
uint64_t rng_next(Sim *s);
uint64_t rng_range(Sim *s, uint64_t lo, uint64_t hi);
bool rng_chance(Sim *s, double p);

/* The coordinator's clock (seconds) at the virtual time s->t (ms). */
uint64_t now_s(const Sim *s);
/* A monotonic wall clock in microseconds, for the figures. */
double mono_us(void);

/* With --verbose, one line of the seed's story. */
void trace(Sim *s, const char *format, ...) _printf_(2, 3);
/* Records the first violation of this seed with the line that replays it;
 * the event loop stops after it. */
void violation(Sim *s, const char *format, ...) _printf_(2, 3);

/* Queues an event at virtual time t (ms); host is -1 for fleet events. */
void sim_schedule(Sim *s, uint64_t t, EventKind kind, int host);
/* When the coordinator's tick of second k runs. */
uint64_t tick_time(const Sim *s, uint64_t k);
/* An agent's next check-in, and its next try after a refusal, from now. */
uint64_t interval_ms(Sim *s);
uint64_t retry_ms(Sim *s);

/* Closes and opens the state database, as a coordinator restart does. */
int sim_db_reopen(Sim *s);
/* The first column of the first row of sql with ?1 = a and ?2 = b; -1 on errors. */
int64_t query_int(sqlite3 *db, const char *sql, int64_t a, int64_t b);

/* --profile: whether the statements now running are coord_tick()'s, and
 * the table of their times, printed once at the end. */
extern bool profile_in_tick;
void profile_print(void);

/* Runs one seed to its end and returns its figures. */
Result sim_run_seed(const Options *o, uint64_t seed);

/* ---- sim-fleet.c ---------------------------------------------------------- */

/* Deals the hosts into services and racks, writes them and the budgets to
 * the database, and queues the first events. */
int fleet_setup(Sim *s);
/* Frees what fleet_setup() and the run allocated and removes the database. */
void fleet_release(Sim *s);

/* ---- sim-agent.c ---------------------------------------------------------- */

/* One check-in: the desired image index, -1 none, or -EHOSTUNREACH. */
int call_checkin(Sim *s, Agent *a);
/* Host i's agent wakes up and takes the next step of its phase. */
void agent_wake(Sim *s, int i);

/* ---- sim-fault.c ---------------------------------------------------------- */

/* Draws host i's outage and unhealthy spell, if any, while the fleet is set up. */
void fault_plan(Sim *s, int i);
/* Host i was just granted a lease: a planned outage starts now. */
void fault_lease_taken(Sim *s, Agent *a, int i);
void fault_outage_start(Sim *s, int i);
void fault_outage_end(Sim *s, int i);
void fault_spell_start(Sim *s, int i);
void fault_spell_end(Sim *s, int i);
/* The coordinator restarts: its database is closed and opened again. */
void fault_restart(Sim *s);

/* ---- sim-operator.c ------------------------------------------------------- */

void operator_start_rollout(Sim *s);
/* The rollout paused: on some seeds the operator will resume it. */
void operator_on_pause(Sim *s);
void operator_resume(Sim *s);

/* ---- sim-check.c ---------------------------------------------------------- */

bool model_reachable(const Sim *s, const Agent *a, uint64_t now);
void model_set_lease(Sim *s, Agent *a, uint64_t epoch, uint64_t expires);
/* A lease found past its expiry: quarantined in the model. */
void model_expire(Sim *s, Agent *a);
/* Whether the budgets let host i go down now, per the model; if not, why. */
bool model_budgets_allow(Sim *s, int i, uint64_t now, char *why, size_t size);
/* Wave w's failures since the operator last resumed. */
int wave_failures(const Sim *s, int w);

/* The coordinator's tick at the current time, when it can act, and the
 * checks after it. */
void sim_tick(Sim *s);
/* The model against the database. */
void check_model(Sim *s);
/* Whether nothing is left to happen. */
bool settled(Sim *s);
/* Invariant 5, at the end: where every host ended. */
void check_end(Sim *s, bool done);
