/* The audit log: every change, who made it, when and why. */
#pragma once

#include "store.h"

#include <jansson.h>
#include <stdint.h>

/* Appends an entry dated now (Unix time, given by the caller like every
 * time the fleet logic uses, so that the simulator's entries carry its
 * virtual time), in the caller's transaction: it lands with the decision it
 * records, or not at all. detail may be NULL; it is not stolen. */
int audit_log_at(StoreTx *tx, int64_t now, const char *actor, const char *action, const char *target, json_t *detail);
