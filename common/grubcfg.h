/* The grub.cfg that chooses between the root slots a and b from the state
 * in grubenv, written by slipway-build for a GRUB disk and read by the
 * agent's tests and sim firmware. One definition for both.
 *
 * It uses only what every GRUB 2 has (Debian's and Red Hat's builds alike):
 * set, search --label/--file, load_env and save_env with explicit variable
 * lists, if/elif/else with [ = ], [ != ] and [ -z ], menuentry --id, linux,
 * initrd. No arithmetic (GRUB has none: a count goes down through an
 * if/elif chain) and no menu index: the entry is chosen by its id.
 *
 * The state (grubenv, GRUBCFG_ENV_PATH on the ESP):
 *
 *     slipway_order=b a        the slot tried first, then the other
 *     slipway_a=good           empty | staged | trial | good | bad
 *     slipway_a_tries=0        trial: boots left (GRUB counts it down)
 *     slipway_a_version=1.0    the kernel: ESP/slipway/<version>/vmlinuz
 *     slipway_b=...            the same for b
 *
 * The rule, for each slot in slipway_order: "good" boots; "trial" with
 * tries left boots after GRUB has saved one try fewer (and read it back:
 * a count it cannot save is no try); anything else is skipped. When no
 * slot qualifies: slot a unless it is "empty", else b. Without a grubenv
 * nothing boots (no version names a kernel): the builder writes one. */
#pragma once

#include <stddef.h>

/* The grubenv and grub.cfg, from the ESP's root. */
#define GRUBCFG_ENV_PATH "/slipway/grubenv"
/* The largest try count the generated chain counts down. */
#define GRUBCFG_TRIES_MAX 9

typedef struct GrubCfgOptions {
        const char *esp_label;  /* file system label to find the ESP by; NULL: the file GRUBCFG_ENV_PATH */
        const char *name;       /* the image name, for the menu titles */
        const char *cmdline;    /* kernel arguments (may be NULL); "slipway.slot=X" is added */
        unsigned timeout;       /* seconds the menu shows */
} GrubCfgOptions;

/* The grubenv of a disk as built: slot a "good" with version, slot b
 * "empty", a first; the block GRUB and the agent read (GRUBENV_SIZE bytes
 * into ret). -EINVAL for an invalid version. */
int grubcfg_initial_env(const char *version, char *ret, size_t size);

/* The script. -EINVAL for a label or cmdline with quotes, '$', '\' or a line
 * break, or a name that image_name_valid() refuses. Caller frees *ret. */
int grubcfg_generate(const GrubCfgOptions *o, char **ret);
