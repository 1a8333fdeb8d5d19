/* The instances' area of the store: the registry of the slipwayd processes
 * that share one state (each records itself and renews a heartbeat), and
 * the coordinator's leader lease, one row that one instance at a time
 * holds with an epoch that only grows. Every time here is the database's
 * clock in milliseconds, read in the statement that uses it, so instances
 * whose own clocks disagree still agree on who leads. Implemented by
 * store-instances.c; every function runs in the caller's transaction.
 * Strings handed back are the caller's to free. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* One instance. What store_instance_heartbeat() reads: name, incarnation
 * (a random token of the process), url, version, pid. What
 * store_instance_list() fills in besides: started (ms since the epoch) and
 * heartbeat_age (ms since its last heartbeat). */
typedef struct Instance {
        char *name;
        char *incarnation;
        char *url;
        char *version;
        int64_t pid;
        int64_t started;
        int64_t heartbeat_age;
} Instance;

/* Frees the strings of n instances of l and l. */
void instance_list_free(Instance *l, size_t n);

/* Records i as alive now: its row is made, or its heartbeat (and url,
 * version, pid) renewed. Returns 1 when done, 0 when another incarnation
 * has the name and beat less than stale_ms ago (a second process under the
 * same name: it is left alone). */
int store_instance_heartbeat(StoreTx *tx, const Instance *i, int64_t stale_ms);
/* Takes incarnation's row of instance name out of the registry (it stops).
 * Returns 1 when it was there, 0 when not. */
int store_instance_remove(StoreTx *tx, const char *name, const char *incarnation);
/* Forgets the instances whose last heartbeat is more than age_ms old;
 * returns how many. */
int store_instance_prune(StoreTx *tx, int64_t age_ms);
/* Every instance, by name; *ret (free with instance_list_free()) has *ret_n. */
int store_instance_list(StoreTx *tx, Instance **ret, size_t *ret_n);

/* The leader lease as it is. holder and instance are NULL when no one holds
 * it (given up, or never taken); expires_in (ms) is 0 or less once it
 * expired; since is when its holder took it. */
typedef struct LeaderRow {
        char *instance;
        char *holder;
        int64_t epoch;
        int64_t expires_in;
        int64_t since;
} LeaderRow;

void leader_row_release(LeaderRow *r);

/* Takes the leader lease for incarnation holder of instance, or renews it:
 * it is taken when no one holds it or its holder's expired (the epoch goes
 * up by one), renewed when holder holds it and it has not expired (the
 * epoch stays). Either way it now expires ttl_ms from now. Returns 1 with
 * *ret_epoch when holder holds it, 0 when another does. */
int store_leader_acquire(StoreTx *tx, const char *instance, const char *holder, int64_t ttl_ms, int64_t *ret_epoch);
/* The fencing check: 1 when holder holds the lease with epoch and it has
 * not expired, 0 when not. In a write transaction the answer holds until
 * it ends: the lease changes only in write transactions, and those run one
 * at a time. */
int store_leader_holds(StoreTx *tx, const char *holder, int64_t epoch);
/* Gives the lease up when holder holds it with epoch, so that another
 * instance takes it at once. Returns 1 when it did, 0 when holder did not
 * hold it. */
int store_leader_release(StoreTx *tx, const char *holder, int64_t epoch);
/* The lease in *ret (release with leader_row_release()). */
int store_leader_get(StoreTx *tx, LeaderRow *ret);
