/* The read-only root filesystem of a slot, made reproducibly from a staging
 * root (fixed timestamps, fixed UUID, root ownership as in the RPMs). */
#pragma once

#include <stdint.h>

#include "definition.h"

/* Writes the filesystem image to out_path (replaced atomically). uuid_seed
 * gives a stable filesystem UUID (e.g. derived from name + version). */
int rootfs_make(const char *root, RootfsType type, uint64_t epoch, const char *uuid_seed, const char *out_path);
