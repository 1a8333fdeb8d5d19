/* FleetLock v1's nodes (Zincati hosts) in the coordinator. A node with id
 * ID is the host "fleetlock:ID", made on first sight, in FleetLock group G
 * (the label fleetlock=G); its lock is the coordinator's reboot lease. A
 * node changes group only while it holds no lock. The protocol itself is
 * api-fleetlock.c's. Each call runs in a transaction of its own on db and
 * takes the time as now. */
#pragma once

#include <stdint.h>

#include "coordinator.h"
#include "store-hosts.h"
#include "store.h"

/* pre-reboot: node cid of group asks for the lock. The decision goes to
 * *ret (the caller releases it): a refusal when the budgets say no, or when
 * the node holds its lock in another group (the reason names that group).
 * -EPERM, with that host's ID in ret_other, when cid is the ID or MAC of a
 * host Slipway knows: a FleetLock client may not act for it, nor make a
 * second record of the same machine. */
int fleetlock_lock(StoreDb *db, const CoordConfig *c, const char *cid, const char *group, uint64_t now,
                   LeaseDecision *ret, char ret_other[HOST_ID_MAX]);
/* steady-state: node cid gives its lock back (if it holds one), reports
 * healthy and moves to group when it may (if it still may not, it stays:
 * the release stands). When a lock was given back, *ret_groups gets the
 * node's groups as coord_lease_release() does. -EPERM as for
 * fleetlock_lock(). */
int fleetlock_unlock(StoreDb *db, const char *cid, const char *group, uint64_t now, char ***ret_groups,
                     char ret_other[HOST_ID_MAX]);
