/* Check-ins and lease decisions at fleet scale, over HTTP: registers N
 * hosts with a running slipwayd, labels them (services and racks, as
 * tests/fleet/agents.sh does), sets budgets, then has T threads check in
 * as those hosts for a while, each host now and then asking for its reboot
 * lease and giving it back at its next turn. Built twice: checkins on
 * libcurl (http-curl.c), which opens a connection for every request, and
 * checkins-own on the agent's own client (httpc.c), which keeps one per
 * thread, as an agent does. Prints the latency percentiles of
 * check-ins, lease requests (grants and refusals) and releases. With
 * several --url (instances sharing one database), thread t talks to the
 * (t mod n)-th: the load is spread evenly over them.
 *
 *     checkins --url URL [--url URL...] --admin-token T --enroll SECRET
 *              [--hosts 10000] [--threads 8] [--seconds 20] [--lease-every 10]
 *              [--follow] [--ca-file PEM]
 *
 * Used by tests/bench/run.sh and tests/integration/lease-load.sh; see
 * docs/coordinator.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiclient.h"
#include "log.h"
#include "util.h"

#define SERVICES 5u
#define RACK_SIZE 10u

typedef struct Host {
        char id[32];
        char *token;
        int64_t epoch; /* the lease it holds; 0 none */
        /* With --follow: the image it runs (none at first: version 1.0),
         * and the one the server wants it to run, which it boots once
         * granted its lease. */
        char image[72], version[72];
        char want_image[72], want_version[72];
} Host;

typedef struct Samples {
        double *v;
        size_t n, cap;
} Samples;

typedef struct Worker {
        pthread_t thread;
        unsigned index;
        ApiClient *api;
        Samples checkin, lease, release;
        uint64_t grants, refusals, errors;
        char error[256];
} Worker;

#define MAX_URLS 16u

static struct {
        const char *urls[MAX_URLS], *admin, *enroll, *ca_file;
        unsigned n_urls;
        unsigned hosts, threads, seconds, lease_every;
        bool follow;
} arg = { .hosts = 10000, .threads = 8, .seconds = 20, .lease_every = 10 };

static Host *hosts;
static double deadline;

static double mono_ms(void) {
        return (double) now_usec() / 1e3;
}

static void sample_add(Samples *s, double v) {
        if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 4096;
                s->v = realloc(s->v, s->cap * sizeof *s->v);
                if (!s->v)
                        abort();
        }
        s->v[s->n++] = v;
}

static int double_compare(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double percentile(const Samples *s, unsigned p) {
        if (s->n == 0)
                return 0;
        size_t i = s->n * p / 100;
        return s->v[i < s->n ? i : s->n - 1];
}

static void fail(Worker *w, const char *what, int r) {
        w->errors++;
        if (!w->error[0])
                snprintf(w->error, sizeof w->error, "%s: %s", what,
                         api_client_error(w->api)[0] ? api_client_error(w->api) : strerror(-r));
}

static int checkin(Worker *w, Host *h);

/* Setup, spread over the threads: register host i, label it, and make its
 * first report, as an agent does when it comes up: the measured part then
 * sees a fleet in its steady state, whose check-ins mostly repeat what the
 * server knows (the server answers those with a read). */
static void *setup_worker(void *userdata) {
        Worker *w = userdata;

        for (unsigned i = w->index; i < arg.hosts && !w->errors; i += arg.threads) {
                Host *h = &hosts[i];
                char mac[32], path[96], service[16], rack[16];
                json_t *reply = NULL, *body;
                int r;

                snprintf(mac, sizeof mac, "52:54:01:%02x:%02x:%02x", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
                body = json_pack("{s:s, s:s}", "mac", mac, "enroll", arg.enroll);
                (void) api_client_set_token(w->api, NULL);
                r = api_request(w->api, "POST", "/v1/hosts/register", body, NULL, &reply);
                json_decref(body);
                if (r < 0) {
                        fail(w, "register", r);
                        break;
                }
                snprintf(h->id, sizeof h->id, "%s", strempty(json_string_value(json_object_get(reply, "id"))));
                h->token = strdup(strempty(json_string_value(json_object_get(reply, "token"))));
                json_decref(reply);
                if (!h->id[0] || !h->token || !h->token[0]) {
                        fail(w, "register: no id or token in the reply", -EBADMSG);
                        break;
                }
                snprintf(service, sizeof service, "s%u", i % SERVICES);
                snprintf(rack, sizeof rack, "r%u", i / RACK_SIZE);
                snprintf(path, sizeof path, "/v1/hosts/%s/labels", h->id);
                body = json_pack("{s:{s:s, s:s}}", "set", "service", service, "rack", rack);
                (void) api_client_set_token(w->api, arg.admin);
                r = api_request(w->api, "POST", path, body, NULL, NULL);
                json_decref(body);
                if (r < 0) {
                        fail(w, "labels", r);
                        break;
                }
                r = checkin(w, h);
                if (r < 0)
                        fail(w, "first check-in", r);
        }
        return NULL;
}

static json_t *image_or_null(const char *id) {
        return id[0] ? json_string(id) : json_null();
}

/* A healthy host's report of what it runs; with --follow, notes the image
 * the server wants it to run. */
static int checkin(Worker *w, Host *h) {
        const char *version = h->version[0] ? h->version : "1.0";
        char path[96];
        json_t *reply = NULL, *desired;
        json_t *body = json_pack("{s:s, s:s, s:o, s:s, s:{s:{s:s, s:o}, s:{s:n}}, s:{s:s}}", "state", "healthy",
                                 "version", version, "image", image_or_null(h->image), "booted_slot", "a", "slots",
                                 "a", "version", version, "image", image_or_null(h->image), "b", "version",
                                 "health", "required", "pass");
        int r;

        if (!body)
                return -ENOMEM;
        snprintf(path, sizeof path, "/v1/hosts/%s/checkin", h->id);
        (void) api_client_set_token(w->api, h->token);
        r = api_request(w->api, "POST", path, body, NULL, arg.follow ? &reply : NULL);
        json_decref(body);
        if (r < 0 || !arg.follow)
                return r;
        desired = json_object_get(reply, "desired");
        h->want_image[0] = h->want_version[0] = '\0';
        if (json_is_object(desired)) {
                const char *id = strempty(json_string_value(json_object_get(desired, "image")));
                if (id[0] && strcmp(id, h->image) != 0) {
                        snprintf(h->want_image, sizeof h->want_image, "%s", id);
                        snprintf(h->want_version, sizeof h->want_version, "%s",
                                 strempty(json_string_value(json_object_get(desired, "version"))));
                }
        }
        json_decref(reply);
        return r;
}

/* The measured part: round after round over this thread's hosts until the
 * deadline. */
static void *run_worker(void *userdata) {
        Worker *w = userdata;
        uint64_t turn = 0;

        while (mono_ms() < deadline)
                for (unsigned i = w->index; i < arg.hosts && mono_ms() < deadline; i += arg.threads, turn++) {
                        Host *h = &hosts[i];
                        char path[96];
                        json_t *reply = NULL, *body;
                        double t0 = mono_ms();
                        int r;

                        r = checkin(w, h);
                        if (r < 0) {
                                fail(w, "check-in", r);
                                continue;
                        }
                        sample_add(&w->checkin, mono_ms() - t0);
                        snprintf(path, sizeof path, "/v1/hosts/%s/lease", h->id);
                        if (h->epoch) {
                                body = json_pack("{s:I}", "epoch", (json_int_t) h->epoch);
                                t0 = mono_ms();
                                r = api_request(w->api, "DELETE", path, body, NULL, NULL);
                                json_decref(body);
                                if (r < 0) {
                                        fail(w, "release", r);
                                        continue;
                                }
                                sample_add(&w->release, mono_ms() - t0);
                                h->epoch = 0;
                        } else if (h->want_image[0] || (turn + i) % arg.lease_every == 0) {
                                body = json_object();
                                t0 = mono_ms();
                                r = api_request(w->api, "POST", path, body, NULL, &reply);
                                json_decref(body);
                                if (r < 0) {
                                        fail(w, "lease", r);
                                        continue;
                                }
                                sample_add(&w->lease, mono_ms() - t0);
                                if (json_is_true(json_object_get(reply, "granted"))) {
                                        h->epoch = json_integer_value(json_object_get(reply, "epoch"));
                                        w->grants++;
                                        /* Its reboot into the image it was given: the
                                         * next check-in reports it. */
                                        if (h->want_image[0]) {
                                                memcpy(h->image, h->want_image, sizeof h->image);
                                                memcpy(h->version, h->want_version, sizeof h->version);
                                                h->want_image[0] = '\0';
                                        }
                                } else
                                        w->refusals++;
                                json_decref(reply);
                        }
                }
        return NULL;
}

static int run_threads(Worker *workers, void *(*fn)(void *)) {
        for (unsigned t = 0; t < arg.threads; t++)
                if (pthread_create(&workers[t].thread, NULL, fn, &workers[t]) != 0)
                        return log_error_errno(-EAGAIN, "cannot start a thread");
        for (unsigned t = 0; t < arg.threads; t++)
                pthread_join(workers[t].thread, NULL);
        for (unsigned t = 0; t < arg.threads; t++)
                if (workers[t].error[0]) {
                        log_error("%s", workers[t].error);
                        return -EIO;
                }
        return 0;
}

static void merge(Samples *into, const Samples *from) {
        for (size_t k = 0; k < from->n; k++)
                sample_add(into, from->v[k]);
}

static void print_row(const char *name, Samples *s) {
        qsort(s->v, s->n, sizeof *s->v, double_compare);
        printf("%-10s %8zu  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", name, s->n, percentile(s, 50),
               percentile(s, 99), s->n ? s->v[s->n - 1] : 0.0);
}

/* This process's CPU time, user and system, in seconds. */
static double cpu_seconds(void) {
        struct rusage u;

        if (getrusage(RUSAGE_SELF, &u) < 0)
                return 0;
        return (double) (u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static void help(void) {
        printf("checkins --url URL [--url URL...] --admin-token TOKEN --enroll SECRET [--hosts N]\n"
               "         [--threads T] [--seconds S] [--lease-every K] [--follow] [--ca-file PEM]\n\n"
               "Registers N hosts (services of 5, racks of 10), sets budgets (1 per rack, 10%% of a\n"
               "service), then checks in as them from T threads for S seconds; a host asks for its\n"
               "lease every K turns and gives a granted one back at its next turn. Prints latency\n"
               "percentiles per kind of request and the CPU time it took itself. Several --url spread\n"
               "the threads over the servers (thread t talks to URL t mod n). --follow: a host the\n"
               "server gives another image asks for its lease at once and, granted, runs that image\n"
               "from its next check-in on. --ca-file: the CA that signed an https server's certificate.\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "url", required_argument, NULL, 'u' },     { "admin-token", required_argument, NULL, 'a' },
                { "enroll", required_argument, NULL, 'e' },  { "hosts", required_argument, NULL, 'n' },
                { "threads", required_argument, NULL, 't' }, { "seconds", required_argument, NULL, 's' },
                { "lease-every", required_argument, NULL, 'l' }, { "follow", no_argument, NULL, 'f' },
                { "ca-file", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ Worker *workers = NULL;
        Samples checkins = {}, leases = {}, releases = {};
        uint64_t grants = 0, refusals = 0;
        double t0, took, cpu0, cpu;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                uint64_t v;
                unsigned *u = c == 'n' ? &arg.hosts : c == 't' ? &arg.threads : c == 's' ? &arg.seconds : &arg.lease_every;
                switch (c) {
                case 'u':
                        if (arg.n_urls == MAX_URLS) {
                                log_error("--url: at most %u servers", MAX_URLS);
                                return 2;
                        }
                        arg.urls[arg.n_urls++] = optarg;
                        break;
                case 'a':
                        arg.admin = optarg;
                        break;
                case 'e':
                        arg.enroll = optarg;
                        break;
                case 'n':
                case 't':
                case 's':
                case 'l':
                        if (safe_atou64(optarg, &v) < 0 || v == 0 || v > 1000000) {
                                log_error("--%s: expected a positive number, got '%s'",
                                          c == 'n' ? "hosts" : c == 't' ? "threads" : c == 's' ? "seconds" : "lease-every",
                                          optarg);
                                return 2;
                        }
                        *u = (unsigned) v;
                        break;
                case 'f':
                        arg.follow = true;
                        break;
                case 'c':
                        arg.ca_file = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        }
        if (!arg.n_urls || !arg.admin || !arg.enroll || optind < argc) {
                log_error("--url, --admin-token and --enroll are required, and nothing else (see --help)");
                return 2;
        }
        hosts = calloc(arg.hosts, sizeof *hosts);
        workers = calloc(arg.threads, sizeof *workers);
        if (!hosts || !workers)
                return log_oom(), 1;
        for (unsigned t = 0; t < arg.threads; t++) {
                workers[t].index = t;
                const char *url = arg.urls[t % arg.n_urls];
                r = api_client_new(url, &workers[t].api, NULL);
                if (r < 0)
                        return log_error_errno(r, "--url %s: %m", url), 2;
                api_client_set_timeout(workers[t].api, 30);
                if (arg.ca_file && api_client_set_ca_file(workers[t].api, arg.ca_file) < 0)
                        return log_oom(), 1;
        }

        t0 = mono_ms();
        r = run_threads(workers, setup_worker);
        if (r < 0)
                return 1;
        {
                json_t *one = json_pack("{s:i}", "max_unavailable", 1), *pct = json_pack("{s:s}", "max_unavailable", "10%");
                (void) api_client_set_token(workers[0].api, arg.admin);
                r = api_request(workers[0].api, "PUT", "/v1/budgets/rack", one, NULL, NULL);
                if (r >= 0)
                        r = api_request(workers[0].api, "PUT", "/v1/budgets/service", pct, NULL, NULL);
                json_decref(one);
                json_decref(pct);
                if (r < 0)
                        return log_error("budgets: %s", api_client_error(workers[0].api)), 1;
        }
        fprintf(stderr, "checkins: %u hosts set up (registered, labelled, first report) in %.1f s\n", arg.hosts, (mono_ms() - t0) / 1e3);

        t0 = mono_ms();
        cpu0 = cpu_seconds();
        deadline = t0 + arg.seconds * 1e3;
        r = run_threads(workers, run_worker);
        took = (mono_ms() - t0) / 1e3;
        cpu = cpu_seconds() - cpu0;
        if (r < 0)
                return 1;
        for (unsigned t = 0; t < arg.threads; t++) {
                merge(&checkins, &workers[t].checkin);
                merge(&leases, &workers[t].lease);
                merge(&releases, &workers[t].release);
                grants += workers[t].grants;
                refusals += workers[t].refusals;
        }
        printf("hosts %u, threads %u, servers %u, %.1f s: %.0f requests/s; leases: %" PRIu64 " granted, %" PRIu64 " refused\n",
               arg.hosts, arg.threads, arg.n_urls, took, (double) (checkins.n + leases.n + releases.n) / took, grants, refusals);
        print_row("check-in", &checkins);
        print_row("lease", &leases);
        print_row("release", &releases);
        printf("cpu %.2f s of this program's in the %.1f s\n", cpu, took);

        for (unsigned t = 0; t < arg.threads; t++) {
                api_client_free(workers[t].api);
                free(workers[t].checkin.v);
                free(workers[t].lease.v);
                free(workers[t].release.v);
        }
        for (unsigned i = 0; i < arg.hosts; i++)
                free(hosts[i].token);
        free(hosts);
        free(checkins.v);
        free(leases.v);
        free(releases.v);
        return 0;
}
