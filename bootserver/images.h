/* The image catalog as the rest of slipwayd used it before catalog.h: the
 * lookups that the boot, host and rollout code call. */
#pragma once

#include "store.h"

#include <jansson.h>

#include "catalog.h"

/* Resolves ref to an image ID (catalog_resolve()). */
static inline int images_resolve(StoreTx *tx, const char *ref, char ret_id[65]) {
        return catalog_resolve(tx, ref, ret_id);
}

/* Reads and parses the manifest blob manifest_hex under state_dir
 * (catalog_load_manifest()); caller frees the manifest. */
struct Manifest;
int images_load_manifest(const char *state_dir, const char *manifest_hex, struct Manifest **ret);

/* The kernel command line of a manifest ("" when it has none); caller
 * frees. Frees m. */
char *images_manifest_cmdline(struct Manifest *m);
