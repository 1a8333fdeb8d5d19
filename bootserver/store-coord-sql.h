/* SQL of the coordinator's store that other areas of the store share (the
 * budgets count the unavailable hosts of a rollout, too). */
#pragma once

/* SQL true for host row h (a table name or alias, a literal) while it is
 * held out of service by its own state: it holds a lease, is quarantined,
 * or reports unhealthy. Migration 18's triggers keep each group's count of
 * such hosts (group_counts.held) on both drivers. */
#define COORD_HELD_SQL(h) \
        "(" h ".lease_epoch IS NOT NULL OR " h ".quarantined <> 0 OR " h ".state = 'unhealthy')"

/* SQL true for host row h while it is silent, whatever else it is: it has
 * a MAC and was not seen since ?1 - ?2 (bind ?1 = now, ?2 = heartbeat
 * timeout). FleetLock clients (hosts without a MAC) only speak before and
 * after a reboot, so silence is normal for them. The index hosts_silent
 * (migration 18) finds the silent hosts. */
#define COORD_SILENT_SQL(h) "(" h ".mac IS NOT NULL AND coalesce(" h ".last_seen, 0) < ?1 - ?2)"

/* SQL true for host row h while it is unavailable: held or silent. It is
 * a comparison: read it, or count it with CASE; sum() and max() of it only
 * run on sqlite. */
#define COORD_UNAVAILABLE_SQL "(" COORD_HELD_SQL("h") " OR " COORD_SILENT_SQL("h") ")"

/* A group's figures for a lease decision (store_group_unavailable()): its
 * members (bind ?3 = key, ?4 = value) and how many of them other than host
 * ?5 are unavailable at ?1 (?2 = heartbeat timeout): the held ones from
 * group_counts, less ?5 when it is one of them, and the silent ones not
 * held. The work is the group's row and the silent hosts of the whole
 * fleet (few: a check-in or the seen flush moves last_seen on), never the
 * group's members one by one. So the silent hosts are read first, through
 * hosts_silent, and each one's label by its key in a subquery that both
 * databases run per row (a join lets them read the group's labels
 * instead); and the lower bound, true of every row (no time is negative),
 * has PostgreSQL's plan for any bound (a prepared statement's generic
 * plan) take a range of the index for a few rows, not a scan of the
 * hosts. No row: no host has the label. */
#define COORD_GROUP_UNAVAILABLE_SQL                                                                     \
        "SELECT g.members, g.held - (SELECT count(*) FROM host_labels sl JOIN hosts s ON s.id = "       \
        "sl.host_id WHERE sl.host_id = ?5 AND sl.key = ?3 AND sl.value = ?4 AND " COORD_HELD_SQL("s")   \
        ") + (SELECT count(*) FROM hosts h WHERE " COORD_SILENT_SQL("h") " AND coalesce(h.last_seen, "  \
        "0) >= 0 AND NOT " COORD_HELD_SQL("h") " AND h.id IS DISTINCT FROM ?5 AND (SELECT l.value FROM " \
        "host_labels l WHERE l.host_id = h.id AND l.key = ?3) = ?4) FROM group_counts g "               \
        "WHERE g.key = ?3 AND g.value = ?4"
