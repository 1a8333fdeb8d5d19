/* What the lease API shares: with main.c (the waiting requests, the
 * coordinator's settings) and with FleetLock's, which gives leases back too. */
#pragma once

#include "coordinator.h"
#include "server.h"
#include "store-stats.h"

/* The thread that answers lease requests that wait; stopping answers the
 * waiting with their last refusal (before the daemon stops). */
int lease_waiters_start(Server *s);
void lease_waiters_stop(Server *s);

/* The coordinator's settings from the configuration. */
CoordConfig server_coord_config(Server *s);

/* A lease of a host in groups ("key=value") was given back: the requests
 * waiting on those groups ask again. Takes groups (a strv; NULL is fine). */
void lease_waiters_wake(Server *s, char **groups);

/* Counts a refused lease request (not a waiting one's retries) in the
 * metrics, by its reason. */
void lease_refusal_count(Server *s, const LeaseDecision *d);

/* The requests this instance holds waiting for a lease: by the group that
 * refused each last ("none" when that refusal named no group) into
 * *ret_groups (n in *ret_n; free with stats_counts_free()), and by the
 * reason of that refusal into by_reason, indexed by LeaseRefusal. */
int lease_waiters_count(Server *s, StatsCount **ret_groups, size_t *ret_n, uint64_t by_reason[_LEASE_REFUSAL_MAX]);
