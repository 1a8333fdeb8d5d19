/* The image store: content-addressed blobs (blobs/sha256/xx/<hex>) and a
 * sqlite catalog (catalog.db) of images and their artifacts. Blobs are
 * laid out and written as common/blobstore.h says, the server's too:
 * through tmp/, fsynced and renamed into place; the catalog row is
 * committed last, so a crash never leaves a half-visible image. A killed
 * writer's temporary files stay in tmp/, where nothing reads them, until
 * store_clean_tmp(). */
#pragma once

#include <stdint.h>

#include "macro.h"

typedef struct Store Store;

typedef struct StoreImage {
        char id[65];           /* sha256 of the manifest */
        char *name;
        char *version;
        char *arch;
        char manifest_sha256[65];
        char signature_sha256[65];
        char *build_key;       /* digest of the build inputs, or NULL */
        uint64_t created;      /* wall clock at publication */
} StoreImage;

/* Opens (creating when missing) the store in dir. */
int store_open(const char *dir, Store **ret);
Store *store_free(Store *s);
static inline void store_freep(Store **s) {
        store_free(*s);
}
#define _cleanup_store_free_ _cleanup_(store_freep)

const char *store_dir(const Store *s);

/* Path of a blob (whether present or not); caller frees. NULL when sha256
 * is not a digest, or out of memory. */
char *store_blob_path(const Store *s, const char *sha256);
bool store_has_blob(const Store *s, const char *sha256);

/* Copies the file at src into the store (no-op when the blob exists).
 * Returns the blob's sha256 and size. */
int store_add_file(Store *s, const char *src, char ret_sha256[65], uint64_t *ret_size);
/* Same, for bytes in memory. */
int store_add_data(Store *s, const void *data, size_t n, char ret_sha256[65]);

/* Records an image whose blobs (artifacts, manifest, signature) are already
 * in the store, in one transaction. Publishing the same ID twice is a no-op;
 * a different ID for an existing name+version is -EEXIST (versions are
 * immutable). artifact_* are parallel arrays of n entries. */
int store_publish(Store *s, const StoreImage *img, char *const *artifact_types, char *const *artifact_sha256,
                  const uint64_t *artifact_sizes, size_t n);

/* Looks an image up by ID (or a unique ID prefix of at least 8 digits),
 * "name:version", or "name" (the most recently published). -ENOENT when
 * none matches. */
int store_find_image(Store *s, const char *ref, StoreImage *ret);
/* Finds an image previously built from the same inputs. */
int store_find_by_build_key(Store *s, const char *build_key, StoreImage *ret);
void store_image_release(StoreImage *img);

/* Calls cb for every image, newest first. */
int store_list_images(Store *s, int (*cb)(const StoreImage *img, void *userdata), void *userdata);

/* Removes what interrupted writers left in tmp/ (temporary blobs that were
 * never renamed into place), unless another process has the store open
 * (it may be writing there): then nothing is removed. Call it before this
 * process writes into the store: while it runs, another process may clean
 * in its place. Returns how many entries were removed, or a negative errno. */
int store_clean_tmp(Store *s);
