/* toolversion: the versions of the tools whose output lands in an image,
 * parsed from what the tools print, probed through PATH (a fake tool in the
 * test's directory shows that another version is seen), and the probe of a
 * whole build. */
#include "tests.h"

#include <sys/stat.h>

#include "fileio.h"
#include "toolversion.h"
#include "util.h"

static void test_parse(void **state) {
        static const struct {
                const char *output, *version;
        } cases[] = {
                { "mkfs.erofs 1.5\nmkfs.erofs: unrecognized option '--version'\n", "1.5" },
                { "mksquashfs version 4.5.1 (2022/03/17)\ncopyright (C) 2022\n", "4.5.1" },
                { "mkfs.fat: unable to create /dev/null/x\nmkfs.fat 4.2 (2021-01-31)\n", "4.2" },
                { "mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0\n", "1.47.0" },
                { "mcopy (GNU mtools) 4.0.32\nconfigured with the following options: ...\n", "4.0.32" },
                { "tool 2.1-rc1+git.5~x.\n", "2.1-rc1+git.5~x" },
                { "  7.0\n", "7.0" },
        };
        static const char *const none[] = { "", "usage: tool [options] FILE\n", "tool 2 (2021-01-31)\n",
                                             "tool v1.2\n", "tool 1.2)\n" };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *v = toolversion_parse(cases[i].output);
                if (!v || !streq(v, cases[i].version))
                        fail_msg("'%s': got '%s', expected '%s'", cases[i].output, strempty(v), cases[i].version);
        }
        for (size_t i = 0; i < ELEMENTSOF(none); i++) {
                _cleanup_free_ char *v = toolversion_parse(none[i]);
                if (v)
                        fail_msg("'%s': got '%s', expected no version", none[i], v);
        }
        assert_null(toolversion_parse(NULL));
}

static void put_tool(const char *name, const char *body) {
        assert_int_equal(mkdir_p("bin", 0755), 0);
        _cleanup_free_ char *p = path_join("bin", name);
        assert_int_equal(write_file_atomic(p, body, strlen(body), 0755), 0);
}

/* PATH with the test's bin/ first; the caller restores old. */
static char *path_prepend_bin(void) {
        char cwd[PATH_MAX];
        const char *old = getenv("PATH");
        char *saved = strdup(strempty(old));

        assert_non_null(getcwd(cwd, sizeof(cwd)));
        _cleanup_free_ char *path = strdup_printf("%s/bin:%s", cwd, strempty(old));
        assert_int_equal(setenv("PATH", path, 1), 0);
        return saved;
}

static void test_probe(void **state) {
        _cleanup_free_ char *v = NULL, *saved = NULL;
        char *const fake[] = { "fake-tool", "--version", NULL };
        char *const silent[] = { "silent-tool", NULL };
        char *const missing[] = { "no-such-tool-here", NULL };
        (void) state;

        /* the version counts, not the exit status */
        put_tool("fake-tool",
                 "#!/bin/sh\necho \"fake-tool: unrecognized option '$1'\" >&2\necho 'fake-tool 3.14.1'\nexit 1\n");
        put_tool("silent-tool", "#!/bin/sh\necho 'no version here'\n");
        saved = path_prepend_bin();
        assert_int_equal(toolversion_probe(fake, &v), 0);
        assert_string_equal(v, "3.14.1");
        assert_int_equal(toolversion_probe(silent, &v), -EBADMSG);
        assert_int_equal(toolversion_probe(missing, &v), -ENOENT);
        assert_string_equal(v, "3.14.1"); /* untouched on failure */
        setenv("PATH", saved, 1);
}

/* The tools of a build, as this machine has them; a mkfs.erofs first in
 * PATH that reports another version is what the build key sees. */
static void test_probe_build(void **state) {
        _cleanup_free_ char *saved = NULL;
        json_t *t = NULL;
        (void) state;

        assert_int_equal(toolversion_probe_build(ROOTFS_EROFS, false, false, &t), 0);
        /* mkfs.erofs, and the initramfs's compressors */
        assert_int_equal(json_object_size(t), 3);
        for (const char *const *k = (const char *const[]) { "mkfs.erofs", "libzstd", "zlib", NULL }; *k; k++)
                if (isempty(json_string_value(json_object_get(t, *k))))
                        fail_msg("no version of %s", *k);
        json_decref(t);

        assert_int_equal(toolversion_probe_build(ROOTFS_SQUASHFS, true, false, &t), 0);
        assert_null(json_object_get(t, "mkfs.erofs"));
        for (const char *const *k = (const char *const[]) { "mksquashfs", "mkfs.fat", "mtools", "mke2fs",
                                                             "libguestfs", "libzstd", "zlib", NULL };
             *k; k++)
                if (!json_string_value(json_object_get(t, *k)))
                        fail_msg("no version of %s", *k);
        json_decref(t);

        put_tool("mkfs.erofs", "#!/bin/sh\necho 'mkfs.erofs 99.1'\n");
        saved = path_prepend_bin();
        assert_int_equal(toolversion_probe_build(ROOTFS_EROFS, false, false, &t), 0);
        assert_string_equal(json_string_value(json_object_get(t, "mkfs.erofs")), "99.1");
        json_decref(t);

        put_tool("mkfs.erofs", "#!/bin/sh\necho 'usage: mkfs.erofs'\n");
        assert_int_equal(toolversion_probe_build(ROOTFS_EROFS, false, false, &t), -EBADMSG);
        setenv("PATH", saved, 1);
}

/* The build host's owner of a file it has from a package (this machine's
 * systemd-boot, when it has one), and none for a file no package owns. */
static void test_host_package(void **state) {
        _cleanup_free_ char *pkg = NULL;
        (void) state;

        put_tool("x", "x");
        assert_int_equal(toolversion_host_package("bin/x", &pkg), -ENOENT);
        assert_null(pkg);
        if (access("/usr/lib/systemd/boot/efi/systemd-bootx64.efi", F_OK) < 0)
                skip();
        assert_int_equal(toolversion_host_package("/usr/lib/systemd/boot/efi/systemd-bootx64.efi", &pkg), 0);
        assert_non_null(strstr(pkg, "systemd-boot"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_parse),
                test_in_dir(test_probe),
                test_in_dir(test_probe_build),
                test_in_dir(test_host_package),
        };
        return cmocka_run_group_tests_name("toolversion", tests, NULL, NULL);
}
