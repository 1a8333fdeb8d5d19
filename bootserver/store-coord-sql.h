/* SQL of the coordinator's store that other areas of the store share (the
 * budgets count the unavailable hosts of a rollout, too). */
#pragma once

/* SQL true for host row h while it is unavailable: it holds a lease, is
 * quarantined, reports unhealthy, or missed its heartbeat (bind ?1 = now,
 * ?2 = heartbeat timeout). FleetLock clients (hosts without a MAC) only
 * speak before and after a reboot, so silence is normal for them. */
#define COORD_UNAVAILABLE_SQL                                                                  \
        "(h.lease_epoch IS NOT NULL OR h.quarantined OR h.state = 'unhealthy' OR "             \
        "(h.mac IS NOT NULL AND coalesce(h.last_seen, 0) < ?1 - ?2))"
