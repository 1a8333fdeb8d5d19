/* HTTP side of the coordinator: reboot leases for agents, budgets and
 * rollouts for operators, and FleetLock v1 for Zincati hosts. The decisions
 * are coordinator.c's and rollout.c's. */
#include <pthread.h>
#include <time.h>

#include "audit.h"
#include "coordinator.h"
#include "hosts.h"
#include "log.h"
#include "server.h"
#include "store-sqlite.h"
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
 * right after a lease of the group that refused it is given back, and
 * every WAIT_ROUND_MS for whatever else frees a place (an expiry, a host
 * back from silence, a budget change, a quarantine lifted). It is
 * answered when granted or when its wait is over, with "waited". */
#define WAIT_ROUND_MS 2000
#define WAIT_MAX_SEC 60

typedef struct Waiter {
        Request *req;
        char host[16];
        char *group;        /* the group that refused it last; NULL when none */
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
                        IN_TRANSACTION(s, tx, r, { r = coord_lease_retry(tx, &cc, w->host, (uint64_t) time(NULL),
                                                                         w->req->actor, &d); });
                        if (r < 0)
                                log_warning("lease for %s: %s", w->host, strerror(-r));
                        else if (!d.granted) {
                                json_decref(w->last);
                                w->last = decision_json(&d);
                                free(w->group);
                                w->group = d.group ? strdup(d.group) : NULL;
                        }
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
                if (json_array_size(ws->woken) == 0) {
                        struct timespec ts = { .tv_sec = (time_t) (wake / 1000), .tv_nsec = (long) (wake % 1000) * 1000000 };
                        (void) pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
                }
                if (ws->stop)
                        break;
                now = mono_ms();
                bool all = now >= next_all;
                if (all)
                        next_all = now + WAIT_ROUND_MS;
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
        return 0;
}

void lease_waiters_stop(Server *s) {
        LeaseWaiters *ws = s->lease_waiters;

        if (!ws)
                return;
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

/* A lease of a host in these groups was given back: its waiters ask again.
 * Takes groups (may be NULL). */
static void lease_waiters_wake(Server *s, json_t *groups) {
        LeaseWaiters *ws = s->lease_waiters;

        if (ws && json_array_size(groups) > 0) {
                pthread_mutex_lock(&ws->lock);
                json_array_extend(ws->woken, groups);
                pthread_cond_signal(&ws->cond);
                pthread_mutex_unlock(&ws->lock);
        }
        json_decref(groups);
}

/* coord_lease_release(), and when a lease was given back, host's groups
 * ("key=value") in *ret_groups, for lease_waiters_wake() once committed. */
static int lease_release(StoreTx *tx, const char *host, uint64_t epoch, const char *actor, json_t **ret_groups) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int released, r;

        released = coord_lease_release(tx, host, epoch, actor);
        if (released <= 0)
                return released;
        /* Only wakes waiters: a failure here costs them a round, not the release. */
        if (db_prepare(store_tx_sqlite(tx), "SELECT key || '=' || value FROM host_labels WHERE host_id = ?", &st) < 0)
                return released;
        *ret_groups = json_array();
        sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
        while ((r = db_step(st)) > 0)
                json_array_append_new(*ret_groups, json_string((const char *) sqlite3_column_text(st, 0)));
        return released;
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
                        r = coord_lease_acquire(tx, &cc, id, (uint64_t) time(NULL), req->actor, &d);
        });
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "lease");
        reply = decision_json(&d);
        if (!d.granted && wait > 0 && ws) {
                Waiter *w = calloc(1, sizeof *w);
                if (w) {
                        w->req = req;
                        snprintf(w->host, sizeof w->host, "%s", id);
                        w->group = d.group ? strdup(d.group) : NULL;
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
        json_t *groups = NULL;
        enum MHD_Result result;
        uint64_t epoch;
        char id[16];
        int r, released = 0;

        if (!lease_body_uint(req, "epoch", INT64_MAX, "a lease epoch", &epoch, &result))
                return result;
        IN_TRANSACTION(req->server, tx, r, {
                r = hosts_find(tx, req->args[0], id);
                if (r >= 0)
                        r = released = lease_release(tx, id, epoch, req->actor, &groups);
        });
        /* After a failed commit this only has waiters ask again for nothing. */
        lease_waiters_wake(req->server, groups);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "host '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "lease");
        return reply_json(req, 200, json_pack("{s:b}", "released", released > 0));
}

static enum MHD_Result handle_budgets_list(Request *req) {
        json_t *l = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;

        l = store_tx_begin(req->server->store, STORE_TX_READ, &tx) >= 0 ? coord_budgets_json(tx) : NULL;
        store_tx_rollback(&tx);
        if (!l)
                return reply_errno(req, -EIO, "budgets");
        return reply_json(req, 200, json_pack("{s:o}", "budgets", l));
}

static enum MHD_Result handle_budget_put(Request *req) {
        static const char *const allowed[] = { "max_unavailable", "min_available", NULL };
        enum MHD_Result result;
        Budget b = { .selector = req->args[0], .max_unavailable = -1, .max_unavailable_pct = -1, .min_available = -1 };
        json_t *body, *mu, *ma;
        int r;

        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        mu = json_object_get(body, "max_unavailable");
        ma = json_object_get(body, "min_available");
        if (!!mu == !!ma) {
                json_decref(body);
                return reply_error(req, KIND_INVALID_VALUE, "give either 'max_unavailable' or 'min_available'");
        }
        if (mu)
                r = budget_parse_json(mu, &b.max_unavailable, &b.max_unavailable_pct);
        else {
                r = json_is_integer(ma) && json_integer_value(ma) >= 0 ? 0 : -EINVAL;
                b.min_available = r >= 0 ? json_integer_value(ma) : -1;
        }
        json_decref(body);
        if (r < 0)
                return reply_error(req, KIND_INVALID_VALUE, "expected a count, a percentage (\"10%%\") or, for "
                                                            "min_available, a count");
        IN_TRANSACTION(req->server, tx, r, { r = coord_budget_set(tx, &b, req->actor); });
        if (r == -EINVAL)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a label key or KEY=VALUE group", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "budget");
        return handle_budgets_list(req);
}

static enum MHD_Result handle_budget_delete(Request *req) {
        int r;

        IN_TRANSACTION(req->server, tx, r, { r = coord_budget_delete(tx, req->args[0], req->actor); });
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "budget '%s': not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "budget");
        return reply_json(req, 200, json_pack("{s:s}", "deleted", req->args[0]));
}

static enum MHD_Result reply_coord_error(Request *req, int r, char *error) {
        enum MHD_Result res;

        if (r == -EINVAL)
                res = reply_error(req, KIND_INVALID_VALUE, "%s", strempty(error));
        else if (r == -ENXIO || r == -ENOENT)
                res = reply_error(req, KIND_NOT_FOUND, "%s", error ? error : "rollout: not found");
        else if (r == -EBUSY)
                res = reply_error(req, KIND_CONFLICT, "%s", strempty(error));
        else
                res = reply_errno(req, r, "rollout");
        free(error);
        return res;
}

static enum MHD_Result handle_rollout_plan(Request *req) {
        enum MHD_Result result;
        CoordConfig cc = server_coord_config(req->server);
        json_t *spec, *plan = NULL;
        char *error = NULL;
        int r;

        spec = request_json(req, NULL, &result);
        if (!spec)
                return result;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = coord_rollout_plan(tx, &cc, spec, 60, &plan, &error);
        store_tx_rollback(&tx);
        json_decref(spec);
        if (r < 0)
                return reply_coord_error(req, r, error);
        return reply_json(req, 200, plan);
}

static enum MHD_Result handle_rollout_start(Request *req) {
        enum MHD_Result result;
        CoordConfig cc = server_coord_config(req->server);
        json_t *spec, *ro = NULL;
        char *error = NULL;
        int64_t id = 0;
        int r;

        spec = request_json(req, NULL, &result);
        if (!spec)
                return result;
        IN_TRANSACTION(req->server, tx, r, {
                r = coord_rollout_start(tx, &cc, spec, req->actor, (uint64_t) time(NULL), &id, &error);
                /* Its first wave is assigned at once; the other rollouts
                 * are the tick's, and none of theirs can refuse this one. */
                if (r >= 0)
                        r = coord_rollout_tick(tx, &cc, id, (uint64_t) time(NULL));
                if (r >= 0)
                        r = coord_rollout_json(tx, &cc, id, (uint64_t) time(NULL), &ro);
        });
        json_decref(spec);
        if (r < 0) {
                json_decref(ro);
                return reply_coord_error(req, r, error);
        }
        return reply_json(req, 201, ro);
}

static enum MHD_Result handle_rollouts_list(Request *req) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *l = store_tx_begin(req->server->store, STORE_TX_READ, &tx) >= 0 ? coord_rollouts_json(tx) : NULL;

        store_tx_rollback(&tx);
        if (!l)
                return reply_errno(req, -EIO, "rollouts");
        return reply_json(req, 200, json_pack("{s:o}", "rollouts", l));
}

static int rollout_id_arg(Request *req, int64_t *ret) {
        uint64_t v;

        if (safe_atou64(req->args[0], &v) < 0 || v == 0 || v > INT64_MAX)
                return -EINVAL;
        *ret = (int64_t) v;
        return 0;
}

static enum MHD_Result handle_rollout_get(Request *req) {
        CoordConfig cc = server_coord_config(req->server);
        json_t *ro = NULL;
        int64_t id;
        int r;

        if (rollout_id_arg(req, &id) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a rollout number", req->args[0]);
        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(req->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = coord_rollout_json(tx, &cc, id, (uint64_t) time(NULL), &ro);
        store_tx_rollback(&tx);
        if (r == -ENOENT)
                return reply_error(req, KIND_NOT_FOUND, "rollout %s: not found", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "rollout");
        return reply_json(req, 200, ro);
}

static enum MHD_Result handle_rollout_action(Request *req) {
        CoordConfig cc = server_coord_config(req->server);
        json_t *ro = NULL;
        char *error = NULL;
        int64_t id, nid = 0;
        int r;

        if (rollout_id_arg(req, &id) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a rollout number", req->args[0]);
        IN_TRANSACTION(req->server, tx, r, {
                r = coord_rollout_action(tx, id, req->args[1], req->actor, (uint64_t) time(NULL), &nid, &error);
                if (r >= 0)
                        r = coord_rollout_json(tx, &cc, nid ? nid : id, (uint64_t) time(NULL), &ro);
        });
        if (r == -ENOENT && !error)
                return reply_error(req, KIND_NOT_FOUND, "rollout %s: not found", req->args[0]);
        if (r < 0) {
                json_decref(ro);
                return reply_coord_error(req, r, error);
        }
        return reply_json(req, 200, ro);
}

/* The FleetLock node called cid: its host, made on first sight as
 * "fleetlock:<cid>" in group. -EPERM, with that host in ret_other, when cid
 * is the ID or MAC of a host Slipway knows: an unauthenticated client may
 * not act for it, nor make a second record of the same machine. */
static int fleetlock_host(StoreTx *tx, const char *cid, const char *name, const char *group, const char *actor,
                          char ret_id[16], char ret_other[16]) {
        int r = hosts_find(tx, cid, ret_other);

        if (r >= 0)
                return -EPERM;
        if (r != -ENOENT)
                return r;
        r = hosts_find_named(tx, name, ret_id);
        if (r == -ENOENT)
                r = hosts_ensure_named(tx, name, group, actor, ret_id);
        return r;
}

/* FleetLock v1: {"client_params": {"group": G, "id": ID}}. The id names a
 * node that FleetLock registers itself, as "fleetlock:ID" with the label
 * fleetlock=G. A node changes group only while it holds no lock: a holder
 * asking in another group is refused (409, naming the group it holds in),
 * and steady-state gives the lock back before it moves. */
static enum MHD_Result fleetlock(Request *req, bool acquire) {
        static const char *const allowed[] = { "client_params", NULL };
        const char *hdr = request_header(req, "fleet-lock-protocol");
        enum MHD_Result result;
        CoordConfig cc = server_coord_config(req->server);
        _cleanup_free_ char *name = NULL, *actor = NULL, *why = NULL, *conflict = NULL;
        const char *group, *cid;
        LeaseDecision d = {};
        json_t *body, *p, *groups = NULL;
        char id[16], other[16] = "";
        int r;

        if (!hdr || !streq(hdr, "true"))
                return reply_error_extra(req, KIND_BAD_REQUEST,
                                         json_pack("{s:s}", "value", "FleetLock needs the header fleet-lock-protocol: true"),
                                         "FleetLock needs the header fleet-lock-protocol: true");
        body = request_json(req, allowed, &result);
        if (!body)
                return result;
        p = json_object_get(body, "client_params");
        group = json_string_value(json_object_get(p, "group"));
        cid = json_string_value(json_object_get(p, "id"));
        if (!label_valid(group) || !cid || strlen(cid) == 0 || strlen(cid) > 128) {
                json_decref(body);
                return reply_error_extra(req, KIND_INVALID_VALUE,
                                         json_pack("{s:s}", "value", "client_params: expected a group and an id"),
                                         "client_params: expected a group and an id");
        }
        name = strdup_printf("fleetlock:%s", cid);
        actor = strdup_printf("fleetlock:%s", cid);
        if (!name || !actor) {
                json_decref(body);
                return reply_errno(req, -ENOMEM, "fleetlock");
        }
        IN_TRANSACTION(req->server, tx, r, {
                r = fleetlock_host(tx, cid, name, group, actor, id, other);
                if (r >= 0 && acquire) {
                        r = hosts_set_fleetlock_group(tx, id, group, actor, &why);
                        if (r >= 0)
                                r = coord_lease_acquire(tx, &cc, id, (uint64_t) time(NULL), actor, &d);
                        else if (r == -EBUSY) {
                                json_t *detail = json_pack("{s:s}", "reason", why);
                                r = audit_log(tx, actor, "lease.refuse", id, detail);
                                json_decref(detail);
                                d.reason = TAKE_PTR(why);
                        }
                } else if (r >= 0) {
                        r = lease_release(tx, id, 0, actor, &groups);
                        if (r >= 0)
                                r = coord_on_report(tx, id, "healthy", (uint64_t) time(NULL));
                        /* Released and up, the node may move (and if it still may
                         * not, it stays in its group: the release stands). */
                        if (r >= 0)
                                r = hosts_set_fleetlock_group(tx, id, group, actor, &why);
                        if (r == -EBUSY)
                                r = 0;
                }
        });
        /* cid lives in body. */
        if (r == -EPERM && other[0])
                conflict = strdup_printf("id \"%s\" is the ID or MAC of host %s, which FleetLock may not act for: give "
                                         "this node an id of its own",
                                         cid, other);
        json_decref(body);
        /* After a failed commit this only has waiters ask again for nothing. */
        lease_waiters_wake(req->server, groups);
        if (r == -EPERM && other[0]) {
                log_warning("fleetlock: refused an id that names host %s", other);
                return reply_error_extra(req, KIND_FORBIDDEN, json_pack("{s:s}", "value", strempty(conflict)), "%s",
                                         strempty(conflict));
        }
        if (r < 0) {
                lease_decision_release(&d);
                return reply_errno(req, r, "fleetlock");
        }
        if (acquire && !d.granted) {
                json_t *e = json_pack("{s:s, s:s}", "kind", "failed_lock", "value", strempty(d.reason));
                lease_decision_release(&d);
                return reply_json(req, 409, e);
        }
        lease_decision_release(&d);
        return reply_json(req, 200, json_object());
}

static enum MHD_Result handle_fleetlock_pre_reboot(Request *req) {
        return fleetlock(req, true);
}

static enum MHD_Result handle_fleetlock_steady_state(Request *req) {
        return fleetlock(req, false);
}

const Route lease_routes[] = {
        { "POST", "v1/hosts/*/lease", AUTH_HOST, BODY_JSON, handle_lease_acquire },
        { "DELETE", "v1/hosts/*/lease", AUTH_HOST, BODY_JSON, handle_lease_release },
        { "GET", "v1/budgets", AUTH_ADMIN, BODY_NONE, handle_budgets_list },
        { "PUT", "v1/budgets/*", AUTH_ADMIN, BODY_JSON, handle_budget_put },
        { "DELETE", "v1/budgets/*", AUTH_ADMIN, BODY_NONE, handle_budget_delete },
        { "POST", "v1/rollouts/plan", AUTH_ADMIN, BODY_JSON, handle_rollout_plan },
        { "POST", "v1/rollouts", AUTH_ADMIN, BODY_JSON, handle_rollout_start },
        { "GET", "v1/rollouts", AUTH_ADMIN, BODY_NONE, handle_rollouts_list },
        { "GET", "v1/rollouts/*", AUTH_ADMIN, BODY_NONE, handle_rollout_get },
        { "POST", "v1/rollouts/*/*", AUTH_ADMIN, BODY_NONE, handle_rollout_action },
        { "POST", "v1/pre-reboot", AUTH_PUBLIC, BODY_JSON, handle_fleetlock_pre_reboot },
        { "POST", "v1/steady-state", AUTH_PUBLIC, BODY_JSON, handle_fleetlock_steady_state },
        {},
};
