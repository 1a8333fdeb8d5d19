/* Reboot leases: permission for a host to go down, with a fencing epoch
 * that only grows. The coordinator (rollouts, budgets) decides on top of
 * these; without budgets every request is granted. */
#pragma once

#include <sqlite3.h>
#include <stdint.h>

/* Seconds a lease lasts unless renewed. */
#define LEASE_TTL_DEFAULT 900
