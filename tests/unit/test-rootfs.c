/* rootfs_make(): erofs and squashfs images of a small tree, byte for byte
 * reproducible. Runs in the test's temporary directory (the cwd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "fileio.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#define EPOCH 1700000000ULL

static void put(const char *path, const char *data, mode_t mode) {
        assert_int_equal(mkdir_parents(path, 0755), 0);
        assert_int_equal(write_file_atomic(path, data, strlen(data), mode), 0);
}

/* The same tree, created in a different order (and so, on most filesystems,
 * listed by readdir in a different order) and at different times. */
static void make_tree(const char *root, bool reverse) {
        static const char *const names[] = { "usr/bin/zed", "usr/bin/alpha", "etc/os-release", "etc/a.conf",
                                             "usr/lib/libx.so.1", "var/empty/.keep" };
        size_t n = ELEMENTSOF(names);

        for (size_t i = 0; i < n; i++) {
                const char *name = names[reverse ? n - 1 - i : i];
                _cleanup_free_ char *p = path_join(root, name);
                _cleanup_free_ char *data = strdup_printf("content of %s\n", name);
                put(p, data, strstr(name, "bin/") ? 0755 : 0644);
        }
        _cleanup_free_ char *link = path_join(root, "usr/bin/beta");
        assert_int_equal(symlink("alpha", link), 0);
        _cleanup_free_ char *owned = path_join(root, "etc/a.conf");
        assert_int_equal(chown(owned, 12, 34), 0);
}

static bool same_file(const char *a, const char *b) {
        _cleanup_free_ char *cmd = strdup_printf("cmp -s '%s' '%s'", a, b);
        return system(cmd) == 0;
}

static void check_type(RootfsType type, const char *ext) {
        _cleanup_free_ char *o1 = strdup_printf("one.%s", ext), *o2 = strdup_printf("two.%s", ext),
                            *o3 = strdup_printf("three.%s", ext), *o4 = strdup_printf("four.%s", ext);

        assert_int_equal(rootfs_make("tree1", type, EPOCH, "demo 1.0", o1), 0);
        sleep(1);
        assert_int_equal(rootfs_make("tree2", type, EPOCH, "demo 1.0", o2), 0);
        assert_true(same_file(o1, o2));
        assert_int_equal(rootfs_make("tree1", type, EPOCH + 1, "demo 1.0", o3), 0);
        assert_false(same_file(o1, o3));
        if (type == ROOTFS_EROFS) {
                /* the seed is the UUID */
                assert_int_equal(rootfs_make("tree1", type, EPOCH, "demo 1.1", o4), 0);
                assert_false(same_file(o1, o4));
        }
        /* Replacing an existing output works and leaves no temporary. */
        assert_int_equal(rootfs_make("tree1", type, EPOCH, "demo 1.0", o2), 0);
        assert_true(same_file(o1, o2));
        assert_int_equal(system("! ls *.tmp-* 2>/dev/null"), 0);
}

static int group_setup(void **state _unused_) {
        log_set_level(LOG_LEVEL_INFO);
        make_tree("tree1", false);
        make_tree("tree2", true);
        /* different mtimes in the second tree */
        return system("touch -d @1 tree2/etc/os-release && touch -d @2 tree2/usr/bin");
}

static void test_erofs(void **state _unused_) {
        check_type(ROOTFS_EROFS, "erofs");
        /* ownership from the tree is kept (no --all-root) */
        assert_int_equal(system("dump.erofs --path=/etc/a.conf one.erofs | grep -q 'Uid: 12 *Gid: 34'"), 0);
        assert_int_equal(system("fsck.erofs one.erofs >/dev/null"), 0);
}

static void test_squashfs(void **state _unused_) {
        check_type(ROOTFS_SQUASHFS, "squashfs");
        assert_int_equal(system("unsquashfs -lln one.squashfs /etc/a.conf | grep -q ' 12/34 '"), 0);
}

static void test_bad_root(void **state _unused_) {
        assert_int_equal(rootfs_make("does-not-exist", ROOTFS_EROFS, EPOCH, "x", "bad.erofs"), -ENOENT);
        assert_false(path_exists("bad.erofs"));
        put("plain-file", "x", 0644);
        assert_int_equal(rootfs_make("plain-file", ROOTFS_SQUASHFS, EPOCH, "x", "bad.sqfs"), -ENOTDIR);
        assert_false(path_exists("bad.sqfs"));
        /* The tool fails: an output directory that does not exist. */
        assert_true(rootfs_make("tree1", ROOTFS_EROFS, EPOCH, "x", "no/such/dir/out.erofs") < 0);
        assert_false(path_exists("no"));
        assert_int_equal(system("! ls *.tmp-* 2>/dev/null"), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_erofs),
                cmocka_unit_test(test_squashfs),
                cmocka_unit_test(test_bad_root),
        };
        return cmocka_run_group_tests(tests, group_setup, NULL);
}
