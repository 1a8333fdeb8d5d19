/* What the lease API shares: with main.c (the waiting requests, the
 * coordinator's settings) and with FleetLock's, which gives leases back too. */
#pragma once

#include "coordinator.h"
#include "server.h"

/* The thread that answers lease requests that wait; stopping answers the
 * waiting with their last refusal (before the daemon stops). */
int lease_waiters_start(Server *s);
void lease_waiters_stop(Server *s);

/* The coordinator's settings from the configuration. */
CoordConfig server_coord_config(Server *s);

/* A lease of a host in groups ("key=value") was given back: the requests
 * waiting on those groups ask again. Takes groups (a strv; NULL is fine). */
void lease_waiters_wake(Server *s, char **groups);
