/* The GRUB back end's state in grubenv (bootgrub.h). */
#include <string.h>

#include "bootgrub.h"
#include "grubcfg.h"
#include "grubenv.h"
#include "util.h"

static const char *const state_names[_GRUB_SLOT_MAX] = {
        [GRUB_SLOT_UNSET] = "",        [GRUB_SLOT_EMPTY] = "empty", [GRUB_SLOT_STAGED] = "staged",
        [GRUB_SLOT_TRIAL] = "trial",   [GRUB_SLOT_GOOD] = "good",   [GRUB_SLOT_BAD] = "bad",
};

/* The variables, in the order they are written: all in the first sector. */
static const char *const vars[] = {
        "slipway_order",     "slipway_a", "slipway_a_tries",   "slipway_a_version",
        "slipway_b",         "slipway_b_tries", "slipway_b_version", NULL,
};

const char *grub_slot_state_to_string(GrubSlotState s) {
        return s >= 0 && s < _GRUB_SLOT_MAX ? state_names[s] : NULL;
}

GrubSlotState grub_slot_state_from_string(const char *s) {
        if (!s)
                return GRUB_SLOT_UNSET;
        for (int i = 0; i < _GRUB_SLOT_MAX; i++)
                if (streq(s, state_names[i]))
                        return (GrubSlotState) i;
        return _GRUB_SLOT_INVALID;
}

static int idx(char slot) {
        return slot == 'b';
}

static char *var(char slot, const char *suffix) {
        return strdup_printf("slipway_%c%s", slot, suffix);
}

void grub_state_release(GrubState *s) {
        if (!s)
                return;
        free(s->version[0]);
        free(s->version[1]);
        *s = (GrubState) {};
}

/* A count as the generated chain knows it: "0" to GRUBCFG_TRIES_MAX. */
static int parse_tries(const char *v) {
        return v && v[0] >= '0' && v[0] <= '9' && !v[1] ? v[0] - '0' : -1;
}

static int from_env(const GrubEnv *env, GrubState *ret) {
        GrubState s = { .order = { 'a', 'b' }, .tries = { -1, -1 } };

        if (streq_ptr(grubenv_get(env, "slipway_order"), "b a"))
                s.order[0] = 'b', s.order[1] = 'a';
        for (const char *p = "ab"; *p; p++) {
                _cleanup_free_ char *st = var(*p, ""), *tr = var(*p, "_tries"), *ver = var(*p, "_version");
                const char *v;

                if (!st || !tr || !ver) {
                        grub_state_release(&s);
                        return -ENOMEM;
                }
                /* What grub.cfg does not know it skips: so does the agent. */
                s.state[idx(*p)] = grub_slot_state_from_string(grubenv_get(env, st));
                if (s.state[idx(*p)] < 0)
                        s.state[idx(*p)] = GRUB_SLOT_BAD;
                s.tries[idx(*p)] = parse_tries(grubenv_get(env, tr));
                v = grubenv_get(env, ver);
                if (v && *v && !(s.version[idx(*p)] = strdup(v))) {
                        grub_state_release(&s);
                        return -ENOMEM;
                }
        }
        *ret = s;
        return 0;
}

int grub_state_load(const char *path, GrubState *ret) {
        GrubEnv env = {};
        int r;

        r = grubenv_load(path, &env);
        if (r == -ENOENT)
                return from_env(&env, ret);
        if (r < 0)
                return r;
        r = from_env(&env, ret);
        grubenv_release(&env);
        return r;
}

/* Writes s's variables into env (others stay) and saves. */
static int save(const char *path, GrubEnv *env, const GrubState *s) {
        char order[] = { s->order[0], ' ', s->order[1], 0 };
        int r = grubenv_set(env, "slipway_order", order);

        for (const char *p = "ab"; *p && r >= 0; p++) {
                _cleanup_free_ char *st = var(*p, ""), *tr = var(*p, "_tries"), *ver = var(*p, "_version");
                char tries[2] = { (char) ('0' + MAX(s->tries[idx(*p)], 0)), 0 };

                if (!st || !tr || !ver)
                        return -ENOMEM;
                r = grubenv_set(env, st, grub_slot_state_to_string(s->state[idx(*p)]));
                if (r >= 0)
                        r = grubenv_set(env, tr, tries);
                if (r >= 0)
                        r = grubenv_set(env, ver, s->version[idx(*p)] ? s->version[idx(*p)] : "");
        }
        return r < 0 ? r : grubenv_save(path, env, vars);
}

/* Loads, lets change() alter the state, saves. */
static int step(const char *path, char slot, int tries, const char *version,
                void (*change)(GrubState *s, char slot, int tries)) {
        GrubEnv env = {};
        GrubState s = {};
        int r;

        if (slot != 'a' && slot != 'b')
                return -EINVAL;
        r = grubenv_load(path, &env);
        if (r < 0 && r != -ENOENT && r != -EBADMSG)
                return r;
        r = from_env(&env, &s);
        if (r >= 0 && version) {
                free(s.version[idx(slot)]);
                s.version[idx(slot)] = strdup(version);
                if (!s.version[idx(slot)])
                        r = -ENOMEM;
        }
        if (r >= 0) {
                change(&s, slot, tries);
                r = save(path, &env, &s);
        }
        grub_state_release(&s);
        grubenv_release(&env);
        return r;
}

static void first(GrubState *s, char slot) {
        s->order[0] = slot;
        s->order[1] = slot == 'a' ? 'b' : 'a';
}

static void do_drop(GrubState *s, char slot, int tries _unused_) {
        char other = slot == 'a' ? 'b' : 'a';

        s->state[idx(slot)] = GRUB_SLOT_EMPTY;
        s->tries[idx(slot)] = 0;
        free(s->version[idx(slot)]);
        s->version[idx(slot)] = NULL;
        /* The agent stages only from a slot it has judged: that one is good. */
        s->state[idx(other)] = GRUB_SLOT_GOOD;
        s->tries[idx(other)] = 0;
        first(s, other);
}

static void do_staged(GrubState *s, char slot, int tries _unused_) {
        s->state[idx(slot)] = GRUB_SLOT_STAGED;
        s->tries[idx(slot)] = 0;
}

static void do_arm(GrubState *s, char slot, int tries) {
        s->state[idx(slot)] = GRUB_SLOT_TRIAL;
        s->tries[idx(slot)] = tries;
        first(s, slot);
}

static void do_bless(GrubState *s, char slot, int tries _unused_) {
        s->state[idx(slot)] = GRUB_SLOT_GOOD;
        s->tries[idx(slot)] = 0;
        first(s, slot);
}

static void do_bad(GrubState *s, char slot, int tries _unused_) {
        s->state[idx(slot)] = GRUB_SLOT_BAD;
        s->tries[idx(slot)] = 0;
        first(s, slot == 'a' ? 'b' : 'a');
}

int bootgrub_drop(const char *path, char slot) {
        return step(path, slot, 0, NULL, do_drop);
}

static void do_install(GrubState *s, char slot, int tries _unused_) {
        do_drop(s, slot == 'a' ? 'b' : 'a', 0);
}

int bootgrub_install(const char *path, char slot, const char *version) {
        return version ? step(path, slot, 0, version, do_install) : -EINVAL;
}

int bootgrub_staged(const char *path, char slot, const char *version) {
        return version ? step(path, slot, 0, version, do_staged) : -EINVAL;
}

int bootgrub_arm(const char *path, char slot, int tries) {
        return tries >= 1 && tries <= GRUBCFG_TRIES_MAX ? step(path, slot, tries, NULL, do_arm) : -EINVAL;
}

int bootgrub_bless(const char *path, char slot) {
        return step(path, slot, 0, NULL, do_bless);
}

int bootgrub_mark_bad(const char *path, char slot) {
        return step(path, slot, 0, NULL, do_bad);
}

/* Why slot is not booted, or NULL when it is. */
static const char *skipped(const GrubState *s, char slot) {
        switch (s->state[idx(slot)]) {
        case GRUB_SLOT_GOOD:
                return NULL;
        case GRUB_SLOT_TRIAL:
                return s->tries[idx(slot)] > 0 ? NULL : "its tries ran out";
        case GRUB_SLOT_EMPTY:
                return "it is being written";
        case GRUB_SLOT_STAGED:
                return "it is staged but not offered yet";
        case GRUB_SLOT_BAD:
                return "it was given up";
        default:
                return "it has no state";
        }
}

int grub_state_next(const GrubState *s, char *ret_slot, bool *ret_counts, char **ret_why) {
        const char *why0 = skipped(s, s->order[0]), *why1 = skipped(s, s->order[1]);
        char pick;
        char *why;

        if (!why0 || !why1) {
                pick = !why0 ? s->order[0] : s->order[1];
                bool trial = s->state[idx(pick)] == GRUB_SLOT_TRIAL;
                if (!why0)
                        why = trial ? strdup_printf("slot %c is on trial, first in order; this boot spends a try", pick)
                                    : strdup_printf("slot %c is good and first in order", pick);
                else
                        why = strdup_printf("slot %c is first in order but skipped: %s; slot %c is %s", s->order[0],
                                            why0, pick, trial ? "on trial" : "good");
                if (ret_counts)
                        *ret_counts = trial;
        } else {
                pick = s->state[0] != GRUB_SLOT_EMPTY ? 'a' : 'b';
                why = strdup_printf("no slot is good or on trial (slot %c: %s; slot %c: %s): the last resort, slot %c",
                                    s->order[0], why0, s->order[1], why1, pick);
                if (ret_counts)
                        *ret_counts = false;
        }
        if (!why)
                return -ENOMEM;
        *ret_slot = pick;
        if (ret_why)
                *ret_why = why;
        else
                free(why);
        return 0;
}

void grub_state_describe(const GrubState *s, FILE *f) {
        _cleanup_free_ char *why = NULL;
        char next;

        if (grub_state_next(s, &next, NULL, &why) >= 0)
                fprintf(f, "boots next:  slot %c (%s)\n", next, why);
        fprintf(f, "grub order:  %c, then %c\n", s->order[0], s->order[1]);
        for (const char *p = "ab"; *p; p++) {
                int i = idx(*p);
                const char *v = s->version[i] ? s->version[i] : "-";

                switch (s->state[i]) {
                case GRUB_SLOT_TRIAL:
                        fprintf(f, "grub slot %c: %s on trial, %d %s left\n", *p, v, s->tries[i],
                                s->tries[i] == 1 ? "try" : "tries");
                        break;
                case GRUB_SLOT_UNSET:
                        fprintf(f, "grub slot %c: %s, no state in grubenv\n", *p, v);
                        break;
                default:
                        fprintf(f, "grub slot %c: %s %s\n", *p, v, grub_slot_state_to_string(s->state[i]));
                }
        }
}
