/* The full GPT disk image of a host (esp, root-a, root-b, var), assembled with
 * libguestfs: no root privileges and no loop devices needed. */
#pragma once

#include <stdint.h>

#include "definition.h"

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
        BootLoaderType loader;   /* what chooses the slot */
        BootFirmware firmware;   /* grub only: uefi, bios or both */
        const char *shim_path;   /* grub + UEFI: the image's shim, or NULL: GRUB is BOOTX64.EFI itself */
        const char *grub_efi_path; /* grub + UEFI: the image's GRUB EFI binary */
        const char *grub_pc_boot_img; /* grub + BIOS: the image's i386-pc/boot.img, its modules beside it */
} DiskSpec;

/* Writes the disk image to out_path (replaced atomically). With
 * systemd-boot, the ESP gets systemd-boot (loader_path) and the Boot Loader
 * Spec entry slipway-1-<version>.conf for slot A (common/loaderentry.h).
 * With grub, it gets the generated grub.cfg (common/grubcfg.h) and a fresh
 * grubenv in /slipway, and for UEFI shim and GRUB in /EFI/BOOT with the
 * config GRUB looks for under its built-in prefix; for BIOS a BIOS boot
 * partition comes first, holding a core.img made with grub-mkimage from the
 * image's own modules, and GRUB's boot.img goes into the MBR. Returns
 * -ENOSPC when the rootfs does not fit root-size. */
int disk_make(const DiskSpec *spec, const char *out_path);
