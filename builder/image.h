/* Reading published images back: list, inspect, verify, export. */
#pragma once

#include "store.h"

typedef struct LoadedImage {
        StoreImage entry;
        char *manifest_bytes;
        size_t manifest_size;
        struct Manifest *manifest;
        uint8_t *sig;
        size_t sig_size;
} LoadedImage;

/* Loads an image's manifest and signature from the store by reference
 * (ID, ID prefix, name:version or name). Logs what is missing. */
int image_load(Store *s, const char *ref, LoadedImage *ret);
void image_release(LoadedImage *img);

int image_list(Store *s, bool json);
int image_inspect(Store *s, const char *ref, bool json);
/* Checks the signature against the public key at key_path (a file, or a
 * directory of *.pub keys), the manifest's hash against the ID and every
 * artifact's sha256 and size. Returns -EBADMSG on the first mismatch. */
int image_verify(Store *s, const char *ref, const char *key_path);
/* Writes manifest.json, manifest.sig and the artifacts into dir. */
int image_export(Store *s, const char *ref, const char *dir);
