/* Fuzzes the agent's GPT reader and gpt_grow() on a disk whose first bytes
 * are the input and the rest zeros, as the agent meets a disk the builder's
 * image was written onto. The disk is as large as the primary header's
 * backup LBA says (the size the image was built for); it is grown in place,
 * then onto a disk 64 MiB larger. Invariants abort: a grow that succeeds
 * leaves a table gpt_find_partition() accepts, with the partition at the
 * same number, ending where gpt_grow() says, inside the disk's usable
 * sectors and not before it starts. The corpus holds the first sectors of
 * a disk slipway-build made (trailing zeros cut) and of that disk grown.
 * Each input runs twice: as it is, and with its CRCs set right, so that
 * mutations reach past the checksums. */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "fileio.h"
#include "gpt.h"
#include "util.h"

#define SECTOR 512u
/* The protective MBR, the header and 128 entries of 128 bytes. */
#define TABLE_SECTORS 34u
#define DISK_MAX (4ULL << 30)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t le64_at(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return le64toh(v);
}

static uint32_t le32_at(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return le32toh(v);
}

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, 4);
}

/* The first and last LBA of partition idx and the last usable LBA, as the
 * primary table on fd says. */
static void read_partition(int fd, int idx, uint64_t *ret_first, uint64_t *ret_last, uint64_t *ret_last_usable) {
        uint8_t h[SECTOR], e[128];

        if (pread(fd, h, SECTOR, SECTOR) != SECTOR)
                abort();
        if (pread(fd, e, sizeof e, (off_t) (le64_at(h + 72) * SECTOR + (uint64_t) (idx - 1) * le32_at(h + 84))) !=
            (ssize_t) sizeof e)
                abort();
        *ret_first = le64_at(e + 32);
        *ret_last = le64_at(e + 40);
        *ret_last_usable = le64_at(h + 48);
}

/* Grows the partition called name onto a disk of disk_size bytes; when
 * that succeeds, the table must check out and say what gpt_grow() did. */
static void grow(int fd, uint64_t disk_size, const char *name) {
        uint64_t end = 0, first, last, last_usable;
        int idx = gpt_find_partition(fd, name), r;

        if (ftruncate(fd, (off_t) disk_size) < 0)
                return;
        r = gpt_grow(fd, disk_size, name, &end);
        if (r < 0)
                return;
        if (idx < 0 || gpt_find_partition(fd, name) != idx)
                abort();
        read_partition(fd, idx, &first, &last, &last_usable);
        if (last != end || end < first || end > last_usable || last_usable >= disk_size / SECTOR)
                abort();
}

/* Writes disk (n bytes) to a new memory file, reads it, grows it. */
static void run(const uint8_t *disk, size_t n) {
        static const char *const names[] = { "esp", "root-a", "root-b", "var" };
        _cleanup_close_ int fd = memfd_create("fuzz-gpt", MFD_CLOEXEC);
        uint64_t disk_size;

        if (fd < 0 || loop_write(fd, disk, n) < 0)
                abort();
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                (void) gpt_find_partition(fd, names[i]);
        disk_size = le64_at(disk + SECTOR + 32);
        if (disk_size >= DISK_MAX / SECTOR)
                return;
        disk_size = MAX((disk_size + 1) * SECTOR, (uint64_t) TABLE_SECTORS * SECTOR);
        grow(fd, disk_size, "var");
        grow(fd, disk_size + (64ULL << 20), "var");
}

/* Sets the entries' and the header's CRCs, where they lie within the n
 * bytes of disk, so that a mutation gets past the checks. */
static void fix_crcs(uint8_t *disk, size_t n) {
        uint8_t *h = disk + SECTOR;
        uint32_t hsize = le32_at(h + 12);
        uint64_t lba = le64_at(h + 72), bytes = (uint64_t) le32_at(h + 80) * le32_at(h + 84);

        if (lba < n / SECTOR && bytes <= n - lba * SECTOR)
                put_le32(h + 88, (uint32_t) crc32(0, disk + lba * SECTOR, (uInt) bytes));
        if (hsize >= 92 && hsize <= SECTOR) {
                put_le32(h + 16, 0);
                put_le32(h + 16, (uint32_t) crc32(0, h, hsize));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ uint8_t *disk = NULL;
        size_t n = MAX(size, (size_t) TABLE_SECTORS * SECTOR);

        if (size > 64 * 1024)
                return 0;
        /* The input, then zeros: a disk image written onto an empty disk. */
        disk = calloc(1, n);
        if (!disk)
                abort();
        memcpy(disk, data, size);
        run(disk, n);
        fix_crcs(disk, n);
        run(disk, n);
        return 0;
}
