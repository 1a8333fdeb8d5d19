/* The versions of the external tools whose output lands in an image
 * (mkfs.erofs or mksquashfs, mkfs.fat, mtools, mke2fs, libguestfs), for the
 * build key and the manifest: the same lock gives the same bytes only with
 * the same tools, and the manifest says which ones made them. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "definition.h"

/* The first version in a tool's output: the first whitespace-separated word
 * that starts with a digit, holds a '.' and only letters, digits and
 * . + ~ _ - (e.g. "1.47.0" from "mke2fs 1.47.0 (5-Feb-2023)"). Returns a
 * new string, or NULL when there is none (or on OOM). */
char *toolversion_parse(const char *output);

/* Runs argv (looked up in PATH) with stdin on /dev/null, reads up to 64 KiB
 * of its stdout and stderr together, and parses the version from it; the exit
 * status does not matter (some tools print their version only beside an
 * error). Returns 0 with *ret (caller frees), -ENOENT when the tool could not
 * be started, -EBADMSG when its output holds no version. Does not log. */
int toolversion_probe(char *const *argv, char **ret);

/* The tools of a build as a JSON object of name -> version: the rootfs tool
 * of type, libzstd and zlib (the initramfs's compressors), with disk also mkfs.fat, mtools, mke2fs and libguestfs, with bios
 * also grub-mkimage (core.img). Logs one error naming a tool whose version
 * cannot be told. */
int toolversion_probe_build(RootfsType type, bool disk, bool bios, json_t **ret);

/* The package of the build host that owns path: "NAME VERSION" from dpkg,
 * or the NEVRA from rpm. Returns 0 with *ret (caller frees), or -ENOENT
 * when neither package manager knows the file. Does not log. */
int toolversion_host_package(const char *path, char **ret);
