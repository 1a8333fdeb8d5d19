/* The image catalog on the server: images published from blobs, looked up
 * by ID, ID prefix, name:version or name. */
#pragma once

#include "store.h"

#include <jansson.h>

#include "server.h"

/* With the db lock held: resolves ref to an image ID (65 bytes). -ENOENT
 * when nothing matches, -EINVAL when ref is malformed. */
int images_resolve(StoreTx *tx, const char *ref, char ret_id[65]);

/* With the db lock held: the image as JSON (docs/api.md), or NULL. */
json_t *images_to_json(StoreTx *tx, const char *id);

/* Reads and parses the manifest of image id; caller frees the manifest. */
struct Manifest;
int images_load_manifest(Server *s, const char *manifest_hex, struct Manifest **ret);

/* The kernel command line of a manifest ("" when it has none); caller
 * frees. Frees m. */
char *images_manifest_cmdline(struct Manifest *m);
