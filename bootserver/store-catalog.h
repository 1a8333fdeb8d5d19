/* The image catalog in the store: images and the artifacts they are made
 * of. Backend-neutral; store-catalog.c implements it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct ImageArtifact {
        char *type;
        char sha256[65];
        uint64_t size;
        char *fstype; /* may be NULL */
} ImageArtifact;

typedef struct Image {
        char id[65]; /* the manifest's digest */
        char *name;
        char *version;
        char *arch;
        char *kernel_version; /* may be NULL */
        char manifest[65];
        char signature[65];
        char *signed_by; /* may be NULL */
        int64_t created;
        ImageArtifact *artifacts;
        size_t n_artifacts;
        uint64_t hosts; /* hosts assigned or running it (read only) */
} Image;

/* Frees what an Image holds and zeroes it; the struct itself is the
 * caller's. */
void catalog_image_release(Image *i);
/* Frees a list of n images (n may be 0, l NULL). */
void catalog_image_list_free(Image *l, size_t n);

/* The image named name at version: its id, -ENOENT when none. */
int store_image_find(StoreTx *tx, const char *name, const char *version, char ret_id[65]);
/* The image whose id starts with prefix: -ENOENT when none, -ENOTUNIQ when
 * several. */
int store_image_find_prefix(StoreTx *tx, const char *prefix, char ret_id[65]);
/* The newest image named name: -ENOENT when none. */
int store_image_find_latest(StoreTx *tx, const char *name, char ret_id[65]);

/* Reads image id with its artifacts; -ENOENT when there is none. */
int store_image_get(StoreTx *tx, const char *id, Image *ret);
/* The ids of every image, newest first; caller frees with strv_free. */
int store_image_ids(StoreTx *tx, char ***ret);

/* Records image i and its artifacts; -EEXIST when its id is taken. */
int store_image_insert(StoreTx *tx, const Image *i);
/* The digests of every blob image id is made of (artifacts, manifest,
 * signature); caller frees with strv_free. */
int store_image_blobs(StoreTx *tx, const char *id, char ***ret);
/* Forgets image id and its artifacts. */
int store_image_delete(StoreTx *tx, const char *id);

/* Blobs: the files images are made of, recorded by digest when uploaded. */

/* Records blob hex of size bytes, first seen at now: 1 when it was added, 0
 * when it was recorded already. */
int store_blob_insert(StoreTx *tx, const char *hex, uint64_t size, int64_t now);
/* The recorded blobs that no image references (as artifact, manifest or
 * signature) among candidates (NULL-terminated, may be NULL), and those
 * recorded before cutoff; each once, caller frees with strv_free. */
int store_blobs_unreferenced(StoreTx *tx, char *const *candidates, int64_t cutoff, char ***ret);
/* Forgets blob hex. */
int store_blob_delete(StoreTx *tx, const char *hex);
