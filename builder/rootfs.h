/* The read-only root filesystem of a slot, made reproducibly from a staging
 * root (fixed timestamps, fixed UUID, root ownership as in the RPMs). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "definition.h"

/* Writes the filesystem image to out_path (replaced atomically). uuid_seed
 * gives a stable filesystem UUID (e.g. derived from name + version). */
int rootfs_make(const char *root, RootfsType type, uint64_t epoch, const char *uuid_seed, const char *out_path);

/* Whether the first n bytes of a file (up to 0x210 are looked at) show data
 * that is compressed already: gzip, xz, zstd, bzip2, lz4, zip, PNG, JPEG,
 * WOFF2, an RPM, a Linux bzImage. */
bool rootfs_data_is_compressed(const uint8_t *head, size_t n);

/* The --compress-hints text for mkfs.erofs that stores such files of root
 * without compressing them again (builder/rootfs-hints.c says how). Returns
 * 0 with *ret (caller frees) and its size, or a negative errno (logged). */
int rootfs_erofs_hints(const char *root, char **ret, size_t *ret_size);
