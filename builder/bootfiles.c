/* Where each boot file is looked for, in this order; a pattern's matches
 * are taken in sorted order:
 *
 *  systemd-boot  /usr/lib/systemd/boot/efi/systemd-bootx64.efi
 *                (systemd-boot-efi in Debian, systemd-boot-unsigned in Fedora
 *                and RHEL-family distributions, both at this path)
 *  shim          /boot/efi/EFI/<vendor>/shimx64.efi (shim-x64, RHEL family)
 *                /usr/lib/shim/shimx64.efi.signed (shim-signed, Debian)
 *                /usr/lib/shim/shimx64.efi (shim-unsigned, Debian)
 *  grub          /boot/efi/EFI/<vendor>/grubx64.efi (grub2-efi-x64)
 *                /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
 *                (grub-efi-amd64-signed, Debian)
 *  grub-pc       /usr/lib/grub/i386-pc/boot.img (grub-pc-bin, Debian),
 *                /usr/lib/grub2/i386-pc/boot.img (grub2-pc-modules, RHEL
 *                family): the MBR's code; core.img is made from the
 *                modules beside it
 *
 * The package that owns a file is asked from the staging root's rpmdb, and
 * named with the lock's NEVRA of that package. */

#include <glob.h>
#include <rpm/rpmdb.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmmacro.h>
#include <sys/stat.h>

#include "bootfiles.h"
#include "hash.h"
#include "librpm.h"
#include "log.h"
#include "toolversion.h"
#include "util.h"

static const char *const role_names[_BOOT_ROLE_MAX] = {
        [BOOT_ROLE_SYSTEMD_BOOT] = "systemd-boot",
        [BOOT_ROLE_SHIM] = "shim",
        [BOOT_ROLE_GRUB] = "grub",
        [BOOT_ROLE_GRUB_PC] = "grub-pc",
};

static const char *const role_paths[_BOOT_ROLE_MAX][4] = {
        [BOOT_ROLE_SYSTEMD_BOOT] = { BOOTFILES_SYSTEMD_BOOT_PATH },
        [BOOT_ROLE_SHIM] = { "/boot/efi/EFI/*/shimx64.efi", "/usr/lib/shim/shimx64.efi.signed",
                             "/usr/lib/shim/shimx64.efi" },
        [BOOT_ROLE_GRUB] = { "/boot/efi/EFI/*/grubx64.efi", "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" },
        [BOOT_ROLE_GRUB_PC] = { "/usr/lib/grub/i386-pc/boot.img", "/usr/lib/grub2/i386-pc/boot.img" },
};

static const char *const loader_packages[] = { "systemd-boot-efi", "systemd-boot-unsigned", "systemd-boot" };

const char *boot_role_to_string(BootRole role) {
        return role >= 0 && role < _BOOT_ROLE_MAX ? role_names[role] : NULL;
}

bool bootfiles_lock_has_loader(const Lock *lock) {
        for (size_t i = 0; i < lock->n_packages; i++)
                for (size_t j = 0; j < ELEMENTSOF(loader_packages); j++)
                        if (streq(lock->packages[i].name, loader_packages[j]))
                                return true;
        return false;
}

/* The first regular file matching pattern under root; its path in the image
 * goes to *ret (NULL when none). */
static int find_in_root(const char *root, const char *pattern, char **ret) {
        _cleanup_free_ char *full = path_join(root, pattern);
        glob_t g = {};
        int k;

        *ret = NULL;
        if (!full)
                return -ENOMEM;
        k = glob(full, 0, NULL, &g);
        if (k == GLOB_NOSPACE)
                return -ENOMEM;
        for (size_t i = 0; k == 0 && i < g.gl_pathc; i++) {
                struct stat st;
                if (lstat(g.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode)) {
                        *ret = strdup(g.gl_pathv[i] + strlen(root) + (root[strlen(root) - 1] == '/' ? -1 : 0));
                        globfree(&g);
                        return *ret ? 0 : -ENOMEM;
                }
        }
        if (k == 0)
                globfree(&g);
        return 0;
}

/* The lock's NEVRA of the package in the staging root's rpmdb that owns
 * image_path; "unknown" when no package does. */
static int owner_nevra(rpmts ts, const Lock *lock, const char *image_path, char **ret) {
        rpmdbMatchIterator mi = rpmtsInitIterator(ts, RPMDBI_INSTFILENAMES, image_path, 0);
        Header h = mi ? rpmdbNextIterator(mi) : NULL;
        char *nevra = NULL;

        if (h) {
                const char *n = headerGetString(h, RPMTAG_NAME), *v = headerGetString(h, RPMTAG_VERSION),
                           *r = headerGetString(h, RPMTAG_RELEASE), *a = headerGetString(h, RPMTAG_ARCH);
                for (size_t i = 0; i < lock->n_packages && !nevra; i++) {
                        const LockPackage *p = &lock->packages[i];
                        if (streq_ptr(p->name, n) && streq_ptr(p->version, v) && streq_ptr(p->release, r) &&
                            streq_ptr(p->arch, a))
                                nevra = lock_package_nevra(p);
                }
                if (!nevra)
                        nevra = headerGetAsString(h, RPMTAG_NEVRA);
        }
        rpmdbFreeIterator(mi);
        *ret = nevra ? nevra : strdup("unknown");
        return *ret ? 0 : -ENOMEM;
}

static int host_loader(BootFile *f) {
        struct stat st;
        int r;

        if (stat(BOOTFILES_SYSTEMD_BOOT_PATH, &st) < 0 || !S_ISREG(st.st_mode))
                return -ENOENT;
        f->host_path = strdup(BOOTFILES_SYSTEMD_BOOT_PATH);
        f->image_path = strdup(BOOTFILES_SYSTEMD_BOOT_PATH);
        if (!f->host_path || !f->image_path)
                return -ENOMEM;
        r = toolversion_host_package(BOOTFILES_SYSTEMD_BOOT_PATH, &f->package);
        if (r == -ENOENT)
                f->package = strdup("unknown");
        else if (r < 0)
                return r;
        if (!f->package)
                return -ENOMEM;
        f->from_host = true;
        return sha256_file_hex(f->host_path, f->sha256, NULL);
}

static int find_all(rpmts ts, const char *root, const Lock *lock, BootFiles *b) {
        int r;

        for (int role = 0; role < _BOOT_ROLE_MAX; role++) {
                BootFile *f = &b->files[role];

                for (size_t i = 0; i < ELEMENTSOF(role_paths[role]) && role_paths[role][i] && !f->image_path; i++) {
                        r = find_in_root(root, role_paths[role][i], &f->image_path);
                        if (r < 0)
                                return log_oom();
                }
                if (!f->image_path)
                        continue;
                f->host_path = path_join(root, f->image_path);
                if (!f->host_path)
                        return log_oom();
                r = sha256_file_hex(f->host_path, f->sha256, NULL);
                if (r < 0)
                        return log_error_errno(r, "cannot read '%s': %m", f->host_path);
                r = owner_nevra(ts, lock, f->image_path, &f->package);
                if (r < 0)
                        return log_oom();
                log_debug("%s: %s from %s", role_names[role], f->image_path, f->package);
        }
        return 0;
}

int bootfiles_find(const char *root, const char *dbpath, const Lock *lock, bool host_fallback, BootFiles *ret) {
        _cleanup_free_ char *abs_root = NULL;
        BootFiles b = {};
        rpmts ts;
        int r;

        abs_root = realpath(root, NULL);
        if (!abs_root)
                return log_error_errno(negative_errno(), "cannot resolve the staging root '%s': %m", root);
        if (librpm_init() < 0)
                return log_error_errno(-EIO, "cannot read the rpm configuration");
        rpmPushMacro(NULL, "_dbpath", NULL, dbpath, RMIL_CMDLINE);
        ts = rpmtsCreate();
        if (!ts || rpmtsSetRootDir(ts, abs_root) != 0)
                r = log_error_errno(-EINVAL, "cannot open the rpm database of '%s'", abs_root);
        else
                r = find_all(ts, abs_root, lock, &b);
        if (ts)
                rpmtsFree(ts);
        rpmPopMacro(NULL, "_dbpath");
        if (r < 0) {
                bootfiles_release(&b);
                return r;
        }

        if (host_fallback && !b.files[BOOT_ROLE_SYSTEMD_BOOT].image_path) {
                BootFile *f = &b.files[BOOT_ROLE_SYSTEMD_BOOT];
                r = host_loader(f);
                if (r < 0) {
                        bootfiles_release(&b);
                        if (r == -ENOENT)
                                return log_error_errno(r, "the image has no systemd-boot (no package installs %s) "
                                                          "and neither has this build host; add systemd-boot-efi "
                                                          "(or systemd-boot-unsigned) to the packages",
                                                       BOOTFILES_SYSTEMD_BOOT_PATH);
                        return log_error_errno(r, "cannot read the build host's '%s': %m",
                                               BOOTFILES_SYSTEMD_BOOT_PATH);
                }
                log_warning("the image has no systemd-boot (no package installs %s): the ESP gets the build "
                            "host's %s (%s); add systemd-boot-efi (or systemd-boot-unsigned) to the packages",
                            BOOTFILES_SYSTEMD_BOOT_PATH, f->host_path, f->package);
        }
        *ret = b;
        return 0;
}

void bootfiles_release(BootFiles *b) {
        for (int role = 0; role < _BOOT_ROLE_MAX; role++) {
                free(b->files[role].host_path);
                free(b->files[role].image_path);
                free(b->files[role].package);
                b->files[role] = (BootFile){};
        }
}

int bootfiles_to_json(const BootFiles *b, json_t **ret) {
        json_t *o = json_object();

        if (!o)
                return -ENOMEM;
        for (int role = 0; role < _BOOT_ROLE_MAX; role++) {
                const BootFile *f = &b->files[role];
                json_t *j;

                if (!f->image_path)
                        continue;
                j = json_pack("{s:s, s:s, s:s, s:s}", "path", f->image_path, "sha256", f->sha256, "source",
                              f->from_host ? "build host" : "package", "package", f->package);
                if (!j || json_object_set_new(o, role_names[role], j) < 0) {
                        json_decref(o);
                        return -ENOMEM;
                }
        }
        *ret = o;
        return 0;
}

int bootfiles_host_loader_json(json_t **ret) {
        BootFile f = {};
        int r;

        r = host_loader(&f);
        if (r == -ENOENT) {
                *ret = json_null();
                return 0;
        }
        if (r >= 0) {
                *ret = json_pack("{s:s, s:s, s:s}", "path", f.host_path, "sha256", f.sha256, "package", f.package);
                if (!*ret)
                        r = -ENOMEM;
        }
        free(f.host_path);
        free(f.image_path);
        free(f.package);
        return r;
}
