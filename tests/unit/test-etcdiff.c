/* What the host changed in /etc (agent/etcdiff.c): an upper layer made by
 * the test, with a whiteout (a character device 0/0) and an opaque
 * directory (trusted.overlay.opaque), against an image's /etc; then the
 * same on a real overlayfs, where the kernel writes the upper layer (as
 * root; skipped where this kernel or this process cannot mount one). */
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests.h"

#include "etcdiff.h"
#include "fileio.h"
#include "util.h"

static void put(const char *path, const char *body, mode_t mode) {
        assert_int_equal(write_file_atomic(path, body, strlen(body), mode), 0);
}

/* etc_diff_print() into a string; the caller frees it. */
static char *diff(const char *upper, const char *image, bool all, int *ret_lines) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        *ret_lines = etc_diff_print(upper, image, all, f);
        assert_int_equal(fclose(f), 0);
        return buf;
}

/* The image's /etc every test starts from. */
static void make_image(const char *dir) {
        char p[256];
        const char *dirs[] = { "", "/sub", "/sub/deep", "/ssh" };

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(p, sizeof p, "%s%s", dir, dirs[i]);
                assert_int_equal(mkdir(p, 0755), 0);
        }
        snprintf(p, sizeof p, "%s/hostname", dir), put(p, "image\n", 0644);
        snprintf(p, sizeof p, "%s/passwd", dir), put(p, "root:x:0:0::/root:/bin/sh\n", 0644);
        snprintf(p, sizeof p, "%s/other", dir), put(p, "other\n", 0644);
        snprintf(p, sizeof p, "%s/sub/a", dir), put(p, "a\n", 0644);
        snprintf(p, sizeof p, "%s/sub/deep/d", dir), put(p, "d\n", 0644);
        snprintf(p, sizeof p, "%s/ssh/key", dir), put(p, "key\n", 0600);
        snprintf(p, sizeof p, "%s/localtime", dir);
        assert_int_equal(symlink("/usr/share/zoneinfo/UTC", p), 0);
}

static void test_made_upper(void **state) {
        _cleanup_free_ char *out = NULL;
        int lines;

        (void) state;
        make_image("image");
        assert_int_equal(mkdir("upper", 0755), 0);
        put("upper/hostname", "host-1\n", 0644);
        put("upper/passwd", "root:x:0:0::/root:/bin/sh\n", 0644); /* copied up, unchanged */
        put("upper/machine-id", "0123456789abcdef0123456789abcdef\n", 0444);
        assert_int_equal(symlink("/usr/share/zoneinfo/Europe/Paris", "upper/localtime"), 0);
        assert_int_equal(mkdir("upper/ssh", 0755), 0);
        put("upper/ssh/key", "key\n", 0640); /* same bytes, another mode */
        if (mknod("upper/other", S_IFCHR | 0000, makedev(0, 0)) < 0 ||
            mknod("upper/never-was", S_IFCHR | 0000, makedev(0, 0)) < 0) {
                assert_true(errno == EPERM);
                skip();
        }
        assert_int_equal(mkdir("upper/sub", 0755), 0);
        if (setxattr("upper/sub", "trusted.overlay.opaque", "y", 1, 0) < 0) {
                assert_true(errno == EPERM || errno == ENOTSUP);
                skip();
        }
        put("upper/sub/b", "b\n", 0644);
        assert_int_equal(mkdir("upper/new.d", 0755), 0);
        put("upper/new.d/x.conf", "x\n", 0644);

        out = diff("upper", "image", false, &lines);
        assert_string_equal(out, "changed  /etc/hostname  (content)\n"
                                 "changed  /etc/localtime  (link target)\n"
                                 "new      /etc/machine-id\n"
                                 "new      /etc/new.d/\n"
                                 "new      /etc/new.d/x.conf\n"
                                 "deleted  /etc/other  (whiteout)\n"
                                 "changed  /etc/ssh/key  (mode or owner)\n"
                                 "changed  /etc/sub/  (opaque: the image's entries are hidden)\n"
                                 "deleted  /etc/sub/a  (under an opaque directory)\n"
                                 "deleted  /etc/sub/deep/  (under an opaque directory)\n"
                                 "new      /etc/sub/b\n");
        assert_int_equal(lines, 11);
        free(out);
        out = diff("upper", "image", true, &lines);
        assert_int_equal(lines, 13);
        assert_non_null(strstr(out, "same     /etc/passwd\n"));
        assert_non_null(strstr(out, "same     /etc/ssh/\n"));

        /* Without the image's /etc everything of the host's is new, and a
         * whiteout deletes nothing anyone can name. */
        free(out);
        out = diff("upper", "no-such-image", false, &lines);
        assert_null(strstr(out, "deleted"));
        assert_non_null(strstr(out, "new      /etc/hostname\n"));
}

static void test_no_upper(void **state) {
        _cleanup_free_ char *out = NULL;
        int lines;

        (void) state;
        out = diff("upper", "image", false, &lines);
        assert_int_equal(lines, -ENOENT);
        assert_string_equal(out, "");
}

/* What the kernel itself writes into an upper layer. */
static void test_real_overlay(void **state) {
        _cleanup_free_ char *out = NULL, *opts = NULL, *cwd = get_current_dir_name();
        int lines;

        (void) state;
        assert_non_null(cwd);
        make_image("image");
        assert_int_equal(mkdir("upper", 0755), 0);
        assert_int_equal(mkdir("work", 0755), 0);
        assert_int_equal(mkdir("merged", 0755), 0);
        opts = strdup_printf("lowerdir=%s/image,upperdir=%s/upper,workdir=%s/work", cwd, cwd, cwd);
        assert_non_null(opts);
        if (mount("overlay", "merged", "overlay", 0, opts) < 0) {
                print_message("no overlay mount here (%s): skipped\n", strerror(errno));
                skip();
        }
        put("merged/hostname", "host-2\n", 0644); /* the host's copy from now on */
        assert_int_equal(unlink("merged/other"), 0);
        assert_int_equal(chmod("merged/ssh/key", 0400), 0);
        /* A directory removed and made anew: the kernel marks it opaque. */
        assert_int_equal(unlink("merged/sub/a"), 0);
        assert_int_equal(unlink("merged/sub/deep/d"), 0);
        assert_int_equal(rmdir("merged/sub/deep"), 0);
        assert_int_equal(rmdir("merged/sub"), 0);
        assert_int_equal(mkdir("merged/sub", 0755), 0);
        put("merged/sub/b", "b\n", 0644);
        assert_int_equal(umount("merged"), 0);

        out = diff("upper", "image", false, &lines);
        assert_string_equal(out, "changed  /etc/hostname  (content)\n"
                                 "deleted  /etc/other  (whiteout)\n"
                                 "changed  /etc/ssh/key  (mode or owner)\n"
                                 "changed  /etc/sub/  (opaque: the image's entries are hidden)\n"
                                 "deleted  /etc/sub/a  (under an opaque directory)\n"
                                 "deleted  /etc/sub/deep/  (under an opaque directory)\n"
                                 "new      /etc/sub/b\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_made_upper),
                test_in_dir(test_no_upper),
                test_in_dir(test_real_overlay),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
