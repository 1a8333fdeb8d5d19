/* The store of rollouts that move a host file set (migration 20,
 * docs/host-files.md, "Rollouts"): the set and versions a rollout moves,
 * each host's versions and the files digest it is to report, and what its
 * hosts report. rollout-files.c decides; these functions only read and
 * write. Strings handed back are the caller's to free. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Rollout id moves set name to version seq (0: none of it) from version
 * from, the set's live one when it started. */
int store_rollout_set_files(StoreTx *tx, int64_t id, const char *name, int64_t seq, int64_t from);

/* The set rollout id moves: 1 with *ret_name (caller frees), *ret_seq and
 * *ret_from (each may be NULL), 0 when it moves none. */
int store_rollout_files(StoreTx *tx, int64_t id, char **ret_name, int64_t *ret_seq, int64_t *ret_from);

/* Host host of rollout id goes to version seq of the set and had prev. */
int store_rollout_host_set_files(StoreTx *tx, int64_t id, const char *host, int64_t seq, int64_t prev);

/* Host host of rollout id: the version it goes to and the one it had. */
int store_rollout_host_files(StoreTx *tx, int64_t id, const char *host, int64_t *ret_seq, int64_t *ret_prev);

/* Host host of rollout id is to report digest on its booted slot. */
int store_rollout_host_set_digest(StoreTx *tx, int64_t id, const char *host, const char *digest);

/* An assigned host of a rollout that moves files, and what it reports. */
typedef struct RolloutFilesHost {
        char *host;
        char *target;       /* the image it is assigned */
        char *digest;       /* the files digest it is to report; NULL when not known */
        uint64_t assigned_at;
        char *state, *current_image, *failed_image, *message;
        uint64_t state_since;
        char booted_slot;   /* 'a', 'b' or 0 */
        char *slots;        /* as the host sent them (JSON text) or NULL */
} RolloutFilesHost;

void rollout_files_hosts_free(RolloutFilesHost *v, size_t n);

/* The assigned hosts of rollout id, by host; *ret (free with
 * rollout_files_hosts_free()) has *ret_n entries. The marks the trigger
 * of migration 11 leaves on them are taken off: for these rollouts the
 * image alone does not finish a host. */
int store_rollout_files_assigned(StoreTx *tx, int64_t id, RolloutFilesHost **ret, size_t *ret_n);

/* The hosts of rollout id that are on their way and did not arrive
 * (assigned or failed), with the version they had: *ret_hosts (a strv,
 * caller frees) and *ret_prev (caller frees), *ret_n of them. */
int store_rollout_files_unfinished(StoreTx *tx, int64_t id, char ***ret_hosts, int64_t **ret_prev, size_t *ret_n);

/* Assigned host host of rollout id is done, or failed with message. */
int store_rollout_host_finish(StoreTx *tx, int64_t id, const char *host, bool done, const char *message);
