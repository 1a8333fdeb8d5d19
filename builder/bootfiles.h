/* The EFI binaries of an image's boot chain, taken from the image's own
 * packages where it has them: systemd-boot (which the disk image's ESP
 * boots today), shim and grub (found and recorded, for images that boot
 * through them). Where the image has no systemd-boot, the build host's
 * file stands in, with a warning. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "lock.h"

typedef enum BootRole {
        BOOT_ROLE_SYSTEMD_BOOT,
        BOOT_ROLE_SHIM,
        BOOT_ROLE_GRUB,
        BOOT_ROLE_GRUB_PC, /* GRUB for BIOS: i386-pc/boot.img, beside the modules of core.img */
        _BOOT_ROLE_MAX,
} BootRole;

/* The systemd-boot binary the image packages carry, and the build host's. */
#define BOOTFILES_SYSTEMD_BOOT_PATH "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

typedef struct BootFile {
        char *host_path;   /* the file on the build host (in the staging root, or the host's own); NULL: none */
        char *image_path;  /* its path in the image, or on the host for the fallback */
        char *package;     /* the lock's NEVRA, or the host package ("NAME VERSION"), or "unknown" */
        bool from_host;
        char sha256[65];
} BootFile;

typedef struct BootFiles {
        BootFile files[_BOOT_ROLE_MAX];
} BootFiles;

/* "systemd-boot", "shim", "grub", "grub-pc". */
const char *boot_role_to_string(BootRole role);

/* Finds the boot files in the staging root (absolute dbpath of its rpmdb
 * inside it) and names the lock's package that installed each. With
 * host_fallback, a missing systemd-boot is taken from the build host, with a
 * warning naming the host file. Returns 0; -ENOENT (logged) when systemd-boot
 * is needed and neither the image nor the host has it; other negative
 * errnos (logged). Release ret with bootfiles_release(). */
int bootfiles_find(const char *root, const char *dbpath, const Lock *lock, bool host_fallback, BootFiles *ret);
void bootfiles_release(BootFiles *b);

/* The manifest's "boot" object: role -> {path, sha256, source, package}. */
int bootfiles_to_json(const BootFiles *b, json_t **ret);

/* Whether the lock holds a package that installs systemd-boot (by name:
 * systemd-boot-efi, systemd-boot-unsigned, systemd-boot). */
bool bootfiles_lock_has_loader(const Lock *lock);

/* What the build key holds of the host's systemd-boot for an image that
 * has none: {path, sha256, package}; JSON null when the host has none. */
int bootfiles_host_loader_json(json_t **ret);
