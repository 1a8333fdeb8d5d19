#include <endian.h>
#include <zlib.h>

#include "gpt.h"
#include "macro.h"

#define SECTOR 512u
#define ENTRY_SIZE 128u

typedef struct Gpt {
        uint8_t header[SECTOR];
        uint8_t *entries;
        uint32_t n_entries;
        uint32_t entry_size;
        uint64_t entries_lba;
} Gpt;

static uint32_t get32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return le32toh(v);
}
static uint64_t get64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return le64toh(v);
}
static void put32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, 8);
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
        for (size_t done = 0; done < n;) {
                ssize_t k = pread(fd, (uint8_t *) buf + done, n - done, (off_t) (off + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -EIO;
                done += (size_t) k;
        }
        return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off) {
        for (size_t done = 0; done < n;) {
                ssize_t k = pwrite(fd, (const uint8_t *) buf + done, n - done, (off_t) (off + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                done += (size_t) k;
        }
        return 0;
}

static uint32_t header_crc(uint8_t *h) {
        uint32_t size = get32(h + 12), saved = get32(h + 16), crc;

        put32(h + 16, 0);
        crc = (uint32_t) crc32(0, h, size);
        put32(h + 16, saved);
        return crc;
}

static void gpt_release(Gpt *g) {
        free(g->entries);
        g->entries = NULL;
}

static int gpt_read(int fd, Gpt *g) {
        uint32_t hsize;
        size_t bytes;
        int r;

        r = pread_all(fd, g->header, SECTOR, SECTOR);
        if (r < 0)
                return r;
        hsize = get32(g->header + 12);
        if (memcmp(g->header, "EFI PART", 8) != 0 || hsize < 92 || hsize > SECTOR ||
            header_crc(g->header) != get32(g->header + 16))
                return -EBADMSG;
        g->entries_lba = get64(g->header + 72);
        g->n_entries = get32(g->header + 80);
        g->entry_size = get32(g->header + 84);
        if (g->entry_size != ENTRY_SIZE || g->n_entries == 0 || g->n_entries > 1024)
                return -EBADMSG;
        bytes = (size_t) g->n_entries * g->entry_size;
        g->entries = malloc(bytes);
        if (!g->entries)
                return -ENOMEM;
        r = pread_all(fd, g->entries, bytes, g->entries_lba * SECTOR);
        if (r >= 0 && (uint32_t) crc32(0, g->entries, (uInt) bytes) != get32(g->header + 88))
                r = -EBADMSG;
        if (r < 0)
                gpt_release(g);
        return r;
}

static bool name_is(const uint8_t *entry, const char *name) {
        size_t n = strlen(name);

        if (n > 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                uint16_t c = (uint16_t) (entry[56 + 2 * i] | entry[57 + 2 * i] << 8);
                if (i < n ? c != (uint8_t) name[i] : c != 0)
                        return false;
                if (i >= n)
                        return true;
        }
        return true;
}

static int find(const Gpt *g, const char *name) {
        for (uint32_t i = 0; i < g->n_entries; i++) {
                const uint8_t *e = g->entries + (size_t) i * g->entry_size;
                static const uint8_t zero[16];
                if (memcmp(e, zero, 16) != 0 && name_is(e, name))
                        return (int) i + 1;
        }
        return -ENOENT;
}

int gpt_find_partition(int fd, const char *name) {
        Gpt g = {};
        int r = gpt_read(fd, &g);

        if (r < 0)
                return r;
        r = find(&g, name);
        gpt_release(&g);
        return r;
}

int gpt_find_esp(int fd) {
        /* C12A7328-F81F-11D2-BA4B-00A0C93EC93B as GPT stores it: the first
         * three fields little-endian */
        static const uint8_t esp[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
                                         0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };
        Gpt g = {};
        int r = gpt_read(fd, &g);

        if (r < 0)
                return r;
        r = -ENOENT;
        for (uint32_t i = 0; i < g.n_entries && r < 0; i++)
                if (memcmp(g.entries + (size_t) i * g.entry_size, esp, 16) == 0)
                        r = (int) i + 1;
        gpt_release(&g);
        return r;
}

/* Writes g's entries and header (their CRCs made anew) to both places:
 * the backup first (its entries just before its header, at the LBA the
 * primary header names), then the primary, then fsync. A crash in between
 * leaves one whole table: the old primary, or the new backup that tools
 * take when the primary fails its CRC. */
static int gpt_write(int fd, Gpt *g) {
        size_t bytes = (size_t) g->n_entries * g->entry_size;
        uint64_t entries_sectors = (bytes + SECTOR - 1) / SECTOR, backup_lba = get64(g->header + 32);
        uint8_t backup[SECTOR];
        int r;

        /* Never onto a partition: the backup entries lie after the last
         * usable LBA. */
        if (backup_lba <= entries_sectors + 1 || backup_lba - entries_sectors <= get64(g->header + 48))
                return -EBADMSG;
        put32(g->header + 88, (uint32_t) crc32(0, g->entries, (uInt) bytes));
        put32(g->header + 16, header_crc(g->header));

        memcpy(backup, g->header, SECTOR);
        put64(backup + 24, backup_lba);     /* this header */
        put64(backup + 32, 1);              /* the other one */
        put64(backup + 72, backup_lba - entries_sectors);
        put32(backup + 16, header_crc(backup));

        r = pwrite_all(fd, g->entries, bytes, (backup_lba - entries_sectors) * SECTOR);
        if (r >= 0)
                r = pwrite_all(fd, backup, SECTOR, backup_lba * SECTOR);
        if (r >= 0)
                r = pwrite_all(fd, g->entries, bytes, g->entries_lba * SECTOR);
        if (r >= 0)
                r = pwrite_all(fd, g->header, SECTOR, SECTOR);
        return r;
}

int gpt_mark_active(int fd, const char *active, const char *inactive) {
        uint8_t *ea, *ei;
        uint64_t fa, fi;
        Gpt g = {};
        int r, a, i;

        r = gpt_read(fd, &g);
        if (r < 0)
                return r;
        a = find(&g, active);
        i = find(&g, inactive);
        if (a < 0 || i < 0 || a == i) {
                gpt_release(&g);
                return a < 0 ? a : i < 0 ? i : -EINVAL;
        }
        ea = g.entries + (size_t) (a - 1) * g.entry_size;
        ei = g.entries + (size_t) (i - 1) * g.entry_size;
        fa = get64(ea + 48);
        fi = get64(ei + 48);
        if (!(fa & GPT_FLAG_NO_AUTO) && (fi & GPT_FLAG_NO_AUTO)) {
                gpt_release(&g);
                return 0;
        }
        /* Both in one table write: tools see the one slot or the other,
         * never neither nor both. */
        put64(ea + 48, fa & ~GPT_FLAG_NO_AUTO);
        put64(ei + 48, fi | GPT_FLAG_NO_AUTO);
        r = gpt_write(fd, &g);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        gpt_release(&g);
        return r < 0 ? r : 1;
}

int gpt_no_auto(int fd, const char *name) {
        Gpt g = {};
        int r = gpt_read(fd, &g);

        if (r < 0)
                return r;
        r = find(&g, name);
        if (r > 0)
                r = (get64(g.entries + (size_t) (r - 1) * g.entry_size + 48) & GPT_FLAG_NO_AUTO) != 0;
        gpt_release(&g);
        return r;
}

int gpt_grow(int fd, uint64_t disk_size, const char *grow_name, uint64_t *ret_new_end) {
        uint8_t mbr[SECTOR];
        uint64_t last_lba = disk_size / SECTOR - 1, entries_sectors, last_usable, end;
        size_t bytes;
        uint8_t *e;
        Gpt g = {};
        int r, idx;

        r = gpt_read(fd, &g);
        if (r < 0)
                return r;
        bytes = (size_t) g.n_entries * g.entry_size;
        entries_sectors = (bytes + SECTOR - 1) / SECTOR;
        if (disk_size / SECTOR < entries_sectors + 2 + get64(g.header + 40)) {
                gpt_release(&g);
                return -ENOSPC;
        }
        last_usable = last_lba - entries_sectors - 1;
        if (last_usable < get64(g.header + 48)) {
                gpt_release(&g);
                return -ENOSPC;
        }
        idx = find(&g, grow_name);
        if (idx < 0) {
                gpt_release(&g);
                return idx;
        }
        e = g.entries + (size_t) (idx - 1) * g.entry_size;
        /* Only the partition that ends last may grow, or it would overlap. */
        for (uint32_t i = 0; i < g.n_entries; i++) {
                const uint8_t *o = g.entries + (size_t) i * g.entry_size;
                static const uint8_t zero[16];
                if ((int) i + 1 != idx && memcmp(o, zero, 16) != 0 && get64(o + 32) > get64(e + 40)) {
                        gpt_release(&g);
                        return -EINVAL;
                }
        }
        /* End on a MiB boundary, never before where it ends today; a
         * partition that ends before it starts is no partition. */
        if (get64(e + 32) > get64(e + 40)) {
                gpt_release(&g);
                return -EBADMSG;
        }
        end = (last_usable + 1) / 2048 * 2048;
        end = MAX(end, (uint64_t) 1) - 1;
        if (end < get64(e + 40))
                end = get64(e + 40);
        /* Ending past the last usable sector: the table is for a larger disk. */
        if (end > last_usable) {
                gpt_release(&g);
                return -ENOSPC;
        }
        put64(e + 40, end);

        put64(g.header + 32, last_lba);     /* backup LBA */
        put64(g.header + 48, last_usable);  /* last usable */
        r = gpt_write(fd, &g);
        /* The protective MBR covers the whole disk (capped at 2^32-1 sectors). */
        if (r >= 0)
                r = pread_all(fd, mbr, SECTOR, 0);
        if (r >= 0 && mbr[446 + 4] == 0xee) {
                put32(mbr + 446 + 12, (uint32_t) MIN(last_lba, (uint64_t) UINT32_MAX));
                r = pwrite_all(fd, mbr, SECTOR, 0);
        }
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        gpt_release(&g);
        if (r >= 0 && ret_new_end)
                *ret_new_end = end;
        return r;
}
