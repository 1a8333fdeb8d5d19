/* Rollouts that move a host file set (docs/host-files.md, "Rollouts"):
 * each host of the rollout is pinned to the set's new version when its
 * wave assigns it, and is done when its booted slot reports the files
 * digest that version gives it, healthy; one that falls back counts as a
 * failure. Hosts not yet assigned keep the version they have. rollout.c
 * and rollout-plan.c call these; the store is store-rollout-files.h's. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "rollout-spec.h"
#include "store-hosts.h"
#include "store.h"

/* The set a rollout spec moves, resolved at its start. */
typedef struct RolloutFiles {
        char name[64];
        int64_t seq;  /* the version it goes to (a deletion: none of it) */
        int64_t from; /* the live version when it starts (0: none) */
        char *spec, *from_spec; /* their canonical JSON, NULL for none; owned */
} RolloutFiles;

void rollout_files_release(RolloutFiles *f);

/* Resolves s's files into *ret: the version (the newest when s names
 * none) and the live one. -ENXIO with *ret_error when there is no such
 * set or version, -EBUSY when a rollout that is not over moves the set
 * already or the version is live already. */
int rollout_files_resolve(StoreTx *tx, const RolloutSpec *s, RolloutFiles *ret, char **ret_error);

/* Whether the set selects host id at its new or its live version: 1 or 0. */
int rollout_files_selects(StoreTx *tx, const RolloutFiles *f, const char *id);

/* Records, for host id added to rollout rid, the version it goes to and
 * the one it has now (its pin, or the live one). */
int rollout_files_add_host(StoreTx *tx, int64_t rid, const RolloutFiles *f, const char *id);

/* Pins host id of rollout rid (which moves set name) to the version its
 * row names, and records the files digest it is to report. 1 when done;
 * 0 with *ret_why (caller frees) when its files cannot be rendered at that
 * version: the pin is put back and the host is to be skipped. */
int rollout_files_assign(StoreTx *tx, int64_t rid, const char *name, const char *id, char **ret_why);

/* The status pass of a tick for rollout rid (it moves files): its assigned
 * hosts are done when healthy on their image with the files digest they
 * are to report on their booted slot, failed when they went rolled-back
 * or failed since their assignment. */
int rollout_files_statuses(StoreTx *tx, int64_t rid);

/* After an abort of rollout rid: the hosts on their way that did not
 * arrive are pinned back to the version they had; pins equal to the live
 * version are dropped. */
int rollout_files_revert(StoreTx *tx, int64_t rid);

/* Rollout rid is done: when it took every host of the set (no selector),
 * its version becomes the live one and the pins to it are dropped. */
int rollout_files_done(StoreTx *tx, int64_t rid, bool has_selector);
