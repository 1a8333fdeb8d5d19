/* Giving a reboot lease back, and which groups that frees a place in: the
 * lease API and FleetLock wake the requests that wait on them. */
#pragma once

#include <stdint.h>

#include "store.h"

/* coord_lease_release() of host's lease (epoch 0: whatever it holds) by
 * actor. When one was given back (returns 1), *ret_groups gets host's
 * groups ("key=value"; a NULL-terminated strv, the caller's, NULL when
 * none); otherwise it is left alone. Reading the groups may fail without
 * undoing the release: they only wake waiters sooner. */
int lease_release_groups(StoreTx *tx, const char *host, uint64_t epoch, const char *actor, char ***ret_groups);
