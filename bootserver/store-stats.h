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
        /* With the groups, from the same pass over the hosts: */
        int64_t leases;            /* hosts holding a reboot lease */
        int64_t quarantined;       /* hosts quarantined */
        int64_t last_seen;         /* the newest check-in of a host with a MAC (seconds since the epoch), 0 for none */
        StatsCount *health_failed; /* hosts failing on an image, by the image, ordered */
        size_t n_health_failed;
} FleetStats;

/* Frees the n counts of l (their keys) and l. */
void stats_counts_free(StatsCount *l, size_t n);

/* Frees what s holds and zeroes it. */
void fleet_stats_release(FleetStats *s);

/* Reads the counts, and with groups the hosts by state, by version and
 * failing by image, leased, quarantined and the newest check-in, all in
 * one pass over the hosts. Nothing is returned unless all were read. */
int store_stats_read(StoreTx *tx, bool groups, FleetStats *ret);

/* A budgeted group (key=value with a budget of its own or of its key): its
 * members, those held out by their own state (a lease, quarantine,
 * unhealthy), those holding a lease, those silent and not held, and the
 * budget that holds for it (Budget's three amounts, -1 when unset). */
typedef struct StatsGroup {
        char *group; /* "rack=r1" */
        int64_t members, held, leases, silent;
        int64_t max_unavailable, max_unavailable_pct, min_available;
} StatsGroup;

/* A rollout that is running or paused: its current wave (1-based), its
 * waves, and its hosts by status; spec is the stored JSON text. */
typedef struct StatsRollout {
        int64_t id;
        char *state, *kind, *spec;
        int64_t wave, n_waves;
        int64_t pending, assigned, done, failed, skipped;
} StatsRollout;

/* A pipeline /metrics shows: running, or finished within
 * STATS_PIPELINE_KEEP seconds. spec is the stored JSON text. */
typedef struct StatsPipeline {
        int64_t id;
        char *name, *image, *state, *phase, *spec;
        int64_t stage; /* 0-based */
} StatsPipeline;

/* How long a finished pipeline stays on /metrics: a day, so that an alert
 * on one that failed is seen, and the series do not pile up. */
#define STATS_PIPELINE_KEEP (24 * 3600)

/* What operators alert on, read from the store: the same on every
 * instance that shares it. */
typedef struct OpsStats {
        int64_t silent;       /* hosts with a MAC not seen within the heartbeat timeout */
        StatsCount *rollouts; /* rollouts by state */
        size_t n_rollouts;
        StatsRollout *active; /* running and paused, by id */
        size_t n_active;
        StatsGroup *groups;   /* budgeted groups, by key and value */
        size_t n_groups;
        StatsPipeline *pipelines; /* running and recently finished, by id */
        size_t n_pipelines;
} OpsStats;

/* Frees what s holds and zeroes it. */
void ops_stats_release(OpsStats *s);

/* Reads the counts at now (seconds) with heartbeat_timeout (seconds).
 * Nothing is returned unless all were read. */
int store_stats_ops_read(StoreTx *tx, uint64_t now, uint64_t heartbeat_timeout, OpsStats *ret);
