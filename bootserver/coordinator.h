/* The rollout coordinator: who may go down next. Hosts carry labels; a
 * group is one label value (rack=r1); budgets cap how many hosts of a group
 * may be unavailable at once. A reboot lease is granted only when every
 * group of the host stays within its budget, all at once, in one
 * transaction. Leases carry a fencing epoch that only grows; a lease that
 * expires without a healthy report quarantines its host.
 *
 * Rollouts move a set of hosts to an image in waves, gated by the same
 * leases, pausing or rolling back when a wave fails.
 *
 * Everything here takes the time as a parameter and works on an open
 * transaction (the caller holds the db lock; coord_ticker_run() opens its
 * own when there is none), so that the fleet simulator drives exactly this
 * code with a virtual clock. */
#pragma once

#include "store-coord.h"
#include "store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct CoordConfig {
        uint64_t lease_ttl;         /* seconds */
        uint64_t heartbeat_timeout; /* seconds without a check-in: unreachable */
        uint64_t retry_after;       /* told to refused hosts */
        unsigned assign_per_tick;   /* hosts a rollout's tick assigns at most */
} CoordConfig;

/* A tick assigns at most 1000 hosts of a rollout, about 10 ms of work: a
 * phase of thousands of hosts takes a few ticks (seconds) instead of one
 * tick that holds the writer for tens of milliseconds (docs/coordinator.md,
 * "Assigning in ticks"). */
#define COORD_CONFIG_DEFAULT                                                                \
        ((CoordConfig) { .lease_ttl = 900, .heartbeat_timeout = 90, .retry_after = 10, \
                         .assign_per_tick = 1000 })

/* Why a lease was refused, in a word for /metrics: a group's budget (the
 * site's, or the host's rollout's when that one is the tighter), a
 * rollout's reboot window, the host's quarantine, or (FleetLock) a node
 * that holds a lease in another group. */
typedef enum LeaseRefusal {
        LEASE_REFUSAL_NONE,
        LEASE_REFUSAL_BUDGET,
        LEASE_REFUSAL_WINDOW,
        LEASE_REFUSAL_QUARANTINED,
        LEASE_REFUSAL_GROUP_MOVE,
        LEASE_REFUSAL_ROLLOUT_BUDGET,
        _LEASE_REFUSAL_MAX,
        _LEASE_REFUSAL_INVALID = -EINVAL,
} LeaseRefusal;

/* "budget", "window", "quarantined", "group-move", "rollout-budget"; NULL
 * for none. */
const char *lease_refusal_to_string(LeaseRefusal r);

typedef struct LeaseDecision {
        bool granted;
        LeaseRefusal refusal; /* when refused */
        uint64_t epoch;
        uint64_t expires;
        char *reason;   /* when refused: which group, which budget (caller frees) */
        char *group;    /* "rack=r1" (caller frees) */
        uint64_t retry_after;
} LeaseDecision;

void lease_decision_release(LeaseDecision *d);

/* Parses "3", "10%" into a count or percentage. */
int budget_parse_amount(const char *s, int64_t *ret_count, int64_t *ret_pct);
/* The same for a JSON integer (count) or string ("3", "10%"). */
int budget_parse_json(json_t *v, int64_t *ret_count, int64_t *ret_pct);
/* A budget as a rollout spec gives it: a count or percentage of hosts that
 * may be down (3, "3", "10%"), or {"max_unavailable": 3 | "10%"} or
 * {"min_available": 2}. *ret's selector is left NULL. */
int budget_from_json(json_t *v, Budget *ret);
/* The budget of rollout budgets (a spec's {"SELECTOR": BUDGET} object, or
 * NULL) that holds for group key=value: the group's own, else its key's.
 * Returns 1 with *ret set, 0 when there is none, -EINVAL when the one that
 * holds does not read. */
int rollout_budget_for_group(json_t *budgets, const char *key, const char *value, Budget *ret);
/* "max_unavailable 3", "max_unavailable 10%", "min_available 2". */
void budget_describe(const Budget *b, char *buf, size_t size);
/* A reboot window "HH:MM-HH:MM" (UTC; the end may be past midnight) as
 * minutes of the day. The two may not be equal. */
int window_parse(const char *s, int *ret_start, int *ret_end);
/* Seconds from now until the window opens: 0 while it is open. */
uint64_t window_wait(int start, int end, uint64_t now);
/* Whether a budget or window selector ("rack" or "rack=r1") is well formed. */
bool coord_selector_valid(const char *s);

/* How many of n hosts may be down under b: a count, floor(n * pct / 100)
 * but at least 1 when pct > 0, or n - min_available (never below 0). */
int64_t budget_allowed(const Budget *b, int64_t n);

/* How many hosts of group key=value may be down now, under the site's
 * budget for it (its own or its key's) and, when rollout_budgets (a spec's
 * "budgets" object) is not NULL, a rollout's: the smaller of the two.
 * Returns 1 and sets *ret, or 0 when the group has no budget. */
int coord_group_allowed(StoreTx *tx, const char *key, const char *value, json_t *rollout_budgets, int64_t *ret);

/* Sets (or replaces) budget b, or deletes selector's (-ENOENT when it has
 * none), audited by actor at time now. */
int coord_budget_set(StoreTx *tx, const Budget *b, uint64_t now, const char *actor);
int coord_budget_delete(StoreTx *tx, const char *selector, uint64_t now, const char *actor);
/* Every budget; NULL on a database error. */
json_t *coord_budgets_json(StoreTx *tx);

/* Asks for (or renews) host's reboot lease at time now. */
int coord_lease_acquire(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now, const char *actor,
                        LeaseDecision *ret);
/* The same for a request that waits and asks again: a refusal is not
 * written to the audit log again (its first one was). */
int coord_lease_retry(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now, const char *actor,
                      LeaseDecision *ret);
/* Gives host's lease back (epoch 0: whatever it holds) at time now. Returns
 * 1 when one was released, 0 when there was none or the epoch is stale.
 * When one was given back and ret_groups is not NULL, *ret_groups gets
 * host's groups ("key=value"; a NULL-terminated strv, the caller's, NULL
 * when none), whose waiting requests the freed place may wake; otherwise it
 * is left alone. Reading the groups may fail without undoing the release:
 * they only wake waiters sooner. */
int coord_lease_release(StoreTx *tx, const char *host, uint64_t epoch, uint64_t now, const char *actor,
                        char ***ret_groups);

/* A check-in's effect on coordination: a healthy report, or a rolled-back
 * one from the image the host runs, lifts quarantine. */
int coord_on_report(StoreTx *tx, const char *host, const char *state, uint64_t now);

/* Moves rollout id on at time now (docs/coordinator.md), in the caller's
 * transaction. A running rollout whose stored spec no longer parses is
 * paused with the reason. */
int coord_rollout_tick(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now);
/* The rollouts a tick moves on (running, paused, done with hosts still on
 * the way), oldest first; *ret_ids is the caller's. */
int coord_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n);
/* Pauses rollout id, running or done, as the coordinator, with reason.
 * Returns 1 when it did, 0 when it was paused or over already. */
int coord_rollout_pause(StoreTx *tx, int64_t id, const char *reason, uint64_t now);

/* What a coordinator remembers from one tick to the next: which parts
 * failed, how many ticks in a row, and the reason it logged. */
typedef struct CoordTicker CoordTicker;
CoordTicker *coord_ticker_new(void);
CoordTicker *coord_ticker_free(CoordTicker *t);

/* Periodic work at time now: expire leases (quarantining their hosts), then
 * move every rollout on. Each of these runs in a transaction of its own, so
 * one that fails is undone alone and stops neither lease expiry nor the
 * other rollouts. A failure is logged once, and again only when its reason
 * changes or after it recovered; a rollout whose tick fails 3 times in a
 * row is paused with the reason. t may be NULL: then every failure is
 * logged and pauses its rollout at once. Returns 0 when every part went
 * through, else the error of the first that failed (the others ran). */
int coord_ticker_run(CoordTicker *t, StoreDb *store, const CoordConfig *c, uint64_t now);
/* Fences t: from now on each transaction of coord_ticker_run() first
 * checks that incarnation holder still holds the coordinator's leader
 * lease with epoch (store_leader_holds(), leader.h) and does nothing when
 * it does not; the run then stops there and returns -ESTALE, and nothing
 * counts as a failure. holder NULL lifts the fence (one coordinator and
 * no lease: the simulator). Returns 0 or -ENOMEM. */
int coord_ticker_fence(CoordTicker *t, const char *holder, uint64_t epoch);
/* coord_ticker_run() without a ticker. */
int coord_tick(StoreDb *store, const CoordConfig *c, uint64_t now);

/* Whether host counts as unavailable at now (lease, quarantine, unhealthy,
 * missed heartbeat). */
int coord_host_unavailable(StoreTx *tx, const CoordConfig *c, const char *host, uint64_t now);

/* Rollouts. spec: {"image": REF, "selector": {"k": "v", ...} (optional),
 * "waves": [1, "10%", "50%", "100%"], "bake": SEC, "max_failures": N or
 * "N%", "on_failure": "pause" | "rollback", "order": {"key": "service",
 * "values": ["a", "b"]} (optional), "windows": {...} (optional)}, checked by
 * rollout_spec_parse() (rollout.h); ret_plan gets the waves with their
 * hosts and an estimate. */
int coord_rollout_plan(StoreTx *tx, const CoordConfig *c, json_t *spec, uint64_t reboot_estimate, json_t **ret_plan,
                       char **ret_error);
int coord_rollout_start(StoreTx *tx, const CoordConfig *c, json_t *spec, const char *actor, uint64_t now,
                        int64_t *ret_id, char **ret_error);
/* action: "pause", "resume", "abort", "rollback". */
int coord_rollout_action(StoreTx *tx, int64_t id, const char *action, const char *actor, uint64_t now,
                         int64_t *ret_new_id, char **ret_error);
/* Rollout id as JSON (docs/api.md) in *ret; -ENOENT when there is none. */
int coord_rollout_json(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now, json_t **ret);
/* Every rollout, newest first; NULL on a database error. */
json_t *coord_rollouts_json(StoreTx *tx);

/* Whether image id is in use: a host runs it or is assigned it, a rollout
 * would assign it, or a rollout that is not aborted may roll back to it.
 * Returns 1 with *ret_why saying which ("assigned to or running on 2
 * host(s); rollout 3 may roll back to it"; caller frees), 0 when it is
 * not. */
int coord_image_users(StoreTx *tx, const char *id, char **ret_why);
