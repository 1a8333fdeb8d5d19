/* disk_make(): a small disk built twice with libguestfs (slow: two appliance
 * launches), checked with sgdisk, mtools and systemd-dissect. Runs in the test's temporary
 * directory (the cwd). SLIPWAY_TEST_ACCEL picks the first build's
 * acceleration (default "auto"); the second build always uses "tcg", so the
 * two also show that the acceleration does not change the bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "disk.h"
#include "fileio.h"
#include "log.h"
#include "util.h"

#define MIB (1024ULL * 1024ULL)
#define EPOCH 1700000000ULL

static int run(const char *cmd) {
        return system(cmd) == 0 ? 0 : -EIO;
}

static void put(const char *path, const void *data, size_t n) {
        assert_int_equal(write_file_atomic(path, data, n, 0644), 0);
}

static DiskSpec spec_default(void) {
        const char *accel = getenv("SLIPWAY_TEST_ACCEL");
        return (DiskSpec) {
                .name = "demo",
                .version = "1.2.3",
                .rootfs_path = "rootfs.img",
                .kernel_path = "vmlinuz",
                .initrd_path = "initrd",
                .cmdline = "console=ttyS0 quiet",
                .esp_size = 32 * MIB,
                .root_size = 16 * MIB,
                .var_size = 16 * MIB,
                .epoch = EPOCH,
                .uuid_seed = "demo 1.2.3",
                .accel = accel ? accel : "auto",
                .loader_path = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
        };
}

/* rootfs.img: an erofs (what tools that inspect the disk can mount) with
 * an os-release and 3 MiB of noise that it stores as they are. */
static int group_setup(void **state _unused_) {
        static const char os_release[] = "ID=demo\nVERSION_ID=1.2.3\n";
        size_t n = 3 * MIB + 12345;
        _cleanup_free_ uint8_t *blob = malloc(n);
        uint32_t x = 2463534242u;

        log_set_level(LOG_LEVEL_INFO);
        if (!blob)
                return -1;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                blob[i] = (uint8_t) x;
        }
        if (mkdir_p("tree/usr/lib", 0755) < 0 ||
            write_file_atomic("tree/usr/lib/os-release", os_release, strlen(os_release), 0644) < 0 ||
            write_file_atomic("tree/noise", blob, n, 0644) < 0 ||
            run("mkfs.erofs -T 1700000000 -U 6b1f0c8e-3b0a-4c55-9d0e-2f1f64a9c001 rootfs.img tree "
                ">mkfs.log 2>&1") < 0 ||
            write_file_atomic("vmlinuz", "fake kernel\n", 12, 0644) < 0 ||
            write_file_atomic("initrd", "fake initrd\n", 12, 0644) < 0)
                return -1;
        return 0;
}

static void check_partition(int n, const char *name, const char *type) {
        _cleanup_free_ char *cmd = strdup_printf("sgdisk -i %d disk.img > part%d.txt && "
                                                 "grep -q \"^Partition name: '%s'\" part%d.txt && "
                                                 "grep -qi '^Partition GUID code: %s' part%d.txt",
                                                 n, n, name, n, type, n);
        assert_int_equal(run(cmd), 0);
}

static void test_disk_build(void **state _unused_) {
        static const char entry[] = "title demo 1.2.3 (slot A)\n"
                                    "version 1.2.3\n"
                                    "linux /slipway/1.2.3/vmlinuz\n"
                                    "initrd /slipway/1.2.3/initrd\n"
                                    "options console=ttyS0 quiet slipway.slot=a\n";
        DiskSpec spec = spec_default();
        _cleanup_free_ char *got = NULL;
        struct stat st;
        uint64_t t0;

        t0 = now_usec();
        assert_int_equal(disk_make(&spec, "disk.img"), 0);
        fprintf(stderr, "first build (%s): %.1f s\n", spec.accel, (double) (now_usec() - t0) / 1e6);

        assert_int_equal(stat("disk.img", &st), 0);
        assert_int_equal((uint64_t) st.st_size, (1 + 32 + 16 + 16 + 16 + 1) * MIB);
        assert_int_equal(run("! ls disk.img.* 2>/dev/null"), 0); /* no temporaries, no work dir */

        /* GPT: four partitions, names and Discoverable Partitions types */
        assert_int_equal(run("sgdisk -v disk.img | grep -q 'No problems found'"), 0);
        assert_int_equal(run("test $(sgdisk -p disk.img | grep -c '^ *[0-9]') = 4"), 0);
        check_partition(1, "esp", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        check_partition(2, "root-a", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
        check_partition(3, "root-b", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
        check_partition(4, "var", "4D21B016-B534-45C2-A9FB-5C16E091FD2D");
        assert_int_equal(run("grep -q '^First sector: 2048 ' part1.txt"), 0);
        /* root-b, empty, is no-auto (attribute 63); root-a is not */
        assert_int_equal(run("sgdisk -A 3:get:63 disk.img | grep -qx '3:63:1' && "
                             "sgdisk -A 2:get:63 disk.img | grep -qx '2:63:0'"),
                         0);
        /* so that tools that discover partitions take root-a for the root,
         * and the ESP */
        assert_int_equal(run("systemd-dissect --json=short disk.img >dissect.json 2>dissect.err"), 0);
        assert_int_equal(run("jq -e '[.mounts[] | select(.designator == \"root\") | .partition_label] == "
                             "[\"root-a\"] and ([.mounts[] | select(.designator == \"esp\") | .partno] == [1])' "
                             "dissect.json >/dev/null"),
                         0);

        /* root-a holds the rootfs bytes, the rest of it and root-b are zero */
        assert_int_equal(run("cmp -n $(stat -c %s rootfs.img) rootfs.img disk.img 0 $((33 * 1048576))"), 0);
        assert_int_equal(run("cmp -n $((32 * 1048576 - $(stat -c %s rootfs.img))) /dev/zero disk.img 0 "
                             "$((33 * 1048576 + $(stat -c %s rootfs.img)))"),
                         0);

        /* the ESP: systemd-boot, loader.conf, the entry, kernel and initrd */
        assert_int_equal(run("dd if=disk.img of=esp.img bs=1M skip=1 count=32 status=none"), 0);
        assert_int_equal(run("MTOOLS_SKIP_CHECK=1 mtype -i esp.img ::/loader/entries/slipway-1-1.2.3.conf > entry.txt"),
                         0);
        assert_int_equal(read_full_file("entry.txt", 4096, &got, NULL), 0);
        assert_string_equal(got, entry);
        assert_int_equal(run("MTOOLS_SKIP_CHECK=1 mtype -i esp.img ::/loader/loader.conf | grep -qx 'default slipway-\\*'"),
                         0);
        assert_int_equal(run("MTOOLS_SKIP_CHECK=1 mcopy -i esp.img ::/EFI/BOOT/BOOTX64.EFI boot.efi && "
                             "cmp boot.efi /usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
                         0);
        assert_int_equal(run("MTOOLS_SKIP_CHECK=1 mcopy -i esp.img ::/EFI/systemd/systemd-bootx64.efi sd.efi && "
                             "cmp sd.efi /usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
                         0);
        assert_int_equal(run("MTOOLS_SKIP_CHECK=1 mcopy -i esp.img ::/slipway/1.2.3/vmlinuz k && cmp k vmlinuz && "
                             "MTOOLS_SKIP_CHECK=1 mcopy -i esp.img ::/slipway/1.2.3/initrd i && cmp i initrd"),
                         0);
        assert_int_equal(run("fsck.fat -n esp.img >/dev/null"), 0);

        /* var: an ext4 labelled var */
        assert_int_equal(run("dd if=disk.img of=var.img bs=1M skip=65 count=16 status=none && "
                             "e2fsck -fn var.img >/dev/null 2>&1 && "
                             "dumpe2fs -h var.img 2>/dev/null | grep -q '^Filesystem volume name: *var$'"),
                         0);
}

static void test_disk_reproducible(void **state _unused_) {
        DiskSpec spec = spec_default();
        uint64_t t0;

        /* Inputs with other mtimes must not matter either. */
        assert_int_equal(run("touch vmlinuz initrd rootfs.img"), 0);
        spec.accel = "tcg";
        t0 = now_usec();
        assert_int_equal(disk_make(&spec, "disk2.img"), 0);
        fprintf(stderr, "second build (tcg): %.1f s\n", (double) (now_usec() - t0) / 1e6);
        assert_int_equal(run("cmp disk.img disk2.img"), 0);
}

static void test_disk_errors(void **state _unused_) {
        DiskSpec spec = spec_default();
        _cleanup_free_ uint8_t *big = calloc(1, 16 * MIB + 1);

        assert_non_null(big);
        put("big.img", big, 16 * MIB + 1);
        spec.rootfs_path = "big.img";
        assert_int_equal(disk_make(&spec, "nospc.img"), -ENOSPC);
        assert_false(path_exists("nospc.img"));

        spec = spec_default();
        spec.kernel_path = "no-such-kernel";
        assert_int_equal(disk_make(&spec, "nokernel.img"), -ENOENT);
        assert_false(path_exists("nokernel.img"));

        spec = spec_default();
        spec.accel = "warp";
        assert_int_equal(disk_make(&spec, "bad.img"), -EINVAL);
        assert_int_equal(run("! ls *.tmp-* *.work-* 2>/dev/null"), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_disk_errors),
                cmocka_unit_test(test_disk_build),
                cmocka_unit_test(test_disk_reproducible),
        };
        return cmocka_run_group_tests(tests, group_setup, NULL);
}
