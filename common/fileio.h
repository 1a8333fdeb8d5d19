/* File helpers: reading with a cap, atomic replacement (temp, fsync, rename,
 * fsync the directory), directories. */
#pragma once

#include <dirent.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* Reads a whole file of at most max bytes. ret_data is NUL-terminated (the
 * terminator is not counted in ret_size). Returns -EFBIG when larger. */
int read_full_file(const char *path, size_t max, char **ret_data, size_t *ret_size);

/* Writes all n bytes, retrying on EINTR and short writes. */
int loop_write(int fd, const void *data, size_t n);

/* Replaces path with data: writes "path.tmp-XXXXXX" in the same directory,
 * fsyncs it, renames it over path and fsyncs the directory. On failure the
 * temporary file is removed and path is untouched. */
int write_file_atomic(const char *path, const void *data, size_t n, mode_t mode);
/* The same, owned by uid:gid (set before the rename; -1 leaves either as
 * it comes). */
int write_file_atomic_owned(const char *path, const void *data, size_t n, mode_t mode, uid_t uid, gid_t gid);

/* fsync()s the directory that contains path. */
int fsync_parent_dir(const char *path);
int fsync_path(const char *path);

/* Creates path and missing parents. */
int mkdir_p(const char *path, mode_t mode);
/* Creates the parent directories of path. */
int mkdir_parents(const char *path, mode_t mode);

/* Removes path recursively (does not cross mount points); missing is fine. */
int rm_rf(const char *path);

/* Opens a new temporary file next to final_path (O_CLOEXEC, mode 0644 after
 * umask). ret_tmp_path gets its name; the caller renames or unlinks it. */
int open_tmpfile_beside(const char *final_path, char **ret_tmp_path);

/* Copies src to a new file dst atomically (tmp, fsync, rename): a reflink
 * (FICLONE) where the file system has them, else the bytes. Never a hard
 * link: changing dst afterwards leaves src as it was. */
int copy_file_atomic(const char *src, const char *dst, mode_t mode);

/* Copies the whole of fd_in to fd_out from their current offsets. */
int copy_fd(int fd_in, int fd_out, uint64_t *ret_bytes);

/* Returns true when path exists (any type). */
bool path_exists(const char *path);
