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
/* Marks blob hex as recorded at time 0, so that every instance's garbage
 * collection takes its copy while no image references it. 1 when it was
 * recorded, 0 when not. */
int store_blob_release(StoreTx *tx, const char *hex);
/* Undoes store_blob_release() for a blob uploaded again: recorded at now. */
int store_blob_renew(StoreTx *tx, const char *hex, int64_t now);

/* Holders: which instance keeps a copy of which blob, and the URL its peers
 * fetch it at. */

/* Records that instance (reached at url) holds hex since now; an instance
 * recorded already keeps its time and takes the new URL. */
int store_blob_holder_add(StoreTx *tx, const char *hex, const char *instance, const char *url, int64_t now);
/* The blobs of the catalog that instance is not recorded to hold (caller
 * frees with strv_free; NULL when none). */
int store_blob_holder_missing(StoreTx *tx, const char *instance, char ***ret);
/* Forgets instance's copy of hex: 1 when it was recorded, else 0. */
int store_blob_holder_remove(StoreTx *tx, const char *hex, const char *instance);
/* The URLs of the instances other than except that hold hex, oldest copy
 * first; caller frees with strv_free (NULL when there are none). */
int store_blob_holder_urls(StoreTx *tx, const char *hex, const char *except, char ***ret);
/* The number of instances that hold hex. */
int store_blob_copies(StoreTx *tx, const char *hex, uint64_t *ret);
/* The number of distinct instances that hold any blob. */
int store_blob_holder_instances(StoreTx *tx, uint64_t *ret);

/* Images pushed whose blobs are not yet on enough instances: they are not
 * images yet (no lookup above sees them) until store_replicating_publish(). */

/* Records image i, pushed by actor, as replicating; -EEXIST when its id or
 * name:version is taken among the replicating ones. */
int store_replicating_insert(StoreTx *tx, const Image *i, const char *actor);
/* Reads replicating image id (hosts is 0); -ENOENT when there is none. */
int store_replicating_get(StoreTx *tx, const char *id, Image *ret);
/* The replicating image named name at version, or whose id starts with
 * prefix (-ENOTUNIQ when several do); -ENOENT when none. */
int store_replicating_find(StoreTx *tx, const char *name, const char *version, char ret_id[65]);
int store_replicating_find_prefix(StoreTx *tx, const char *prefix, char ret_id[65]);
/* The ids of the replicating images, oldest first; caller frees with
 * strv_free. */
int store_replicating_ids(StoreTx *tx, char ***ret);
/* Who pushed replicating image id; caller frees. */
int store_replicating_actor(StoreTx *tx, const char *id, char **ret);
/* The digests of every blob of replicating image id; strv_free. */
int store_replicating_blobs(StoreTx *tx, const char *id, char ***ret);
/* The fewest holders any blob of replicating image id has; -ENOENT when it
 * is not replicating. */
int store_replicating_copies(StoreTx *tx, const char *id, uint64_t *ret);
/* Forgets replicating image id. */
int store_replicating_delete(StoreTx *tx, const char *id);
/* Makes replicating image id an image, in the caller's transaction:
 * -ENOENT when it is not replicating (any more), -EEXIST when its
 * name:version was published meanwhile. */
int store_replicating_publish(StoreTx *tx, const char *id);
