/* The fleet page's reads of the inventory: every host in one query, with
 * its values of two label keys (GET /v1/fleet). Implemented by
 * store-fleet.c; runs in the caller's transaction. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

typedef struct FleetRow {
        const char *id;
        const char *x, *y;          /* the host's values of the two keys; "" when it has none */
        const char *version, *state; /* "" when not reported */
        bool has_lease;
        uint64_t lease_epoch, lease_expires;
        bool quarantined;
} FleetRow;

/* Calls fn for every host, by ID; the row's strings last until fn
 * returns. A negative return from fn stops the walk and is returned. */
int store_fleet_rows(StoreTx *tx, const char *x, const char *y, int (*fn)(const FleetRow *row, void *userdata),
                     void *userdata);

/* Calls fn for every label key with the number of hosts carrying it. */
int store_fleet_keys(StoreTx *tx, int (*fn)(const char *key, int64_t hosts, void *userdata), void *userdata);
