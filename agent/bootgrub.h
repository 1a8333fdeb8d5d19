/* The GRUB boot back end's state: which slot GRUB boots, kept in grubenv
 * on the ESP (GRUBCFG_ENV_PATH) and read by the grub.cfg that
 * common/grubcfg.c generates, which has the rule. Each change the agent
 * makes is one grubenv_save(): one sector rewritten in place, so a power
 * cut leaves the old state or the new one.
 *
 * The agent's steps, one write each:
 *   drop     the target slot "empty" (being written), the running one
 *            "good" and first: nothing boots the target;
 *   staged   the target "staged" with its version: complete, not offered
 *            (the "+0" of systemd-boot's counting);
 *   arm      the target "trial" with tries, and first;
 *   bless    the target "good" (and first);
 *   bad      the target "bad", the other first.
 * GRUB itself writes only slipway_X_tries, one less before each try. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "macro.h"

/* The tries an armed slot gets (as systemd-boot's entries). */
#define GRUB_TRIES 3

typedef enum GrubSlotState {
        GRUB_SLOT_UNSET,   /* not in grubenv (a disk whose state was never written) */
        GRUB_SLOT_EMPTY,
        GRUB_SLOT_STAGED,
        GRUB_SLOT_TRIAL,
        GRUB_SLOT_GOOD,
        GRUB_SLOT_BAD,
        _GRUB_SLOT_MAX,
        _GRUB_SLOT_INVALID = -EINVAL,
} GrubSlotState;

const char *grub_slot_state_to_string(GrubSlotState s);
GrubSlotState grub_slot_state_from_string(const char *s);

typedef struct GrubState {
        char order[2];             /* the slot tried first, then the other */
        GrubSlotState state[2];    /* a, b */
        int tries[2];              /* trial: boots left; -1 when unset or not a count */
        char *version[2];          /* NULL when unset */
} GrubState;

/* Reads path's grubenv. A missing file is the state of a disk as built
 * without one: nothing set, order "a b". A file that is no grubenv is
 * -EBADMSG (GRUB's load_env would refuse it too). */
int grub_state_load(const char *path, GrubState *ret);
void grub_state_release(GrubState *s);

/* What grub.cfg boots next for s, and why in words (ret_why, may be NULL,
 * caller frees). Also what GRUB does to the count: *ret_counts (may be
 * NULL) true when that boot spends a try. */
int grub_state_next(const GrubState *s, char *ret_slot, bool *ret_counts, char **ret_why);

/* The steps (see above); each loads path, changes what the step changes and
 * saves it with grubenv_save() (other variables are kept). version may be
 * NULL in bootgrub_drop(). */
int bootgrub_drop(const char *path, char slot);
/* A disk as built or brought up: slot good with version, the other empty,
 * slot first. */
int bootgrub_install(const char *path, char slot, const char *version);
int bootgrub_staged(const char *path, char slot, const char *version);
int bootgrub_arm(const char *path, char slot, int tries);
int bootgrub_bless(const char *path, char slot);
int bootgrub_mark_bad(const char *path, char slot);

/* For `slipway-agent status`: lines that say which slot boots next and why,
 * and each slot's state, tries left and version. */
void grub_state_describe(const GrubState *s, FILE *f);
