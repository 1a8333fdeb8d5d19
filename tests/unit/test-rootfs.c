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

static void test_compressed_magic(void **state _unused_) {
        static uint8_t bz[0x210];

        assert_true(rootfs_data_is_compressed((const uint8_t *) "\x1f\x8b\x08\0", 4));
        assert_true(rootfs_data_is_compressed((const uint8_t *) "\xfd" "7zXZ\0\0", 7));
        assert_true(rootfs_data_is_compressed((const uint8_t *) "\x28\xb5\x2f\xfd", 4));
        assert_true(rootfs_data_is_compressed((const uint8_t *) "BZh9", 4));
        assert_true(rootfs_data_is_compressed((const uint8_t *) "\x89PNG\r\n\x1a\n", 8));
        assert_false(rootfs_data_is_compressed((const uint8_t *) "BZhx", 4));
        assert_false(rootfs_data_is_compressed((const uint8_t *) "\x1f\x8b", 2)); /* too short to tell */
        assert_false(rootfs_data_is_compressed((const uint8_t *) "#!/bin/sh\n", 10));
        assert_false(rootfs_data_is_compressed(bz, 0));
        /* a bzImage: "HdrS" at 0x202 */
        memcpy(bz + 0x202, "HdrS", 4);
        assert_true(rootfs_data_is_compressed(bz, sizeof(bz)));
        assert_false(rootfs_data_is_compressed(bz, 0x205));
}

/* A file that starts like gzip but is 256 KiB of zeros after that: lz4hc
 * would shrink it to almost nothing, so it shows whether the hint was used. */
static void put_fake_packed(const char *path) {
        _cleanup_free_ char *data = calloc(1, 256 * 1024 + 1);

        assert_non_null(data);
        memcpy(data, "\x1f\x8b\x08", 3);
        assert_int_equal(mkdir_parents(path, 0755), 0);
        assert_int_equal(write_file_atomic(path, data, 256 * 1024, 0644), 0);
}

static void put_text(const char *path, size_t size) {
        _cleanup_free_ char *data = malloc(size + 1);

        assert_non_null(data);
        for (size_t i = 0; i < size; i++)
                data[i] = "slipway text "[i % 13];
        data[size] = 0;
        put(path, data, 0644);
}

/* Whether dump.erofs reports path in image compressed: layouts 1 and 3 are,
 * 0 and 2 (plain, inline tail) are stored as is. */
static bool erofs_compressed(const char *image, const char *path) {
        _cleanup_free_ char *cmd = strdup_printf("dump.erofs --path='%s' %s | sed -n 's/.*Layout: \\([0-9]\\).*/\\1/p'",
                                                 path, image);
        char buf[16] = "";
        FILE *f = popen(cmd, "r");

        assert_non_null(f);
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = 0;
        pclose(f);
        assert_true(buf[0] >= '0' && buf[0] <= '3');
        return buf[0] == '1' || buf[0] == '3';
}

static void test_erofs_hints(void **state _unused_) {
        _cleanup_free_ char *text = NULL;
        size_t size;

        put_fake_packed("hinted/boot/vmlinuz-9.0");      /* compressed content, no suffix */
        put_fake_packed("hinted/usr/share/man/ls.1.gz"); /* compressed, named so */
        put_fake_packed("hinted/odd name");              /* white space: left out */
        put_text("hinted/etc/plain.gz", 64 * 1024);      /* named so, plain text */
        put_text("hinted/usr/bin/tool", 64 * 1024);
        /* neither opened nor named: a FIFO, a symlink to compressed data */
        assert_int_equal(system("mkdir -p hinted/run && mkfifo hinted/run/fifo && "
                                "ln -s ../boot/vmlinuz-9.0 hinted/run/kernel"),
                         0);
        assert_int_equal(rootfs_erofs_hints("hinted", &text, &size), 0);
        assert_int_equal(size, strlen(text));
        assert_string_equal(text, "4096 ^etc/plain\\.gz$\n"
                                  "0 \\.(gz|tgz|xz|txz|zst|bz2|lz4|zip|jar|png|jpg|jpeg|woff2|rpm)$\n"
                                  "0 ^boot/vmlinuz-9\\.0$\n");

        assert_int_equal(rootfs_make("hinted", ROOTFS_EROFS, EPOCH, "hints", "hinted.erofs"), 0);
        assert_false(erofs_compressed("hinted.erofs", "/boot/vmlinuz-9.0"));
        assert_false(erofs_compressed("hinted.erofs", "/usr/share/man/ls.1.gz"));
        assert_true(erofs_compressed("hinted.erofs", "/odd name"));
        assert_true(erofs_compressed("hinted.erofs", "/etc/plain.gz"));
        assert_true(erofs_compressed("hinted.erofs", "/usr/bin/tool"));
        assert_int_equal(system("fsck.erofs --extract=hinted.out hinted.erofs >/dev/null && "
                                "diff -r -x fifo hinted hinted.out && test -p hinted.out/run/fifo"),
                         0);
        /* no hints file is left beside the image */
        assert_int_equal(system("! ls hinted.erofs.hints* 2>/dev/null"), 0);

        assert_int_equal(rootfs_erofs_hints("does-not-exist", &text, &size), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_erofs),
                cmocka_unit_test(test_squashfs),
                cmocka_unit_test(test_bad_root),
                cmocka_unit_test(test_compressed_magic),
                cmocka_unit_test(test_erofs_hints),
        };
        return cmocka_run_group_tests(tests, group_setup, NULL);
}
