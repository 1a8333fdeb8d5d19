/* The coordinator's store: budgets, the hosts' leases with their fencing
 * epochs, quarantine, groups (a label value) and whether hosts are
 * available. Implemented by store-coord.c. Every function runs in the
 * caller's transaction and only reads or writes: the coordinator
 * (coordinator.c) decides. Strings handed back are the caller's to free. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A budget: selector is a label key ("rack": every rack group) or one group
 * ("service=web"). Exactly one of max_unavailable (count), max_unavailable_pct
 * and min_available is set (>= 0); the others are -1. */
typedef struct Budget {
        char *selector;
        int64_t max_unavailable;
        int64_t max_unavailable_pct;
        int64_t min_available;
} Budget;

/* Frees n budgets of l (their selectors) and l. */
void budget_list_free(Budget *l, size_t n);

/* Sets (adds or replaces) the budget of b->selector. */
int store_budget_set(StoreTx *tx, const Budget *b);
/* Removes the budget of selector; -ENOENT when there is none. */
int store_budget_delete(StoreTx *tx, const char *selector);
/* Every budget, by selector; *ret (free with budget_list_free()) has *ret_n. */
int store_budget_list(StoreTx *tx, Budget **ret, size_t *ret_n);
/* The budget that holds for group key=value: the group's own, else its
 * key's. Returns 1 with *ret set (its selector NULL), 0 when there is none. */
int store_budget_for_group(StoreTx *tx, const char *key, const char *value, Budget *ret);

/* A group: one label value of a host. */
typedef struct HostGroup {
        char *key, *value;
} HostGroup;

/* Frees n groups of l and l. */
void host_group_list_free(HostGroup *l, size_t n);

/* The groups of host, by key; *ret (free with host_group_list_free()) has *ret_n. */
int store_coord_host_groups(StoreTx *tx, const char *host, HostGroup **ret, size_t *ret_n);
/* How many hosts group key=value has. */
int store_group_size(StoreTx *tx, const char *key, const char *value, int64_t *ret);
/* How many hosts group key=value has (*ret_n) and how many of them other
 * than host (NULL: none) are unavailable at now (*ret_down). A host is
 * unavailable while it holds a lease, is quarantined, reports unhealthy, or
 * has a MAC and was not seen since now - heartbeat_timeout (FleetLock
 * clients only speak before and after a reboot: silence is normal for them).
 * It reads the group's counts (group_counts) and the silent hosts, never
 * the group's members one by one. */
int store_group_unavailable(StoreTx *tx, const char *key, const char *value, const char *host, uint64_t now,
                            uint64_t heartbeat_timeout, int64_t *ret_n, int64_t *ret_down);
/* 1 when host is unavailable at now (as above), 0 when it is not; -ENOENT
 * when there is no such host. */
int store_coord_host_unavailable(StoreTx *tx, const char *host, uint64_t now, uint64_t heartbeat_timeout);

/* A host's lease and quarantine. */
typedef struct Lease {
        bool held;
        uint64_t epoch;   /* fencing epoch, when held */
        uint64_t expires; /* when held */
        bool quarantined;
} Lease;

/* Host's lease; -ENOENT when there is no such host. */
int store_lease_get(StoreTx *tx, const char *host, Lease *ret);
/* Host holds the lease epoch until expires. */
int store_lease_set(StoreTx *tx, const char *host, uint64_t epoch, uint64_t expires);
/* Host gives back its lease epoch (0: whatever it holds). Returns 1 when
 * one was released, 0 when it holds none or another epoch. */
int store_lease_release(StoreTx *tx, const char *host, uint64_t epoch);
/* The next fencing epoch: larger than every one handed out before. */
int store_lease_next_epoch(StoreTx *tx, uint64_t *ret);
/* The hosts (host only, unless NULL) whose lease expired before now, as a
 * NULL-terminated strv (NULL when none). */
int store_lease_expired(StoreTx *tx, const char *host, uint64_t now, char ***ret_hosts);
/* Host's lease goes and the host is quarantined. */
int store_lease_quarantine(StoreTx *tx, const char *host);
/* Lifts host's quarantine: when healthy, or else only when it runs an
 * image it reported (a rolled-back host). Returns 1 when host was
 * quarantined and no longer is, 0 otherwise. */
int store_coord_host_unquarantine(StoreTx *tx, const char *host, bool healthy);
/* Host was seen at now. */
int store_coord_host_seen(StoreTx *tx, const char *host, uint64_t now);

/* A reboot window that a running rollout sets for a group of one of its
 * assigned hosts. */
typedef struct RebootWindow {
        char *selector; /* as the rollout's spec names it: "rack" or "rack=r1" */
        char *window;   /* as stored: "HH:MM-HH:MM", not checked */
        char *group;    /* the host's group it matches: "rack=r1" */
} RebootWindow;

/* Frees n windows of l and l. */
void reboot_window_list_free(RebootWindow *l, size_t n);

/* The reboot windows for host's groups in the running rollouts host is
 * assigned in, by selector; *ret (free with reboot_window_list_free()) has
 * *ret_n. */
int store_coord_host_windows(StoreTx *tx, const char *host, RebootWindow **ret, size_t *ret_n);

/* The budgets of a rollout that host is on its way in (assigned), while
 * that rollout is running, paused or done and still finishing hosts: the
 * spec's "budgets" member as JSON text, not checked. */
typedef struct HostRolloutBudgets {
        int64_t rollout;
        char *budgets;
} HostRolloutBudgets;

/* Frees n entries of l and l. */
void host_rollout_budgets_free(HostRolloutBudgets *l, size_t n);

/* The budgets of the rollouts host is assigned in that have any, by
 * rollout; *ret (free with host_rollout_budgets_free()) has *ret_n. */
int store_coord_host_rollout_budgets(StoreTx *tx, const char *host, HostRolloutBudgets **ret, size_t *ret_n);
