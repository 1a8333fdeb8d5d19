/* The read-only root filesystem of a slot: mkfs.erofs or mksquashfs over the
 * staging root, run without a shell, with every input that could vary pinned.
 *
 * erofs (erofs-utils 1.5):
 *   -T<epoch>    every inode's mtime and the superblock build time (1.5 sets
 *                TIMESTAMP_FIXED with -T; SOURCE_DATE_EPOCH would only clamp)
 *   -U<uuid>     otherwise random
 *   -zlz4hc      the Debian 6.1 kernel has EROFS_FS_ZIP with lz4 only (no
 *                lzma); lz4hc output is deterministic and decompresses with
 *                the plain lz4 decoder
 *   --max-extent-bytes=32768
 *                mkfs.erofs fills each 4 KiB physical cluster by compressing
 *                as much input as fits, and 1.5 offers lz4hc the whole rest
 *                of its queue every time. On data that does not compress
 *                (the kernel's vmlinuz, .xz firmware and modules, images)
 *                every cluster then costs a pass over that window: 8 MiB of
 *                vmlinuz took 3.3 s, 86% of a tiny image build. Capping the
 *                uncompressed extent bounds the window. Measured on the tiny
 *                root (15 MB, 8 MB of it vmlinuz) and on /usr/include (133
 *                MB of text), time and size against no cap:
 *                    cap     tiny          /usr/include
 *                    none    3.4 s         1.33 s
 *                    64K     1.65 s +0.2%  1.32 s +0.0%
 *                    32K     0.73 s +0.6%  1.32 s +0.3%
 *                    16K     0.35 s +1.6%  1.27 s +4.3%
 *                32K keeps the ratio on text and costs a fifth of the time on
 *                incompressible data. The on-disk format is unchanged (any
 *                kernel that reads lz4 erofs reads these extents); plain
 *                -zlz4 would be faster still (0.13 s) but 3% to 15% larger.
 *   --compress-hints=<file>
 *                files whose content is compressed already are stored as
 *                they are (rootfs-hints.c): with the cap above, lz4hc still
 *                spent 0.53 of the tiny root's 0.86 s on its vmlinuz, which
 *                it could not make smaller. Without it 0.34 s, +0.3%.
 *   no --all-root: the staging root carries the ownership from the RPMs
 *   (we install as root), and that is what the image must have.
 *   mkfs.erofs sorts directory entries by name before it assigns inodes, so
 *   readdir order of the staging filesystem does not leak into the image
 *   (checked by the unit test, which creates the same tree in two orders).
 *
 * squashfs (squashfs-tools 4.5.1):
 *   -reproducible (the default, spelled out), -mkfs-time and -all-time
 *   <epoch>, -noappend, -comp zstd (SQUASHFS_ZSTD=y in Debian's kernel).
 *   mksquashfs refuses SOURCE_DATE_EPOCH together with the time options, so
 *   the variable is removed from its environment. squashfs has no UUID.
 *
 * Extended attributes are kept (file capabilities set by RPMs live there). */

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "fileio.h"
#include "hash.h"
#include "log.h"
#include "rootfs.h"
#include "tool.h"
#include "util.h"

static int make_argv(RootfsType type, const char *root, uint64_t epoch, const char *uuid_seed, const char *hints,
                     const char *out, char ***ret) {
        _cleanup_strv_free_ char **argv = NULL;
        char uuid[37];
        int r = 0;

        switch (type) {
        case ROOTFS_EROFS:
                uuid_from_seed(uuid_seed, "rootfs", uuid);
                r |= strv_extend(&argv, "mkfs.erofs");
                r |= strv_extend(&argv, "--quiet");
                r |= strv_extend(&argv, "-zlz4hc");
                r |= strv_extend(&argv, "--max-extent-bytes=32768");
                r |= strv_consume(&argv, strdup_printf("-T%" PRIu64, epoch));
                r |= strv_consume(&argv, strdup_printf("-U%s", uuid));
                if (hints)
                        r |= strv_consume(&argv, strdup_printf("--compress-hints=%s", hints));
                r |= strv_extend(&argv, out);
                r |= strv_extend(&argv, root);
                break;
        case ROOTFS_SQUASHFS:
                r |= strv_extend(&argv, "mksquashfs");
                r |= strv_extend(&argv, root);
                r |= strv_extend(&argv, out);
                r |= strv_extend(&argv, "-noappend");
                r |= strv_extend(&argv, "-reproducible");
                r |= strv_extend(&argv, "-no-progress");
                r |= strv_extend(&argv, "-quiet");
                r |= strv_extend(&argv, "-comp");
                r |= strv_extend(&argv, "zstd");
                r |= strv_extend(&argv, "-mkfs-time");
                r |= strv_consume(&argv, strdup_printf("%" PRIu64, epoch));
                r |= strv_extend(&argv, "-all-time");
                r |= strv_consume(&argv, strdup_printf("%" PRIu64, epoch));
                break;
        default:
                return -EINVAL;
        }
        if (r < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(argv);
        return 0;
}

/* Writes root's compress hints (rootfs-hints.c) to a temporary file beside
 * out_path; *ret is its path, NULL when there are none. */
static int write_hints(const char *root, const char *out_path, char **ret) {
        _cleanup_free_ char *text = NULL, *base = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t size;
        int r;

        *ret = NULL;
        r = rootfs_erofs_hints(root, &text, &size);
        if (r < 0 || size == 0)
                return r;
        base = strdup_printf("%s.hints", out_path);
        if (!base)
                return log_oom();
        fd = open_tmpfile_beside(base, &tmp);
        if (fd < 0)
                return log_error_errno(fd, "failed to create a temporary file beside '%s': %m", out_path);
        r = loop_write(fd, text, size);
        if (r < 0) {
                unlink(tmp);
                return log_error_errno(r, "failed to write '%s': %m", tmp);
        }
        *ret = TAKE_PTR(tmp);
        return 0;
}

/* Runs the tool into tmp (already created, fd open on it) and syncs it. */
static int rootfs_write(const char *root, RootfsType type, uint64_t epoch, const char *uuid_seed, const char *tmp,
                        int fd, const char *out_path) {
        char *const env_unset[] = { "SOURCE_DATE_EPOCH", NULL };
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *hints = NULL;
        int r;

        if (type == ROOTFS_EROFS) {
                r = write_hints(root, out_path, &hints);
                if (r < 0)
                        return r;
        }
        r = make_argv(type, root, epoch, uuid_seed, hints, tmp, &argv);
        if (r < 0) {
                if (hints)
                        unlink(hints);
        if (r < 0)
                return log_error_errno(r, "failed to prepare the %s command: %m", strempty(rootfs_type_to_string(type)));
        }
        log_debug("running %s for '%s'", argv[0], root);
        r = tool_run(argv, env_unset, NULL, root);
        if (hints)
                unlink(hints);
        if (r < 0)
                return r;
        /* The tool wrote through its own descriptor; ours is the same inode. */
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0)
                return log_error_errno(negative_errno(), "failed to sync '%s': %m", tmp);
        return 0;
}

/* Makes a filesystem image of root at out_path (see rootfs.h). Returns
 * -ENOTDIR/-ENOENT for a bad root, -EIO when the tool fails (its stderr is
 * logged), or another negative errno; out_path is untouched on failure. */
int rootfs_make(const char *root, RootfsType type, uint64_t epoch, const char *uuid_seed, const char *out_path) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        if (!root || !out_path || !uuid_seed || type < 0 || type >= _ROOTFS_TYPE_MAX)
                return -EINVAL;
        if (stat(root, &st) < 0)
                return log_error_errno(negative_errno(), "failed to access staging root '%s': %m", root);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "staging root '%s' is not a directory", root);
        if (epoch > INT32_MAX) /* both formats store 32-bit times */
                return log_error_errno(-ERANGE, "epoch %" PRIu64 " is out of range", epoch);

        fd = open_tmpfile_beside(out_path, &tmp);
        if (fd < 0)
                return log_error_errno(fd, "failed to create a temporary file beside '%s': %m", out_path);
        r = rootfs_write(root, type, epoch, uuid_seed, tmp, fd, out_path);
        if (r >= 0 && rename(tmp, out_path) < 0)
                r = log_error_errno(negative_errno(), "failed to rename '%s' to '%s': %m", tmp, out_path);
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_parent_dir(out_path);
}
