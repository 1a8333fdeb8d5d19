#include "tests.h"

#include "definition.h"
#include "fileio.h"
#include "util.h"

static void write_text(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void test_load(void **state) {
        _cleanup_image_def_free_ ImageDef *d = NULL;
        (void) state;
        assert_int_equal(mkdir_p("repo", 0755), 0);
        write_text("t.conf", "[image]\nname = tiny\nversion = 1.0\n"
                             "[packages]\ninstall = kernel busybox\ninstall = tiny-base busybox\n"
                             "[repo local]\nbaseurl = repo/\n"
                             "[repo web]\nbaseurl = http://127.0.0.1:8080/r\n"
                             "[boot]\ncmdline = console=ttyS0 quiet\ninitramfs-modules = erofs, virtio_blk\n"
                             "[disk]\nesp-size = 32M\nroot-size = 1G\nvar-size = 16M\n"
                             "[rootfs]\ntype = squashfs\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_string_equal(d->name, "tiny");
        assert_string_equal(d->version, "1.0");
        assert_string_equal(d->arch, "x86_64");
        assert_int_equal(strv_length(d->packages), 3);
        assert_string_equal(d->packages[0], "busybox");
        assert_int_equal(d->n_repos, 2);
        assert_true(startswith(d->repos[0].baseurl, "file:///"));
        assert_true(endswith(d->repos[0].baseurl, "/repo"));
        assert_string_equal(d->repos[1].baseurl, "http://127.0.0.1:8080/r");
        assert_string_equal(d->cmdline, "console=ttyS0 quiet");
        assert_int_equal(strv_length(d->initramfs_modules), 2);
        assert_int_equal(d->root_size, 1ULL << 30);
        assert_int_equal(d->rootfs_type, ROOTFS_SQUASHFS);
        assert_string_equal(d->rpmdb_path, "/usr/lib/sysimage/rpm");
}

static void test_version_override(void **state) {
        _cleanup_image_def_free_ ImageDef *d = NULL;
        (void) state;
        write_text("t.conf", "[image]\nname = tiny\n[packages]\ninstall = a\n[repo r]\nbaseurl = /srv/r\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), -EINVAL);
        assert_int_equal(image_def_load("t.conf", "2.0", &d), 0);
        assert_string_equal(d->version, "2.0");
        assert_string_equal(d->repos[0].baseurl, "file:///srv/r");
        image_def_free(TAKE_PTR(d));
        assert_int_equal(image_def_load("t.conf", "../evil", &d), -EINVAL);
        /* '+' is the boot counter's: the agent could not install "1.0+1". */
        assert_int_equal(image_def_load("t.conf", "1.0+1", &d), -EINVAL);
        assert_null(d);
        assert_int_equal(image_def_load("t.conf", "1.0^git5~rc1", &d), 0);
        assert_string_equal(d->version, "1.0^git5~rc1");
}

/* "NAME OP VERSION" stays one request; a constraint written otherwise is
 * an error. */
static void test_install_constraints(void **state) {
        static const char *const bad[] = { "a=1.0", "a = ", "= 1.0", "a >= <2", "a =< 1" };
        _cleanup_image_def_free_ ImageDef *d = NULL;
        (void) state;

        write_text("t.conf", "[image]\nname = t\nversion = 2.0\n"
                             "[packages]\ninstall = tiny-base = 2.0 kernel >= 6.1, busybox\n"
                             "[repo r]\nbaseurl = /srv/r\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_int_equal(strv_length(d->packages), 3);
        assert_string_equal(d->packages[0], "busybox");
        assert_string_equal(d->packages[1], "kernel >= 6.1");
        assert_string_equal(d->packages[2], "tiny-base = 2.0");

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = strdup_printf("[image]\nname = t\nversion = 1\n[packages]\ninstall = %s\n"
                                                          "[repo r]\nbaseurl = /srv/r\n",
                                                          bad[i]);
                ImageDef *b = NULL;

                write_text("bad.conf", text);
                if (image_def_load("bad.conf", NULL, &b) != -EINVAL)
                        fail_msg("install = %s was not refused", bad[i]);
                assert_null(b);
        }
}

/* Every bad definition fails with -EINVAL (or -EBADMSG for syntax). */
static void test_errors(void **state) {
        static const struct {
                const char *text;
                int error;
        } cases[] = {
                { "[image]\nname = t\nversion = 1\ncolour = red\n", -EINVAL },
                { "[image]\nname = t\nversion = 1\n[weird]\nx = 1\n", -EINVAL },
                { "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n", -EINVAL },
                { "[image]\nname = t\nversion = 1\n[repo r]\nbaseurl = /x\n", -EINVAL },
                { "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n[repo r]\nbaseurl = ftp://x\n", -EPROTONOSUPPORT },
                { "[image]\nname = t/x\n", -EINVAL },
                { "[image]\nname = t\nversion = 1.0+2\n[packages]\ninstall = a\n[repo r]\nbaseurl = /x\n", -EINVAL },
                { "[image]\nname = t\nversion = 1\nmin-from-version = 0.9+1\n", -EINVAL },
                { "[disk]\nroot-size = lots\n", -EINVAL },
                { "[disk]\nroot-size = 1001\n", -EINVAL },
                { "[rootfs]\ntype = ext4\n", -EINVAL },
                { "[rootfs]\nrpmdb = var/lib/rpm\n", -EINVAL },
                { "[image\n", -EBADMSG },
                { "[repo r]\nbaseurl = /a\nbaseurl = /b\n", -EINVAL },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                ImageDef *d = NULL;
                write_text("bad.conf", cases[i].text);
                if (image_def_load("bad.conf", NULL, &d) != cases[i].error)
                        fail_msg("case %zu did not fail with %d", i, cases[i].error);
                assert_null(d);
        }
}

/* The error for an unknown key names file and line. */
static void test_error_location(void **state) {
        ImageDef *d = NULL;
        char buf[512] = "";
        FILE *f;
        int saved;
        (void) state;

        write_text("bad.conf", "[image]\nname = t\n\nflavour = x\n");
        fflush(stderr);
        saved = dup(2);
        f = freopen("err.txt", "w", stderr);
        assert_non_null(f);
        assert_int_equal(image_def_load("bad.conf", NULL, &d), -EINVAL);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        f = fopen("err.txt", "r");
        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        assert_non_null(strstr(buf, "bad.conf:4: unknown key 'flavour'"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_load),
                test_in_dir(test_version_override),
                test_in_dir(test_install_constraints),
                test_in_dir(test_errors),
                test_in_dir(test_error_location),
        };
        return cmocka_run_group_tests_name("definition", tests, NULL, NULL);
}
