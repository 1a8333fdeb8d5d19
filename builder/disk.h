/* The full GPT disk image of a host (esp, root-a, root-b, var), assembled with
 * libguestfs: no root privileges and no loop devices needed. */
#pragma once

#include <stdint.h>

typedef struct DiskSpec {
        const char *name;
        const char *version;
        const char *rootfs_path; /* goes into root-a */
        const char *kernel_path;
        const char *initrd_path;
        const char *cmdline;     /* without the slot argument */
        uint64_t esp_size, root_size, var_size;
        uint64_t epoch;          /* timestamps */
        const char *uuid_seed;   /* stable disk and partition GUIDs */
        const char *accel;       /* libguestfs appliance: "auto" (KVM when a probe boot
                                  * shows it runs guests, else TCG), "kvm" or "tcg" */
        const char *probe_cache_dir; /* where "auto" keeps its KVM probe; may be NULL */
        const char *loader_path; /* systemd-boot EFI binary for the ESP (builder/bootfiles.h) */
} DiskSpec;

/* Writes the disk image to out_path (replaced atomically). The ESP gets
 * systemd-boot (loader_path) and the Boot Loader Spec entry slipway-1-<version>.conf for
 * slot A (common/loaderentry.h). Returns -ENOSPC when the rootfs does not
 * fit root-size. */
int disk_make(const DiskSpec *spec, const char *out_path);
