/* The simulator's world: the seed's random stream, the virtual clock, the
 * event queue and the loop that runs one seed, the state database, and
 * the lines a seed prints: its trace and its first violation. */
#include <stdarg.h>
#include <time.h>

#include "log.h"
#include "sim.h"
#include "util.h"

const char *const image_ids[N_IMAGES] = {
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
};
const char *const image_versions[N_IMAGES] = { "1.0", "2.0" };
const char *const phase_names[_AGENT_PHASE_MAX] = { "idle", "staging", "staged", "draining", "rebooting" };

/* ---- randomness ---------------------------------------------------------- */

uint64_t rng_next(Sim *s) {
        uint64_t z = (s->rng += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

uint64_t rng_range(Sim *s, uint64_t lo, uint64_t hi) {
        return lo + rng_next(s) % (hi - lo + 1);
}

bool rng_chance(Sim *s, double p) {
        return (double) (rng_next(s) >> 11) * 0x1p-53 < p;
}

/* ---- reporting ----------------------------------------------------------- */

uint64_t now_s(const Sim *s) {
        return T0 + s->t / 1000;
}

static const char *fmt_time(uint64_t ms, char buf[32]) {
        snprintf(buf, 32, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64, ms / 3600000, ms / 60000 % 60,
                 ms / 1000 % 60, ms % 1000);
        return buf;
}

void trace(Sim *s, const char *format, ...) {
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

void violation(Sim *s, const char *format, ...) {
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

void sim_schedule(Sim *s, uint64_t t, EventKind kind, int host) {
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
uint64_t tick_time(const Sim *s, uint64_t k) {
        Sim h = { .rng = s->res.seed * UINT64_C(0x2545f4914f6cdd1d) ^ k };
        return k * 1000 + rng_next(&h) % 1000;
}

uint64_t interval_ms(Sim *s) {
        uint64_t base = s->o->checkin_s * 1000;
        return rng_range(s, base * 8 / 10, base * 12 / 10);
}

uint64_t retry_ms(Sim *s) {
        return s->cc.retry_after * 1000 + rng_range(s, 0, 2000);
}

double mono_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

/* ---- the database -------------------------------------------------------- */

/* --profile: time per SQL statement text, to tell which query of the
 * coordinator costs what, and sqlite's virtual machine steps, which say
 * how many rows it read whatever else the machine runs. */
typedef struct ProfileEntry {
        char *sql;
        uint64_t n, ns, steps;
} ProfileEntry;

static ProfileEntry *profile;
static size_t n_profile;
bool profile_in_tick; /* only the statements run by coord_tick() */

static int profile_cb(unsigned type, void *ctx _unused_, void *p, void *x) {
        const char *sql;
        uint64_t steps;
        size_t i;

        if (type != SQLITE_TRACE_PROFILE)
                return 0;
        /* Counted since the statement's last run, in a tick or not. */
        steps = (uint64_t) sqlite3_stmt_status((sqlite3_stmt *) p, SQLITE_STMTSTATUS_VM_STEP, 1);
        if (!profile_in_tick)
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
        profile[i].steps += steps;
        return 0;
}

static int profile_compare(const void *a, const void *b) {
        const ProfileEntry *x = a, *y = b;
        return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

void profile_print(void) {
        qsort(profile, n_profile, sizeof *profile, profile_compare);
        printf("coord_tick statements by total time:\n");
        for (size_t i = 0; i < n_profile && i < 12; i++)
                printf("  %9.1f ms  %7" PRIu64 " runs  %.1f us each  %.0f steps each  %.110s\n",
                       (double) profile[i].ns / 1e6, profile[i].n, (double) profile[i].ns / 1e3 / (double) profile[i].n,
                       (double) profile[i].steps / (double) profile[i].n, profile[i].sql);
        for (size_t i = 0; i < n_profile; i++)
                free(profile[i].sql);
        free(profile);
}

int sim_db_reopen(Sim *s) {
        sqlite3 *db;
        int r;

        s->db = store_db_free(s->db);
        r = store_db_open(s->path, &s->db);
        if (r < 0)
                return r;
        /* The state lives in a scratch file on tmpfs, with one connection at a
         * time: what is tested is that it survives a close and an open, not
         * a power cut, so no fsync, no WAL and no file locks per transaction
         * (store_db_open() sets WAL again at every restart). */
        db = store_sqlite(s->db);
        r = sqlite3_exec(db, "PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=MEMORY;", NULL,
                         NULL, NULL) == SQLITE_OK
                    ? 0
                    : -EIO;
        if (s->o->profile)
                sqlite3_trace_v2(db, SQLITE_TRACE_PROFILE, profile_cb, NULL);
        return r;
}

int64_t query_int(sqlite3 *db, const char *sql, int64_t a, int64_t b) {
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite_prepare(db, sql, &st) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, a);
        sqlite3_bind_int64(st, 2, b);
        return sqlite_step(st) > 0 ? sqlite3_column_int64(st, 0) : -1;
}

/* ---- one seed ------------------------------------------------------------ */

static void run_event(Sim *s, const Event *e) {
        switch (e->kind) {
        case EV_TICK:
                sim_tick(s);
                sim_schedule(s, tick_time(s, e->t / 1000 + 1), EV_TICK, -1);
                break;
        case EV_AGENT:
                agent_wake(s, e->host);
                break;
        case EV_ROLLOUT:
                operator_start_rollout(s);
                break;
        case EV_RESTART:
                fault_restart(s);
                break;
        case EV_OUTAGE_START:
                fault_outage_start(s, e->host);
                break;
        case EV_OUTAGE_END:
                fault_outage_end(s, e->host);
                break;
        case EV_SPELL_START:
                fault_spell_start(s, e->host);
                break;
        case EV_RESUME:
                operator_resume(s);
                s->pending_disruptions--;
                break;
        case EV_SPELL_END:
                fault_spell_end(s, e->host);
                break;
        }
}

static int double_compare(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

Result sim_run_seed(const Options *o, uint64_t seed) {
        Sim s = { .o = o, .rng = seed, .res = { .seed = seed } };
        bool done = false;

        snprintf(s.path, sizeof s.path, "%s/state-%" PRIu64 "-%d.db", o->dir, seed, (int) getpid());
        if (fleet_setup(&s) < 0) {
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
        fleet_release(&s);
        return s.res;
}

