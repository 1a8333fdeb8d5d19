/* The fleet simulator: thousands of virtual agents on a virtual clock drive
 * the real coordinator (coordinator.c, rollout*.c, hosts.c, the store) through one
 * rollout per seed, and check the coordinator's promises after every event.
 *
 * Everything random comes from one splitmix64 stream seeded by the seed, and
 * the events run in (time, sequence) order, so a seed replays identically.
 * Next to the real database the simulator keeps its own model of what the
 * coordinator must know (leases, quarantine, last check-in, last report);
 * the invariants are judged on that model and the model is compared with
 * the database every few virtual seconds. See docs/coordinator.md; sim.h
 * lists the files.
 *
 * This file is the command: its options, the seeds run in parallel
 * processes, and the lines it prints. */
#include <getopt.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "sim.h"
#include "util.h"

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
                                Result r = sim_run_seed(o, o->seed + k);
                                if (write(pipes[j][1], &r, sizeof r) != (ssize_t) sizeof r)
                                        _exit(3);
                        }
                        _exit(0);
                }
                close(pipes[j][1]);
        }
        for (uint64_t k = 0; k < o->seeds; k++) {
                if (o->jobs == 1)
                        res[k] = sim_run_seed(o, o->seed + k);
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
