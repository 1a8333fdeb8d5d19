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

enum { PART_ESP, PART_ROOT_A, PART_ROOT_B, PART_VAR, _PART_MAX };

static const struct {
        const char *name;
        const char *type;
} partitions[_PART_MAX] = {
        [PART_ESP] = { "esp", GPT_TYPE_ESP },
        [PART_ROOT_A] = { "root-a", GPT_TYPE_ROOT_X86_64 },
        [PART_ROOT_B] = { "root-b", GPT_TYPE_ROOT_X86_64 },
        [PART_VAR] = { "var", GPT_TYPE_VAR },
};

typedef struct Layout {
        uint64_t start[_PART_MAX]; /* bytes */
        uint64_t size[_PART_MAX];
        uint64_t total;
} Layout;

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
                int64_t start = (int64_t) (l->start[i] / SECTOR);
                int64_t end = start + (int64_t) (l->size[i] / SECTOR) - 1;
                if (guestfs_part_add(g, "/dev/sda", "p", start, end) < 0)
                        return guestfs_error(g, "part_add");
        }
        for (int i = 0; i < _PART_MAX; i++) {
                uuid_from_seed(spec->uuid_seed, partitions[i].name, guid);
                if (guestfs_part_set_name(g, "/dev/sda", i + 1, partitions[i].name) < 0)
                        return guestfs_error(g, "part_set_name");
                if (guestfs_part_set_gpt_type(g, "/dev/sda", i + 1, partitions[i].type) < 0)
                        return guestfs_error(g, "part_set_gpt_type");
                if (guestfs_part_set_gpt_guid(g, "/dev/sda", i + 1, guid) < 0)
                        return guestfs_error(g, "part_set_gpt_guid");
        }
        if (guestfs_part_set_gpt_attributes(g, "/dev/sda", PART_ROOT_B + 1, (int64_t) GPT_FLAG_NO_AUTO) < 0)
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
        if (r >= 0 && guestfs_upload(g, esp, "/dev/sda1") < 0)
                r = guestfs_error(g, "upload of the ESP");
        if (r >= 0 && guestfs_upload(g, spec->rootfs_path, "/dev/sda2") < 0)
                r = guestfs_error(g, "upload of the rootfs");
        if (r >= 0 && guestfs_upload(g, var, "/dev/sda4") < 0)
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
        _cleanup_free_ char *esp = NULL, *var = NULL;
        int r;

        r = esp_make(spec, work, l->size[PART_ESP], &esp);
        if (r < 0)
                return r;
        r = var_make(spec, work, l->size[PART_VAR], &var);
        if (r < 0)
                return r;
        if (ftruncate(fd, (off_t) l->total) < 0)
                return log_error_errno(negative_errno(), "failed to size '%s': %m", tmp);
        r = assemble(spec, l, tmp, esp, var);
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

        l.size[PART_ESP] = align_mib(spec->esp_size);
        l.size[PART_ROOT_A] = l.size[PART_ROOT_B] = align_mib(spec->root_size);
        l.size[PART_VAR] = align_mib(spec->var_size);
        for (int i = 0; i < _PART_MAX; i++) {
                l.start[i] = pos;
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
        if (isempty(spec->loader_path))
                return log_error_errno(-EINVAL, "no systemd-boot for the ESP");
        for (const char *const *p = (const char *const[]) { spec->kernel_path, spec->initrd_path, spec->loader_path,
                                                             NULL };
             *p; p++)
                if (access(*p, R_OK) < 0)
                        return log_error_errno(negative_errno(), "failed to access '%s': %m", *p);

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
