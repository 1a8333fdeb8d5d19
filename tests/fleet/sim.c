/* The fleet simulator: thousands of virtual agents on a virtual clock drive
 * the real coordinator (coordinator.c, rollout.c, hosts.c, db.c) through one
 * rollout per seed, and check the coordinator's promises after every event.
 *
 * Everything random comes from one splitmix64 stream seeded by the seed, and
 * the events run in (time, sequence) order, so a seed replays identically.
 * Next to the real database the simulator keeps its own model of what the
 * coordinator must know (leases, quarantine, last check-in, last report);
 * the invariants are judged on that model and the model is compared with
 * the database every few virtual seconds. See docs/coordinator.md. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "coordinator.h"
#include "db.h"
#include "hosts.h"
#include "log.h"
#include "util.h"

#define T0 UINT64_C(1000000000) /* the virtual epoch: coordinator time at t = 0 */
#define N_SERVICES 5
#define N_IMAGES 2

static const char *const image_ids[N_IMAGES] = {
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
};
static const char *const image_versions[N_IMAGES] = { "1.0", "2.0" };

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

static const char *const phase_names[_AGENT_PHASE_MAX] = { "idle", "staging", "staged", "draining", "rebooting" };

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
        const char *m_state;
        int m_image;
} Agent;

typedef struct Group {
        char name[32];
        int *members;
        size_t n;
        int64_t allowed;
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
        Db *db;
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
        bool tick_dirty, tick_changed; /* see tick_needed() */
        uint64_t last_tick_now;
        int *wave_size, *wave_failed;
        int *wave_acked; /* failures an operator resumed past */
        double *tick_us; /* every tick's duration, for the percentiles */
        size_t n_tick_us, cap_tick_us;
        Result res;
        bool failed;
} Sim;

/* ---- randomness ---------------------------------------------------------- */

static uint64_t rng_next(Sim *s) {
        uint64_t z = (s->rng += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rng_range(Sim *s, uint64_t lo, uint64_t hi) {
        return lo + rng_next(s) % (hi - lo + 1);
}

static bool rng_chance(Sim *s, double p) {
        return (double) (rng_next(s) >> 11) * 0x1p-53 < p;
}

/* ---- reporting ----------------------------------------------------------- */

static uint64_t now_s(const Sim *s) {
        return T0 + s->t / 1000;
}

static const char *fmt_time(uint64_t ms, char buf[32]) {
        snprintf(buf, 32, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64, ms / 3600000, ms / 60000 % 60,
                 ms / 1000 % 60, ms % 1000);
        return buf;
}

static void trace(Sim *s, const char *format, ...) _printf_(2, 3);
static void trace(Sim *s, const char *format, ...) {
        va_list ap;
        char buf[32];

        if (!s->o->verbose)
                return;
        printf("%s ", fmt_time(s->t, buf));
        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        putchar('\n');
}

/* Records the first violation of this seed; the event loop stops after it. */
static void violation(Sim *s, const char *format, ...) _printf_(2, 3);
static void violation(Sim *s, const char *format, ...) {
        va_list ap;
        char buf[32];

        if (s->failed)
                return;
        s->failed = true;
        fflush(stdout);
        fprintf(stderr, "FAIL seed %" PRIu64 " at virtual time %s (coordinator time %" PRIu64 "): ", s->res.seed,
                fmt_time(s->t, buf), now_s(s));
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, "\n  replay: build/fleet/sim --seed %" PRIu64 " %s --verbose\n", s->res.seed, s->o->replay);
}

/* ---- events -------------------------------------------------------------- */

static bool event_before(const Event *x, const Event *y) {
        return x->t != y->t ? x->t < y->t : x->seq < y->seq;
}

static void schedule(Sim *s, uint64_t t, EventKind kind, int host) {
        Event e = { .t = t, .seq = s->seq++, .kind = kind, .host = host };
        size_t i;

        if (s->n_heap == s->cap_heap) {
                s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 1024;
                s->heap = realloc(s->heap, s->cap_heap * sizeof *s->heap);
                if (!s->heap)
                        abort();
        }
        for (i = s->n_heap++; i > 0 && event_before(&e, &s->heap[(i - 1) / 2]); i = (i - 1) / 2)
                s->heap[i] = s->heap[(i - 1) / 2];
        s->heap[i] = e;
}

static Event pop(Sim *s) {
        Event top = s->heap[0], last = s->heap[--s->n_heap];
        size_t i = 0;

        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= s->n_heap)
                        break;
                if (c + 1 < s->n_heap && event_before(&s->heap[c + 1], &s->heap[c]))
                        c++;
                if (!event_before(&s->heap[c], &last))
                        break;
                s->heap[i] = s->heap[c];
                i = c;
        }
        s->heap[i] = last;
        return top;
}

/* The tick of second k runs at a random point of that second, agents' calls
 * fall before or after it. The point comes from (seed, k), not from the
 * stream, so that skipping idle ticks changes nothing else. */
static uint64_t tick_time(const Sim *s, uint64_t k) {
        Sim h = { .rng = s->res.seed * UINT64_C(0x2545f4914f6cdd1d) ^ k };
        return k * 1000 + rng_next(&h) % 1000;
}

static uint64_t interval_ms(Sim *s) {
        uint64_t base = s->o->checkin_s * 1000;
        return rng_range(s, base * 8 / 10, base * 12 / 10);
}

static uint64_t retry_ms(Sim *s) {
        return s->cc.retry_after * 1000 + rng_range(s, 0, 2000);
}

static double mono_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

/* ---- the database -------------------------------------------------------- */

/* --profile: time per SQL statement text, to tell which query of the
 * coordinator costs what. */
typedef struct ProfileEntry {
        char *sql;
        uint64_t n, ns;
} ProfileEntry;

static ProfileEntry *profile;
static size_t n_profile;
static bool in_tick; /* only the statements run by coord_tick() */

static int profile_cb(unsigned type, void *ctx _unused_, void *p, void *x) {
        const char *sql;
        size_t i;

        if (type != SQLITE_TRACE_PROFILE || !in_tick)
                return 0;
        sql = sqlite3_sql((sqlite3_stmt *) p);
        if (!sql)
                return 0;
        for (i = 0; i < n_profile; i++)
                if (streq(profile[i].sql, sql))
                        break;
        if (i == n_profile) {
                ProfileEntry *n = realloc(profile, (n_profile + 1) * sizeof *profile);
                if (!n)
                        return 0;
                profile = n;
                profile[n_profile++] = (ProfileEntry) { .sql = strdup(sql) };
        }
        profile[i].n++;
        profile[i].ns += *(sqlite3_uint64 *) x;
        return 0;
}

static int profile_compare(const void *a, const void *b) {
        const ProfileEntry *x = a, *y = b;
        return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

static void profile_print(void) {
        qsort(profile, n_profile, sizeof *profile, profile_compare);
        printf("coord_tick statements by total time:\n");
        for (size_t i = 0; i < n_profile && i < 12; i++)
                printf("  %9.1f ms  %7" PRIu64 " runs  %.1f us each  %.110s\n", (double) profile[i].ns / 1e6,
                       profile[i].n, (double) profile[i].ns / 1e3 / (double) profile[i].n, profile[i].sql);
        for (size_t i = 0; i < n_profile; i++)
                free(profile[i].sql);
        free(profile);
}

static int db_reopen(Sim *s) {
        sqlite3 *db;
        int r;

        s->db = db_free(s->db);
        r = db_open(s->path, &s->db);
        if (r < 0)
                return r;
        /* The state lives in a scratch file on tmpfs, with one connection at a
         * time: what is tested is that it survives a close and an open, not
         * a power cut, so no fsync, no WAL and no file locks per transaction
         * (db_open() sets WAL again at every restart). */
        db = db_lock(s->db);
        r = sqlite3_exec(db, "PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=MEMORY;", NULL,
                         NULL, NULL) == SQLITE_OK
                    ? 0
                    : -EIO;
        if (s->o->profile)
                sqlite3_trace_v2(db, SQLITE_TRACE_PROFILE, profile_cb, NULL);
        db_unlock(s->db);
        return r;
}

/* The first column of the first row of sql with ?1 = a and ?2 = b; -1 on errors. */
static int64_t query_int(sqlite3 *db, const char *sql, int64_t a, int64_t b) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (db_prepare(db, sql, &st) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, a);
        sqlite3_bind_int64(st, 2, b);
        return sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
}

/* ---- the model ----------------------------------------------------------- */

static bool model_unavailable(const Sim *s, const Agent *a, uint64_t now) {
        return a->m_epoch != 0 || a->m_quarantined || streq_ptr(a->m_state, "unhealthy") ||
               a->m_last_seen + s->cc.heartbeat_timeout < now;
}

static bool model_reachable(const Sim *s, const Agent *a, uint64_t now) {
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

static void model_set_lease(Sim *s, Agent *a, uint64_t epoch, uint64_t expires) {
        int d = (epoch != 0) - (a->m_epoch != 0);

        s->services[a->service].leased += d;
        s->racks[a->rack].leased += d;
        a->m_epoch = epoch;
        a->m_expires = expires;
}

/* A lease found past its expiry: the coordinator must quarantine the host,
 * and the host may not go down again before it reports healthy. */
static void model_expire(Sim *s, Agent *a) {
        trace(s, "%s lease %" PRIu64 " expired (at %" PRIu64 "): quarantined", a->id, a->m_epoch, a->m_expires);
        model_set_lease(s, a, 0, 0);
        a->m_quarantined = true;
        a->m_needs_healthy = true;
        s->res.quarantines++;
}

/* Whether the budgets let host i go down now, per the model. */
static bool model_budgets_allow(Sim *s, int i, uint64_t now, char *why, size_t size) {
        Group *groups[2] = { &s->services[s->a[i].service], &s->racks[s->a[i].rack] };

        for (size_t k = 0; k < ELEMENTSOF(groups); k++) {
                Group *g = groups[k];
                int64_t down = 0;
                for (size_t m = 0; m < g->n; m++)
                        if (g->members[m] != i && model_unavailable(s, &s->a[g->members[m]], now))
                                down++;
                if (down + 1 > g->allowed) {
                        snprintf(why, size, "group %s: %" PRIi64 " of %zu down, %" PRIi64 " allowed", g->name, down,
                                 g->n, g->allowed);
                        return false;
                }
        }
        return true;
}

/* ---- the agents' calls to the coordinator -------------------------------- */

/* One check-in, in its own transaction. Returns the desired image index (-1
 * none), or -EHOSTUNREACH when the host cannot reach the server. */
static int call_checkin(Sim *s, Agent *a) {
        json_t *body, *desired = NULL;
        sqlite3 *db;
        int r, want = -1;

        if (a->unreachable)
                return -EHOSTUNREACH;
        body = json_pack("{s:s, s:s, s:s, s:s?}", "state", a->report, "image", image_ids[a->running], "version",
                         image_versions[a->running], "failed_image", a->failed >= 0 ? image_ids[a->failed] : NULL);
        double t0 = mono_us();
        db = db_lock(s->db);
        r = db_begin(db);
        if (r >= 0)
                r = hosts_checkin_apply(db, a->id, body, now_s(s), "agent", &desired);
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        db_unlock(s->db);
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
        LeaseDecision d = {};
        uint64_t now = now_s(s);
        int i = (int) (a - s->a);
        bool renew, predicted;
        char why[160] = "";
        sqlite3 *db;
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
        db = db_lock(s->db);
        r = db_begin(db);
        if (r >= 0)
                r = coord_lease_acquire(db, &s->cc, a->id, now, "agent", &d);
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        db_unlock(s->db);
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
        bool expect = a->m_epoch != 0 && (epoch == 0 || a->m_epoch == epoch);
        sqlite3 *db;
        int r;

        if (a->unreachable)
                return -EHOSTUNREACH;
        if (a->m_epoch != 0 && a->m_expires < now_s(s))
                /* Given back late: the tick had not seen it yet. */
                a->m_needs_healthy = true;
        db = db_lock(s->db);
        r = db_begin(db);
        if (r >= 0)
                r = coord_lease_release(db, a->id, epoch, "agent");
        if (r >= 0 && db_commit(db) < 0)
                r = -EIO;
        else if (r < 0)
                db_rollback(db);
        db_unlock(s->db);
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
        schedule(s, s->t + rng_range(s, 20000, 60000), EV_AGENT, i);
}

static void agent_granted(Sim *s, Agent *a, int i) {
        a->lose_release = rng_chance(s, s->o->p_lost_release);
        a->report = "rebooting";
        (void) call_checkin(s, a);
        if (a->outage_on_lease) {
                /* This host drops off the network while it holds the lease. */
                a->outage_on_lease = false;
                s->pending_disruptions++;
                schedule(s, s->t + rng_range(s, 0, 30000), EV_OUTAGE_START, i);
        }
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
                schedule(s, s->t + interval_ms(s), EV_AGENT, i);
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
        schedule(s, s->t + retry_ms(s), EV_AGENT, i);
}

static void agent_wake(Sim *s, int i) {
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
                                schedule(s, s->t + rng_range(s, 5000, 30000), EV_AGENT, i);
                                return;
                        }
                }
                schedule(s, s->t + interval_ms(s), EV_AGENT, i);
                return;
        case AGENT_STAGING:
                a->phase = AGENT_STAGED;
                a->report = "staged";
                /* A round right away, as the real agent does. */
                __attribute__((fallthrough));
        case AGENT_STAGED:
                want = call_checkin(s, a);
                if (want == -EHOSTUNREACH) {
                        schedule(s, s->t + retry_ms(s), EV_AGENT, i);
                        return;
                }
                if (want != a->target) {
                        /* The server changed its mind. */
                        a->phase = AGENT_IDLE;
                        a->report = a->failed >= 0 ? "rolled-back" : "healthy";
                        schedule(s, s->t + interval_ms(s), EV_AGENT, i);
                        return;
                }
                r = call_acquire(s, a);
                if (r > 0)
                        agent_granted(s, a, i);
                else
                        schedule(s, s->t + retry_ms(s), EV_AGENT, i);
                return;
        case AGENT_DRAINING: {
                bool lost = s->t >= a->lost_from && s->t < a->lost_until;
                (void) call_checkin(s, a);
                if (lost) {
                        trace(s, "%s: lease renewal lost", a->id);
                        schedule(s, s->t + interval_ms(s), EV_AGENT, i);
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
                        schedule(s, s->t + interval_ms(s), EV_AGENT, i);
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
                schedule(s, s->t + 1, EV_AGENT, i);
                return;
        }
        default:
                abort();
        }
}

/* ---- the coordinator's tick and the checks after it ---------------------- */

/* Invariant 4 for every host the tick just assigned: an s1 host only when no
 * reachable s0 host is unfinished. */
static void check_assignments(Sim *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint64_t now = now_s(s);
        sqlite3 *db = db_lock(s->db);

        if (db_prepare(db,
                       "SELECT host_id FROM rollout_hosts WHERE rollout_id = ? AND assigned_at = ? ORDER BY host_id",
                       &st) < 0) {
                db_unlock(s->db);
                violation(s, "cannot read the assignments");
                return;
        }
        sqlite3_bind_int64(st, 1, s->rollout);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) now);
        while (sqlite3_step(st) == SQLITE_ROW) {
                unsigned i;
                if (sscanf((const char *) sqlite3_column_text(st, 0), "h-%u", &i) != 1 || i >= s->n) {
                        violation(s, "unknown host %s assigned", (const char *) sqlite3_column_text(st, 0));
                        break;
                }
                trace(s, "%s assigned %s (wave %d, service s%d)", s->a[i].id, image_versions[1], s->a[i].wave + 1,
                      s->a[i].service);
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
        db_unlock(s->db);
}

/* A wave's failures that count against its threshold: those since the
 * operator last resumed. */
static int wave_failures(const Sim *s, int w) {
        return s->wave_failed[w] - s->wave_acked[w];
}

/* The rollout's state and wave after a tick: waves move on only when their
 * reachable hosts are finished, the bake is over and the failures are within
 * the threshold; a pause is justified by the failures. */
static void check_rollout(Sim *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *db = db_lock(s->db);
        uint64_t now = now_s(s);
        char state[16] = "", reason[200] = "";
        int wave = 0;

        if (db_prepare(db, "SELECT state, wave, wave_done_at, reason FROM rollouts WHERE id = ?", &st) >= 0) {
                sqlite3_bind_int64(st, 1, s->rollout);
                if (sqlite3_step(st) == SQLITE_ROW) {
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
                db_unlock(s->db);
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
                /* On some seeds an operator looks and resumes, up to twice. */
                if (streq(state, "paused") && s->res.resumes < 2 && rng_next(s) % 2 == 0) {
                        s->pending_disruptions++;
                        schedule(s, s->t + rng_range(s, 30000, 300000), EV_RESUME, -1);
                }
                if (streq(state, "paused") && !*reason)
                        violation(s, "the rollout paused without a reason");
                if (streq(state, "done") || streq(state, "paused"))
                        s->res.duration = (s->t - s->rollout_started) / 1000;
                else if (!streq(state, "running"))
                        violation(s, "the rollout is %s", state);
                snprintf(s->rollout_state, sizeof s->rollout_state, "%s", state);
        }
        db_unlock(s->db);
}

/* The whole model against the database: leases, epochs, quarantine, last
 * check-in, reports. */
static void check_model(Sim *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *db = db_lock(s->db);
        unsigned seen = 0;

        if (db_prepare(db, "SELECT id, lease_epoch, lease_expires, quarantined, last_seen, state, current_image FROM "
                           "hosts ORDER BY id",
                       &st) < 0) {
                db_unlock(s->db);
                violation(s, "cannot read the hosts");
                return;
        }
        while (!s->failed && sqlite3_step(st) == SQLITE_ROW) {
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
        if (!s->failed && seen != s->n)
                violation(s, "the database has %u hosts, the simulation %u", seen, s->n);
        if (!s->failed && query_int(db, "SELECT count(*) FROM (SELECT lease_epoch FROM hosts WHERE lease_epoch IS NOT "
                                        "NULL GROUP BY lease_epoch HAVING count(*) > 1) WHERE ?1 = ?2",
                                    0, 0) != 0)
                violation(s, "invariant 2: two live leases share an epoch");
        db_unlock(s->db);
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

static void tick(Sim *s) {
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
        db = db_lock(s->db);
        changes = sqlite3_total_changes(db);
        r = db_begin(db);
        in_tick = true;
        if (r >= 0)
                r = coord_tick(db, &s->cc, now);
        in_tick = false;
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        changes = sqlite3_total_changes(db) - changes;
        db_unlock(s->db);
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

/* ---- setup --------------------------------------------------------------- */

static int setup(Sim *s) {
        _cleanup_stmt_ sqlite3_stmt *img = NULL, *ren = NULL, *lab = NULL;
        const Options *o = s->o;
        sqlite3 *db;
        int r;

        s->n = o->hosts;
        s->n_racks = (o->hosts + o->rack_size - 1) / o->rack_size;
        s->a = calloc(s->n, sizeof *s->a);
        s->racks = calloc(s->n_racks, sizeof *s->racks);
        s->wave_size = calloc(16, sizeof(int));
        s->wave_failed = calloc(16, sizeof(int));
        s->wave_acked = calloc(16, sizeof(int));
        if (!s->a || !s->racks || !s->wave_size || !s->wave_failed || !s->wave_acked)
                return -ENOMEM;
        s->cc = COORD_CONFIG_DEFAULT;
        s->cc.heartbeat_timeout = o->heartbeat_s ? o->heartbeat_s : 3 * o->checkin_s;
        s->cc.lease_ttl = o->ttl;

        /* Outages and spells start while the rollout is expected to run: about
         * a minute per host that must wait for the one before it in its
         * service or rack, twice (s1 waits for s0), plus waves and bakes. */
        uint64_t per_service = s->n / N_SERVICES;
        uint64_t serial = MAX((uint64_t) o->rack_size, per_service / MAX(per_service * 10 / 100, 1));
        s->window = (serial * 70 * 2 + 300) * 1000;

        /* Services: equal shares; racks: rack_size hosts each; both dealt by
         * a seeded shuffle. Host IDs are random in slipwayd and waves take
         * hosts in ID order, so a wave spreads over racks and services. */
        int *perm = calloc(2 * (size_t) s->n, sizeof(int));
        if (!perm)
                return -ENOMEM;
        for (unsigned i = 0; i < s->n; i++) {
                perm[i] = (int) (i % N_SERVICES);
                perm[s->n + i] = (int) (i / o->rack_size);
        }
        for (unsigned k = 0; k < 2; k++)
                for (unsigned i = s->n; i > 1; i--) {
                        unsigned j = (unsigned) rng_range(s, 0, i - 1);
                        int t = perm[k * s->n + i - 1];
                        perm[k * s->n + i - 1] = perm[k * s->n + j];
                        perm[k * s->n + j] = t;
                }
        for (unsigned g = 0; g < N_SERVICES; g++) {
                snprintf(s->services[g].name, sizeof s->services[g].name, "service=s%u", g);
                s->services[g].members = calloc(s->n, sizeof(int));
        }
        for (unsigned g = 0; g < s->n_racks; g++) {
                snprintf(s->racks[g].name, sizeof s->racks[g].name, "rack=r%u", g);
                s->racks[g].members = calloc(o->rack_size, sizeof(int));
        }
        for (unsigned i = 0; i < s->n; i++) {
                Agent *a = &s->a[i];
                snprintf(a->id, sizeof a->id, "h-%06u", i);
                a->service = perm[i];
                a->rack = perm[s->n + i];
                a->running = 0;
                a->target = a->failed = a->wave = -1;
                a->report = "healthy";
                s->services[a->service].members[s->services[a->service].n++] = (int) i;
                s->racks[a->rack].members[s->racks[a->rack].n++] = (int) i;
                a->had_outage = rng_chance(s, o->p_outage);
                /* Half of them drop off while holding a lease, the others at a random time. */
                if (a->had_outage && rng_chance(s, 0.5))
                        a->outage_on_lease = true;
                else if (a->had_outage) {
                        s->pending_disruptions++;
                        schedule(s, rng_range(s, 0, s->window), EV_OUTAGE_START, (int) i);
                }
                if (rng_chance(s, o->p_spell)) {
                        s->pending_disruptions++;
                        schedule(s, rng_range(s, 0, s->window), EV_SPELL_START, (int) i);
                }
        }
        free(perm);

        Budget rack = { .selector = (char *) "rack", .max_unavailable = 1, .max_unavailable_pct = -1,
                        .min_available = -1 };
        Budget service = { .selector = (char *) "service", .max_unavailable = -1, .max_unavailable_pct = 10,
                           .min_available = -1 };
        for (unsigned g = 0; g < N_SERVICES; g++)
                s->services[g].allowed = budget_allowed(&service, (int64_t) s->services[g].n);
        for (unsigned g = 0; g < s->n_racks; g++)
                s->racks[g].allowed = budget_allowed(&rack, (int64_t) s->racks[g].n);

        r = db_reopen(s);
        if (r < 0)
                return r;
        db = db_lock(s->db);
        r = db_begin(db);
        if (r >= 0)
                r = db_prepare(db, "INSERT INTO images (id, name, version, arch, manifest, signature, created) VALUES "
                                   "(?, 'tiny', ?, 'x86_64', ?1, '', 0)",
                               &img);
        for (int k = 0; r >= 0 && k < N_IMAGES; k++) {
                sqlite3_bind_text(img, 1, image_ids[k], -1, SQLITE_STATIC);
                sqlite3_bind_text(img, 2, image_versions[k], -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(img));
                sqlite3_reset(img);
        }
        if (r >= 0)
                r = db_prepare(db, "UPDATE hosts SET id = ?, image = ? WHERE id = ?", &ren);
        if (r >= 0)
                r = db_prepare(db, "INSERT INTO host_labels (host_id, key, value) VALUES (?, ?, ?)", &lab);
        for (unsigned i = 0; r >= 0 && i < s->n; i++) {
                Agent *a = &s->a[i];
                char mac[18], id[16], value[16];
                bool is_new;
                snprintf(mac, sizeof mac, "02:00:%02x:%02x:%02x:%02x", (i >> 24) & 0xff, (i >> 16) & 0xff,
                         (i >> 8) & 0xff, i & 0xff);
                r = hosts_ensure(db, mac, NULL, "sim", id, &is_new);
                if (r < 0)
                        break;
                /* hosts_ensure() draws a random ID; the rollout orders hosts by
                 * ID, so the simulator renames them for the seed to replay. */
                sqlite3_bind_text(ren, 1, a->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ren, 2, image_ids[0], -1, SQLITE_STATIC);
                sqlite3_bind_text(ren, 3, id, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(ren));
                sqlite3_reset(ren);
                for (int k = 0; r >= 0 && k < 2; k++) {
                        snprintf(value, sizeof value, "%c%d", k == 0 ? 's' : 'r', k == 0 ? a->service : a->rack);
                        sqlite3_bind_text(lab, 1, a->id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(lab, 2, k == 0 ? "service" : "rack", -1, SQLITE_STATIC);
                        sqlite3_bind_text(lab, 3, value, -1, SQLITE_STATIC);
                        r = db_errno(sqlite3_step(lab));
                        sqlite3_reset(lab);
                }
        }
        if (r >= 0)
                r = coord_budget_set(db, &rack, "sim");
        if (r >= 0)
                r = coord_budget_set(db, &service, "sim");
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        db_unlock(s->db);
        if (r < 0)
                return log_error_errno(r, "cannot set up the fleet: %m");

        /* Every host checks in once, healthy on 1.0, then on its own rhythm. */
        for (unsigned i = 0; i < s->n && !s->failed; i++) {
                (void) call_checkin(s, &s->a[i]);
                schedule(s, rng_range(s, 1, s->o->checkin_s * 1000), EV_AGENT, (int) i);
        }
        schedule(s, tick_time(s, 1), EV_TICK, -1);
        schedule(s, 5000, EV_ROLLOUT, -1);
        schedule(s, rng_range(s, 300000, 1200000), EV_RESTART, -1);
        return s->failed ? -EIO : 0;
}

static void start_rollout(Sim *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *error = NULL;
        json_t *spec;
        sqlite3 *db;
        int r;

        spec = json_pack("{s:s, s:[i, s, s, s], s:i, s:s, s:s, s:{s:s, s:[s, s]}}", "image", image_ids[1], "waves", 1,
                         "10%", "50%", "100%", "bake", 30, "max_failures", "5%", "on_failure", "pause", "order", "key",
                         "service", "values", "s0", "s1");
        db = db_lock(s->db);
        r = db_begin(db);
        if (r >= 0)
                r = coord_rollout_start(db, &s->cc, spec, "sim", now_s(s), &s->rollout, &error);
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        if (r >= 0)
                r = db_prepare(db, "SELECT host_id, wave FROM rollout_hosts WHERE rollout_id = ?", &st);
        if (r >= 0) {
                sqlite3_bind_int64(st, 1, s->rollout);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        unsigned i;
                        int w = sqlite3_column_int(st, 1);
                        if (sscanf((const char *) sqlite3_column_text(st, 0), "h-%u", &i) == 1 && i < s->n && w >= 0 &&
                            w < 16) {
                                s->a[i].wave = w;
                                s->wave_size[w]++;
                        }
                }
        }
        db_unlock(s->db);
        json_decref(spec);
        if (r < 0) {
                violation(s, "cannot start the rollout: %s", error ? error : strerror(-r));
                return;
        }
        s->rollout_started = s->t;
        s->tick_dirty = true;
        snprintf(s->rollout_state, sizeof s->rollout_state, "running");
        trace(s, "rollout %" PRIi64 " started: waves of %d, %d, %d, %d hosts", s->rollout, s->wave_size[0],
              s->wave_size[1], s->wave_size[2], s->wave_size[3]);
}

/* ---- the end ------------------------------------------------------------- */

/* Whether nothing is left to happen: the rollout done (no host left to
 * assign) or paused (no assigned host left), every agent idle, no lease. */
static bool settled(Sim *s) {
        if (s->pending_disruptions > 0 || (!streq(s->rollout_state, "done") && !streq(s->rollout_state, "paused")))
                return false;
        for (unsigned i = 0; i < s->n; i++) {
                const Agent *a = &s->a[i];
                if (a->phase != AGENT_IDLE || a->release_pending || a->m_epoch || a->spell || a->m_quarantined ||
                    !streq_ptr(a->m_state, a->report) || a->m_image != a->running)
                        return false;
        }
        sqlite3 *db = db_lock(s->db);
        int64_t open = query_int(db,
                                 "SELECT count(*) FROM rollout_hosts WHERE rollout_id = ?1 AND (status = 'assigned' OR "
                                 "(status = 'pending' AND ?2))",
                                 s->rollout, streq(s->rollout_state, "done"));
        db_unlock(s->db);
        return open == 0;
}

/* Invariant 5: where every host ended. */
static void check_end(Sim *s, bool done) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *db;

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
        db = db_lock(s->db);
        if (db_prepare(db,
                       "SELECT h.id, rh.status, h.quarantined FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id "
                       "WHERE rh.rollout_id = ? ORDER BY h.id",
                       &st) < 0) {
                db_unlock(s->db);
                violation(s, "cannot read the rollout's hosts");
                return;
        }
        sqlite3_bind_int64(st, 1, s->rollout);
        for (unsigned i = 0; !s->failed && sqlite3_step(st) == SQLITE_ROW; i++) {
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
        db_unlock(s->db);
}

/* ---- one seed ------------------------------------------------------------ */

/* The operator resumes a paused rollout: the failures the coordinator has
 * seen so far, wave by wave the model's, are accepted. */
static void operator_resume(Sim *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *error = NULL;
        sqlite3 *db = db_lock(s->db);
        int r;

        if (db_prepare(db,
                       "SELECT wave, sum(status = 'failed' AND NOT acked) FROM rollout_hosts WHERE rollout_id = ? "
                       "GROUP BY wave",
                       &st) >= 0) {
                sqlite3_bind_int64(st, 1, s->rollout);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        int w = sqlite3_column_int(st, 0), n = sqlite3_column_int(st, 1);
                        if (w >= 0 && w < 16 && n != wave_failures(s, w))
                                violation(s, "resume: wave %d has %d failures not yet accepted, the model %d", w + 1, n,
                                          wave_failures(s, w));
                }
        }
        r = db_begin(db);
        if (r >= 0)
                r = coord_rollout_action(db, s->rollout, "resume", "operator", now_s(s), NULL, &error);
        if (r >= 0)
                r = db_commit(db);
        else
                db_rollback(db);
        db_unlock(s->db);
        if (r < 0) {
                violation(s, "cannot resume the rollout: %s", error ? error : strerror(-r));
                return;
        }
        for (int w = 0; w < 16; w++)
                s->wave_acked[w] = s->wave_failed[w];
        s->res.resumes++;
        s->tick_dirty = true;
        snprintf(s->rollout_state, sizeof s->rollout_state, "running");
        trace(s, "rollout resumed by the operator");
}

static void run_event(Sim *s, const Event *e) {
        Agent *a = e->host >= 0 ? &s->a[e->host] : NULL;
        int r;

        switch (e->kind) {
        case EV_TICK:
                tick(s);
                schedule(s, tick_time(s, e->t / 1000 + 1), EV_TICK, -1);
                break;
        case EV_AGENT:
                agent_wake(s, e->host);
                break;
        case EV_ROLLOUT:
                start_rollout(s);
                break;
        case EV_RESTART:
                trace(s, "coordinator restart");
                r = db_reopen(s);
                if (r < 0)
                        violation(s, "cannot reopen the database: %s", strerror(-r));
                s->res.restarts++;
                check_model(s);
                schedule(s, s->t + rng_range(s, 300000, 1200000), EV_RESTART, -1);
                break;
        case EV_OUTAGE_START:
                a->unreachable = true;
                s->res.outages++;
                trace(s, "%s unreachable (agent %s, lease %" PRIu64 ")", a->id, phase_names[a->phase], a->epoch);
                /* Long enough, often, for a lease held meanwhile to expire. */
                schedule(s, s->t + rng_range(s, 120000, (2 * s->cc.lease_ttl + 300) * 1000), EV_OUTAGE_END, e->host);
                break;
        case EV_OUTAGE_END:
                a->unreachable = false;
                s->pending_disruptions--;
                trace(s, "%s reachable again", a->id);
                break;
        case EV_SPELL_START:
                if (a->phase != AGENT_IDLE) {
                        schedule(s, s->t + 60000, EV_SPELL_START, e->host);
                        break;
                }
                a->spell = true;
                a->report = "unhealthy";
                trace(s, "%s unhealthy for a while", a->id);
                schedule(s, s->t + rng_range(s, 60000, 600000), EV_SPELL_END, e->host);
                break;
        case EV_RESUME:
                operator_resume(s);
                s->pending_disruptions--;
                break;
        case EV_SPELL_END:
                a->spell = false;
                a->report = a->failed >= 0 ? "rolled-back" : "healthy";
                s->pending_disruptions--;
                trace(s, "%s healthy again", a->id);
                break;
        }
}

static void sim_release(Sim *s) {
        char p[4200];

        s->db = db_free(s->db);
        for (const char *suffix = ""; suffix; suffix = !*suffix ? "-wal" : streq(suffix, "-wal") ? "-shm" : NULL) {
                snprintf(p, sizeof p, "%s%s", s->path, suffix);
                (void) unlink(p);
        }
        for (unsigned i = 0; s->a && i < s->n; i++)
                free(s->a[i].last_refusal);
        for (unsigned g = 0; g < N_SERVICES; g++)
                free(s->services[g].members);
        for (unsigned g = 0; s->racks && g < s->n_racks; g++)
                free(s->racks[g].members);
        free(s->racks);
        free(s->a);
        free(s->heap);
        free(s->wave_size);
        free(s->wave_failed);
        free(s->wave_acked);
        free(s->tick_us);
}

static int double_compare(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static Result run_seed(const Options *o, uint64_t seed) {
        Sim s = { .o = o, .rng = seed, .res = { .seed = seed } };
        bool done = false;

        snprintf(s.path, sizeof s.path, "%s/state-%" PRIu64 "-%d.db", o->dir, seed, (int) getpid());
        if (setup(&s) < 0) {
                violation(&s, "setup failed");
                goto out;
        }
        while (!s.failed && s.n_heap > 0) {
                Event e = pop(&s);
                s.t = e.t;
                if (s.t > o->limit_s * 1000)
                        break;
                run_event(&s, &e);
                if (e.kind == EV_TICK && s.rollout > 0 && !s.failed && settled(&s)) {
                        done = true;
                        break;
                }
        }
        if (!s.failed)
                check_end(&s, done);
        s.res.settled = s.rollout_started ? (s.t - s.rollout_started) / 1000 : 0;
out:
        if (s.n_tick_us > 0) {
                qsort(s.tick_us, s.n_tick_us, sizeof *s.tick_us, double_compare);
                s.res.tick_us_p50 = s.tick_us[s.n_tick_us / 2];
                s.res.tick_us_p99 = s.tick_us[s.n_tick_us * 99 / 100];
        }
        s.res.ok = !s.failed;
        snprintf(s.res.state, sizeof s.res.state, "%s", s.rollout_state);
        sim_release(&s);
        return s.res;
}

/* ---- the command --------------------------------------------------------- */

static void print_result(const Result *r) {
        printf("seed %" PRIu64 ": %s %s in %" PRIu64 " s, settled at %" PRIu64 " s; grants %" PRIu64
               ", renewals %" PRIu64 ", refusals %" PRIu64 ", quarantines %" PRIu64 ", failed boots %" PRIu64
               " (%" PRIu64 " late), outages %" PRIu64 ", restarts %" PRIu64 ", resumes %" PRIu64 ", ticks %" PRIu64
               "/%" PRIu64 "\n",
               r->seed, r->ok ? "ok" : "FAIL", r->state, r->duration, r->settled, r->grants, r->renewals, r->refusals,
               r->quarantines, r->failures, r->late_failures, r->outages, r->restarts, r->resumes, r->ticks,
               r->ticks + r->skipped);
}

static void help(void) {
        printf("build/fleet/sim [--seed S] [--seeds K] [--hosts N] [--rack-size R] [--jobs J] [--verbose]\n"
               "  Drives slipwayd's coordinator with N virtual hosts for K seeds from S and checks its\n"
               "  invariants after every event (docs/coordinator.md).\n"
               "  --seed S             first seed (default 1)\n"
               "  --seeds K            how many seeds (default 1)\n"
               "  --hosts N            hosts per seed (default 1000)\n"
               "  --rack-size R        hosts per rack (default 10)\n"
               "  --jobs J             seeds run in J processes (default 1)\n"
               "  --limit SEC          virtual time limit per seed (default 21600)\n"
               "  --checkin SEC        agents' check-in interval (default 30, as slipwayd)\n"
               "  --heartbeat SEC      unreachable after this long without a check-in (default 3 check-ins)\n"
               "  --ttl SEC            reboot lease TTL (default 900, as slipwayd)\n"
               "  --every-second       call coord_tick every virtual second, and check that the ticks\n"
               "                       skipped otherwise would have done nothing\n"
               "  --p-fail P           probability that a reboot fails its health checks (default 0.01)\n"
               "  --p-outage P         probability that a host goes unreachable for a while (default 0.02)\n"
               "  --p-drain P          probability that an agent holds and renews its lease a while\n"
               "                       before rebooting, its renewals lost half of the time (default 0.03)\n"
               "  --p-lost-release P   probability that an agent never gives its lease back (default 0.03)\n"
               "  --keep-lease-on-failure  agents do not give the lease back after a failed boot\n"
               "  --dir DIR            where the state databases go (default /dev/shm or $TMPDIR)\n"
               "  --profile            print the time coord_tick spends in each SQL statement\n"
               "  --verbose            trace every decision\n");
}

static int parse_number(const char *flag, const char *s, uint64_t min, uint64_t *ret) {
        uint64_t v;

        if (safe_atou64(s, &v) < 0 || v < min || v > 100000000)
                return log_error_errno(-EINVAL, "%s: expected a number from %" PRIu64 ", not '%s'", flag, min, s);
        *ret = v;
        return 0;
}

static int parse_probability(const char *flag, const char *s, double *ret) {
        char *end;
        double v = strtod(s, &end);

        if (*s == 0 || *end || !(v >= 0 && v <= 1))
                return log_error_errno(-EINVAL, "%s: expected a probability, not '%s'", flag, s);
        *ret = v;
        return 0;
}

static int parse_options(int argc, char **argv, Options *o) {
        static const struct option longopts[] = {
                { "seed", required_argument, NULL, 's' },
                { "seeds", required_argument, NULL, 'k' },
                { "hosts", required_argument, NULL, 'n' },
                { "rack-size", required_argument, NULL, 'r' },
                { "jobs", required_argument, NULL, 'j' },
                { "limit", required_argument, NULL, 'l' },
                { "checkin", required_argument, NULL, 'c' },
                { "heartbeat", required_argument, NULL, 'b' },
                { "ttl", required_argument, NULL, 't' },
                { "every-second", no_argument, NULL, 'E' },
                { "p-fail", required_argument, NULL, 'f' },
                { "p-outage", required_argument, NULL, 'O' },
                { "p-drain", required_argument, NULL, 'D' },
                { "p-lost-release", required_argument, NULL, 'L' },
                { "keep-lease-on-failure", no_argument, NULL, 'K' },
                { "dir", required_argument, NULL, 'd' },
                { "profile", no_argument, NULL, 'P' },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint64_t v = 0;
        int c, r = 0, idx = 0;

        while (r >= 0 && (c = getopt_long(argc, argv, "v", longopts, &idx)) >= 0) {
                char flag[32];
                snprintf(flag, sizeof flag, "--%s", longopts[idx].name);
                switch (c) {
                case 's':
                        r = parse_number(flag, optarg, 0, &o->seed);
                        break;
                case 'k':
                        r = parse_number(flag, optarg, 1, &o->seeds);
                        break;
                case 'n':
                        r = parse_number(flag, optarg, N_SERVICES, &v);
                        o->hosts = (unsigned) v;
                        break;
                case 'r':
                        r = parse_number(flag, optarg, 1, &v);
                        o->rack_size = (unsigned) v;
                        break;
                case 'j':
                        r = parse_number(flag, optarg, 1, &v);
                        o->jobs = (unsigned) MIN(v, 256u);
                        break;
                case 'l':
                        r = parse_number(flag, optarg, 1, &o->limit_s);
                        break;
                case 'c':
                        r = parse_number(flag, optarg, 1, &o->checkin_s);
                        break;
                case 'b':
                        r = parse_number(flag, optarg, 1, &o->heartbeat_s);
                        break;
                case 't':
                        r = parse_number(flag, optarg, 1, &o->ttl);
                        break;
                case 'E':
                        o->every_second = true;
                        break;
                case 'f':
                        r = parse_probability(flag, optarg, &o->p_fail);
                        break;
                case 'O':
                        r = parse_probability(flag, optarg, &o->p_outage);
                        break;
                case 'D':
                        r = parse_probability(flag, optarg, &o->p_drain);
                        break;
                case 'L':
                        r = parse_probability(flag, optarg, &o->p_lost_release);
                        break;
                case 'K':
                        o->keep_lease_on_failure = true;
                        break;
                case 'd':
                        o->dir = optarg;
                        break;
                case 'P':
                        o->profile = true;
                        break;
                case 'v':
                        o->verbose = true;
                        break;
                case 'h':
                        help();
                        exit(0);
                default:
                        return -EINVAL;
                }
        }
        if (r < 0)
                return r;
        if (optind < argc)
                return log_error_errno(-EINVAL, "unexpected argument '%s'", argv[optind]);
        snprintf(o->replay, sizeof o->replay,
                 "--hosts %u --rack-size %u --checkin %" PRIu64 " --ttl %" PRIu64 " --limit %" PRIu64
                 " --p-fail %g --p-outage %g --p-drain %g --p-lost-release %g%s%s",
                 o->hosts, o->rack_size, o->checkin_s, o->ttl, o->limit_s, o->p_fail, o->p_outage, o->p_drain,
                 o->p_lost_release, o->keep_lease_on_failure ? " --keep-lease-on-failure" : "",
                 o->every_second ? " --every-second" : "");
        if (o->heartbeat_s) {
                size_t n = strlen(o->replay);
                snprintf(o->replay + n, sizeof o->replay - n, " --heartbeat %" PRIu64, o->heartbeat_s);
        }
        return 0;
}

/* Runs the seeds, in o->jobs processes dealt round robin; each job sends
 * its results back through a pipe and they come out in seed order. */
static void run_seeds(const Options *o, Result *res) {
        int (*pipes)[2] = calloc(o->jobs, sizeof *pipes);

        if (!pipes)
                abort();
        for (unsigned j = 0; o->jobs > 1 && j < o->jobs; j++) {
                if (pipe(pipes[j]) < 0)
                        abort();
                pid_t pid = fork();
                if (pid < 0)
                        abort();
                if (pid == 0) {
                        close(pipes[j][0]);
                        for (uint64_t k = j; k < o->seeds; k += o->jobs) {
                                Result r = run_seed(o, o->seed + k);
                                if (write(pipes[j][1], &r, sizeof r) != (ssize_t) sizeof r)
                                        _exit(3);
                        }
                        _exit(0);
                }
                close(pipes[j][1]);
        }
        for (uint64_t k = 0; k < o->seeds; k++) {
                if (o->jobs == 1)
                        res[k] = run_seed(o, o->seed + k);
                else {
                        size_t got = 0;
                        while (got < sizeof res[k]) {
                                ssize_t n = read(pipes[k % o->jobs][0], (char *) &res[k] + got, sizeof res[k] - got);
                                if (n <= 0)
                                        break;
                                got += (size_t) n;
                        }
                        if (got != sizeof res[k])
                                res[k] = (Result) { .seed = o->seed + k, .state = "crashed" };
                }
                print_result(&res[k]);
                fflush(stdout);
        }
        for (unsigned j = 0; o->jobs > 1 && j < o->jobs; j++) {
                close(pipes[j][0]);
                (void) wait(NULL);
        }
        free(pipes);
}

static void print_summary(const Options *o, const Result *res, double wall) {
        Result t = {};
        uint64_t ok = 0, n_done = 0, n_paused = 0, dur_max = 0;
        double p50 = 0, p99 = 0;

        for (uint64_t k = 0; k < o->seeds; k++) {
                const Result *r = &res[k];
                ok += r->ok;
                n_done += r->ok && streq(r->state, "done");
                n_paused += r->ok && streq(r->state, "paused");
                if (r->ok && streq(r->state, "done")) {
                        t.duration += r->duration;
                        dur_max = MAX(dur_max, r->duration);
                }
                t.grants += r->grants;
                t.refusals += r->refusals;
                t.quarantines += r->quarantines;
                t.failures += r->failures;
                t.late_failures += r->late_failures;
                t.outages += r->outages;
                t.restarts += r->restarts;
                t.resumes += r->resumes;
                t.ticks += r->ticks;
                t.checkins += r->checkins;
                t.leases += r->leases;
                t.checkin_us += r->checkin_us;
                t.lease_us += r->lease_us;
                t.tick_us_sum += r->tick_us_sum;
                t.tick_us_max = MAX(t.tick_us_max, r->tick_us_max);
                p50 = MAX(p50, r->tick_us_p50);
                p99 = MAX(p99, r->tick_us_p99);
        }
        printf("summary: %" PRIu64 " seeds from %" PRIu64 " with %u hosts (racks of %u): %" PRIu64 " passed, %" PRIu64
               " failed; %" PRIu64 " rollouts done (mean %" PRIu64 " s, max %" PRIu64 " s virtual), %" PRIu64
               " paused at the failure threshold\n",
               o->seeds, o->seed, o->hosts, o->rack_size, ok, o->seeds - ok, n_done, n_done ? t.duration / n_done : 0,
               dur_max, n_paused);
        printf("summary: %" PRIu64 " grants, %" PRIu64 " refusals, %" PRIu64 " quarantines, %" PRIu64
               " failed boots (%" PRIu64 " reported after their wave), %" PRIu64 " outages, %" PRIu64
               " coordinator restarts, %" PRIu64 " resumes after a pause\n",
               t.grants, t.refusals, t.quarantines, t.failures, t.late_failures, t.outages, t.restarts, t.resumes);
        printf("summary: %" PRIu64 " check-ins (mean %.1f us), %" PRIu64 " lease requests (mean %.1f us)\n", t.checkins,
               t.checkins ? t.checkin_us / (double) t.checkins : 0, t.leases,
               t.leases ? t.lease_us / (double) t.leases : 0);
        printf("summary: coord_tick mean %.3f ms, median %.3f ms, 99th percentile %.3f ms (worst seed), max %.3f ms "
               "over %" PRIu64 " ticks; wall time %.1f s with %u job%s\n",
               t.ticks ? t.tick_us_sum / (double) t.ticks / 1000 : 0, p50 / 1000, p99 / 1000, t.tick_us_max / 1000,
               t.ticks, wall, o->jobs, o->jobs == 1 ? "" : "s");
        if (o->profile)
                profile_print();
        if (ok != o->seeds) {
                printf("failing seeds:");
                for (uint64_t k = 0; k < o->seeds; k++)
                        if (!res[k].ok)
                                printf(" %" PRIu64, res[k].seed);
                printf("\n");
        }
}

int main(int argc, char **argv) {
        Options o = {
                .seed = 1, .seeds = 1, .hosts = 1000, .rack_size = 10, .jobs = 1, .limit_s = 6 * 3600, .checkin_s = 30,
                .ttl = 900, .p_fail = 0.01, .p_outage = 0.02, .p_lost_release = 0.03, .p_drain = 0.03, .p_spell = 0.01,
        };
        struct stat st;
        Result *res;
        uint64_t ok = 0;
        double w0;

        log_set_program("sim");
        /* One thread per process: no locking inside sqlite, no allocation
         * statistics (a global mutex on every malloc). */
        (void) sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
        (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        if (parse_options(argc, argv, &o) < 0)
                return 2;
        log_set_level(o.verbose ? LOG_LEVEL_WARNING : LOG_LEVEL_ERROR);
        if (!o.dir)
                o.dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : getenv("TMPDIR") ?: "/tmp";
        if (o.verbose || o.profile)
                o.jobs = 1;
        o.jobs = (unsigned) MIN((uint64_t) o.jobs, o.seeds);
        res = calloc(o.seeds, sizeof *res);
        if (!res)
                return log_oom(), 1;
        fflush(stdout);
        w0 = mono_us();
        run_seeds(&o, res);
        print_summary(&o, res, (mono_us() - w0) / 1e6);
        for (uint64_t k = 0; k < o.seeds; k++)
                ok += res[k].ok;
        free(res);
        return ok == o.seeds ? 0 : 1;
}
