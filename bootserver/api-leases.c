/* The reboot leases' HTTP API (docs/api.md, "Leases"): agents ask for a
 * lease before they reboot and give it back once healthy. A refused request
 * may wait for a place; the decisions are the coordinator's. */
#include <pthread.h>
#include <time.h>

#include "api-leases.h"
#include "coordinator.h"
#include "hosts.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "util.h"

CoordConfig server_coord_config(Server *s) {
        const ServerConfig *c = config_get(s);
        CoordConfig cc = COORD_CONFIG_DEFAULT;

        cc.lease_ttl = c->lease_ttl;
        cc.heartbeat_timeout = c->heartbeat_timeout ? c->heartbeat_timeout : 3 * c->checkin_interval;
        /* A refused host asks again at its next round, not later: a budget
         * slot freed by a host that came back is taken within one interval. */
        cc.retry_after = c->checkin_interval > 0 ? c->checkin_interval : cc.retry_after;
        config_put(s);
        return cc;
}

/* Runs body in one transaction (tx); r is its result. */
#define IN_TRANSACTION(srv, tx, r, body)                                    \
        do {                                                                \
                _cleanup_store_tx_ StoreTx *tx = NULL;                      \
                r = store_tx_begin((srv)->store, STORE_TX_WRITE, &tx);      \
                if (r >= 0) {                                               \
                        body;                                               \
                }                                                           \
                if (r >= 0)                                                 \
                        r = store_tx_commit(&tx);                           \
        } while (0)

static json_t *decision_json(const LeaseDecision *d) {
        if (d->granted)
                return json_pack("{s:b, s:I, s:I}", "granted", true, "epoch", (json_int_t) d->epoch, "expires",
                                 (json_int_t) d->expires);
        return json_pack("{s:b, s:s?, s:s?, s:I}", "granted", false, "reason", d->reason, "group", d->group,
                         "retry_after", (json_int_t) d->retry_after);
}

/* Lease requests that wait. A refused request with "wait" is suspended
 * (MHD_suspend_connection) and asked again, without a new audit entry:
 * right after a lease of the group that refused it is given back here;
 * all of them right after the store says a lease was given back or a
 * quarantine lifted by another instance sharing the database
 * (store_db_watch_releases()); and every WAIT_ROUND_MS for whatever else
 * frees a place (an expiry, a host back from silence, a budget change). It
 * is answered when granted or when its wait is over, with "waited". */
#define WAIT_ROUND_MS 2000
#define WAIT_MAX_SEC 60

typedef struct Waiter {
        Request *req;
        char host[16];
        char *group;        /* the group that refused it last; NULL when none */
        LeaseRefusal refusal; /* why it was refused last */
        json_t *last;       /* the last refusal, as a reply */
        uint64_t start_ms, until_ms;
        struct Waiter *next;
} Waiter;

struct LeaseWaiters {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool stop;
        Waiter *head;
        json_t *woken; /* groups with a lease given back since the last round */
        bool woken_all; /* a lease given back elsewhere since the last round */
        bool watching;  /* the store's watch is on */
};

static uint64_t mono_ms(void) {
        return now_usec() / 1000;
}

static void waiter_answer(Waiter *w, json_t *reply) {
        json_object_set_new(reply, "waited", json_integer((json_int_t) ((mono_ms() - w->start_ms + 500) / 1000)));
        w->req->deferred = reply;
        MHD_resume_connection(w->req->conn);
        json_decref(w->last);
        free(w->group);
        free(w);
}

static bool group_woken(const json_t *woken, const char *group) {
        size_t i;
        json_t *g;

        if (!group)
                return true;
        json_array_foreach(woken, i, g) {
                if (streq_ptr(json_string_value(g), group))
                        return true;
        }
        return false;
}

/* One pass over the waiters (lock held): ask again for those due (all, or
 * those whose group was woken), answer the granted and the expired. */
static void waiters_round(Server *s, LeaseWaiters *ws, bool all) {
        CoordConfig cc = server_coord_config(s);
        uint64_t now = mono_ms();

        for (Waiter **p = &ws->head; *p;) {
                Waiter *w = *p;
                LeaseDecision d = {};
                int r = 0;

                if (now < w->until_ms && (all || group_woken(ws->woken, w->group))) {
                        log_context_set("host", w->host);
                        IN_TRANSACTION(s, tx, r, { r = coord_lease_retry(tx, &cc, w->host, (uint64_t) time(NULL),
                                                                         w->req->actor, &d); });
                        if (r < 0)
                                log_warning("lease for %s: %s", w->host, strerror(-r));
                        else if (!d.granted) {
                                json_decref(w->last);
                                w->last = decision_json(&d);
                                free(w->group);
                                w->group = d.group ? strdup(d.group) : NULL;
                                w->refusal = d.refusal;
                        }
                        log_context_set("host", NULL);
                }
                if (r >= 0 && !d.granted && now < w->until_ms) {
                        lease_decision_release(&d);
                        p = &w->next;
                        continue;
                }
                /* Granted, or its wait is over (or asking failed): it is answered. */
                *p = w->next;
                waiter_answer(w, d.granted ? decision_json(&d) : json_incref(w->last));
                lease_decision_release(&d);
        }
        json_array_clear(ws->woken);
}

static void *waiters_main(void *userdata) {
        Server *s = userdata;
        LeaseWaiters *ws = s->lease_waiters;
        uint64_t next_all = mono_ms() + WAIT_ROUND_MS;

        pthread_mutex_lock(&ws->lock);
        while (!ws->stop) {
                uint64_t wake = next_all, now;

                for (Waiter *w = ws->head; w; w = w->next)
                        wake = MIN(wake, w->until_ms);
                if (json_array_size(ws->woken) == 0 && !ws->woken_all) {
                        struct timespec ts = { .tv_sec = (time_t) (wake / 1000), .tv_nsec = (long) (wake % 1000) * 1000000 };
                        (void) pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
                }
                if (ws->stop)
                        break;
                now = mono_ms();
                bool all = now >= next_all;
                if (all)
                        next_all = now + WAIT_ROUND_MS;
                all = all || ws->woken_all;
                ws->woken_all = false;
                if (ws->head)
                        waiters_round(s, ws, all);
                else
                        json_array_clear(ws->woken);
        }
        /* Stopping: the waiting get their last refusal. */
        while (ws->head) {
                Waiter *w = ws->head;
                ws->head = w->next;
                waiter_answer(w, json_incref(w->last));
        }
        pthread_mutex_unlock(&ws->lock);
        return NULL;
}

/* The store's watch: from its thread. */
static void released_elsewhere(void *userdata) {
        LeaseWaiters *ws = userdata;

        pthread_mutex_lock(&ws->lock);
        ws->woken_all = true;
        pthread_cond_signal(&ws->cond);
        pthread_mutex_unlock(&ws->lock);
}

int lease_waiters_start(Server *s) {
        LeaseWaiters *ws = calloc(1, sizeof *ws);
        pthread_condattr_t attr;

        if (!ws || !(ws->woken = json_array())) {
                free(ws);
                return -ENOMEM;
        }
        pthread_mutex_init(&ws->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&ws->cond, &attr);
        pthread_condattr_destroy(&attr);
        s->lease_waiters = ws;
        if (pthread_create(&ws->thread, NULL, waiters_main, s) != 0) {
                s->lease_waiters = NULL;
                pthread_cond_destroy(&ws->cond);
                pthread_mutex_destroy(&ws->lock);
                json_decref(ws->woken);
                free(ws);
                return -EAGAIN;
        }
        /* Without it, a release elsewhere is seen at the next round. */
        ws->watching = store_db_watch_releases(s->store, released_elsewhere, ws) >= 0;
        return 0;
}

void lease_waiters_stop(Server *s) {
        LeaseWaiters *ws = s->lease_waiters;

        if (!ws)
                return;
        /* First: the watch's thread takes ws->lock. */
        if (ws->watching)
                (void) store_db_watch_releases(s->store, NULL, NULL);
        pthread_mutex_lock(&ws->lock);
        ws->stop = true;
        pthread_cond_signal(&ws->cond);
        pthread_mutex_unlock(&ws->lock);
        pthread_join(ws->thread, NULL);
        s->lease_waiters = NULL;
        pthread_cond_destroy(&ws->cond);
        pthread_mutex_destroy(&ws->lock);
        json_decref(ws->woken);
        free(ws);
}

void lease_waiters_wake(Server *s, char **groups) {
        _cleanup_strv_free_ char **l = groups;
        LeaseWaiters *ws = s->lease_waiters;

        if (!ws || strv_length(l) == 0)
                return;
        pthread_mutex_lock(&ws->lock);
        for (char **g = l; *g; g++)
                json_array_append_new(ws->woken, json_string(*g));
        pthread_cond_signal(&ws->cond);
        pthread_mutex_unlock(&ws->lock);
}

void lease_refusal_count(Server *s, const LeaseDecision *d) {
        _Static_assert(_LEASE_REFUSAL_MAX <= ELEMENTSOF(((Server *) NULL)->metrics.lease_refusals), "too few counters");

        if (!d->granted && d->refusal > LEASE_REFUSAL_NONE && d->refusal < _LEASE_REFUSAL_MAX)
                atomic_fetch_add(&s->metrics.lease_refusals[d->refusal], 1);
}

int lease_waiters_count(Server *s, StatsCount **ret_groups, size_t *ret_n, uint64_t by_reason[_LEASE_REFUSAL_MAX]) {
        LeaseWaiters *ws = s->lease_waiters;
        StatsCount *l = NULL;
        size_t n = 0, cap = 0;
        int r = 0;

        memset(by_reason, 0, _LEASE_REFUSAL_MAX * sizeof *by_reason);
        if (ws) {
                pthread_mutex_lock(&ws->lock);
                for (const Waiter *w = ws->head; w && r >= 0; w = w->next) {
                        const char *g = w->group ? w->group : "none";
                        StatsCount *c = NULL;

                        if (w->refusal >= 0 && w->refusal < _LEASE_REFUSAL_MAX)
                                by_reason[w->refusal]++;
                        for (size_t k = 0; !c && k < n; k++)
                                if (streq(l[k].key, g))
                                        c = &l[k];
                        if (!c) {
                                c = ARRAY_PUSH(l, n, cap);
                                if (!c || !(c->key = strdup(g)))
                                        r = -ENOMEM;
                        }
                        if (r >= 0)
                                c->n++;
                }
                pthread_mutex_unlock(&ws->lock);
        }
        if (r < 0) {
                stats_counts_free(l, n);
                return r;
        }
        *ret_groups = l;
        *ret_n = n;
        return 0;
}

/* The optional body {"NAME": N} of a lease call: N an integer from 0 to max.
 * Returns false, with the reply queued in *ret_result, when it is not. */
static bool lease_body_uint(Request *req, const char *name, uint64_t max, const char *expected, uint64_t *ret,
                            enum MHD_Result *ret_result) {
        const char *const allowed[] = { name, NULL };
        json_t *body, *v;
        bool ok;

        *ret = 0;
        if (req->body_size == 0)
                return true;
        body = request_json(req, allowed, ret_result);
        if (!body)
                return false;
        v = json_object_get(body, name);
        ok = !v || (json_is_integer(v) && json_integer_value(v) >= 0 && (uint64_t) json_integer_value(v) <= max);
        if (ok)
                *ret = v ? (uint64_t) json_integer_value(v) : 0;
        else
                *ret_result = reply_error(req, KIND_INVALID_VALUE, "'%s': expected %s", name, expected);
        json_decref(body);
        return ok;
}

static enum MHD_Result handle_lease_acquire(Request *req) {
        CoordConfig cc = server_coord_config(req->server);
        LeaseWaiters *ws = req->server->lease_waiters;
        LeaseDecision d = {};
        enum MHD_Result result;
        char id[16], expected[32];
        uint64_t wait;
        json_t *reply;
        int r;

        snprintf(expected, sizeof expected, "seconds, 0 to %d", WAIT_MAX_SEC);
        if (!lease_body_uint(req, "wait", WAIT_MAX_SEC, expected, &wait, &result))
                return result;
        IN_TRANSACTION(req->server, tx, r, {
                r = hosts_find(tx, req->args[0], id);
                if (r >= 0)
                        r = coord_lease_acquire(tx, &cc, id, req->now, req->actor, &d);
        });
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "lease");
        reply = decision_json(&d);
        if (!d.granted)
                lease_refusal_count(req->server, &d);
        if (!d.granted && wait > 0 && ws) {
                Waiter *w = calloc(1, sizeof *w);
                if (w) {
                        w->req = req;
                        snprintf(w->host, sizeof w->host, "%s", id);
                        w->group = d.group ? strdup(d.group) : NULL;
                        w->refusal = d.refusal;
                        w->last = reply;
                        w->start_ms = mono_ms();
                        w->until_ms = w->start_ms + wait * 1000;
                        lease_decision_release(&d);
                        pthread_mutex_lock(&ws->lock);
                        Waiter **p = &ws->head;
                        while (*p)
                                p = &(*p)->next;
                        *p = w;
                        MHD_suspend_connection(req->conn);
                        pthread_cond_signal(&ws->cond);
                        pthread_mutex_unlock(&ws->lock);
                        return MHD_YES;
                }
        }
        lease_decision_release(&d);
        return reply_json(req, 200, reply);
}

static enum MHD_Result handle_lease_release(Request *req) {
        char **groups = NULL;
        enum MHD_Result result;
        uint64_t epoch;
        char id[16];
        int r, released = 0;

        if (!lease_body_uint(req, "epoch", INT64_MAX, "a lease epoch", &epoch, &result))
                return result;
        IN_TRANSACTION(req->server, tx, r, {
                r = hosts_find(tx, req->args[0], id);
                if (r >= 0)
                        r = released = coord_lease_release(tx, id, epoch, req->now, req->actor, &groups);
        });
        lease_waiters_wake(req->server, groups);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "lease");
        return reply_json(req, 200, json_pack("{s:b}", "released", released > 0));
}

const Route lease_routes[] = {
        { "POST", "v1/hosts/*/lease", AUTH_HOST, BODY_JSON, handle_lease_acquire },
        { "DELETE", "v1/hosts/*/lease", AUTH_HOST, BODY_JSON, handle_lease_release },
        {},
};
