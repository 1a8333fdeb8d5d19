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

/* Whether rollout id has a host in a wave up to wave that is pending or
 * assigned and was seen since now - heartbeat_timeout: 1 when it has, 0
 * when not. */
int store_rollout_wave_open(StoreTx *tx, int64_t id, int wave, uint64_t now, uint64_t heartbeat_timeout);

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
        bool known;    /* whether the catalog has target */
        bool finished; /* whether what the host reports would make it done or failed once assigned now */
} RolloutReady;

/* Frees n entries of r and r. */
void rollout_ready_free(RolloutReady *r, size_t n);

/* The pending hosts of rollout id (a rollback when rollback) that may
 * start: in a wave up to max_wave, seen since now - heartbeat_timeout, and
 * in no later phase than the earliest phase with such a host pending or
 * assigned; at most limit of them, by wave and, within one, in the order
 * they were added. *ret (free with rollout_ready_free()) has *ret_n
 * entries. */
int store_rollout_ready(StoreTx *tx, int64_t id, int max_wave, uint64_t now, uint64_t heartbeat_timeout,
                        bool rollback, unsigned limit, RolloutReady **ret, size_t *ret_n);

/* Host host is sent to target (marked a rollback when rollback) and is
 * assigned in rollout id at now; finished is RolloutReady's (the next
 * tick's status update reads it then). */
int store_rollout_assign(StoreTx *tx, int64_t id, const char *host, const char *target, bool rollback,
                         bool finished, uint64_t now);

/* The failed hosts of rollout id are acknowledged: the failure threshold
 * counts only later ones. */
int store_rollout_ack_failures(StoreTx *tx, int64_t id);

/* The pending hosts of rollout id are skipped. */
int store_rollout_skip_pending(StoreTx *tx, int64_t id);

/* The rollouts a tick moves on (running, paused, done with hosts still
 * pending or assigned), oldest first; *ret_ids (caller frees) has *ret_n. */
int store_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n);

/* A new rollout of kind kind, running at wave 0 from now: image (NULL for a
 * rollback, which has no one image), its spec as stored, rollback_of (0
 * for none). *ret_id gets its ID. */
int store_rollout_insert(StoreTx *tx, RolloutKind kind, const char *image, const char *spec, int n_waves,
                         int64_t rollback_of, const char *actor, uint64_t now, int64_t *ret_id);

/* Host host is in rollout id, pending, in wave and phase, going from
 * prev_image (NULL when unknown) to target. */
int store_rollout_add_host(StoreTx *tx, int64_t id, const char *host, int wave, int phase, const char *target,
                           const char *prev_image);

/* The hosts rollout of touched (assigned, done or failed, with an image
 * they ran before) are pending in rollback rollout id, in the same waves
 * and phases, going back to that image. */
int store_rollout_add_rollback_hosts(StoreTx *tx, int64_t id, int64_t of);

/* A host of a rollback and what could keep it from going back. */
typedef struct RolloutBackHost {
        char *host, *target;
        bool known;      /* whether the catalog has target */
        int64_t busy_in; /* another rollout (not id or of) that is not aborted and has the host on its way, or 0 */
} RolloutBackHost;

void rollout_back_hosts_free(RolloutBackHost *v, size_t n);

/* The hosts of rollback rollout id (of rollout of), by host ID; *ret (free
 * with rollout_back_hosts_free()) has *ret_n entries. */
int store_rollout_back_hosts(StoreTx *tx, int64_t id, int64_t of, RolloutBackHost **ret, size_t *ret_n);

/* Hosts of rollout id on their way (assigned or failed) that still are
 * assigned its target go back to the image they ran, when the catalog has
 * it, not as a rollback. */
int store_rollout_revert_unfinished(StoreTx *tx, int64_t id);

/* Whether host is on its way in a rollout that is running, paused or done:
 * 1 with *ret_id that rollout, 0 when it is not. */
int store_rollout_host_busy(StoreTx *tx, const char *host, int64_t *ret_id);

/* How image is used by rollouts that are not aborted, per rollout. */
typedef struct RolloutImageUse {
        int64_t rollout_id;
        bool assigns; /* a host pending or assigned goes to it */
        bool returns; /* a host assigned, done or failed came from it: a rollback goes to it */
} RolloutImageUse;

/* *ret_hosts gets the number of hosts assigned or running image; *ret
 * (caller frees) the rollouts that use it, by ID, *ret_n of them. */
int store_image_users(StoreTx *tx, const char *image, int64_t *ret_hosts, RolloutImageUse **ret, size_t *ret_n);

/* What the views of a rollout show beyond Rollout. */
typedef struct RolloutInfo {
        Rollout ro;
        char *reason;         /* or NULL */
        char *image;          /* "name:version", NULL for a rollback or an image gone */
        int64_t rollback_of;  /* 0 for none */
        uint64_t created;
        int64_t hosts, done;  /* its hosts, and those done (store_rollouts_list() only) */
} RolloutInfo;

void rollout_info_release(RolloutInfo *i);
void rollout_infos_free(RolloutInfo *v, size_t n);

/* Rollout id into *ret (release with rollout_info_release()); -ENOENT when
 * there is none. */
int store_rollout_info(StoreTx *tx, int64_t id, RolloutInfo *ret);

/* Every rollout, newest first, with its hosts counted; *ret (free with
 * rollout_infos_free()) has *ret_n entries. */
int store_rollouts_list(StoreTx *tx, RolloutInfo **ret, size_t *ret_n);

/* A wave's hosts by status. */
typedef struct RolloutWaveCounts {
        int wave;
        int64_t hosts, pending, assigned, done, failed, skipped;
} RolloutWaveCounts;

/* The waves of rollout id that have hosts, in order; *ret (caller frees)
 * has *ret_n entries. */
int store_rollout_wave_counts(StoreTx *tx, int64_t id, RolloutWaveCounts **ret, size_t *ret_n);

/* A budgeted group's hosts in a rollout. */
typedef struct RolloutGroupCounts {
        char *group; /* "key=value" */
        int64_t hosts, done, failed, down;
} RolloutGroupCounts;

void rollout_group_counts_free(RolloutGroupCounts *v, size_t n);

/* Per group of every budgeted label key (or budgeted group) with hosts in
 * rollout id, by name: its hosts, done, failed and unavailable at now.
 * *ret (free with rollout_group_counts_free()) has *ret_n entries. */
int store_rollout_group_counts(StoreTx *tx, int64_t id, uint64_t now, uint64_t heartbeat_timeout,
                               RolloutGroupCounts **ret, size_t *ret_n);

/* A host a rollout may take: its ID, the image it would go back to (the
 * one it runs when the catalog has it, else the one last assigned; NULL
 * for none) and its value of the order key (NULL for none). */
typedef struct RolloutCandidate {
        char *host, *image, *order_value;
} RolloutCandidate;

void rollout_candidates_free(RolloutCandidate *v, size_t n);

/* The hosts that have every label of selector (key, value, key, value,
 * ..., NULL; NULL or empty for every host), by ID, with their values of
 * order_key (may be NULL). *ret (free with rollout_candidates_free()) has
 * *ret_n entries. */
int store_rollout_candidates(StoreTx *tx, char *const *selector, const char *order_key, RolloutCandidate **ret,
                             size_t *ret_n);

/* A label of a host. */
typedef struct RolloutLabel {
        char *host, *key, *value;
} RolloutLabel;

void rollout_labels_free(RolloutLabel *v, size_t n);

/* The labels of every host whose key some budget names (a key, or the key
 * of a group), by host and key; *ret (free with rollout_labels_free()) has
 * *ret_n entries. */
int store_budgeted_labels(StoreTx *tx, RolloutLabel **ret, size_t *ret_n);
/* Appends to *v (*n entries, *cap allocated) the labels of key of every
 * host, by host, when no site budget names key (else store_budgeted_labels()
 * has them already): a key only a rollout's budgets name. */
int store_key_labels_unbudgeted(StoreTx *tx, const char *key, RolloutLabel **v, size_t *n, size_t *cap);
