/* The audit log: every change, who made it, when and why. */
#pragma once

#include "store.h"

#include <jansson.h>
#include <stdint.h>

/* Appends an entry, inside the caller's transaction when there is one (the
 * caller holds the db lock). detail may be NULL; it is not stolen. */
int audit_log(StoreTx *tx, const char *actor, const char *action, const char *target, json_t *detail);
/* The same, dated now (Unix time) rather than by the clock. */
int audit_log_at(StoreTx *tx, int64_t now, const char *actor, const char *action, const char *target, json_t *detail);
