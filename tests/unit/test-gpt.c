/* gpt_grow(), gpt_find_partition(), gpt_find_esp() and gpt_mark_active(): a 64 MiB GPT laid
 * out like a Slipway disk (esp, root-a, root-b, var) made with sgdisk, copied
 * onto a larger sparse file as bring-up writes the disk artifact onto a
 * larger disk, grown, and checked with sgdisk; its root slots marked for
 * partition discovery one way and the other, and checked with sgdisk and
 * systemd-dissect. Each test runs in its own directory. */
#include "tests.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "gpt.h"
#include "hash.h"
#include "util.h"

#define MIB (1024ULL * 1024ULL)
#define SECTOR 512ULL
#define SMALL (64 * MIB)
#define BIG (256 * MIB)
/* The table sgdisk writes: 128 entries of 128 bytes, 32 sectors. */
#define ENTRY_SECTORS 32ULL

/* Where make_small() puts var: from 49 MiB to the end of the 63rd MiB, so
 * that the last MiB holds the backup table, as on a built disk. */
#define VAR_FIRST (49 * 2048ULL)
#define VAR_LAST (63 * 2048ULL - 1)

static int run(const char *cmd) {
        return system(cmd) == 0 ? 0 : -EIO;
}

/* The output of cmd's first line as a number, or UINT64_MAX. */
static uint64_t run_number(const char *cmd) {
        char line[128] = "";
        uint64_t v;
        FILE *p = popen(cmd, "r");

        if (!p)
                return UINT64_MAX;
        if (!fgets(line, sizeof line, p))
                line[0] = 0;
        pclose(p);
        line[strcspn(line, "\n")] = 0;
        return safe_atou64(line, &v) < 0 ? UINT64_MAX : v;
}

/* small.img: the four partitions of a Slipway disk with their GPT names and
 * Discoverable Partitions types. */
static void make_small(void) {
        assert_int_equal(run("truncate -s 64M small.img && "
                             "sgdisk -o "
                             "-n 1:2048:+16M -c 1:esp -t 1:c12a7328-f81f-11d2-ba4b-00a0c93ec93b "
                             "-n 2:0:+16M -c 2:root-a -t 2:4f68bce3-e8cd-4db1-96e7-fbcaf984b709 "
                             "-n 3:0:+16M -c 3:root-b -t 3:4f68bce3-e8cd-4db1-96e7-fbcaf984b709 "
                             "-n 4:0:129023 -c 4:var -t 4:4d21b016-b534-45c2-a9fb-5c16e091fd2d "
                             "small.img >sgdisk-make.log 2>&1"),
                     0);
        assert_int_equal(run_number("sgdisk -i 4 small.img | sed -n 's/^First sector: \\([0-9]*\\) .*/\\1/p'"),
                         VAR_FIRST);
        assert_int_equal(run_number("sgdisk -i 4 small.img | sed -n 's/^Last sector: \\([0-9]*\\) .*/\\1/p'"),
                         VAR_LAST);
}

/* Copies src's bytes to the start of a new sparse file dst of size bytes. */
static void copy_onto(const char *src, const char *dst, uint64_t size) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(in >= 0);
        assert_true(out >= 0);
        assert_int_equal(ftruncate(out, (off_t) size), 0);
        assert_int_equal(copy_fd(in, out, NULL), 0);
}

static int open_rw(const char *path) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void read_sector(const char *path, uint64_t lba, uint8_t buf[SECTOR]) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, buf, SECTOR, (off_t) (lba * SECTOR)), (ssize_t) SECTOR);
}

static uint64_t le64_at(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static uint32_t le32_at(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static void digest(const char *path, char ret[SHA256_HEX_SIZE]) {
        assert_int_equal(sha256_file_hex(path, ret, NULL), 0);
}

/* Flips the bits of one byte of path at off. */
static void flip_byte(const char *path, uint64_t off) {
        _cleanup_close_ int fd = open_rw(path);
        uint8_t b;

        assert_int_equal(pread(fd, &b, 1, (off_t) off), 1);
        b ^= 0xff;
        assert_int_equal(pwrite(fd, &b, 1, (off_t) off), 1);
}

/* The last usable LBA and var's last LBA grown onto a disk of size bytes,
 * as sgdisk would place them: the backup table in the last 33 sectors, var
 * ending on the last MiB boundary before it. */
static uint64_t last_usable_of(uint64_t size) {
        return size / SECTOR - 1 - ENTRY_SECTORS - 1;
}

static void test_grow(void **state _unused_) {
        const uint64_t last_lba = BIG / SECTOR - 1, last_usable = last_usable_of(BIG);
        const uint64_t want_end = (last_usable + 1) / 2048 * 2048 - 1;
        uint8_t primary[SECTOR], backup[SECTOR], mbr[SECTOR];
        _cleanup_close_ int fd = -1;
        uint64_t end = 0;
        struct stat st;

        make_small();
        copy_onto("small.img", "big.img", BIG);
        /* The copied table still describes a 64 MiB disk: sgdisk sees it. */
        assert_int_equal(run("sgdisk -v big.img 2>&1 | grep -q 'No problems found'"), -EIO);

        fd = open_rw("big.img");
        assert_int_equal(gpt_grow(fd, BIG, "var", &end), 0);
        assert_int_equal(end, want_end);
        assert_int_equal((end + 1) % 2048, 0);
        assert_true(end + 2048 > last_usable);

        assert_int_equal(run("sgdisk -v big.img >verify.txt 2>&1 && grep -q 'No problems found' verify.txt"), 0);
        /* sgdisk -p: var from where it was to the new end, the table's end
         * at the disk's; the other partitions and the disk GUID as made. */
        assert_int_equal(run("sgdisk -p big.img >print.txt 2>&1"), 0);
        assert_int_equal(run_number("awk '$1 == 4 && $7 == \"var\" { print $3 }' print.txt"), end);
        assert_int_equal(run_number("awk '$1 == 4 && $7 == \"var\" { print $2 }' print.txt"), VAR_FIRST);
        assert_int_equal(run_number("sed -n 's/.*last usable sector is \\([0-9]*\\).*/\\1/p' print.txt"), last_usable);
        assert_int_equal(run_number("sed -n 's/^Disk big.img: \\([0-9]*\\) sectors.*/\\1/p' print.txt"), last_lba + 1);
        assert_int_equal(run("sgdisk -p small.img | grep -E '^ +[123] ' >parts-before.txt && "
                             "grep -E '^ +[123] ' print.txt >parts-after.txt && cmp parts-before.txt parts-after.txt"),
                         0);
        assert_int_equal(run("test \"$(sgdisk -p small.img | grep '^Disk identifier')\" = "
                             "\"$(grep '^Disk identifier' print.txt)\""),
                         0);

        /* The backup header is the last sector and points back at LBA 1;
         * the primary points at it. */
        read_sector("big.img", last_lba, backup);
        assert_memory_equal(backup, "EFI PART", 8);
        assert_int_equal(le64_at(backup + 24), last_lba);
        assert_int_equal(le64_at(backup + 32), 1);
        assert_int_equal(le64_at(backup + 48), last_usable);
        assert_int_equal(le64_at(backup + 72), last_lba - ENTRY_SECTORS);
        read_sector("big.img", 1, primary);
        assert_int_equal(le64_at(primary + 24), 1);
        assert_int_equal(le64_at(primary + 32), last_lba);
        assert_int_equal(le64_at(primary + 48), last_usable);
        /* The protective MBR covers the whole disk now. */
        read_sector("big.img", 0, mbr);
        assert_int_equal(mbr[446 + 4], 0xee);
        assert_int_equal(le32_at(mbr + 446 + 12), last_lba);

        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal((uint64_t) st.st_size, BIG);
        assert_int_equal(gpt_find_partition(fd, "var"), 4);
}

static void test_grow_again_changes_nothing(void **state _unused_) {
        char before[SHA256_HEX_SIZE], after[SHA256_HEX_SIZE];
        _cleanup_close_ int fd = -1;
        uint64_t end1 = 0, end2 = 0;

        make_small();
        copy_onto("small.img", "big.img", BIG);
        fd = open_rw("big.img");
        assert_int_equal(gpt_grow(fd, BIG, "var", &end1), 0);
        digest("big.img", before);
        assert_int_equal(gpt_grow(fd, BIG, "var", &end2), 0);
        digest("big.img", after);
        assert_int_equal(end1, end2);
        assert_string_equal(before, after);
}

static void test_grow_same_size(void **state _unused_) {
        _cleanup_close_ int fd = -1;
        uint64_t end = 0;

        /* A disk the size of the image: var already ends on the last MiB
         * boundary, and stays there. */
        make_small();
        fd = open_rw("small.img");
        assert_int_equal(gpt_grow(fd, SMALL, "var", &end), 0);
        assert_int_equal(end, VAR_LAST);
        assert_int_equal(run("sgdisk -v small.img 2>&1 | grep -q 'No problems found'"), 0);
}

static void test_find(void **state _unused_) {
        static const char *const names[] = { "esp", "root-a", "root-b", "var" };
        static const char *const missing[] = { "home", "root", "root-", "root-ab", "ESP", "va", "vars",
                                                "a-name-longer-than-thirty-six-characters" };
        _cleanup_close_ int fd = -1;

        make_small();
        fd = open_rw("small.img");
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                assert_int_equal(gpt_find_partition(fd, names[i]), (int) i + 1);
        for (size_t i = 0; i < ELEMENTSOF(missing); i++)
                assert_int_equal(gpt_find_partition(fd, missing[i]), -ENOENT);
        assert_int_equal(gpt_find_esp(fd), 1);
        close(TAKE_FD(fd));

        /* By type, whatever its name and place: a BIOS boot partition first
         * (as on a disk built for BIOS), the ESP renamed; then none. */
        assert_int_equal(run("sgdisk -t 1:21686148-6449-6e6f-744e-656564454649 -c 1:bios-boot "
                             "-t 2:c12a7328-f81f-11d2-ba4b-00a0c93ec93b -c 2:EFI small.img >/dev/null 2>&1"),
                         0);
        fd = open_rw("small.img");
        assert_int_equal(gpt_find_esp(fd), 2);
        close(TAKE_FD(fd));
        assert_int_equal(run("sgdisk -t 2:4f68bce3-e8cd-4db1-96e7-fbcaf984b709 small.img >/dev/null 2>&1"), 0);
        fd = open_rw("small.img");
        assert_int_equal(gpt_find_esp(fd), -ENOENT);
}

static void test_missing_partition_changes_nothing(void **state _unused_) {
        char before[SHA256_HEX_SIZE], after[SHA256_HEX_SIZE];
        _cleanup_close_ int fd = -1;
        uint64_t end = 12345;

        make_small();
        copy_onto("small.img", "big.img", BIG);
        digest("big.img", before);
        fd = open_rw("big.img");
        assert_int_equal(gpt_grow(fd, BIG, "home", &end), -ENOENT);
        digest("big.img", after);
        assert_string_equal(before, after);
        assert_int_equal(end, 12345);
}

/* gpt_grow() and gpt_find_partition() on a copy of small.img with one byte
 * at off flipped: both refuse it and nothing is written. */
static void expect_bad(uint64_t off) {
        char before[SHA256_HEX_SIZE], after[SHA256_HEX_SIZE];
        _cleanup_close_ int fd = -1;
        uint64_t end = 12345;

        copy_onto("small.img", "bad.img", BIG);
        flip_byte("bad.img", off);
        digest("bad.img", before);
        fd = open_rw("bad.img");
        assert_int_equal(gpt_find_partition(fd, "var"), -EBADMSG);
        assert_int_equal(gpt_grow(fd, BIG, "var", &end), -EBADMSG);
        assert_int_equal(gpt_mark_active(fd, "root-a", "root-b"), -EBADMSG);
        digest("bad.img", after);
        assert_string_equal(before, after);
        assert_int_equal(end, 12345);
}

static void test_bad_table(void **state _unused_) {
        make_small();
        expect_bad(SECTOR + 16);          /* the primary header's CRC */
        expect_bad(SECTOR + 40);          /* a header field the CRC covers (first usable LBA) */
        expect_bad(SECTOR);               /* the "EFI PART" signature */
        expect_bad(2 * SECTOR + 3 * 128 + 56); /* var's name: the entries' CRC no longer matches */

        /* No GPT at all. */
        {
                _cleanup_close_ int fd = -1;
                assert_int_equal(run("truncate -s 1M zero.img"), 0);
                fd = open_rw("zero.img");
                assert_int_equal(gpt_find_partition(fd, "var"), -EBADMSG);
                assert_int_equal(gpt_grow(fd, BIG, "var", NULL), -EBADMSG);
        }
}

static void test_disk_too_small(void **state _unused_) {
        static const uint64_t sizes[] = { 32 * MIB, SMALL - MIB, SMALL - SECTOR };
        char before[SHA256_HEX_SIZE], after[SHA256_HEX_SIZE];
        _cleanup_close_ int fd = -1;

        /* The table ends at 64 MiB: any smaller disk could not hold its
         * last usable sector and the backup table behind it. */
        make_small();
        digest("small.img", before);
        fd = open_rw("small.img");
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                uint64_t end = 12345;
                assert_int_equal(gpt_grow(fd, sizes[i], "var", &end), -ENOSPC);
                assert_int_equal(end, 12345);
        }
        digest("small.img", after);
        assert_string_equal(before, after);
}

/* The attribute bit of partition n as sgdisk reads it: 0, 1, or -1. */
static int attribute(const char *img, int n, int bit) {
        _cleanup_free_ char *cmd = strdup_printf("sgdisk -A %d:get:%d %s 2>/dev/null | "
                                                 "sed -n 's/^%d:%d:\\([01]\\)$/\\1/p'",
                                                 n, bit, img, n, bit);
        uint64_t v;

        assert_non_null(cmd);
        v = run_number(cmd);
        return v == UINT64_MAX ? -1 : (int) v;
}

static void test_mark_active(void **state _unused_) {
        char before[SHA256_HEX_SIZE], after[SHA256_HEX_SIZE];
        _cleanup_close_ int fd = -1;

        make_small();
        /* Another attribute (read-only, bit 60) must survive the flips. */
        assert_int_equal(run("sgdisk -A 3:set:60 small.img >/dev/null 2>&1"), 0);
        fd = open_rw("small.img");
        assert_int_equal(gpt_no_auto(fd, "root-a"), 0);
        assert_int_equal(gpt_no_auto(fd, "root-b"), 0);

        assert_int_equal(gpt_mark_active(fd, "root-a", "root-b"), 1);
        assert_int_equal(gpt_no_auto(fd, "root-a"), 0);
        assert_int_equal(gpt_no_auto(fd, "root-b"), 1);
        assert_int_equal(attribute("small.img", 2, 63), 0);
        assert_int_equal(attribute("small.img", 3, 63), 1);
        assert_int_equal(attribute("small.img", 3, 60), 1);
        /* Both tables rewritten alike, their CRCs right. */
        assert_int_equal(run("sgdisk -v small.img 2>&1 | grep -q 'No problems found'"), 0);

        /* So already: nothing is written. */
        digest("small.img", before);
        assert_int_equal(gpt_mark_active(fd, "root-a", "root-b"), 0);
        digest("small.img", after);
        assert_string_equal(before, after);

        /* A switch to slot b. */
        assert_int_equal(gpt_mark_active(fd, "root-b", "root-a"), 1);
        assert_int_equal(attribute("small.img", 2, 63), 1);
        assert_int_equal(attribute("small.img", 3, 63), 0);
        assert_int_equal(attribute("small.img", 3, 60), 1);
        assert_int_equal(attribute("small.img", 1, 63), 0);
        assert_int_equal(attribute("small.img", 4, 63), 0);
        assert_int_equal(run("sgdisk -v small.img 2>&1 | grep -q 'No problems found'"), 0);

        /* A torn rewrite that left the primary table unreadable: the backup,
         * written first, already has the new marks. */
        copy_onto("small.img", "torn.img", SMALL);
        {
                _cleanup_close_ int tfd = open_rw("torn.img");
                assert_int_equal(gpt_mark_active(tfd, "root-a", "root-b"), 1);
        }
        flip_byte("torn.img", SECTOR + 16);
        assert_int_equal(attribute("torn.img", 2, 63), 0);
        assert_int_equal(attribute("torn.img", 3, 63), 1);

        digest("small.img", before);
        assert_int_equal(gpt_mark_active(fd, "root-a", "home"), -ENOENT);
        assert_int_equal(gpt_mark_active(fd, "root-a", "root-a"), -EINVAL);
        assert_int_equal(gpt_no_auto(fd, "home"), -ENOENT);
        digest("small.img", after);
        assert_string_equal(before, after);
}

/* Writes an erofs whose os-release says VERSION_ID=version into partition
 * n of small.img. */
static void put_root(int n, const char *version) {
        _cleanup_free_ char *cmd = strdup_printf(
                "rm -rf tree && mkdir -p tree/usr/lib tree/etc && "
                "printf 'ID=slipway-test\\nVERSION_ID=%s\\n' >tree/usr/lib/os-release && "
                "mkfs.erofs -T 1700000000 -U 11111111-2222-3333-4444-55555555555%d root.erofs tree >/dev/null 2>&1 && "
                "dd if=root.erofs of=small.img bs=512 conv=notrunc status=none "
                "seek=$(sgdisk -i %d small.img | sed -n 's/^First sector: \\([0-9]*\\) .*/\\1/p')",
                version, n, n);

        assert_non_null(cmd);
        assert_int_equal(run(cmd), 0);
}

/* The label of the partition systemd-dissect takes for the root, or "". */
static char *dissect_root(void) {
        char line[128] = "";
        FILE *p = popen("systemd-dissect --json=short small.img 2>dissect.err | "
                        "jq -r '.mounts[] | select(.designator == \"root\") | .partition_label'", "r");

        assert_non_null(p);
        if (!fgets(line, sizeof line, p))
                line[0] = 0;
        pclose(p);
        line[strcspn(line, "\n")] = 0;
        return strdup(line);
}

/* What tools that discover partitions see: without marks, systemd-dissect
 * takes the root partition with the greater label (root-b, even when it is
 * the slot being written); with them, the slot marked active. */
static void test_mark_active_dissect(void **state _unused_) {
        _cleanup_close_ int fd = -1;
        char *root;

        if (geteuid() != 0) {
                skip(); /* systemd-dissect attaches a loop device */
                return;
        }
        make_small();
        put_root(2, "1.0");
        put_root(3, "2.0");
        root = dissect_root();
        assert_string_equal(root, "root-b");
        free(root);

        fd = open_rw("small.img");
        assert_int_equal(gpt_mark_active(fd, "root-a", "root-b"), 1);
        root = dissect_root();
        assert_string_equal(root, "root-a");
        free(root);

        assert_int_equal(gpt_mark_active(fd, "root-b", "root-a"), 1);
        root = dissect_root();
        assert_string_equal(root, "root-b");
        free(root);

        assert_int_equal(gpt_mark_active(fd, "root-a", "root-b"), 1);
        root = dissect_root();
        assert_string_equal(root, "root-a");
        free(root);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_grow),
                test_in_dir(test_grow_again_changes_nothing),
                test_in_dir(test_grow_same_size),
                test_in_dir(test_find),
                test_in_dir(test_missing_partition_changes_nothing),
                test_in_dir(test_bad_table),
                test_in_dir(test_disk_too_small),
                test_in_dir(test_mark_active),
                test_in_dir(test_mark_active_dissect),
        };
        return cmocka_run_group_tests_name("gpt", tests, NULL, NULL);
}
