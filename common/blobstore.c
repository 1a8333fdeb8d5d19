#include <fcntl.h>
#include <sys/stat.h>

#include "blobstore.h"
#include "crashpoint.h"
#include "fileio.h"
#include "hash.h"
#include "util.h"

struct BlobstoreWriter {
        char *root;
        char expect[SHA256_HEX_SIZE]; /* "" when the bytes name the blob */
        char *tmp_path;               /* NULL when the blob exists: hash only */
        int fd;
        Sha256 *hash;
        uint64_t size;
        int error;                    /* the first failure of a write */
};

int blobstore_path(const char *root, const char *hex, char **ret) {
        char *p;

        if (!hex || !sha256_hex_valid(hex))
                return -EINVAL;
        p = strdup_printf("%s/" BLOBSTORE_BLOBS_DIR "/%.2s/%s", root, hex, hex);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int blobstore_has(const char *root, const char *hex) {
        _cleanup_free_ char *p = NULL;
        int r = blobstore_path(root, hex, &p);

        if (r < 0)
                return r;
        return path_exists(p);
}

BlobstoreWriter *blobstore_writer_free(BlobstoreWriter *w) {
        if (!w)
                return NULL;
        closep(&w->fd);
        if (w->tmp_path)
                (void) unlink(w->tmp_path);
        free(w->tmp_path);
        sha256_free(w->hash);
        free(w->root);
        free(w);
        return NULL;
}

int blobstore_writer_new(const char *root, const char *expect, BlobstoreWriter **ret) {
        _cleanup_blobstore_writer_free_ BlobstoreWriter *w = NULL;
        int r;

        if (expect && !sha256_hex_valid(expect))
                return -EINVAL;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->fd = -1;
        w->root = strdup(root);
        w->hash = sha256_new();
        if (!w->root || !w->hash)
                return -ENOMEM;
        if (expect) {
                memcpy(w->expect, expect, SHA256_HEX_SIZE);
                r = blobstore_has(root, expect);
                if (r < 0)
                        return r;
                if (r > 0) {
                        /* Stored already: hash what comes, keep nothing. */
                        *ret = TAKE_PTR(w);
                        return 0;
                }
        }
        w->tmp_path = strdup_printf("%s/" BLOBSTORE_TMP_DIR "/blob-%.16s.XXXXXX", root, expect ? expect : "new");
        if (!w->tmp_path)
                return -ENOMEM;
        w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
        if (w->fd < 0) {
                r = negative_errno();
                free(w->tmp_path);
                w->tmp_path = NULL;
                return r;
        }
        *ret = TAKE_PTR(w);
        return 0;
}

int blobstore_writer_write(BlobstoreWriter *w, const void *data, size_t n) {
        if (w->error < 0)
                return w->error;
        sha256_update(w->hash, data, n);
        w->size += n;
        if (w->tmp_path)
                w->error = loop_write(w->fd, data, n);
        return w->error;
}

/* Moves the complete temporary file to path: fsync, read-only, rename,
 * fsync the directory. 0 when the blob was there already. */
static int writer_rename(BlobstoreWriter *w, const char *path) {
        int r;

        if (fsync(w->fd) < 0 || fchmod(w->fd, 0444) < 0)
                return negative_errno();
        r = mkdir_parents(path, 0755);
        if (r < 0)
                return r;
        if (path_exists(path))
                return 0;
        /* Killed here, the blob is complete in tmp/ and nowhere else. */
        crashpoint("blob");
        if (rename(w->tmp_path, path) < 0)
                return negative_errno();
        free(w->tmp_path);
        w->tmp_path = NULL;
        r = fsync_parent_dir(path);
        return r < 0 ? r : 1;
}

int blobstore_writer_commit(BlobstoreWriter *w, char *ret_hex, uint64_t *ret_size) {
        _cleanup_blobstore_writer_free_ BlobstoreWriter *owned = w;
        _cleanup_free_ char *path = NULL;
        char hex[SHA256_HEX_SIZE];
        int r;

        if (w->error < 0)
                return w->error;
        sha256_final_hex(w->hash, hex);
        if (w->expect[0] && !streq(hex, w->expect))
                return -EBADMSG;
        r = blobstore_path(w->root, hex, &path);
        if (r >= 0 && w->tmp_path)
                r = writer_rename(w, path);
        else if (r >= 0 && !path_exists(path))
                /* Only hashed, and removed meanwhile: it is not there. */
                r = -ENOENT;
        if (r < 0)
                return r;
        if (ret_hex)
                memcpy(ret_hex, hex, SHA256_HEX_SIZE);
        if (ret_size)
                *ret_size = w->size;
        return r;
}
