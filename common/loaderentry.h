/* The Boot Loader Spec (type #1) entries Slipway puts on an ESP, named and
 * written in one place for the two that write them: slipway-build (the
 * entry of slot a in a disk image) and the agent (one per staged image).
 *
 * Naming: ESP/loader/entries/<id>[+LEFT[-DONE]].conf, id
 * "slipway-<gen>-<version>".
 *  - gen is a decimal generation without leading zeros: 1 for the first
 *    image a host runs (slipway-build's disk image), then one more for
 *    every image staged on the host. Menu order compares ids newest first,
 *    so the newest staged entry sorts first even when its version is older
 *    (a rollback), and the comparison is version-aware (10 before 9).
 *  - version is the image version as image_version_valid() (manifest.h)
 *    allows it. Never '+': systemd-boot reads "+<digits>" before ".conf" as
 *    a boot counter, so "1.0+5" could not be told from 1.0 with five tries.
 *  - The counter is systemd-boot's boot counting: LEFT tries left, DONE
 *    tries done; no counter means never counted (blessed, or the disk
 *    image's first entry).
 *
 * Body:
 *
 *     title <name> <version> (slot A)
 *     version <version>
 *     linux /slipway/<version>/vmlinuz
 *     initrd /slipway/<version>/initrd
 *     options <cmdline> slipway.slot=a
 *
 * The kernel and initrd of a version live in ESP/slipway/<version>/, shared
 * by the entries of that version. */
#pragma once

#include "macro.h"

#define LOADER_ENTRIES_DIR "loader/entries"
#define LOADER_ENTRY_PREFIX "slipway-"
#define LOADER_ENTRY_SUFFIX ".conf"
/* The kernel command line argument that names the slot to boot. */
#define LOADER_SLOT_KEY "slipway.slot="
/* The directory of the kernels and initrds on the ESP. */
#define LOADER_KERNEL_DIR "slipway"
/* The generation of a disk image's entry. */
#define LOADER_FIRST_GEN 1u

/* "slipway-<gen>-<version>", or NULL when gen is 0, the version is not
 * valid (image_version_valid()) or on allocation failure. Caller frees. */
char *loader_entry_id(unsigned gen, const char *version);

/* "<id>.conf" when tries_left < 0, "<id>+L.conf" when tries_done is 0, else
 * "<id>+L-D.conf". Caller frees; NULL on allocation failure. */
char *loader_entry_file_name(const char *id, int tries_left, int tries_done);

/* The paths (from the ESP's root, with a leading '/') of version's kernel
 * and initrd: "/slipway/<version>/vmlinuz" and ".../initrd". Caller frees;
 * NULL when the version is not valid or on allocation failure. */
char *loader_kernel_path(const char *version);
char *loader_initrd_path(const char *version);

/* The body of the entry that boots image name:version from slot ('a' or
 * 'b') with cmdline (may be NULL or empty; the slot argument is added).
 * -EINVAL when name or version is not valid (image_name_valid(),
 * image_version_valid()), slot is neither, or cmdline holds a line break or
 * a slot argument of its own. ret is the caller's to free. */
int loader_entry_body(const char *name, const char *version, char slot, const char *cmdline, char **ret);
