/* The image definition: an INI file (images/NAME.conf) naming the image, its
 * packages, the repositories they come from, boot and disk settings. */
#pragma once

#include <stdint.h>

#include "macro.h"

typedef enum RootfsType {
        ROOTFS_EROFS,
        ROOTFS_SQUASHFS,
        _ROOTFS_TYPE_MAX,
        _ROOTFS_TYPE_INVALID = -EINVAL,
} RootfsType;

const char *rootfs_type_to_string(RootfsType t);
RootfsType rootfs_type_from_string(const char *s);

/* [boot] loader: what chooses the slot on the disk image. */
typedef enum BootLoaderType {
        BOOT_LOADER_SYSTEMD_BOOT,
        BOOT_LOADER_GRUB,
        _BOOT_LOADER_TYPE_MAX,
        _BOOT_LOADER_TYPE_INVALID = -EINVAL,
} BootLoaderType;

/* [boot] firmware: what the disk image boots under. */
typedef enum BootFirmware {
        BOOT_FIRMWARE_UEFI,
        BOOT_FIRMWARE_BIOS,
        BOOT_FIRMWARE_BOTH,
        _BOOT_FIRMWARE_MAX,
        _BOOT_FIRMWARE_INVALID = -EINVAL,
} BootFirmware;

/* "systemd-boot", "grub"; "uefi", "bios", "both". Static strings; NULL or
 * _INVALID for what is not one of them. */
const char *boot_loader_type_to_string(BootLoaderType t);
BootLoaderType boot_loader_type_from_string(const char *s);
const char *boot_firmware_to_string(BootFirmware f);
BootFirmware boot_firmware_from_string(const char *s);

typedef struct RepoDef {
        char *id;           /* from "[repo ID]" (or "[ID]" in an included .repo file) */
        char *name;         /* name, for messages; NULL when not given */
        char *baseurl;      /* the first of baseurls, or NULL when there is none */
        char **baseurls;    /* baseurl: absolute file://, http:// or https:// URLs, in order; may be NULL */
        char *mirrorlist;   /* mirrorlist: URL of a file of baseurls, one a line; or NULL */
        char *metalink;     /* metalink: URL of a metalink XML; or NULL */
        bool enabled;       /* enabled, default on; disabled repositories are dropped by image_def_load() */
        bool gpgcheck;      /* gpgcheck, default on: packages must be signed by a gpgkey */
        bool repo_gpgcheck; /* repo_gpgcheck, default off: repomd.xml must carry a gpgkey's signature */
        char **gpgkeys;     /* gpgkey: absolute file://, http:// or https:// URLs */
        unsigned timeout;   /* timeout: seconds a mirror may stay below minrate; 0 = the default */
        uint64_t minrate;   /* minrate: bytes/s, 0 = the default */
        int priority;         /* priority, default 99: the lower wins (resolve.h) */
        unsigned cost;        /* cost, default 1000: among equal priorities, the lower wins */
        char **includepkgs;   /* includepkgs: globs; only matching packages are seen, NULL for all */
        char **excludepkgs;   /* excludepkgs: globs of packages never seen */
        bool module_hotfixes; /* module_hotfixes: its packages escape modular filtering */
        char *file;         /* the file that defines it: the definition or an included .repo file */
        unsigned line;      /* where the section's first key is, for messages */
} RepoDef;

/* The kinds of a comps group's packages to install ([packages]
 * group-package-types), as bits. */
typedef enum GroupPackageType {
        GROUP_PACKAGE_MANDATORY = 1 << 0,
        GROUP_PACKAGE_DEFAULT = 1 << 1,
        GROUP_PACKAGE_OPTIONAL = 1 << 2,
        GROUP_PACKAGE_CONDITIONAL = 1 << 3,
} GroupPackageType;

typedef struct ImageDef {
        char *path;                /* the .conf file */
        char *name;                /* [image] name */
        char *version;             /* [image] version, or --version */
        char *arch;                /* [image] arch, default x86_64 */
        char *releasever;          /* [image] releasever, or NULL */
        char *min_from_version;    /* [image] min-from-version, or NULL */
        char **packages;           /* [packages] install: "NAME", "NAME OP VERSION", a path, "@GROUP" or
                                    * "@^ENVIRONMENT", sorted and unique */
        char **exclude;            /* [packages] exclude: globs of packages never installed */
        bool install_weak_deps;    /* [packages] install_weak_deps, default on */
        unsigned group_package_types; /* [packages] group-package-types, GroupPackageType bits */
        char **modules;            /* [modules] enable: "NAME:STREAM" or "NAME:STREAM/PROFILE", file order */
        char **modules_disable;    /* [modules] disable: module names, file order */
        RepoDef *repos;            /* [repo ID] sections, in file order */
        size_t n_repos;
        char *cmdline;             /* [boot] cmdline */
        char **initramfs_modules;  /* [boot] initramfs-modules */
        BootLoaderType loader;     /* [boot] loader, default systemd-boot */
        BootFirmware firmware;     /* [boot] firmware, default uefi */
        uint64_t esp_size;         /* [disk] esp-size */
        uint64_t root_size;        /* [disk] root-size, each slot */
        uint64_t var_size;         /* [disk] var-size */
        RootfsType rootfs_type;    /* [rootfs] type */
        char *rpmdb_path;          /* [rootfs] rpmdb, default /usr/lib/sysimage/rpm */
} ImageDef;

/* "x86_64" for x86_64, "i386" for i686, "armhfp" for armv7hl: the $basearch
 * dnf derives from an arch. Static string. */
const char *arch_to_basearch(const char *arch);

/* Replaces $basearch, $arch and $releasever (also written ${name}) in s with
 * the values def gives (releasever may be NULL: then it is unknown). A '$'
 * followed by anything but a letter, '_' or '{' stays as it is. ret_unknown
 * gets the name of an unknown or unset variable (caller frees) and the
 * result is -ENOENT; -EINVAL for an unterminated "${". ret is the new
 * string, caller frees. */
int repo_vars_substitute(const char *s, const char *arch, const char *releasever, char **ret, char **ret_unknown);

/* Loads and validates a definition. version_override (may be NULL) replaces
 * [image] version. Relative repo and key paths are taken from the file's
 * directory; a repository with gpgcheck on must list a gpgkey (the keys
 * themselves are read by the build, sigcheck.h).
 * Errors are logged with file:line and returned as negative errno. */
int image_def_load(const char *path, const char *version_override, ImageDef **ret);
ImageDef *image_def_free(ImageDef *d);

static inline void image_def_freep(ImageDef **d) {
        image_def_free(*d);
}
#define _cleanup_image_def_free_ _cleanup_(image_def_freep)
