/* Counts over the fleet for /metrics and /v1/status. Backend-neutral;
 * store-stats.c implements it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct StatsCount {
        char *key; /* "" for none */
        int64_t n;
} StatsCount;

typedef struct FleetStats {
        int64_t hosts;
        int64_t images;
        int64_t blob_bytes;
        StatsCount *by_state; /* hosts by state, ordered by state */
        size_t n_by_state;
        StatsCount *by_version; /* hosts by image version, ordered */
        size_t n_by_version;
} FleetStats;

/* Frees what s holds and zeroes it. */
void fleet_stats_release(FleetStats *s);

/* Reads the counts, and the hosts by state and by version when groups.
 * Nothing is returned unless all were read. */
int store_stats_read(StoreTx *tx, bool groups, FleetStats *ret);
