/* The store of rollouts: rollouts and their hosts, as typed values. The
 * fleet logic (rollout*.c) decides; these functions only read and write. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

typedef enum RolloutState {
        ROLLOUT_RUNNING,
        ROLLOUT_PAUSED,
        ROLLOUT_DONE,
        ROLLOUT_ABORTED,
        _ROLLOUT_STATE_MAX,
        _ROLLOUT_STATE_INVALID = -EINVAL,
} RolloutState;

typedef enum RolloutKind {
        ROLLOUT_KIND_ROLLOUT,
        ROLLOUT_KIND_ROLLBACK,
        _ROLLOUT_KIND_MAX,
        _ROLLOUT_KIND_INVALID = -EINVAL,
} RolloutKind;

/* The names stored and shown ("running", "rollback", ...); NULL or
 * _INVALID for what is not one. */
const char *rollout_state_to_string(RolloutState s);
RolloutState rollout_state_from_string(const char *s);
const char *rollout_kind_to_string(RolloutKind k);
RolloutKind rollout_kind_from_string(const char *s);

/* What a tick reads of a rollout. */
typedef struct Rollout {
        int64_t id;
        RolloutKind kind;
        RolloutState state;
        char *spec;   /* the spec as stored (JSON text); owned */
        int wave;     /* the current wave, 0-based */
        int n_waves;
        bool has_done_at;
        uint64_t done_at; /* when the current wave completed, if has_done_at */
} Rollout;

/* Frees what r owns and empties it. */
void rollout_release(Rollout *r);

/* Reads rollout id into *ret (release with rollout_release()). -ENOENT when
 * there is none, -EBADMSG when its state or kind is not one known. */
int store_rollout_get(StoreTx *tx, int64_t id, Rollout *ret);

/* Sets the state and reason (NULL for none) of rollout id; its finish time
 * is now when finished, none otherwise. */
int store_rollout_set_state(StoreTx *tx, int64_t id, RolloutState state, const char *reason, bool finished,
                            uint64_t now);

/* Host host of rollout id is skipped, with why as its message. */
int store_rollout_skip_host(StoreTx *tx, int64_t id, const char *host, const char *why);

/* Marks the current wave of rollout id completed at now. */
int store_rollout_set_wave_done(StoreTx *tx, int64_t id, uint64_t now);

/* Moves rollout id to its next wave, not completed. */
int store_rollout_next_wave(StoreTx *tx, int64_t id);

/* Marks assigned hosts of rollout id done (on the target, healthy) or
 * failed (in state rolled-back or failed off the target since their
 * assignment or, unless rollback, still reporting that they failed the
 * target itself). */
int store_rollout_update_statuses(StoreTx *tx, int64_t id, bool rollback);

/* *ret gets the number of hosts of rollout id in waves up to wave that are
 * pending or assigned and were seen since now - heartbeat_timeout. */
int store_rollout_count_open(StoreTx *tx, int64_t id, int wave, uint64_t now, uint64_t heartbeat_timeout,
                             int64_t *ret);

/* A wave's hosts and its failures not acknowledged by a resume. */
typedef struct RolloutWaveTally {
        int wave;
        int64_t hosts, failed;
} RolloutWaveTally;

/* The tallies of rollout id's waves up to wave, in order; *ret (caller
 * frees) has *ret_n entries, at most wave + 1. */
int store_rollout_wave_tallies(StoreTx *tx, int64_t id, int wave, RolloutWaveTally **ret, size_t *ret_n);

/* A pending host that may start, and the image it goes to. */
typedef struct RolloutReady {
        char *host, *target;
        bool known; /* whether the catalog has target */
} RolloutReady;

/* Frees n entries of r and r. */
void rollout_ready_free(RolloutReady *r, size_t n);

/* The pending hosts of rollout id that may start: in a wave up to
 * max_wave, seen since now - heartbeat_timeout, and in no later phase than
 * the earliest phase with such a host pending or assigned. *ret (free with
 * rollout_ready_free()) has *ret_n entries. */
int store_rollout_ready(StoreTx *tx, int64_t id, int max_wave, uint64_t now, uint64_t heartbeat_timeout,
                        RolloutReady **ret, size_t *ret_n);

/* Host host is sent to target (marked a rollback when rollback) and is
 * assigned in rollout id at now. */
int store_rollout_assign(StoreTx *tx, int64_t id, const char *host, const char *target, bool rollback, uint64_t now);

/* The failed hosts of rollout id are acknowledged: the failure threshold
 * counts only later ones. */
int store_rollout_ack_failures(StoreTx *tx, int64_t id);

/* The pending hosts of rollout id are skipped. */
int store_rollout_skip_pending(StoreTx *tx, int64_t id);

/* The rollouts a tick moves on (running, paused, done with hosts still
 * pending or assigned), oldest first; *ret_ids (caller frees) has *ret_n. */
int store_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n);
