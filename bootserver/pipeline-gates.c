/* The gates of a pipeline's stage that take time (pipeline.h): a command
 * that must exit 0 within its limit, an HTTP check (a 2xx status, and a
 * string in the body when asked), a Prometheus instant query whose every
 * sample must satisfy a condition. Each check runs on a thread of its own,
 * outside any transaction, so that the leader's tick never waits for one. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "curleasy.h"
#include "json.h"
#include "pipeline.h"
#include "process.h"
#include "util.h"

/* What a gate keeps of a command's output and reads of a reply. */
#define GATE_OUTPUT_KEEP 512
#define GATE_BODY_MAX (1024 * 1024)
#define GATE_PROMETHEUS_TIMEOUT 10

static uint64_t mono_msec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* The last line of what a command wrote, for its reason. */
static const char *last_line(char *out) {
        size_t l = strlen(out);
        char *nl;

        while (l > 0 && (out[l - 1] == '\n' || out[l - 1] == '\r'))
                out[--l] = 0;
        nl = strrchr(out, '\n');
        return nl ? nl + 1 : out;
}

static int gate_command(const PipelineStageSpec *st, const atomic_bool *stop, char **ret_reason) {
        char out[GATE_OUTPUT_KEEP * 2 + 1] = "";
        size_t n_out = 0;
        uint64_t deadline = mono_msec() + st->command_timeout * 1000;
        bool timed_out = false, stopped = false;
        pid_t pid;
        int fd, r;

        r = spawn_piped((char *const *) st->argv, true, &pid, &fd);
        if (r < 0) {
                *ret_reason = strdup_printf("the command '%s' cannot start: %s", st->argv[0], strerror(-r));
                return *ret_reason ? 0 : -ENOMEM;
        }
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                char buf[4096];
                ssize_t k;

                if (stop && atomic_load(stop)) {
                        stopped = true;
                        break;
                }
                if (mono_msec() >= deadline) {
                        timed_out = true;
                        break;
                }
                r = poll(&pfd, 1, 100);
                if (r < 0 && errno != EINTR)
                        break;
                if (r <= 0)
                        continue;
                k = read(fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                /* Keep the end of the output: the last line says why. */
                for (ssize_t i = 0; i < k; i++) {
                        if (n_out == sizeof out - 1) {
                                memmove(out, out + GATE_OUTPUT_KEEP, n_out - GATE_OUTPUT_KEEP);
                                n_out -= GATE_OUTPUT_KEEP;
                        }
                        out[n_out++] = buf[i] ? buf[i] : ' ';
                }
                out[n_out] = 0;
        }
        if (timed_out || stopped)
                (void) kill(-pid, SIGKILL);
        close(fd);
        r = spawn_wait(pid);
        if (stopped) {
                *ret_reason = strdup("the check was stopped");
                return *ret_reason ? 0 : -ENOMEM;
        }
        if (timed_out)
                *ret_reason = strdup_printf("the command '%s' did not finish within %" PRIu64 " s", st->argv[0],
                                            st->command_timeout);
        else if (r == 0)
                return 1;
        else if (r == -ECHILD)
                *ret_reason = strdup_printf("the command '%s' was killed by a signal: %s", st->argv[0],
                                            last_line(out));
        else if (r > 0)
                *ret_reason = strdup_printf("the command '%s' exited with status %d%s%s", st->argv[0], r,
                                            *out ? ": " : "", last_line(out));
        else
                *ret_reason = strdup_printf("the command '%s': %s", st->argv[0], strerror(-r));
        return *ret_reason ? 0 : -ENOMEM;
}

typedef struct Body {
        char *data;
        size_t size;
        bool too_big;
} Body;

static size_t body_write(char *p, size_t size, size_t n, void *userdata) {
        Body *b = userdata;
        size_t len = size * n;
        char *m;

        if (b->size + len > GATE_BODY_MAX) {
                b->too_big = true;
                return 0;
        }
        m = realloc(b->data, b->size + len + 1);
        if (!m)
                return 0;
        memcpy(m + b->size, p, len);
        b->size += len;
        m[b->size] = 0;
        b->data = m;
        return len;
}

/* Ends a transfer when the check is stopped. */
static int transfer_progress(void *userdata, curl_off_t dt _unused_, curl_off_t dn _unused_, curl_off_t ut _unused_,
                             curl_off_t un _unused_) {
        const atomic_bool *stop = userdata;
        return stop && atomic_load(stop);
}

/* GETs url: *ret_status and *ret_body (caller frees) on an answer, else a
 * message in *ret_reason. Returns 1 on an answer, 0 without one, or
 * -ENOMEM. */
static int fetch(const char *url, uint64_t timeout, const atomic_bool *stop, long *ret_status, char **ret_body,
                 char **ret_reason) {
        char errbuf[CURL_ERROR_SIZE] = "";
        HttpOptions opts = { .timeout_sec = (long) timeout };
        Body b = {};
        CURL *c;
        CURLcode code;

        if (http_global_init() < 0 || !(c = http_easy_new(url, &opts, errbuf)))
                return -ENOMEM;
        (void) curl_easy_setopt(c, CURLOPT_FAILONERROR, 0L);
        (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
        (void) curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        (void) curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, transfer_progress);
        (void) curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *) stop);
        (void) curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        code = curl_easy_perform(c);
        if (code != CURLE_OK) {
                *ret_reason = strdup_printf("%s: %s", url,
                                            b.too_big ? "the reply is over 1 MiB"
                                            : *errbuf ? errbuf
                                                      : curl_easy_strerror(code));
                curl_easy_cleanup(c);
                free(b.data);
                return *ret_reason ? 0 : -ENOMEM;
        }
        (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
        curl_easy_cleanup(c);
        *ret_body = b.data ? b.data : strdup("");
        return *ret_body ? 1 : -ENOMEM;
}

static int gate_http(const PipelineStageSpec *st, const atomic_bool *stop, char **ret_reason) {
        _cleanup_free_ char *body = NULL, *why = NULL;
        long status = 0;
        int r;

        r = fetch(st->http_url, st->http_timeout, stop, &status, &body, &why);
        if (r < 0)
                return r;
        if (r == 0)
                *ret_reason = strdup_printf("the HTTP check found no answer: %s", why);
        else if (status < 200 || status > 299)
                *ret_reason = strdup_printf("the HTTP check of %s answered %ld", st->http_url, status);
        else if (st->http_body && !strstr(body, st->http_body))
                *ret_reason = strdup_printf("the HTTP check of %s: the body does not hold '%s'", st->http_url,
                                            st->http_body);
        else
                return 1;
        return *ret_reason ? 0 : -ENOMEM;
}

/* A sample's value as Prometheus writes it: [time, "value"]. */
static bool sample_value(json_t *pair, double *ret) {
        const char *s = json_string_value(json_array_get(pair, 1));
        char *end;

        if (!s)
                return false;
        if (streq(s, "NaN")) {
                *ret = NAN;
                return true;
        }
        errno = 0;
        *ret = strtod(s, &end);
        return errno == 0 && end != s && !*end;
}

static int gate_prometheus(const char *server, const PipelineStageSpec *st, const atomic_bool *stop,
                           char **ret_reason) {
        _cleanup_free_ char *body = NULL, *why = NULL, *url = NULL;
        _cleanup_json_ json_t *j = NULL;
        const char *type, *cond = prom_compare_to_string(st->prom_cmp);
        json_t *data, *result, *sample;
        size_t i, n = 0;
        char *q;
        long status = 0;
        double v;
        int r;

        CURL *c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        q = curl_easy_escape(c, st->prom_query, 0);
        curl_easy_cleanup(c);
        if (!q)
                return -ENOMEM;
        /* One slash between the server and the path. */
        size_t l = strlen(server);
        while (l > 0 && server[l - 1] == '/')
                l--;
        url = strdup_printf("%.*s/api/v1/query?query=%s", (int) l, server, q);
        curl_free(q);
        if (!url)
                return -ENOMEM;
        r = fetch(url, GATE_PROMETHEUS_TIMEOUT, stop, &status, &body, &why);
        if (r < 0)
                return r;
        if (r == 0) {
                *ret_reason = strdup_printf("the Prometheus query found no answer: %s", why);
                return *ret_reason ? 0 : -ENOMEM;
        }
        j = json_loads(body, 0, NULL);
        data = json_object_get(j, "data");
        if (status != 200 || !streq_ptr(json_string_value(json_object_get(j, "status")), "success")) {
                const char *e = json_string_value(json_object_get(j, "error"));
                *ret_reason = strdup_printf("the Prometheus query failed (status %ld)%s%s", status, e ? ": " : "",
                                            strempty(e));
                return *ret_reason ? 0 : -ENOMEM;
        }
        type = json_string_value(json_object_get(data, "resultType"));
        result = json_object_get(data, "result");
        if (streq_ptr(type, "scalar")) {
                n = 1;
                if (!sample_value(result, &v))
                        goto bad;
                if (!prom_condition_holds(st->prom_cmp, st->prom_value, v))
                        goto miss;
                return 1;
        }
        if (!streq_ptr(type, "vector") || !json_is_array(result))
                goto bad;
        json_array_foreach(result, i, sample) {
                if (!sample_value(json_object_get(sample, "value"), &v))
                        goto bad;
                n++;
                if (!prom_condition_holds(st->prom_cmp, st->prom_value, v))
                        goto miss;
        }
        if (n == 0) {
                *ret_reason = strdup_printf("the Prometheus query '%s' returned no samples", st->prom_query);
                return *ret_reason ? 0 : -ENOMEM;
        }
        return 1;
miss:
        *ret_reason = strdup_printf("the Prometheus query '%s' returned %g, not %s %g", st->prom_query, v, cond,
                                    st->prom_value);
        return *ret_reason ? 0 : -ENOMEM;
bad:
        *ret_reason = strdup_printf("the Prometheus query '%s' returned a result that is not a number (%s)",
                                    st->prom_query, type ? type : "no type");
        return *ret_reason ? 0 : -ENOMEM;
}

int gate_run(const PipelineSpec *s, size_t stage, bool final, const atomic_bool *stop, char **ret_reason) {
        const PipelineStageSpec *st = &s->stages[stage];
        int r;

        if (final && st->n_argv > 0) {
                r = gate_command(st, stop, ret_reason);
                if (r <= 0)
                        return r;
        }
        if (final && st->http_url) {
                r = gate_http(st, stop, ret_reason);
                if (r <= 0)
                        return r;
        }
        if (st->prom_query && s->prometheus) {
                r = gate_prometheus(s->prometheus, st, stop, ret_reason);
                if (r <= 0)
                        return r;
        }
        return 1;
}

/* A check is owned by its thread and by the tick: the last of the two to
 * let go frees it, so that stopping one never waits for a transfer. */
struct GateCheck {
        atomic_int owners;
        char *spec;
        size_t stage;
        bool final;
        atomic_bool stop;
        atomic_bool done;
        bool ok;
        char *reason;
};

static void check_unref(GateCheck *c) {
        if (atomic_fetch_sub(&c->owners, 1) != 1)
                return;
        free(c->spec);
        free(c->reason);
        free(c);
}

static void *gate_thread(void *userdata) {
        GateCheck *c = userdata;
        _cleanup_json_ json_t *j = json_loads(c->spec, 0, NULL);
        char *error = NULL, *reason = NULL;
        PipelineSpec s;
        int r;

        r = j ? pipeline_spec_parse(j, &s, &error) : -EBADMSG;
        if (r >= 0 && c->stage < s.n_stages)
                r = gate_run(&s, c->stage, c->final, &c->stop, &reason);
        else if (r >= 0)
                r = -EBADMSG;
        free(error);
        c->ok = r > 0;
        c->reason = r < 0 ? strdup_printf("the gates cannot be checked: %s", strerror(-r)) : reason;
        atomic_store(&c->done, true);
        check_unref(c);
        return NULL;
}

GateCheck *gate_check_start(const char *spec_text, size_t stage, bool final) {
        GateCheck *c = calloc(1, sizeof *c);
        pthread_attr_t attr;
        pthread_t thread;
        int r;

        if (!c)
                return NULL;
        c->spec = strdup(spec_text);
        c->stage = stage;
        c->final = final;
        atomic_init(&c->owners, 2);
        if (!c->spec || pthread_attr_init(&attr) != 0) {
                free(c->spec);
                free(c);
                return NULL;
        }
        (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&thread, &attr, gate_thread, c);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                free(c->spec);
                free(c);
                return NULL;
        }
        return c;
}

bool gate_check_done(GateCheck *c, bool *ret_ok, const char **ret_reason) {
        if (!atomic_load(&c->done))
                return false;
        *ret_ok = c->ok;
        *ret_reason = c->reason ? c->reason : "the gates cannot be checked: out of memory";
        return true;
}

void gate_check_stop(GateCheck *c) {
        atomic_store(&c->stop, true);
}

bool gate_check_finished(GateCheck *c) {
        return atomic_load(&c->done);
}

GateCheck *gate_check_free(GateCheck *c) {
        if (!c)
                return NULL;
        /* A command is killed within a tenth of a second, a transfer at its
         * next progress call; the thread frees c when it is done. */
        atomic_store(&c->stop, true);
        check_unref(c);
        return NULL;
}
