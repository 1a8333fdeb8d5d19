/* manifest.json: what an image is made of. The image ID is the sha256 of the
 * manifest's exact bytes; manifest.sig is an Ed25519 signature over them.
 * See docs/image-format.md. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define MANIFEST_FORMAT 1
#define MANIFEST_SIZE_MAX (16 * 1024 * 1024)

/* What an image name or version may hold, for error messages. A version
 * never holds '+': the agent names a version's boot entry
 * "slipway-<gen>-<version>+<tries>.conf", and systemd-boot reads
 * "+<digits>[-<digits>]" before ".conf" as the boot counter, so "1.0+1"
 * could not be told from 1.0 with one try left. */
#define IMAGE_NAME_RULE "1 to 64 ASCII letters, digits and . _ - + ~, not starting with . or -"
#define IMAGE_VERSION_RULE \
        "1 to 64 ASCII letters, digits and . _ - ~ ^, not starting with . or -; no '+', which boot counting uses"

typedef struct ManifestArtifact {
        char *type;   /* "rootfs", "kernel", "initrd", "disk" */
        char *sha256; /* hex */
        uint64_t size;
        char *fstype; /* rootfs only: "erofs" or "squashfs"; else NULL */
} ManifestArtifact;

typedef struct Manifest {
        char *name;
        char *version;
        char *arch;
        uint64_t build_time;     /* SOURCE_DATE_EPOCH used for the build */
        char *cmdline;           /* kernel command line, without the slot */
        char *kernel_version;
        char *min_from_version;  /* oldest version a host may update from, or NULL */
        uint64_t root_size;      /* size of a root slot the image expects */
        ManifestArtifact *artifacts;
        size_t n_artifacts;
        json_t *lock;            /* the resolved package set, kept as JSON */
        json_t *tools;           /* build tools whose output is in the image: name -> version; may be NULL */
        json_t *boot;            /* boot chain files: role -> {path, sha256, source, package}; may be NULL */
        char *loader;            /* "systemd-boot" or "grub": what chooses the slot on the disk; NULL: systemd-boot */
        char *firmware;          /* "uefi", "bios" or "both": what the disk boots under; NULL: uefi */
} Manifest;

/* true when s is a valid image name (IMAGE_NAME_RULE); false for NULL. */
bool image_name_valid(const char *s);

/* true when s is a valid image version (IMAGE_VERSION_RULE): what the
 * builder builds, the server publishes and the agent installs, and what
 * agent/bootentry.c parses back from an entry's file name. False for NULL. */
bool image_version_valid(const char *s);

Manifest *manifest_new(void);
Manifest *manifest_free(Manifest *m);
static inline void manifest_freep(Manifest **m) {
        manifest_free(*m);
}
#define _cleanup_manifest_free_ _cleanup_(manifest_freep)

/* Adds an artifact (copies the strings). fstype may be NULL. */
int manifest_add_artifact(Manifest *m, const char *type, const char *sha256, uint64_t size, const char *fstype);
const ManifestArtifact *manifest_find_artifact(const Manifest *m, const char *type);

/* Serializes with sorted keys and two-space indentation, ending in a newline:
 * the same Manifest always gives the same bytes. Caller frees *ret. */
int manifest_to_bytes(const Manifest *m, char **ret, size_t *ret_size);

/* Parses and validates (types, sha256 syntax, names) manifest bytes of at most
 * MANIFEST_SIZE_MAX. On error, ret_error (may be NULL) gets a static-length
 * description naming the offending member. */
int manifest_parse(const char *data, size_t size, Manifest **ret, char *ret_error, size_t error_size);

/* The image ID: sha256 of the manifest bytes, in hex. */
void manifest_id(const char *data, size_t size, char ret_hex[65]);
