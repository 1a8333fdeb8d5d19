#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "fileio.h"
#include "util.h"

int read_full_file(const char *path, size_t max, char **ret_data, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                ssize_t n;
                if (size + 1 >= alloc) {
                        size_t na = alloc ? alloc * 2 : 4096;
                        char *nb;
                        if (na > max + 2)
                                na = max + 2;
                        if (na <= size + 1)
                                return -EFBIG;
                        nb = realloc(buf, na);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                n = read(fd, buf + size, alloc - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max)
                        return -EFBIG;
        }
        buf[size] = 0;
        *ret_data = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int loop_write(int fd, const void *data, size_t n) {
        const uint8_t *p = data;
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int fsync_path(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int fsync_parent_dir(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        return fsync_path(dirname(copy));
}

int open_tmpfile_beside(const char *final_path, char **ret_tmp_path) {
        _cleanup_free_ char *t = strdup_printf("%s.tmp-XXXXXX", final_path);
        int fd;

        if (!t)
                return -ENOMEM;
        fd = mkostemp(t, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_tmp_path = TAKE_PTR(t);
        return fd;
}

int write_file_atomic_owned(const char *path, const void *data, size_t n, mode_t mode, uid_t uid, gid_t gid) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        fd = open_tmpfile_beside(path, &tmp);
        if (fd < 0)
                return fd;
        r = loop_write(fd, data, n);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = negative_errno();
        if (r >= 0 && (uid != (uid_t) -1 || gid != (gid_t) -1) && fchown(fd, uid, gid) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_parent_dir(path);
}

int write_file_atomic(const char *path, const void *data, size_t n, mode_t mode) {
        return write_file_atomic_owned(path, data, n, mode, (uid_t) -1, (gid_t) -1);
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *copy = strdup(path);
        char *d;
        if (!copy)
                return -ENOMEM;
        d = dirname(copy);
        if (streq(d, ".") || streq(d, "/"))
                return 0;
        return mkdir_p(d, mode);
}

static int rm_one(const char *path, const struct stat *st _unused_, int type, struct FTW *ftw _unused_) {
        int r = type == FTW_DP ? rmdir(path) : unlink(path);
        return r < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path) {
        if (!path_exists(path))
                return 0;
        if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
                return negative_errno();
        return 0;
}

int copy_fd(int fd_in, int fd_out, uint64_t *ret_bytes) {
        uint64_t total = 0;
        for (;;) {
                ssize_t n = copy_file_range(fd_in, NULL, fd_out, NULL, 1 << 30, 0);
                if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
                        n = sendfile(fd_out, fd_in, NULL, 1 << 30);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                total += (uint64_t) n;
        }
        if (ret_bytes)
                *ret_bytes = total;
        return 0;
}

int copy_file_atomic(const char *src, const char *dst, mode_t mode) {
        _cleanup_close_ int in = -1, out = -1;
        _cleanup_free_ char *tmp = NULL;
        int r;

        in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return negative_errno();
        out = open_tmpfile_beside(dst, &tmp);
        if (out < 0)
                return out;
        /* A reflink shares the blocks until either file is written; where
         * the file system has none, the bytes are copied. */
        r = ioctl(out, FICLONE, in) == 0 ? 0 : copy_fd(in, out, NULL);
        if (r >= 0 && fchmod(out, mode) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(out) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, dst) < 0)
                r = negative_errno();
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_parent_dir(dst);
}

bool path_exists(const char *path) {
        struct stat st;
        return lstat(path, &st) == 0;
}
