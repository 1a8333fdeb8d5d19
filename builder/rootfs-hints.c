/* Which files of a staging root mkfs.erofs should store without compressing:
 * data that is compressed already (the kernel's bzImage, .xz modules and
 * firmware, gzip man pages, PNG icons, RPMs) gains nothing from lz4hc, and
 * lz4hc spends the most time on exactly that data. On the tiny image 8 MiB
 * of vmlinuz was 530 of the 860 ms mkfs.erofs took, for 0.3% of the size.
 *
 * The answer goes to mkfs.erofs as a --compress-hints file: lines of
 * "PCLUSTERSIZE REGEX" matched against the path relative to the root (no
 * leading '/'), first match wins, a size of 0 means "store as is". A line
 * per file would be cheap to write but mkfs.erofs tries every line against
 * every file, so the file is kept short:
 *
 *   4096 ^path$     files named like compressed data whose content is not
 *                   (they stay compressed as usual; 4096 is the default
 *                   physical cluster)
 *   0 \.(gz|xz|...)$   the compressed-data suffixes
 *   0 ^path$        other files whose content is compressed (vmlinuz)
 *
 * The decision is the content's, read from its first bytes, so the same tree
 * gives the same hints and the same image. Names with white space or
 * control characters are left out (they are compressed as before): newer
 * erofs-utils read a word between the size and the pattern. At most
 * HINTS_MAX exact lines; past that the rest are compressed as before. */

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#define HINTS_MAX 512
#define HEAD_BYTES 0x210
#define PATH_DEPTH_MAX 64

static const char *const SUFFIXES[] = { ".gz",  ".tgz", ".xz",  ".txz", ".zst",  ".bz2", ".lz4",
                                        ".zip", ".jar", ".png", ".jpg", ".jpeg", ".woff2", ".rpm" };

bool rootfs_data_is_compressed(const uint8_t *head, size_t n) {
        static const struct {
                const char *magic;
                size_t len;
        } magics[] = {
                { "\x1f\x8b\x08", 3 },                      /* gzip */
                { "\xfd" "7zXZ\0", 6 },                     /* xz */
                { "\x28\xb5\x2f\xfd", 4 },                  /* zstd */
                { "\x04\x22\x4d\x18", 4 },                  /* lz4 frame */
                { "\x02\x21\x4c\x18", 4 },                  /* lz4 legacy */
                { "PK\x03\x04", 4 },                        /* zip, jar */
                { "\x89PNG\r\n\x1a\n", 8 },                 /* PNG */
                { "\xff\xd8\xff", 3 },                      /* JPEG */
                { "wOF2", 4 },                              /* WOFF2 */
                { "\xed\xab\xee\xdb", 4 },                  /* RPM */
        };

        for (size_t i = 0; i < ELEMENTSOF(magics); i++)
                if (n >= magics[i].len && memcmp(head, magics[i].magic, magics[i].len) == 0)
                        return true;
        /* bzip2: "BZh" and the block size digit */
        if (n >= 4 && memcmp(head, "BZh", 3) == 0 && head[3] >= '1' && head[3] <= '9')
                return true;
        /* a Linux bzImage (its payload is compressed): "HdrS" at 0x202 */
        return n >= 0x206 && memcmp(head + 0x202, "HdrS", 4) == 0;
}

static bool has_suffix(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(SUFFIXES); i++)
                if (endswith(name, SUFFIXES[i]))
                        return true;
        return false;
}

typedef struct Hints {
        char **named_plain; /* suffix of compressed data, content plain */
        char **other;       /* no such suffix, content compressed */
} Hints;

static void hints_release(Hints *h) {
        strv_free(h->named_plain);
        strv_free(h->other);
}

static bool path_fits_a_line(const char *rel) {
        for (const char *p = rel; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return false;
        return strlen(rel) < 1024;
}

static int classify(Hints *h, int fd, const char *rel, const char *name) {
        uint8_t head[HEAD_BYTES];
        ssize_t n;
        bool named, packed;

        do
                n = pread(fd, head, sizeof(head), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return log_error_errno(negative_errno(), "failed to read '%s' in the staging root: %m", rel);
        named = has_suffix(name);
        packed = rootfs_data_is_compressed(head, (size_t) n);
        if (named == packed || !path_fits_a_line(rel))
                return 0;
        return strv_extend(named ? &h->named_plain : &h->other, rel);
}

/* Walks the directory dfd (rel is its path from the root, "" for the root). */
static int walk(Hints *h, int dfd, const char *rel, unsigned depth) {
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *de;
        int r = 0;

        if (depth > PATH_DEPTH_MAX)
                return 0;
        d = fdopendir(dfd);
        if (!d) {
                r = negative_errno();
                close(dfd);
                return log_error_errno(r, "failed to read directory '/%s' in the staging root: %m", rel);
        }
        while (r >= 0 && (errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                _cleanup_close_ int fd = -1;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                path = *rel ? strdup_printf("%s/%s", rel, de->d_name) : strdup(de->d_name);
                if (!path)
                        return -ENOMEM;
                /* never open a device node or a FIFO: only what is known to
                 * be a directory or a regular file */
                if (de->d_type == DT_UNKNOWN) {
                        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                return log_error_errno(negative_errno(), "failed to stat '/%s' in the staging root: %m",
                                                       path);
                        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                                continue;
                } else if (de->d_type != DT_DIR && de->d_type != DT_REG)
                        continue;
                fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0)
                        return log_error_errno(negative_errno(), "failed to open '/%s' in the staging root: %m", path);
                if (S_ISDIR(st.st_mode))
                        r = walk(h, TAKE_FD(fd), path, depth + 1);
                else if (S_ISREG(st.st_mode))
                        r = classify(h, fd, path, de->d_name);
        }
        if (r >= 0 && errno != 0)
                return log_error_errno(negative_errno(), "failed to read directory '/%s' in the staging root: %m", rel);
        return r;
}

/* "^path$" with the characters special to an extended regex escaped. */
static void append_exact(FILE *f, unsigned pcluster, const char *path) {
        fprintf(f, "%u ^", pcluster);
        for (const char *p = path; *p; p++) {
                if (strchr("\\.[]()*+?{}|^$", *p))
                        fputc('\\', f);
                fputc(*p, f);
        }
        fputs("$\n", f);
}

/* "0 \\.(gz|tgz|...)$": the suffixes above, stored as they are. */
static void append_suffix_rule(FILE *f) {
        fputs("0 \\.(", f);
        for (size_t i = 0; i < ELEMENTSOF(SUFFIXES); i++)
                fprintf(f, "%s%s", i > 0 ? "|" : "", SUFFIXES[i] + 1);
        fputs(")$\n", f);
}

int rootfs_erofs_hints(const char *root, char **ret, size_t *ret_size) {
        _cleanup_(hints_release) Hints h = {};
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, room = HINTS_MAX, n_named_plain, n_other;
        FILE *f;
        int fd, r;

        fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "failed to open staging root '%s': %m", root);
        r = walk(&h, fd, "", 0);
        if (r < 0)
                return r == -ENOMEM ? log_oom() : r;
        n_named_plain = (size_t) strv_sort_unique(h.named_plain);
        n_other = (size_t) strv_sort_unique(h.other);

        f = open_memstream(&buf, &size);
        if (!f)
                return log_oom();
        /* Too many exceptions to the suffix rule: no suffix rule at all. */
        if (n_named_plain <= room) {
                for (size_t i = 0; i < n_named_plain; i++)
                        append_exact(f, 4096, h.named_plain[i]);
                room -= n_named_plain;
                append_suffix_rule(f);
        }
        for (size_t i = 0; i < n_other && i < room; i++)
                append_exact(f, 0, h.other[i]);
        if (fclose(f) != 0 || !buf)
                return log_oom();
        log_debug("compress hints for '%s': %zu named like compressed data but plain, %zu compressed otherwise named",
                  root, n_named_plain, n_other);
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}
