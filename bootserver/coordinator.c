#include <inttypes.h>

#include "audit.h"
#include "coordinator.h"
#include "labels.h"
#include "log.h"
#include "store-hosts.h"
#include "store-instances.h"
#include "util.h"

void lease_decision_release(LeaseDecision *d) {
        free(d->reason);
        free(d->group);
        *d = (LeaseDecision) {};
}

static const char *const lease_refusal_names[_LEASE_REFUSAL_MAX] = {
        [LEASE_REFUSAL_BUDGET] = "budget",
        [LEASE_REFUSAL_WINDOW] = "window",
        [LEASE_REFUSAL_QUARANTINED] = "quarantined",
        [LEASE_REFUSAL_GROUP_MOVE] = "group-move",
        [LEASE_REFUSAL_ROLLOUT_BUDGET] = "rollout-budget",
};

const char *lease_refusal_to_string(LeaseRefusal r) {
        return r >= 0 && r < _LEASE_REFUSAL_MAX ? lease_refusal_names[r] : NULL;
}

int budget_parse_amount(const char *s, int64_t *ret_count, int64_t *ret_pct) {
        _cleanup_free_ char *num = NULL;
        uint64_t v;
        size_t n = s ? strlen(s) : 0;
        bool pct = n > 0 && s[n - 1] == '%';

        if (n == 0 || n > 20)
                return -EINVAL;
        num = strndup(s, pct ? n - 1 : n);
        if (!num || safe_atou64(num, &v) < 0 || (pct && v > 100) || v > INT32_MAX)
                return -EINVAL;
        *ret_count = pct ? -1 : (int64_t) v;
        *ret_pct = pct ? (int64_t) v : -1;
        return 0;
}

int budget_parse_json(json_t *v, int64_t *ret_count, int64_t *ret_pct) {
        char num[32];

        if (json_is_integer(v)) {
                snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return budget_parse_amount(num, ret_count, ret_pct);
        }
        if (json_is_string(v))
                return budget_parse_amount(json_string_value(v), ret_count, ret_pct);
        return -EINVAL;
}

int budget_from_json(json_t *v, Budget *ret) {
        Budget b = { .max_unavailable = -1, .max_unavailable_pct = -1, .min_available = -1 };
        json_t *mu, *ma;

        if (!json_is_object(v))
                return budget_parse_json(v, &b.max_unavailable, &b.max_unavailable_pct) < 0 ? -EINVAL
                                                                                            : (*ret = b, 0);
        mu = json_object_get(v, "max_unavailable");
        ma = json_object_get(v, "min_available");
        if (json_object_size(v) != 1 || !!mu == !!ma)
                return -EINVAL;
        if (mu)
                return budget_parse_json(mu, &b.max_unavailable, &b.max_unavailable_pct) < 0 ? -EINVAL
                                                                                             : (*ret = b, 0);
        if (!json_is_integer(ma) || json_integer_value(ma) < 0 || json_integer_value(ma) > INT32_MAX)
                return -EINVAL;
        b.min_available = json_integer_value(ma);
        *ret = b;
        return 0;
}

int rollout_budget_for_group(json_t *budgets, const char *key, const char *value, Budget *ret) {
        _cleanup_free_ char *group = strdup_printf("%s=%s", key, value);
        json_t *v;

        if (!group)
                return -ENOMEM;
        v = json_object_get(budgets, group) ?: json_object_get(budgets, key);
        if (!v)
                return 0;
        return budget_from_json(v, ret) < 0 ? -EINVAL : 1;
}

int64_t budget_allowed(const Budget *b, int64_t n) {
        if (b->max_unavailable >= 0)
                return b->max_unavailable;
        if (b->max_unavailable_pct >= 0) {
                int64_t a = n * b->max_unavailable_pct / 100;
                return b->max_unavailable_pct > 0 && a < 1 ? 1 : a;
        }
        if (b->min_available >= 0)
                return MAX(n - b->min_available, 0);
        return n;
}

void budget_describe(const Budget *b, char *buf, size_t size) {
        if (b->max_unavailable >= 0)
                snprintf(buf, size, "max_unavailable %" PRIi64, b->max_unavailable);
        else if (b->max_unavailable_pct >= 0)
                snprintf(buf, size, "max_unavailable %" PRIi64 "%%", b->max_unavailable_pct);
        else
                snprintf(buf, size, "min_available %" PRIi64, b->min_available);
}

bool coord_selector_valid(const char *s) {
        const char *eq = s ? strchr(s, '=') : NULL;
        _cleanup_free_ char *k = NULL;

        if (!s)
                return false;
        if (!eq)
                return label_valid(s);
        k = strndup(s, (size_t) (eq - s));
        return k && label_valid(k) && label_valid(eq + 1);
}

int coord_budget_set(StoreTx *tx, const Budget *b, uint64_t now, const char *actor) {
        int set = (b->max_unavailable >= 0) + (b->max_unavailable_pct >= 0) + (b->min_available >= 0);
        char desc[64];
        json_t *d;
        int r;

        if (!coord_selector_valid(b->selector) || set != 1)
                return -EINVAL;
        r = store_budget_set(tx, b);
        if (r < 0)
                return r;
        budget_describe(b, desc, sizeof desc);
        d = json_pack("{s:s}", "budget", desc);
        r = audit_log_at(tx, (int64_t) now, actor, "budget.set", b->selector, d);
        json_decref(d);
        return r;
}

int coord_budget_delete(StoreTx *tx, const char *selector, uint64_t now, const char *actor) {
        int r = store_budget_delete(tx, selector);

        return r < 0 ? r : audit_log_at(tx, (int64_t) now, actor, "budget.delete", selector, NULL);
}

json_t *coord_budgets_json(StoreTx *tx) {
        Budget *l = NULL;
        size_t n = 0;
        json_t *a;

        if (store_budget_list(tx, &l, &n) < 0)
                return NULL;
        a = json_array();
        for (size_t i = 0; a && i < n; i++) {
                const Budget *b = &l[i];
                char desc[64];

                budget_describe(b, desc, sizeof desc);
                json_t *o = json_pack("{s:s, s:s}", "selector", b->selector, "budget", desc);
                if (b->max_unavailable >= 0)
                        json_object_set_new(o, "max_unavailable", json_integer(b->max_unavailable));
                if (b->max_unavailable_pct >= 0)
                        json_object_set_new(o, "max_unavailable_pct", json_integer(b->max_unavailable_pct));
                if (b->min_available >= 0)
                        json_object_set_new(o, "min_available", json_integer(b->min_available));
                json_array_append_new(a, o);
        }
        budget_list_free(l, n);
        return a;
}

int coord_host_unavailable(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now) {
        return store_coord_host_unavailable(tx, host, now, c->heartbeat_timeout);
}

/* The budgets of the rollouts host is on its way in, each read from its
 * spec. A rollout whose budgets do not read (a stored spec from before a
 * change of the parser) is kept with its object NULL: it refuses. */
typedef struct HostBudgets {
        int64_t rollout;
        json_t *budgets;
} HostBudgets;

static void host_budgets_free(HostBudgets *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                json_decref(l[i].budgets);
        free(l);
}

static int host_budgets_get(StoreTx *tx, const char *host, HostBudgets **ret, size_t *ret_n) {
        HostRolloutBudgets *rb = NULL;
        HostBudgets *l;
        size_t n = 0;
        int r;

        r = store_coord_host_rollout_budgets(tx, host, &rb, &n);
        if (r < 0)
                return r;
        l = n > 0 ? calloc(n, sizeof *l) : NULL;
        if (n > 0 && !l) {
                host_rollout_budgets_free(rb, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                json_t *j = rb[i].budgets ? json_loads(rb[i].budgets, JSON_DECODE_ANY, NULL) : NULL;
                l[i].rollout = rb[i].rollout;
                l[i].budgets = json_is_object(j) ? j : (json_decref(j), NULL);
        }
        host_rollout_budgets_free(rb, n);
        *ret = l;
        *ret_n = n;
        return 0;
}

/* The budget of the rollouts in rb that holds for group key=value, the
 * tightest for a group of n hosts. Returns 1 with *ret and *ret_rollout
 * set, 0 when none of them budgets the group, -EINVAL with *ret_rollout
 * naming a rollout whose budgets do not read, or -ENOMEM. */
static int rollouts_budget(const HostBudgets *rb, size_t n_rb, const char *key, const char *value, int64_t n,
                           Budget *ret, int64_t *ret_rollout) {
        int found = 0;

        for (size_t k = 0; k < n_rb; k++) {
                Budget b;
                int q = rb[k].budgets ? rollout_budget_for_group(rb[k].budgets, key, value, &b) : -EINVAL;

                if (q == -EINVAL)
                        *ret_rollout = rb[k].rollout;
                if (q < 0)
                        return q;
                if (q > 0 && (!found || budget_allowed(&b, n) < budget_allowed(ret, n))) {
                        *ret = b;
                        *ret_rollout = rb[k].rollout;
                        found = 1;
                }
        }
        return found;
}

/* Checks every group of host against the site's budget for it and the
 * budgets of the rollouts host is on its way in: the group's unavailable
 * members other than host, plus one, must be within the smaller allowed
 * number. Returns 1 when all stay within, 0 with the refusal filled in
 * (naming the budget that stopped it), negative on errors: a group not
 * checked is no group within its budget. */
static int check_budgets(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now, LeaseDecision *d) {
        HostGroup *groups = NULL;
        HostBudgets *rb = NULL;
        size_t n_groups = 0, n_rb = 0;
        bool refused = false;
        int r;

        r = store_coord_host_groups(tx, host, &groups, &n_groups);
        if (r >= 0)
                r = host_budgets_get(tx, host, &rb, &n_rb);
        for (size_t i = 0; r >= 0 && i < n_groups; i++) {
                const char *key = groups[i].key, *value = groups[i].value;
                int64_t n = 0, down, allowed, ro_id = 0;
                Budget site = {}, ro = {};
                int has_site, has_ro;
                char desc[64];

                has_site = r = store_budget_for_group(tx, key, value, &site);
                if (r < 0)
                        break;
                /* Whether a rollout budgets the group at all (any n will do). */
                has_ro = r = rollouts_budget(rb, n_rb, key, value, 0, &ro, &ro_id);
                if (r == -EINVAL) {
                        d->refusal = LEASE_REFUSAL_ROLLOUT_BUDGET;
                        d->group = strdup_printf("%s=%s", key, value);
                        d->reason = strdup_printf("the budgets in rollout %" PRIi64 "'s stored spec are not valid", ro_id);
                        d->retry_after = c->retry_after;
                        refused = true;
                        break;
                }
                if (r < 0)
                        break;
                if (!has_site && !has_ro)
                        continue; /* no budget: no limit */
                r = store_group_unavailable(tx, key, value, host, now, c->heartbeat_timeout, &n, &down);
                if (r < 0)
                        break;
                if (has_ro)
                        (void) rollouts_budget(rb, n_rb, key, value, n, &ro, &ro_id);
                /* The rollout's budget only tightens: the smaller wins, the
                 * site's when they allow the same. */
                if (has_ro && (!has_site || budget_allowed(&ro, n) < budget_allowed(&site, n))) {
                        allowed = budget_allowed(&ro, n);
                        budget_describe(&ro, desc, sizeof desc);
                } else {
                        allowed = budget_allowed(&site, n);
                        budget_describe(&site, desc, sizeof desc);
                        ro_id = 0;
                }
                if (down + 1 <= allowed)
                        continue;
                d->refusal = ro_id > 0 ? LEASE_REFUSAL_ROLLOUT_BUDGET : LEASE_REFUSAL_BUDGET;
                d->group = strdup_printf("%s=%s", key, value);
                if (ro_id > 0)
                        d->reason = strdup_printf("group %s=%s: %" PRIi64 " of %" PRIi64 " hosts are down and rollout %" PRIi64
                                                  "'s budget %s allows %" PRIi64,
                                                  key, value, down, n, ro_id, desc, allowed);
                else
                        d->reason = strdup_printf("group %s=%s: %" PRIi64 " of %" PRIi64
                                                  " hosts are down and %s allows %" PRIi64,
                                                  key, value, down, n, desc, allowed);
                d->retry_after = c->retry_after;
                refused = true;
                break;
        }
        host_budgets_free(rb, n_rb);
        host_group_list_free(groups, n_groups);
        if (refused)
                return 0;
        return r < 0 ? r : 1;
}

int coord_group_allowed(StoreTx *tx, const char *key, const char *value, json_t *rollout_budgets, int64_t *ret) {
        Budget b = {}, rob = {};
        int64_t n;
        int site, q, r;

        site = store_budget_for_group(tx, key, value, &b);
        if (site < 0)
                return site;
        q = rollout_budget_for_group(rollout_budgets, key, value, &rob);
        if (q < 0)
                return q;
        if (site == 0 && q == 0)
                return 0;
        r = store_group_size(tx, key, value, &n);
        if (r < 0)
                return r;
        *ret = INT64_MAX;
        if (site > 0)
                *ret = budget_allowed(&b, n);
        if (q > 0)
                *ret = MIN(*ret, budget_allowed(&rob, n));
        return 1;
}

int window_parse(const char *s, int *ret_start, int *ret_end) {
        unsigned h1, m1, h2, m2;
        char tail;

        if (!s || strlen(s) != 11 || sscanf(s, "%2u:%2u-%2u:%2u%c", &h1, &m1, &h2, &m2, &tail) != 4 || s[2] != ':' ||
            s[5] != '-' || s[8] != ':' || h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59)
                return -EINVAL;
        if (h1 * 60 + m1 == h2 * 60 + m2)
                return -EINVAL;
        *ret_start = (int) (h1 * 60 + m1);
        *ret_end = (int) (h2 * 60 + m2);
        return 0;
}

uint64_t window_wait(int start, int end, uint64_t now) {
        uint64_t sec = now % 86400, s = (uint64_t) start * 60, e = (uint64_t) end * 60;
        bool open = start < end ? sec >= s && sec < e : sec >= s || sec < e;

        if (open)
                return 0;
        return sec < s ? s - sec : 86400 - sec + s;
}

/* Refuses (returns 0, d filled) when host is in a running rollout that has
 * a reboot window for one of its groups and now is outside it. */
static int check_windows(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now, LeaseDecision *d) {
        RebootWindow *l = NULL;
        size_t n = 0;
        int r;

        r = store_coord_host_windows(tx, host, &l, &n);
        if (r < 0)
                return r;
        r = 1;
        for (size_t i = 0; r > 0 && i < n; i++) {
                const RebootWindow *w = &l[i];
                int start, end;
                uint64_t wait;

                /* Checked when the rollout started; a stored spec that no
                 * longer reads refuses (the tick pauses its rollout). */
                if (window_parse(w->window, &start, &end) < 0) {
                        d->refusal = LEASE_REFUSAL_WINDOW;
                        d->reason = strdup_printf("the window of %s in its rollout's stored spec is not valid",
                                                  w->selector);
                        d->retry_after = c->retry_after;
                        r = 0;
                        continue;
                }
                wait = window_wait(start, end, now);
                if (wait == 0)
                        continue;
                d->refusal = LEASE_REFUSAL_WINDOW;
                d->group = strdup(w->group);
                d->reason = strdup_printf("group %s: outside its reboot window %s (UTC, rollout window for %s); it opens "
                                          "in %" PRIu64 " min",
                                          strempty(d->group), w->window, w->selector, (wait + 59) / 60);
                d->retry_after = MAX(c->retry_after, MIN(wait, 300u));
                r = 0;
        }
        reboot_window_list_free(l, n);
        return r;
}

static int expire_leases(StoreTx *tx, const char *host, uint64_t now);

static int lease_acquire(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now, const char *actor,
                         bool audit_refusal, LeaseDecision *ret) {
        LeaseDecision d = {};
        Lease cur;
        bool renew;
        json_t *detail;
        int r;

        /* A lease past its expiry that the tick has not seen yet expires now,
         * as it would have a moment later: asking again is no renewal. */
        r = expire_leases(tx, host, now);
        if (r < 0)
                return r;
        /* Asking is a sign of life. */
        r = store_coord_host_seen(tx, host, now);
        if (r < 0)
                return r;
        r = store_lease_get(tx, host, &cur);
        if (r < 0)
                return r;
        renew = cur.held && cur.expires >= now;
        if (renew)
                d.epoch = cur.epoch;
        else if (cur.quarantined) {
                d.refusal = LEASE_REFUSAL_QUARANTINED;
                d.reason = strdup("the host is quarantined: a lease expired without a healthy report; it needs one "
                                  "before it may go down again");
                d.retry_after = c->retry_after;
        } else {
                r = check_windows(tx, c, host, now, &d);
                if (r > 0)
                        r = check_budgets(tx, c, host, now, &d);
                if (r > 0)
                        r = store_lease_next_epoch(tx, &d.epoch);
                if (r < 0) {
                        lease_decision_release(&d);
                        return r;
                }
        }
        d.granted = d.epoch > 0;
        if (d.granted) {
                d.expires = now + c->lease_ttl;
                r = store_lease_set(tx, host, d.epoch, d.expires);
        }
        if (r >= 0 && !renew && (d.granted || audit_refusal)) {
                detail = d.granted ? json_pack("{s:I, s:I}", "epoch", (json_int_t) d.epoch, "ttl", (json_int_t) c->lease_ttl)
                                   : json_pack("{s:s, s:s?}", "reason", strempty(d.reason), "group", d.group);
                r = audit_log_at(tx, (int64_t) now, actor, d.granted ? "lease.grant" : "lease.refuse", host, detail);
                json_decref(detail);
        }
        if (r < 0) {
                lease_decision_release(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int coord_lease_acquire(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now, const char *actor,
                        LeaseDecision *ret) {
        return lease_acquire(tx, c, host, now, actor, true, ret);
}

int coord_lease_retry(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now, const char *actor,
                      LeaseDecision *ret) {
        return lease_acquire(tx, c, host, now, actor, false, ret);
}

int coord_lease_release(StoreTx *tx, const char *host, uint64_t epoch, uint64_t now, const char *actor,
                        char ***ret_groups) {
        int r = store_lease_release(tx, host, epoch);

        if (r <= 0)
                return r;
        r = audit_log_at(tx, (int64_t) now, actor, "lease.release", host, NULL);
        if (r < 0)
                return r;
        /* Only wakes waiters: a failure here costs them a round, not the release. */
        if (ret_groups)
                (void) store_host_groups(tx, host, ret_groups);
        return 1;
}

int coord_on_report(StoreTx *tx, const char *host, const char *state, uint64_t now) {
        int r;

        /* Proof that the host is up: healthy, or rolled back and running its
         * previous image (a failed switch; it will not try that image again,
         * so it would never report healthy and stay unavailable for good). */
        if (!streq(state, "healthy") && !streq(state, "rolled-back"))
                return 0;
        r = store_coord_host_unquarantine(tx, host, streq(state, "healthy"));
        if (r > 0)
                r = audit_log_at(tx, (int64_t) now, "coordinator", "host.unquarantine", host, NULL);
        return r < 0 ? r : 0;
}

/* Leases past their expiry (host's, or every host's when NULL): the host is
 * quarantined, not freed. */
static int expire_leases(StoreTx *tx, const char *host, uint64_t now) {
        _cleanup_strv_free_ char **ids = NULL;
        int r;

        r = store_lease_expired(tx, host, now, &ids);
        for (size_t i = 0; r >= 0 && ids && ids[i]; i++) {
                r = store_lease_quarantine(tx, ids[i]);
                if (r >= 0)
                        r = audit_log_at(tx, (int64_t) now, "coordinator", "host.quarantine", ids[i], NULL);
                if (r >= 0)
                        log_warning("host %s: lease expired without a healthy report: quarantined", ids[i]);
        }
        return r;
}

/* The parts of a tick that fail alone, besides the rollouts (their IDs). */
#define TICK_LEASES (-1)
#define TICK_ROLLOUTS (-2)

/* A rollout whose tick failed this many ticks in a row is paused. */
#define TICK_FAILURES_PAUSE 3

typedef struct TickPart {
        int64_t id;        /* a rollout, TICK_LEASES or TICK_ROLLOUTS */
        unsigned failures; /* ticks in a row */
        char *logged;      /* the reason logged last */
        bool seen;         /* still there this tick */
} TickPart;

struct CoordTicker {
        TickPart *parts;
        size_t n, cap;
        char *fence_holder; /* NULL: not fenced */
        int64_t fence_epoch;
        bool fenced;        /* this run found the lease lost */
};

CoordTicker *coord_ticker_new(void) {
        return calloc(1, sizeof(CoordTicker));
}

CoordTicker *coord_ticker_free(CoordTicker *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n; i++)
                free(t->parts[i].logged);
        free(t->parts);
        free(t->fence_holder);
        free(t);
        return NULL;
}

int coord_ticker_fence(CoordTicker *t, const char *holder, uint64_t epoch) {
        char *h = NULL;

        if (holder && !(h = strdup(holder)))
                return -ENOMEM;
        free(t->fence_holder);
        t->fence_holder = h;
        t->fence_epoch = (int64_t) epoch;
        return 0;
}

static void part_name(int64_t id, char *buf, size_t size) {
        if (id == TICK_LEASES)
                snprintf(buf, size, "lease expiry");
        else if (id == TICK_ROLLOUTS)
                snprintf(buf, size, "the list of rollouts");
        else
                snprintf(buf, size, "rollout %" PRIi64, id);
}

static TickPart *part_find(CoordTicker *t, int64_t id) {
        for (size_t i = 0; t && i < t->n; i++)
                if (t->parts[i].id == id)
                        return &t->parts[i];
        return NULL;
}

static void part_drop(CoordTicker *t, TickPart *p) {
        free(p->logged);
        *p = t->parts[--t->n];
}

/* Part id failed with reason. It is logged when it had not failed before
 * or failed for another reason, not every second. Returns the failed ticks
 * in a row (1 without a ticker). */
static unsigned part_failed(CoordTicker *t, int64_t id, const char *reason) {
        TickPart *p = part_find(t, id);
        char name[64];

        part_name(id, name, sizeof name);
        if (!t) {
                log_error("coordinator: %s: %s", name, reason);
                return 1;
        }
        if (!p) {
                p = ARRAY_PUSH(t->parts, t->n, t->cap);
                if (!p) {
                        log_oom();
                        return 1;
                }
                p->id = id;
        }
        p->seen = true;
        p->failures++;
        if (!streq_ptr(p->logged, reason)) {
                log_error("coordinator: %s: %s%s", name, reason, p->logged ? " (the reason changed)" : "");
                free(p->logged);
                p->logged = strdup(reason);
        }
        return p->failures;
}

/* Part id went through: when it had failed, that it works again is logged. */
static void part_ok(CoordTicker *t, int64_t id) {
        TickPart *p = part_find(t, id);
        char name[64];

        if (!p)
                return;
        part_name(id, name, sizeof name);
        log_info("coordinator: %s: working again after %u failed tick(s)", name, p->failures);
        part_drop(t, p);
}

typedef int (*PartFn)(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now, void *userdata);

/* Runs fn in a transaction of its own, which a fenced ticker begins by
 * checking that it still leads: -ESTALE, and nothing done, when not.
 * Returns 0, or the error with *ret_reason saying what failed (caller
 * frees). */
static int part_run(CoordTicker *t, StoreDb *store, const CoordConfig *c, int64_t id, uint64_t now, PartFn fn,
                    void *userdata, char **ret_reason) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        store_clear_error();
        r = store_tx_begin(store, STORE_TX_WRITE, &tx);
        /* Writes run one at a time and the lease changes only in a write:
         * what this reads holds until the commit. */
        if (r >= 0 && t && t->fence_holder) {
                r = store_leader_holds(tx, t->fence_holder, t->fence_epoch);
                if (r == 0) {
                        t->fenced = true;
                        return -ESTALE;
                }
        }
        if (r >= 0)
                r = fn(tx, c, id, now, userdata);
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r >= 0)
                return 0;
        /* The reason before the rollback, which may fail and say something else. */
        *ret_reason = store_last_error() ? strdup_printf("%s (%s)", store_last_error(), strerror(-r))
                                      : strdup(strerror(-r));
        return r;
}

static int part_expire(StoreTx *tx, const CoordConfig *c _unused_, int64_t id _unused_, uint64_t now,
                       void *userdata _unused_) {
        return expire_leases(tx, NULL, now);
}

typedef struct RolloutIds {
        int64_t *ids;
        size_t n;
} RolloutIds;

static int part_list(StoreTx *tx, const CoordConfig *c _unused_, int64_t id _unused_, uint64_t now _unused_,
                     void *userdata) {
        RolloutIds *l = userdata;
        return coord_rollouts_active(tx, &l->ids, &l->n);
}

static int part_rollout(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now, void *userdata _unused_) {
        return coord_rollout_tick(tx, c, id, now);
}

typedef struct Pause {
        const char *why;
        bool paused; /* now, not before */
} Pause;

static int part_pause(StoreTx *tx, const CoordConfig *c _unused_, int64_t id, uint64_t now, void *userdata) {
        Pause *p = userdata;
        int r = coord_rollout_pause(tx, id, p->why, now);

        p->paused = r > 0;
        return r;
}

int coord_ticker_run(CoordTicker *t, StoreDb *store, const CoordConfig *c, uint64_t now) {
        RolloutIds l = {};
        int r = 0, first = 0;

        if (t)
                t->fenced = false;
        for (size_t i = 0; t && i < t->n; i++)
                t->parts[i].seen = false;
        /* Leases expire whatever the rollouts do, and each rollout moves on
         * in a transaction of its own: one that fails stops neither. */
        for (int64_t part = TICK_LEASES; part >= TICK_ROLLOUTS; part--) {
                _cleanup_free_ char *reason = NULL;
                r = part_run(t, store, c, part, now, part == TICK_LEASES ? part_expire : part_list, &l, &reason);
                if (t && t->fenced)
                        goto fenced;
                if (r < 0) {
                        (void) part_failed(t, part, strempty(reason));
                        first = first ?: r;
                } else
                        part_ok(t, part);
        }
        for (size_t i = 0; i < l.n; i++) {
                _cleanup_free_ char *reason = NULL, *why = NULL;
                int64_t id = l.ids[i];
                char idstr[24];
                Pause p = {};

                /* Its lines name it in a field of their own (JSON logs). */
                snprintf(idstr, sizeof idstr, "%" PRIi64, id);
                log_context_set("rollout", idstr);
                r = part_run(t, store, c, id, now, part_rollout, NULL, &reason);
                if (t && t->fenced)
                        goto fenced;
                if (r >= 0) {
                        part_ok(t, id);
                        continue;
                }
                unsigned n = part_failed(t, id, strempty(reason));
                first = first ?: r;
                if (n < (t ? TICK_FAILURES_PAUSE : 1))
                        continue;
                /* One that keeps failing stops, with the reason, until an
                 * operator resumes it. */
                p.why = why = strdup_printf("the coordinator cannot move it on: its tick failed %u times in a row: %s",
                                            n, strempty(reason));
                free(reason);
                reason = NULL;
                r = why ? part_run(t, store, c, id, now, part_pause, &p, &reason) : -ENOMEM;
                if (t && t->fenced)
                        goto fenced;
                /* Its failure is logged already; the next tick tries again. */
                if (r < 0)
                        log_debug("coordinator: rollout %" PRIi64 ": cannot pause it: %s", id,
                                  reason ? reason : strerror(-r));
                else if (p.paused)
                        log_warning("rollout %" PRIi64 ": paused: %s", id, why);
        }
        log_context_set("rollout", NULL);
        free(l.ids);
        /* Rollouts that are no longer ticked are forgotten. */
        for (size_t i = 0; t && i < t->n;)
                if (!t->parts[i].seen && t->parts[i].id > 0)
                        part_drop(t, &t->parts[i]);
                else
                        i++;
        return first;

fenced:
        /* Another instance coordinates now: what this one ticked before
         * stays, the rest is the other's. Nothing counts as failed. */
        free(l.ids);
        return -ESTALE;
}

int coord_tick(StoreDb *store, const CoordConfig *c, uint64_t now) {
        return coord_ticker_run(NULL, store, c, now);
}
