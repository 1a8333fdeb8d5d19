/* kernel_find() and initramfs_make(): a fixture staging root with a fake
 * busybox and a fake module tree, the archive read back with libarchive.
 * Runs in the test's temporary directory (the cwd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fileio.h"
#include "initramfs.h"
#include "log.h"
#include "util.h"

#define EPOCH 1700000000ULL
#define KVER "6.1.0-test"
#define MODDIR "root/lib/modules/" KVER

extern unsigned char initramfs_init_sh[];
extern unsigned int initramfs_init_sh_len;

static void put(const char *path, const char *data, mode_t mode) {
        assert_int_equal(mkdir_parents(path, 0755), 0);
        assert_int_equal(write_file_atomic(path, data, strlen(data), mode), 0);
}

static int group_setup(void **state _unused_) {
        log_set_level(LOG_LEVEL_INFO);
        put("root/usr/bin/busybox", "fake busybox\n", 0755);
        put(MODDIR "/vmlinuz", "fake kernel\n", 0644);
        put(MODDIR "/kernel/fs/ext4/ext4.ko", "ext4\n", 0644);
        put(MODDIR "/kernel/fs/jbd2/jbd2.ko", "jbd2\n", 0644);
        put(MODDIR "/kernel/fs/mbcache.ko", "mbcache\n", 0644);
        put(MODDIR "/kernel/lib/crc16.ko", "crc16\n", 0644);
        put(MODDIR "/kernel/drivers/net/virtio-net.ko", "virtio_net\n", 0644);
        put(MODDIR "/kernel/drivers/net/failover.ko", "failover\n", 0644);
        put(MODDIR "/kernel/drivers/block/virtio_blk.ko", "virtio_blk\n", 0644);
        put(MODDIR "/kernel/extra/unused.ko", "unused\n", 0644);
        /* jbd2's own line adds crc16, which ext4's line forgets */
        put(MODDIR "/modules.dep",
            "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko\n"
            "kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko\n"
            "kernel/fs/mbcache.ko:\n"
            "kernel/lib/crc16.ko:\n"
            "kernel/drivers/net/virtio-net.ko: kernel/drivers/net/failover.ko\n"
            "kernel/drivers/net/failover.ko:\n"
            "kernel/drivers/block/virtio_blk.ko:\n"
            "kernel/extra/unused.ko:\n"
            "kernel/extra/gone.ko:\n",
            0644);
        put(MODDIR "/modules.alias", "alias virtio:d00000002v* virtio_blk\n", 0644);
        put(MODDIR "/modules.builtin", "kernel/fs/fat/vfat.ko\nkernel/fs/nls/nls-utf8.ko\n", 0644);
        return 0;
}

typedef struct Item {
        char path[256];
        mode_t mode;
        int64_t mtime, uid, gid, ino, nlink, size;
        dev_t rdev;
        char *data;
} Item;

/* Reads the whole archive into items (at most max). Returns the count. */
static size_t read_archive(const char *path, Item *items, size_t max) {
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        size_t n = 0;

        assert_non_null(a);
        archive_read_support_filter_all(a);
        archive_read_support_format_all(a);
        assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
        while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
                Item *it = &items[n++];
                assert_true(n <= max);
                snprintf(it->path, sizeof(it->path), "%s", archive_entry_pathname(e));
                it->mode = archive_entry_mode(e);
                it->mtime = archive_entry_mtime(e);
                it->uid = archive_entry_uid(e);
                it->gid = archive_entry_gid(e);
                it->ino = archive_entry_ino64(e);
                it->nlink = archive_entry_nlink(e);
                it->size = archive_entry_size(e);
                it->rdev = archive_entry_rdev(e);
                it->data = calloc(1, (size_t) it->size + 1);
                assert_non_null(it->data);
                if (it->size > 0)
                        assert_int_equal(archive_read_data(a, it->data, (size_t) it->size), it->size);
        }
        assert_int_equal(archive_format(a), ARCHIVE_FORMAT_CPIO_SVR4_NOCRC);
        assert_true(archive_filter_code(a, 0) == ARCHIVE_FILTER_GZIP || archive_filter_code(a, 0) == ARCHIVE_FILTER_ZSTD);
        archive_read_free(a);
        return n;
}

static void free_items(Item *items, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(items[i].data);
}

static const Item *find(const Item *items, size_t n, const char *path) {
        for (size_t i = 0; i < n; i++)
                if (streq(items[i].path, path))
                        return &items[i];
        return NULL;
}

static void test_kernel_find(void **state _unused_) {
        _cleanup_free_ char *path = NULL, *kver = NULL, *expect = NULL;

        assert_int_equal(kernel_find("root", &path, &kver), 0);
        assert_string_equal(kver, KVER);
        expect = realpath(MODDIR "/vmlinuz", NULL);
        assert_string_equal(path, expect);
        free(path);
        free(kver);

        /* /boot layout, with an absolute symlink that must resolve inside */
        put("broot/boot/vmlinuz-5.10.0-1", "old\n", 0644);
        put("broot/real/vmlinuz-6.2.0-1", "new\n", 0644);
        assert_int_equal(symlink("/real/vmlinuz-6.2.0-1", "broot/boot/vmlinuz-6.2.0-1"), 0);
        assert_int_equal(kernel_find("broot", &path, &kver), 0);
        assert_string_equal(kver, "6.2.0-1");
        free(expect);
        expect = realpath("broot/real/vmlinuz-6.2.0-1", NULL);
        assert_string_equal(path, expect);

        assert_int_equal(mkdir_p("empty", 0755), 0);
        assert_int_equal(kernel_find("empty", &path, &kver), -ENOENT);
}

static void test_initramfs_contents(void **state _unused_) {
        char *const modules[] = { "ext4", "virtio_net", "vfat", "virtio-blk", "ext4", NULL };
        static Item items[256];
        const Item *it;
        size_t n;

        assert_int_equal(initramfs_make("root", KVER, modules, EPOCH, "initrd.img"), 0);
        n = read_archive("initrd.img", items, ELEMENTSOF(items));
        assert_true(n > 10);

        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        assert_true(strcmp(items[i - 1].path, items[i].path) < 0);
                assert_int_equal(items[i].mtime, EPOCH);
                assert_int_equal(items[i].uid, 0);
                assert_int_equal(items[i].gid, 0);
                assert_int_equal(items[i].ino, (int64_t) i + 1);
                assert_int_equal(items[i].nlink, S_ISDIR(items[i].mode) ? 2 : 1);
        }

        it = find(items, n, "init");
        assert_non_null(it);
        assert_int_equal(it->mode, S_IFREG | 0755);
        assert_int_equal(it->size, initramfs_init_sh_len);
        assert_memory_equal(it->data, initramfs_init_sh, initramfs_init_sh_len);

        it = find(items, n, "bin/busybox");
        assert_non_null(it);
        assert_int_equal(it->mode, S_IFREG | 0755);
        assert_string_equal(it->data, "fake busybox\n");

        it = find(items, n, "dev/console");
        assert_non_null(it);
        assert_true(S_ISCHR(it->mode));
        assert_int_equal(major(it->rdev), 5);
        assert_int_equal(minor(it->rdev), 1);
        it = find(items, n, "dev/null");
        assert_non_null(it);
        assert_int_equal(major(it->rdev), 1);
        assert_int_equal(minor(it->rdev), 3);

        for (const char *const *d = (const char *const[]) { "dev", "proc", "sys", "sysroot", "run", "tmp", "etc",
                                                            "etc/slipway", "lib/modules/" KVER, NULL };
             *d; d++) {
                it = find(items, n, *d);
                assert_non_null(it);
                assert_true(S_ISDIR(it->mode));
        }

        for (const char *const *m = (const char *const[]) {
                     "kernel/fs/ext4/ext4.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/lib/crc16.ko",
                     "kernel/drivers/net/virtio-net.ko", "kernel/drivers/net/failover.ko",
                     "kernel/drivers/block/virtio_blk.ko", "modules.dep", "modules.alias", "modules.builtin", NULL };
             *m; m++) {
                _cleanup_free_ char *p = strdup_printf("lib/modules/" KVER "/%s", *m);
                assert_non_null(find(items, n, p));
        }
        assert_null(find(items, n, "lib/modules/" KVER "/kernel/extra/unused.ko"));
        assert_null(find(items, n, "lib/modules/" KVER "/vmlinuz"));
        assert_null(find(items, n, "usr/bin/slipway-agent"));

        it = find(items, n, "etc/slipway/initramfs-modules");
        assert_non_null(it);
        assert_string_equal(it->data, "ext4\nvirtio_net\nvirtio-blk\n");
        free_items(items, n);
}

static void test_initramfs_reproducible(void **state _unused_) {
        char *const modules[] = { "virtio_blk", "ext4", NULL };
        _cleanup_free_ char *data = NULL;
        size_t size = 0;

        assert_int_equal(initramfs_make("root", KVER, modules, EPOCH, "a.img"), 0);
        sleep(1);
        assert_int_equal(system("touch root/usr/bin/busybox"), 0);
        assert_int_equal(initramfs_make("root", KVER, modules, EPOCH, "b.img"), 0);
        assert_int_equal(system("cmp -s a.img b.img"), 0);
        /* gzip header: no timestamp */
        assert_int_equal(read_full_file("a.img", 1 << 20, &data, &size), 0);
        assert_true(size > 10);
        assert_memory_equal(data, "\x1f\x8b", 2);
        assert_memory_equal(data + 4, "\0\0\0\0", 4);

        assert_int_equal(initramfs_make("root", KVER, modules, EPOCH + 1, "c.img"), 0);
        assert_int_not_equal(system("cmp -s a.img c.img"), 0);
}

/* zstd when the kernel's config says it reads it (in /lib/modules/KVER or
 * /boot), gzip otherwise; the contents are the same either way. */
static void test_initramfs_compression(void **state _unused_) {
        char *const modules[] = { "virtio_blk", NULL };
        static Item gz[64], zs[64];
        _cleanup_free_ char *data = NULL;
        size_t size = 0, n_gz, n_zs;

        assert_int_equal(system("rm -rf zroot && cp -a root zroot"), 0);
        put("zroot/boot/config-" KVER, "CONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n", 0644);
        assert_int_equal(initramfs_make("zroot", KVER, modules, EPOCH, "z1.img"), 0);
        assert_int_equal(read_full_file("z1.img", 1 << 20, &data, &size), 0);
        assert_memory_equal(data, "\x1f\x8b", 2);
        free(data);
        data = NULL;
        n_gz = read_archive("z1.img", gz, ELEMENTSOF(gz));

        put("zroot/boot/config-" KVER, "CONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n", 0644);
        assert_int_equal(initramfs_make("zroot", KVER, modules, EPOCH, "z2.img"), 0);
        assert_int_equal(read_full_file("z2.img", 1 << 20, &data, &size), 0);
        assert_memory_equal(data, "\x28\xb5\x2f\xfd", 4);
        n_zs = read_archive("z2.img", zs, ELEMENTSOF(zs));
        assert_int_equal(n_zs, n_gz);
        for (size_t i = 0; i < n_zs; i++) {
                assert_string_equal(zs[i].path, gz[i].path);
                assert_int_equal(zs[i].size, gz[i].size);
        }
        free_items(gz, n_gz);
        free_items(zs, n_zs);
        /* reproducible too */
        assert_int_equal(initramfs_make("zroot", KVER, modules, EPOCH, "z3.img"), 0);
        assert_int_equal(system("cmp -s z2.img z3.img"), 0);

        /* the config beside the modules comes first */
        put("zroot/lib/modules/" KVER "/config", "# CONFIG_RD_ZSTD is not set\n", 0644);
        assert_int_equal(initramfs_make("zroot", KVER, modules, EPOCH, "z4.img"), 0);
        assert_int_equal(system("head -c2 z4.img | od -An -tx1 | grep -q '1f 8b'"), 0);
}

static void test_initramfs_errors(void **state _unused_) {
        char *const unknown[] = { "ext4", "nosuchmod", NULL };
        char *const gone[] = { "gone", NULL };
        char *const none[] = { NULL };

        assert_int_equal(initramfs_make("root", KVER, unknown, EPOCH, "bad.img"), -ENOENT);
        assert_false(path_exists("bad.img"));
        /* in modules.dep but no file */
        assert_int_equal(initramfs_make("root", KVER, gone, EPOCH, "bad.img"), -ENOENT);
        assert_false(path_exists("bad.img"));
        /* no busybox */
        put("nobb/lib/modules/" KVER "/modules.dep", "", 0644);
        assert_int_equal(initramfs_make("nobb", KVER, none, EPOCH, "bad.img"), -ENOENT);
        assert_false(path_exists("bad.img"));
        assert_int_equal(system("! ls *.tmp-* 2>/dev/null"), 0);
        /* a kernel without modules.dep still gets an initramfs */
        put("nomods/bin/busybox", "bb", 0755);
        assert_int_equal(initramfs_make("nomods", "5.0", none, EPOCH, "ok.img"), 0);
}

/* The agent with its libraries: /bin/ls of this machine stands in for it
 * (libselinux pulls in libpcre2-8: the closure is followed). */
static void test_initramfs_agent(void **state _unused_) {
        char *const modules[] = { NULL };
        static Item items[256];
        const Item *it;
        size_t n;

        assert_int_equal(system("set -e; r=aroot; mkdir -p $r/usr/bin $r/lib/x86_64-linux-gnu $r/lib64; "
                                "cp /usr/bin/busybox $r/usr/bin/ 2>/dev/null || cp /bin/busybox $r/usr/bin/; "
                                "cp /bin/ls $r/usr/bin/slipway-agent; "
                                "for l in libselinux.so.1 libc.so.6 libpcre2-8.so.0 ld-linux-x86-64.so.2; do "
                                "  cp -L /lib/x86_64-linux-gnu/$l $r/lib/x86_64-linux-gnu/; done; "
                                "ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 $r/lib64/ld-linux-x86-64.so.2"),
                         0);
        assert_int_equal(initramfs_make("aroot", KVER, modules, EPOCH, "agent.img"), 0);
        n = read_archive("agent.img", items, ELEMENTSOF(items));

        it = find(items, n, "usr/bin/slipway-agent");
        assert_non_null(it);
        assert_int_equal(it->mode & 0111, 0111);
        it = find(items, n, "lib64/ld-linux-x86-64.so.2");
        assert_non_null(it);
        assert_true(S_ISREG(it->mode)); /* the symlink is resolved inside aroot */
        assert_true(it->size > 1000);
        for (const char *const *l = (const char *const[]) { "libselinux.so.1", "libc.so.6", "libpcre2-8.so.0", NULL };
             *l; l++) {
                _cleanup_free_ char *p = strdup_printf("lib/x86_64-linux-gnu/%s", *l);
                assert_non_null(find(items, n, p));
        }
        free_items(items, n);

        /* a library that is not there */
        assert_int_equal(unlink("aroot/lib/x86_64-linux-gnu/libpcre2-8.so.0"), 0);
        assert_int_equal(initramfs_make("aroot", KVER, modules, EPOCH, "agent2.img"), -ENOENT);
        assert_false(path_exists("agent2.img"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kernel_find),
                cmocka_unit_test(test_initramfs_contents),
                cmocka_unit_test(test_initramfs_reproducible),
                cmocka_unit_test(test_initramfs_compression),
                cmocka_unit_test(test_initramfs_errors),
                cmocka_unit_test(test_initramfs_agent),
        };
        return cmocka_run_group_tests(tests, group_setup, NULL);
}
