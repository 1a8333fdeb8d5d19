/* What the host changed in /etc: the upper layer of the /etc overlay, the
 * image's /etc next to it (docs/host-config.md). Overlayfs marks a deleted
 * file with a whiteout, a character device 0/0 of the same name, and a
 * directory made anew over one of the image's with the xattr
 * trusted.overlay.opaque = "y" (user.overlay.opaque on a userxattr mount):
 * nothing of the image's shows through it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "etcdiff.h"
#include "fileio.h"
#include "macro.h"
#include "util.h"

/* Long paths under /etc are not something to walk into. */
#define ETC_DIFF_MAX_DEPTH 64

static const char *const change_names[_ETC_CHANGE_MAX] = {
        [ETC_SAME] = "same",
        [ETC_CHANGED] = "changed",
        [ETC_NEW] = "new",
        [ETC_DELETED] = "deleted",
};

const char *etc_change_to_string(EtcChange c) {
        return c >= 0 && c < _ETC_CHANGE_MAX ? change_names[c] : NULL;
}

static bool is_whiteout(const struct stat *st) {
        return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool is_opaque(const char *dir) {
        static const char *const names[] = { "trusted.overlay.opaque", "user.overlay.opaque" };
        char v[4];

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                ssize_t n = lgetxattr(dir, names[i], v, sizeof v);
                if (n == 1 && v[0] == 'y')
                        return true;
        }
        return false;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The names in dir but . and .., sorted; *ret NULL-terminated. */
static int list_dir(const char *dir, char ***ret) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        _cleanup_strv_free_ char **names = NULL;
        struct dirent *de;

        if (!d)
                return -errno;
        while ((errno = 0, de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (strv_extend(&names, de->d_name) < 0)
                        return -ENOMEM;
        }
        if (errno != 0)
                return -errno;
        if (names)
                qsort(names, strv_length(names), sizeof *names, cmp_names);
        *ret = TAKE_PTR(names);
        return 0;
}

/* Reads up to n bytes, short only at the end of the file. */
static ssize_t read_upto(int fd, char *buf, size_t n) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = read(fd, buf + done, n - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

/* Whether two regular files of size bytes each hold the same bytes. */
static int same_content(const char *a, const char *b, off_t size) {
        _cleanup_close_ int fa = open(a, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_close_ int fb = open(b, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        char ba[8192], bb[8192];
        off_t done = 0;

        if (fa < 0 || fb < 0)
                return -errno;
        while (done < size) {
                ssize_t n = read_upto(fa, ba, sizeof ba), m = read_upto(fb, bb, sizeof bb);
                if (n < 0 || m < 0)
                        return (int) (n < 0 ? n : m);
                if (n == 0 || m != n || memcmp(ba, bb, (size_t) n) != 0)
                        return 0;
                done += n;
        }
        return 1;
}

/* Whether two symbolic links point at the same target. */
static int same_target(const char *a, const char *b) {
        char ta[4096], tb[4096];
        ssize_t n = readlink(a, ta, sizeof ta), m = readlink(b, tb, sizeof tb);

        if (n < 0 || m < 0)
                return -errno;
        return n == m && memcmp(ta, tb, (size_t) n) == 0;
}

/* The host's up against the image's img, both lstat()ed. */
static int compare(const char *up, const struct stat *su, const char *img, const struct stat *si,
                   const char **ret_note) {
        int r;

        *ret_note = NULL;
        if ((su->st_mode & S_IFMT) != (si->st_mode & S_IFMT)) {
                *ret_note = "another kind of file";
                return ETC_CHANGED;
        }
        if ((su->st_mode & 07777) != (si->st_mode & 07777) || su->st_uid != si->st_uid || su->st_gid != si->st_gid)
                *ret_note = "mode or owner";
        if (S_ISREG(su->st_mode)) {
                r = su->st_size == si->st_size ? same_content(up, img, su->st_size) : 0;
                if (r < 0)
                        return r;
                if (r == 0)
                        *ret_note = *ret_note ? "content, mode or owner" : "content";
        } else if (S_ISLNK(su->st_mode)) {
                r = same_target(up, img);
                if (r < 0)
                        return r;
                if (r == 0)
                        *ret_note = "link target";
        } else if ((S_ISCHR(su->st_mode) || S_ISBLK(su->st_mode)) && su->st_rdev != si->st_rdev)
                *ret_note = "device number";
        return *ret_note ? ETC_CHANGED : ETC_SAME;
}

static int walk(const char *upper, const char *image, const char *rel, int depth, EtcDiffFn fn, void *userdata);

/* Reports what an opaque directory hides of the image's dir: each entry of
 * the image's that the host's has not. */
static int report_hidden(const char *up_dir, const char *img_dir, const char *rel, EtcDiffFn fn, void *userdata) {
        _cleanup_strv_free_ char **names = NULL;
        int r = list_dir(img_dir, &names);

        if (r == -ENOENT || r == -ENOTDIR)
                return 0;
        if (r < 0)
                return r;
        for (char **n = names; n && *n; n++) {
                _cleanup_free_ char *u = path_join(up_dir, *n), *i = path_join(img_dir, *n), *p = NULL;
                struct stat st;

                if (!u || !i)
                        return -ENOMEM;
                if (lstat(u, &st) == 0)
                        continue;
                if (lstat(i, &st) < 0)
                        continue;
                p = strdup_printf("/etc/%s%s%s", rel, *n, S_ISDIR(st.st_mode) ? "/" : "");
                if (!p)
                        return -ENOMEM;
                r = fn(p, ETC_DELETED, "under an opaque directory", userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* One entry name of the directory rel ("" or "dir/" relative to /etc). */
static int walk_entry(const char *upper, const char *image, const char *rel, const char *name, int depth,
                      EtcDiffFn fn, void *userdata) {
        _cleanup_free_ char *relname = strdup_printf("%s%s", rel, name), *up = path_join(upper, relname),
                           *img = image ? path_join(image, relname) : NULL, *path = NULL, *sub = NULL;
        struct stat su, si;
        bool in_image;
        const char *note = NULL;
        int r;

        if (!relname || !up || (image && !img))
                return -ENOMEM;
        if (lstat(up, &su) < 0)
                return errno == ENOENT ? 0 : -errno; /* gone meanwhile */
        in_image = img && lstat(img, &si) == 0;
        path = strdup_printf("/etc/%s%s", relname, S_ISDIR(su.st_mode) ? "/" : "");
        if (!path)
                return -ENOMEM;

        if (is_whiteout(&su)) {
                if (!in_image)
                        return 0; /* deleted something the image never had: nothing to say */
                if (S_ISDIR(si.st_mode)) {
                        free(path);
                        path = strdup_printf("/etc/%s/", relname);
                        if (!path)
                                return -ENOMEM;
                }
                return fn(path, ETC_DELETED, "whiteout", userdata);
        }
        if (!S_ISDIR(su.st_mode)) {
                if (!in_image)
                        return fn(path, ETC_NEW, NULL, userdata);
                r = compare(up, &su, img, &si, &note);
                return r < 0 ? r : fn(path, (EtcChange) r, note, userdata);
        }

        /* A directory: itself, then what it holds. */
        if (!in_image)
                r = fn(path, ETC_NEW, NULL, userdata);
        else if (!S_ISDIR(si.st_mode))
                r = fn(path, ETC_CHANGED, "another kind of file", userdata);
        else {
                bool opaque = is_opaque(up);
                r = compare(up, &su, img, &si, &note);
                if (r >= 0)
                        r = fn(path, opaque ? ETC_CHANGED : (EtcChange) r,
                               opaque ? "opaque: the image's entries are hidden" : note, userdata);
                if (r >= 0 && opaque)
                        r = report_hidden(up, img, path + 5, fn, userdata);
        }
        if (r < 0)
                return r;
        sub = strdup_printf("%s/", relname);
        if (!sub)
                return -ENOMEM;
        return walk(upper, in_image && S_ISDIR(si.st_mode) ? image : NULL, sub, depth + 1, fn, userdata);
}

static int walk(const char *upper, const char *image, const char *rel, int depth, EtcDiffFn fn, void *userdata) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ char *dir = path_join(upper, rel);
        int r;

        if (!dir)
                return -ENOMEM;
        if (depth > ETC_DIFF_MAX_DEPTH)
                return -ELOOP;
        r = list_dir(dir, &names);
        if (r < 0)
                return r;
        for (char **n = names; n && *n; n++) {
                r = walk_entry(upper, image, rel, *n, depth, fn, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int etc_diff(const char *upper, const char *image, EtcDiffFn fn, void *userdata) {
        struct stat st;

        if (stat(upper, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (image && stat(image, &st) < 0)
                image = NULL;
        return walk(upper, image, "", 0, fn, userdata);
}

typedef struct PrintCtx {
        FILE *out;
        bool all;
        int lines;
} PrintCtx;

static int print_one(const char *path, EtcChange change, const char *note, void *userdata) {
        PrintCtx *c = userdata;

        if (change == ETC_SAME && !c->all)
                return 0;
        fprintf(c->out, "%-8s %s", etc_change_to_string(change), path);
        if (note)
                fprintf(c->out, "  (%s)", note);
        fputc('\n', c->out);
        c->lines++;
        return 0;
}

int etc_diff_print(const char *upper, const char *image, bool all, FILE *out) {
        PrintCtx c = { .out = out, .all = all };
        int r = etc_diff(upper, image, print_one, &c);

        return r < 0 ? r : c.lines;
}
