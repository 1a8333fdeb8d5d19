/* Labels: the key=value pairs that group hosts (racks, FleetLock groups,
 * rollout selectors). The syntax is shared by the inventory and the rollout
 * and budget code, which use it without the inventory. */
#pragma once

#include <stdbool.h>

/* The longest label key or value. */
#define LABEL_MAX 63

/* A label key or value: 1-63 of [A-Za-z0-9._-]. */
bool label_valid(const char *s);
