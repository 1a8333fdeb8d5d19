/* What the lease API shares with FleetLock's, which gives leases back too. */
#pragma once

#include "server.h"

/* A lease of a host in groups ("key=value") was given back: the requests
 * waiting on those groups ask again. Takes groups (a strv; NULL is fine). */
void lease_waiters_wake(Server *s, char **groups);
