/* The full GPT disk image of a host: esp, root-a, root-b, var.
 *
 * The ESP and var filesystems are made on the host, where every random or
 * time-based input can be pinned, and libguestfs writes the partition table
 * and copies them (and the rootfs) into the partitions:
 *
 *  - ESP: mkfs.fat 4.2 has no SOURCE_DATE_EPOCH; --invariant fixes the boot
 *    sector and label times to its own constant, -i sets the volume id (from
 *    the seed). mtools 4.0.32 (mmd, mcopy) stamps new files and directories
 *    with SOURCE_DATE_EPOCH when it is set, so no -m and no staged mtimes are
 *    needed. Directories are made and files copied one by one in a fixed
 *    order (mcopy -s would follow the host's readdir order).
 *  - var: mke2fs 1.47 with E2FSPROGS_FAKE_TIME=<epoch>, -U and
 *    -E hash_seed= from the seed (the checksum seed follows the UUID).
 *  - GPT: parted (part_init, part_add) picks random disk and partition GUIDs;
 *    all five are then set from the seed with sgdisk (part_set_disk_guid,
 *    part_set_gpt_guid). The protective MBR keeps the zero disk signature of
 *    the fresh sparse file. Partitions start at 1 MiB and are MiB-aligned.
 *    root-b, empty, carries the no-auto attribute (common/partition.h), so
 *    that systemd-dissect and the like take root-a for the root: among two
 *    root partitions of one type they would pick the greater label.
 *
 * The loader is the image's own systemd-boot (from its packages, see
 * builder/bootfiles.c), or the build host's where the image has none.
 *
 * systemd-boot 252 and "default slipway-*": the pattern is matched against
 * entry ids (the lowercased file name with ".conf" but without the "+N-M"
 * boot counter), and the first match in menu order wins. Menu order puts
 * entries with no tries left last and otherwise sorts by id, newest version
 * first, so the glob picks the newest slipway entry that still has tries, the
 * same entry boot counting wants, while never picking the firmware's own
 * auto entries.
 *
 * The libguestfs appliance: the direct backend unless LIBGUESTFS_BACKEND
 * says otherwise. Where /dev/kvm exists, KVM may still not run guests: on
 * some hosts qemu aborts at once ("failed to set MSR 0x10a"), on others the
 * guest kernel spins forever and the launch never returns. Accel "auto"
 * therefore asks accel_kvm_usable() first (a probe boot of the image's own
 * kernel, cached per host boot) and uses force_tcg when KVM cannot run a
 * guest; a launch that still fails without force_tcg is retried with it. */

#include <fcntl.h>
#include <guestfs.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "accel.h"
#include "crashpoint.h"
#include "disk.h"
#include "tool.h"
#include "fileio.h"
#include "grubcfg.h"
#include "grubenv.h"
#include "hash.h"
#include "loaderentry.h"
#include "log.h"
#include "partition.h"
#include "util.h"

#define MIB (1024ULL * 1024ULL)
#define SECTOR 512ULL

/* Discoverable Partitions Specification */
#define GPT_TYPE_ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_TYPE_ROOT_X86_64 "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
#define GPT_TYPE_VAR "4D21B016-B534-45C2-A9FB-5C16E091FD2D"
/* GRUB's BIOS boot partition ("Hah!IdontNeedEFI") */
#define GPT_TYPE_BIOS_BOOT "21686148-6449-6E6F-744E-656564454649"

/* i386-pc boot.img and diskboot.img (GRUB's include/grub/i386/pc/boot.h):
 * where boot.img keeps the LBA of core.img's first sector and the jump of
 * its floppy drive check; the blocklist at the end of core.img's first
 * sector that says where the rest of it lies. */
#define BOOT_IMG_KERNEL_SECTOR 0x5c
#define BOOT_IMG_DRIVE_CHECK 0x66
#define BOOT_IMG_CODE_END 0x1b8 /* disk signature and partition table follow */
#define DISKBOOT_BLOCKLIST (512 - 12)

/* The BIOS boot partition comes first when there is one: var stays last,
 * where the agent grows it at install. */
enum { PART_BIOS, PART_ESP, PART_ROOT_A, PART_ROOT_B, PART_VAR, _PART_MAX };

static const struct {
        const char *name;
        const char *type;
} partitions[_PART_MAX] = {
        [PART_BIOS] = { "bios-boot", GPT_TYPE_BIOS_BOOT },
        [PART_ESP] = { "esp", GPT_TYPE_ESP },
        [PART_ROOT_A] = { "root-a", GPT_TYPE_ROOT_X86_64 },
        [PART_ROOT_B] = { "root-b", GPT_TYPE_ROOT_X86_64 },
        [PART_VAR] = { "var", GPT_TYPE_VAR },
};

typedef struct Layout {
        uint64_t start[_PART_MAX]; /* bytes */
        uint64_t size[_PART_MAX];  /* 0: not on this disk */
        int number[_PART_MAX];     /* GPT partition number */
        uint64_t total;
} Layout;

static bool has_bios(const DiskSpec *spec) {
        return spec->loader == BOOT_LOADER_GRUB &&
               (spec->firmware == BOOT_FIRMWARE_BIOS || spec->firmware == BOOT_FIRMWARE_BOTH);
}

static bool has_uefi(const DiskSpec *spec) {
        return spec->loader != BOOT_LOADER_GRUB || spec->firmware != BOOT_FIRMWARE_BIOS;
}

/* Runs a tool with the reproducibility environment for this epoch. */
static int run_tool(char *const *argv, uint64_t epoch) {
        char *const env_unset[] = { "SOURCE_DATE_EPOCH", "E2FSPROGS_FAKE_TIME", "MTOOLS_SKIP_CHECK", "LC_ALL", NULL };
        _cleanup_free_ char *sde = strdup_printf("SOURCE_DATE_EPOCH=%" PRIu64, epoch);
        _cleanup_free_ char *fake = strdup_printf("E2FSPROGS_FAKE_TIME=%" PRIu64, epoch);

        if (!sde || !fake)
                return log_oom();
        char *const env_set[] = { sde, fake, "MTOOLS_SKIP_CHECK=1", "LC_ALL=C", NULL };
        return tool_run(argv, env_unset, env_set, NULL);
}

static int make_sparse_file(const char *path, uint64_t size) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0)
                return log_error_errno(negative_errno(), "failed to create '%s': %m", path);
        if (ftruncate(fd, (off_t) size) < 0)
                return log_error_errno(negative_errno(), "failed to size '%s': %m", path);
        return 0;
}

static int esp_copy(const char *img, const char *src, const char *dst, uint64_t epoch) {
        _cleanup_free_ char *target = strdup_printf("::%s", dst);
        if (!target)
                return log_oom();
        char *const argv[] = { "mcopy", "-i", (char *) img, "-D", "o", (char *) src, target, NULL };
        return run_tool(argv, epoch);
}

/* The directory under /EFI whose grub.cfg the GRUB binary at path reads:
 * the one its built-in prefix names ("/EFI/debian" in Debian's signed
 * GRUB, "/EFI/redhat" and the like in Red Hat's). -ENOENT when it names
 * none. Caller frees *ret. */
static int grub_efi_vendor(const char *path, char **ret) {
        _cleanup_free_ char *data = NULL;
        size_t n;
        int r;

        r = read_full_file(path, 64ULL << 20, &data, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i + 6 < n; i++) {
                size_t k = 0;

                if (memcmp(data + i, "/EFI/", 5) != 0)
                        continue;
                while (i + 5 + k < n && k < 32 &&
                       ((data[i + 5 + k] >= 'a' && data[i + 5 + k] <= 'z') ||
                        (data[i + 5 + k] >= '0' && data[i + 5 + k] <= '9') || data[i + 5 + k] == '_'))
                        k++;
                /* a whole string: NUL right after the name */
                if (k > 0 && i + 5 + k < n && data[i + 5 + k] == 0) {
                        *ret = strndup(data + i + 5, k);
                        return *ret ? 0 : -ENOMEM;
                }
        }
        return -ENOENT;
}

/* What GRUB reads first, under its prefix: find the ESP by the generated
 * script and run it. */
static const char grub_stub_cfg[] = "# Slipway: the slot is chosen by /slipway/grub.cfg on the ESP.\n"
                                    "search --no-floppy --set=root --file /slipway/grub.cfg\n"
                                    "set prefix=($root)/slipway\n"
                                    "source $prefix/grub.cfg\n";

/* Makes the GRUB side of the ESP in img: /slipway/grub.cfg, grubenv, and
 * for UEFI shim + GRUB in /EFI/BOOT with the stub under GRUB's prefix. */
static int esp_grub(const DiskSpec *spec, const char *work, const char *img) {
        _cleanup_free_ char *cfg = path_join(work, "grub.cfg"), *env = path_join(work, "grubenv"),
                            *stub = path_join(work, "grub-stub.cfg"), *text = NULL, *vendor = NULL,
                            *vendor_dir = NULL, *stub_dst = NULL;
        char block[GRUBENV_SIZE];
        int r;

        if (!cfg || !env || !stub)
                return log_oom();
        r = grubcfg_generate(&(GrubCfgOptions) { .name = spec->name, .cmdline = spec->cmdline }, &text);
        if (r == -EINVAL)
                return log_error_errno(r, "cannot make a grub.cfg for %s with the command line \"%s\"", spec->name,
                                       strempty(spec->cmdline));
        if (r < 0)
                return log_oom();
        r = grubcfg_initial_env(spec->version, block, sizeof(block));
        if (r < 0)
                return log_error_errno(r, "cannot make the grubenv for %s: %m", spec->version);
        r = write_file_atomic(cfg, text, strlen(text), 0644);
        if (r >= 0)
                r = write_file_atomic(env, block, sizeof(block), 0644);
        if (r >= 0)
                r = write_file_atomic(stub, grub_stub_cfg, strlen(grub_stub_cfg), 0644);
        if (r < 0)
                return log_error_errno(r, "failed to write GRUB files in '%s': %m", work);
        r = esp_copy(img, cfg, "/" LOADER_KERNEL_DIR "/grub.cfg", spec->epoch);
        if (r >= 0)
                r = esp_copy(img, env, GRUBCFG_ENV_PATH, spec->epoch);
        if (r < 0 || !has_uefi(spec))
                return r;

        r = grub_efi_vendor(spec->grub_efi_path, &vendor);
        if (r < 0)
                return log_error_errno(r, "cannot tell where '%s' reads its grub.cfg (no /EFI/<vendor> prefix in it): %m",
                                       spec->grub_efi_path);
        vendor_dir = strdup_printf("::/EFI/%s", vendor);
        stub_dst = strdup_printf("/EFI/%s/grub.cfg", vendor);
        if (!vendor_dir || !stub_dst)
                return log_oom();
        char *const mmd[] = { "mmd", "-i", (char *) img, vendor_dir, NULL };
        r = run_tool(mmd, spec->epoch);
        if (r < 0)
                return r;
        /* shim, started as the removable-media path, runs grubx64.efi
         * beside it (there is no fallback fbx64.efi to run instead). */
        r = esp_copy(img, spec->shim_path ? spec->shim_path : spec->grub_efi_path, "/EFI/BOOT/BOOTX64.EFI",
                     spec->epoch);
        if (r >= 0 && spec->shim_path)
                r = esp_copy(img, spec->grub_efi_path, "/EFI/BOOT/grubx64.efi", spec->epoch);
        if (r >= 0)
                r = esp_copy(img, stub, stub_dst, spec->epoch);
        if (r < 0)
                return log_error_errno(r, "failed to copy GRUB to the ESP: %m");
        log_debug("GRUB reads /EFI/%s/grub.cfg", vendor);
        return 0;
}

/* Makes the FAT image of the ESP in work/esp.img. */
static int esp_make(const DiskSpec *spec, const char *work, uint64_t size, char **ret_path) {
        _cleanup_free_ char *img = path_join(work, "esp.img"), *loader = path_join(work, "loader.conf"),
                            *entry = path_join(work, "entry.conf"), *entry_conf = NULL, *id = NULL, *file = NULL,
                            *entry_dst = NULL, *vdir = NULL, *kernel_dst = NULL, *initrd_dst = NULL, *volid = NULL;
        static const char loader_conf[] = "timeout 0\neditor no\ndefault " LOADER_ENTRY_PREFIX "*\n";
        uint8_t b[16];
        int r;

        if (!img || !loader || !entry)
                return log_oom();
        sha256_seed_bytes(spec->uuid_seed, "esp-volume-id", b);
        volid = strdup_printf("%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
        r = loader_entry_body(spec->name, spec->version, 'a', spec->cmdline, &entry_conf);
        if (r == -EINVAL)
                return log_error_errno(r, "cannot make a boot entry for %s %s with the command line \"%s\"",
                                       spec->name, spec->version, strempty(spec->cmdline));
        if (r < 0)
                return log_oom();
        /* The first image a host ever runs: its entry is never counted. */
        id = loader_entry_id(LOADER_FIRST_GEN, spec->version);
        file = id ? loader_entry_file_name(id, -1, 0) : NULL;
        entry_dst = file ? strdup_printf("/" LOADER_ENTRIES_DIR "/%s", file) : NULL;
        vdir = strdup_printf("::/" LOADER_KERNEL_DIR "/%s", spec->version);
        kernel_dst = loader_kernel_path(spec->version);
        initrd_dst = loader_initrd_path(spec->version);
        if (!volid || !entry_dst || !vdir || !kernel_dst || !initrd_dst)
                return log_oom();

        r = write_file_atomic(loader, loader_conf, strlen(loader_conf), 0644);
        if (r >= 0)
                r = write_file_atomic(entry, entry_conf, strlen(entry_conf), 0644);
        if (r < 0)
                return log_error_errno(r, "failed to write boot loader files in '%s': %m", work);

        r = make_sparse_file(img, size);
        if (r < 0)
                return r;
        char *const mkfs[] = { "mkfs.fat", "--invariant", "-i", volid, "-n", "ESP", img, NULL };
        r = run_tool(mkfs, spec->epoch);
        if (r < 0)
                return r;
        if (spec->loader == BOOT_LOADER_GRUB) {
                char *const mmd_uefi[] = { "mmd", "-i", img, "::/EFI", "::/EFI/BOOT", "::/" LOADER_KERNEL_DIR, vdir,
                                           NULL };
                char *const mmd_bios[] = { "mmd", "-i", img, "::/" LOADER_KERNEL_DIR, vdir, NULL };
                r = run_tool(has_uefi(spec) ? mmd_uefi : mmd_bios, spec->epoch);
                if (r >= 0)
                        r = esp_grub(spec, work, img);
                if (r >= 0)
                        r = esp_copy(img, spec->kernel_path, kernel_dst, spec->epoch);
                if (r >= 0)
                        r = esp_copy(img, spec->initrd_path, initrd_dst, spec->epoch);
                if (r < 0)
                        return r;
                *ret_path = TAKE_PTR(img);
                return 0;
        }
        char *const mmd[] = { "mmd", "-i", img, "::/EFI", "::/EFI/BOOT", "::/EFI/systemd", "::/loader",
                              "::/" LOADER_ENTRIES_DIR, "::/" LOADER_KERNEL_DIR, vdir, NULL };
        r = run_tool(mmd, spec->epoch);
        if (r < 0)
                return r;

        const struct {
                const char *src, *dst;
        } files[] = {
                { spec->loader_path, "/EFI/BOOT/BOOTX64.EFI" },
                { spec->loader_path, "/EFI/systemd/systemd-bootx64.efi" },
                { loader, "/loader/loader.conf" },
                { entry, entry_dst },
                { spec->kernel_path, kernel_dst },
                { spec->initrd_path, initrd_dst },
        };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                r = esp_copy(img, files[i].src, files[i].dst, spec->epoch);
                if (r < 0)
                        return log_error_errno(r, "failed to copy '%s' to the ESP (size %llu MiB): %m",
                                               files[i].src, (unsigned long long) (size / MIB));
        }
        *ret_path = TAKE_PTR(img);
        return 0;
}

/* Makes the empty ext4 image of var in work/var.img. */
static int var_make(const DiskSpec *spec, const char *work, uint64_t size, char **ret_path) {
        _cleanup_free_ char *img = path_join(work, "var.img"), *ext = NULL;
        char uuid[37], hash_seed[37];
        int r;

        if (!img)
                return log_oom();
        uuid_from_seed(spec->uuid_seed, "var-uuid", uuid);
        uuid_from_seed(spec->uuid_seed, "var-hash-seed", hash_seed);
        ext = strdup_printf("hash_seed=%s,root_owner=0:0,nodiscard", hash_seed);
        if (!ext)
                return log_oom();
        r = make_sparse_file(img, size);
        if (r < 0)
                return r;
        char *const argv[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-L", "var", "-U", uuid, "-E", ext, img, NULL };
        r = run_tool(argv, spec->epoch);
        if (r < 0)
                return r;
        *ret_path = TAKE_PTR(img);
        return 0;
}

/* GRUB's i386-pc core.img in work/core.img, from the modules beside
 * boot.img: what reads the ESP, its grubenv and grub.cfg, and boots Linux.
 * Its embedded config finds the ESP and sets the prefix there. */
static int core_make(const DiskSpec *spec, const char *work, char **ret_path) {
        static const char early[] = "search --no-floppy --set=root --file /slipway/grub.cfg\n"
                                    "set prefix=($root)/slipway\n";
        _cleanup_free_ char *img = path_join(work, "core.img"), *cfg = path_join(work, "core.cfg"),
                            *dir = strdup(spec->grub_pc_boot_img);
        int r;

        if (!img || !cfg || !dir)
                return log_oom();
        if (!strrchr(dir, '/'))
                return log_error_errno(-EINVAL, "'%s' is not a path", dir);
        *strrchr(dir, '/') = 0;
        r = write_file_atomic(cfg, early, strlen(early), 0644);
        if (r < 0)
                return log_error_errno(r, "failed to write '%s': %m", cfg);
        char *const argv[] = { "grub-mkimage", "-O", "i386-pc", "-d", dir, "-o", img, "-c", cfg, "-p", "/slipway",
                               "biosdisk", "part_gpt", "part_msdos", "fat", "search", "search_fs_file", "normal",
                               "configfile", "loadenv", "linux", "test", "echo", "minicmd", NULL };
        r = run_tool(argv, spec->epoch);
        if (r < 0)
                return r;
        *ret_path = TAKE_PTR(img);
        return 0;
}

/* Writes core.img into the BIOS boot partition and boot.img into the MBR,
 * as grub-bios-setup does for a core.img embedded in one run of sectors:
 * boot.img loads core.img's first sector, whose blocklist loads the rest.
 * The MBR keeps its disk signature and partition table. */
static int bios_install(const DiskSpec *spec, const Layout *l, int fd, const char *core_path) {
        _cleanup_free_ char *core = NULL, *boot = NULL;
        uint8_t mbr[SECTOR];
        size_t core_n, boot_n;
        uint64_t lba = l->start[PART_BIOS] / SECTOR, sectors;
        int r;

        r = read_full_file(core_path, l->size[PART_BIOS], &core, &core_n);
        if (r >= 0)
                r = read_full_file(spec->grub_pc_boot_img, SECTOR, &boot, &boot_n);
        if (r < 0)
                return log_error_errno(r, "failed to read GRUB's images for BIOS: %m");
        if (boot_n != SECTOR || core_n < SECTOR)
                return log_error_errno(-EBADMSG, "'%s' is not a 512-byte boot.img, or core.img is empty",
                                       spec->grub_pc_boot_img);
        sectors = (core_n + SECTOR - 1) / SECTOR;
        if (sectors * SECTOR > l->size[PART_BIOS] || sectors - 1 > UINT16_MAX)
                return log_error_errno(-ENOSPC, "core.img (%zu bytes) does not fit the BIOS boot partition", core_n);
        /* blocklist: start (LE 64), count (LE 16); the segment stays */
        for (int i = 0; i < 8; i++)
                ((uint8_t *) core)[DISKBOOT_BLOCKLIST + i] = (uint8_t) ((lba + 1) >> (8 * i));
        ((uint8_t *) core)[DISKBOOT_BLOCKLIST + 8] = (uint8_t) ((sectors - 1) & 0xff);
        ((uint8_t *) core)[DISKBOOT_BLOCKLIST + 9] = (uint8_t) ((sectors - 1) >> 8);
        if (pwrite(fd, core, core_n, (off_t) l->start[PART_BIOS]) != (ssize_t) core_n)
                return log_error_errno(negative_errno(), "failed to write core.img: %m");

        if (pread(fd, mbr, SECTOR, 0) != (ssize_t) SECTOR)
                return log_error_errno(negative_errno(), "failed to read the MBR: %m");
        memcpy(mbr, boot, BOOT_IMG_CODE_END);
        for (int i = 0; i < 8; i++)
                mbr[BOOT_IMG_KERNEL_SECTOR + i] = (uint8_t) (lba >> (8 * i));
        /* a hard disk: no check for BIOSes that pass a floppy's drive number */
        mbr[BOOT_IMG_DRIVE_CHECK] = 0x90;
        mbr[BOOT_IMG_DRIVE_CHECK + 1] = 0x90;
        if (pwrite(fd, mbr, SECTOR, 0) != (ssize_t) SECTOR)
                return log_error_errno(negative_errno(), "failed to write the MBR: %m");
        return 0;
}

static int guestfs_error(guestfs_h *g, const char *what) {
        int e = guestfs_last_errno(g);
        log_error("libguestfs: %s failed: %s", what, strempty(guestfs_last_error(g)));
        return e > 0 ? -e : -EIO;
}

/* Creates a handle for drive and launches the appliance, per accel. */
static int appliance_launch(const DiskSpec *spec, const char *drive, guestfs_h **ret) {
        const char *accel = isempty(spec->accel) ? "auto" : spec->accel;
        bool tcg = streq(accel, "tcg");

        if (streq(accel, "auto") && accel_kvm_usable(spec->kernel_path, spec->probe_cache_dir) <= 0)
                tcg = true;

        for (;;) {
                guestfs_h *g = guestfs_create();
                uint64_t t0;

                if (!g)
                        return log_error_errno(-ENOMEM, "failed to create a libguestfs handle");
                guestfs_set_error_handler(g, NULL, NULL);
                if (log_get_level() >= LOG_LEVEL_DEBUG)
                        guestfs_set_verbose(g, 1);
                if (!getenv("LIBGUESTFS_BACKEND") && guestfs_set_backend(g, "direct") < 0) {
                        guestfs_close(g);
                        return log_error_errno(-EIO, "failed to select the libguestfs direct backend");
                }
                if (tcg)
                        guestfs_set_backend_setting(g, "force_tcg", "1");
                else if (streq(accel, "kvm"))
                        guestfs_clear_backend_setting(g, "force_tcg");
                if (guestfs_add_drive_opts(g, drive, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw", -1) < 0) {
                        int r = guestfs_error(g, "add_drive");
                        guestfs_close(g);
                        return r;
                }
                t0 = now_usec();
                if (guestfs_launch(g) == 0) {
                        log_info("libguestfs appliance up in %.1f s (%s)", (double) (now_usec() - t0) / 1e6,
                                 tcg ? "force_tcg" : "default acceleration");
                        *ret = g;
                        return 0;
                }
                if (tcg || !streq(accel, "auto")) {
                        int r = guestfs_error(g, "launch");
                        guestfs_close(g);
                        return r;
                }
                /* libguestfs's message is a paragraph; its first line says it */
                log_info("libguestfs appliance failed to start without force_tcg (%.*s) after %.1f s, retrying with force_tcg",
                         (int) strcspn(strempty(guestfs_last_error(g)), "\n"), strempty(guestfs_last_error(g)),
                         (double) (now_usec() - t0) / 1e6);
                guestfs_close(g);
                tcg = true;
        }
}

static int partition_table(guestfs_h *g, const DiskSpec *spec, const Layout *l) {
        char guid[37];

        if (guestfs_part_init(g, "/dev/sda", "gpt") < 0)
                return guestfs_error(g, "part_init");
        for (int i = 0; i < _PART_MAX; i++) {
                if (l->size[i] == 0)
                        continue;
                int64_t start = (int64_t) (l->start[i] / SECTOR);
                int64_t end = start + (int64_t) (l->size[i] / SECTOR) - 1;
                if (guestfs_part_add(g, "/dev/sda", "p", start, end) < 0)
                        return guestfs_error(g, "part_add");
        }
        for (int i = 0; i < _PART_MAX; i++) {
                if (l->size[i] == 0)
                        continue;
                uuid_from_seed(spec->uuid_seed, partitions[i].name, guid);
                if (guestfs_part_set_name(g, "/dev/sda", l->number[i], partitions[i].name) < 0)
                        return guestfs_error(g, "part_set_name");
                if (guestfs_part_set_gpt_type(g, "/dev/sda", l->number[i], partitions[i].type) < 0)
                        return guestfs_error(g, "part_set_gpt_type");
                if (guestfs_part_set_gpt_guid(g, "/dev/sda", l->number[i], guid) < 0)
                        return guestfs_error(g, "part_set_gpt_guid");
        }
        if (guestfs_part_set_gpt_attributes(g, "/dev/sda", l->number[PART_ROOT_B], (int64_t) GPT_FLAG_NO_AUTO) < 0)
                return guestfs_error(g, "part_set_gpt_attributes");
        uuid_from_seed(spec->uuid_seed, "disk", guid);
        if (guestfs_part_set_disk_guid(g, "/dev/sda", guid) < 0)
                return guestfs_error(g, "part_set_disk_guid");
        return 0;
}

static int assemble(const DiskSpec *spec, const Layout *l, const char *drive, const char *esp, const char *var) {
        guestfs_h *g = NULL;
        uint64_t t0;
        int r;

        r = appliance_launch(spec, drive, &g);
        if (r < 0)
                return r;
        /* Killed here, the appliance is running and the disk image is
         * begun: the costly middle of a build. */
        crashpoint("disk");
        t0 = now_usec();
        r = partition_table(g, spec, l);
        log_debug("partition table written in %.1f s", (double) (now_usec() - t0) / 1e6);
        t0 = now_usec();
        char dev[3][16];
        snprintf(dev[0], sizeof(dev[0]), "/dev/sda%d", l->number[PART_ESP]);
        snprintf(dev[1], sizeof(dev[1]), "/dev/sda%d", l->number[PART_ROOT_A]);
        snprintf(dev[2], sizeof(dev[2]), "/dev/sda%d", l->number[PART_VAR]);
        if (r >= 0 && guestfs_upload(g, esp, dev[0]) < 0)
                r = guestfs_error(g, "upload of the ESP");
        if (r >= 0 && guestfs_upload(g, spec->rootfs_path, dev[1]) < 0)
                r = guestfs_error(g, "upload of the rootfs");
        if (r >= 0 && guestfs_upload(g, var, dev[2]) < 0)
                r = guestfs_error(g, "upload of var");
        log_debug("partitions filled in %.1f s", (double) (now_usec() - t0) / 1e6);
        t0 = now_usec();
        if (r >= 0 && guestfs_shutdown(g) < 0)
                r = guestfs_error(g, "shutdown");
        guestfs_close(g);
        log_debug("appliance shut down in %.1f s", (double) (now_usec() - t0) / 1e6);
        return r;
}

static uint64_t align_mib(uint64_t v) {
        return (v + MIB - 1) / MIB * MIB;
}

static int disk_build(const DiskSpec *spec, const Layout *l, const char *work, const char *tmp, int fd) {
        _cleanup_free_ char *esp = NULL, *var = NULL, *core = NULL;
        int r;

        if (has_bios(spec)) {
                r = core_make(spec, work, &core);
                if (r < 0)
                        return r;
        }
        r = esp_make(spec, work, l->size[PART_ESP], &esp);
        if (r < 0)
                return r;
        r = var_make(spec, work, l->size[PART_VAR], &var);
        if (r < 0)
                return r;
        if (ftruncate(fd, (off_t) l->total) < 0)
                return log_error_errno(negative_errno(), "failed to size '%s': %m", tmp);
        r = assemble(spec, l, tmp, esp, var);
        if (r >= 0 && core)
                r = bios_install(spec, l, fd, core);
        if (r < 0)
                return r;
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0)
                return log_error_errno(negative_errno(), "failed to sync '%s': %m", tmp);
        return 0;
}

/* Builds the disk image (see disk.h). Returns -ENOSPC when the rootfs does
 * not fit root_size, -ENOENT when systemd-boot or an input file is missing,
 * -EIO when a tool or libguestfs fails (their messages are logged). */
int disk_make(const DiskSpec *spec, const char *out_path) {
        _cleanup_free_ char *work = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        char b1[16], b2[16];
        struct stat st;
        Layout l = {};
        uint64_t pos = MIB;
        int r;

        if (!spec || !out_path || isempty(spec->name) || isempty(spec->version) || !spec->rootfs_path ||
            !spec->kernel_path || !spec->initrd_path || isempty(spec->uuid_seed) || strchr(spec->version, '/'))
                return -EINVAL;
        if (spec->accel && !streq(spec->accel, "auto") && !streq(spec->accel, "kvm") && !streq(spec->accel, "tcg"))
                return log_error_errno(-EINVAL, "unknown acceleration '%s' (auto, kvm or tcg)", spec->accel);
        if (spec->esp_size < 8 * MIB || spec->root_size == 0 || spec->var_size < 8 * MIB)
                return log_error_errno(-EINVAL, "disk sizes too small (esp and var need 8 MiB at least)");

        /* 1 MiB holds core.img (about 100 KiB) many times over. */
        l.size[PART_BIOS] = has_bios(spec) ? MIB : 0;
        l.size[PART_ESP] = align_mib(spec->esp_size);
        l.size[PART_ROOT_A] = l.size[PART_ROOT_B] = align_mib(spec->root_size);
        l.size[PART_VAR] = align_mib(spec->var_size);
        for (int i = 0, number = 1; i < _PART_MAX; i++) {
                if (l.size[i] == 0)
                        continue;
                l.start[i] = pos;
                l.number[i] = number++;
                pos += l.size[i];
        }
        l.total = pos + MIB; /* room for the backup GPT */

        if (stat(spec->rootfs_path, &st) < 0)
                return log_error_errno(negative_errno(), "failed to access rootfs '%s': %m", spec->rootfs_path);
        if ((uint64_t) st.st_size > spec->root_size)
                return log_error_errno(-ENOSPC, "rootfs '%s' is %s (%" PRIu64 " bytes), larger than root-size %s (%" PRIu64 " bytes)",
                                       spec->rootfs_path, format_bytes(b1, sizeof(b1), (uint64_t) st.st_size),
                                       (uint64_t) st.st_size, format_bytes(b2, sizeof(b2), spec->root_size),
                                       spec->root_size);
        if (spec->loader == BOOT_LOADER_GRUB) {
                if (has_uefi(spec) && isempty(spec->grub_efi_path))
                        return log_error_errno(-ENOENT, "the image has no GRUB EFI binary (grubx64.efi) for UEFI; "
                                                        "add grub-efi-amd64-signed (or grub2-efi-x64) to the packages");
                if (has_bios(spec) && isempty(spec->grub_pc_boot_img))
                        return log_error_errno(-ENOENT, "the image has no GRUB for BIOS (i386-pc/boot.img); "
                                                        "add grub-pc-bin (or grub2-pc-modules) to the packages");
        } else if (isempty(spec->loader_path))
                return log_error_errno(-EINVAL, "no systemd-boot for the ESP");
        const char *const inputs[] = { spec->kernel_path, spec->initrd_path, spec->loader_path,
                                       spec->shim_path, spec->grub_efi_path, spec->grub_pc_boot_img };
        for (size_t i = 0; i < ELEMENTSOF(inputs); i++)
                if (inputs[i] && access(inputs[i], R_OK) < 0)
                        return log_error_errno(negative_errno(), "failed to access '%s': %m", inputs[i]);

        work = strdup_printf("%s.work-XXXXXX", out_path);
        if (!work)
                return log_oom();
        if (!mkdtemp(work))
                return log_error_errno(negative_errno(), "failed to create a work directory beside '%s': %m", out_path);
        fd = open_tmpfile_beside(out_path, &tmp);
        if (fd < 0) {
                rm_rf(work);
                return log_error_errno(fd, "failed to create a temporary file beside '%s': %m", out_path);
        }

        r = disk_build(spec, &l, work, tmp, fd);
        if (r >= 0 && rename(tmp, out_path) < 0)
                r = log_error_errno(negative_errno(), "failed to rename '%s' to '%s': %m", tmp, out_path);
        if (r < 0)
                unlink(tmp);
        rm_rf(work);
        if (r < 0)
                return r;
        return fsync_parent_dir(out_path);
}
