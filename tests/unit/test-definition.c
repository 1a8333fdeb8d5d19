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
                             "[repo local]\nbaseurl = repo/\ngpgkey = repo/RPM-GPG-KEY\n"
                             "[repo web]\nbaseurl = http://127.0.0.1:8080/r\ngpgcheck = 0\n"
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
        write_text("t.conf", "[image]\nname = tiny\n[packages]\ninstall = a\n[repo r]\nbaseurl = /srv/r\ngpgcheck = 0\n");
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
                             "[repo r]\nbaseurl = /srv/r\ngpgcheck = 0\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_int_equal(strv_length(d->packages), 3);
        assert_string_equal(d->packages[0], "busybox");
        assert_string_equal(d->packages[1], "kernel >= 6.1");
        assert_string_equal(d->packages[2], "tiny-base = 2.0");

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = strdup_printf("[image]\nname = t\nversion = 1\n[packages]\ninstall = %s\n"
                                                          "[repo r]\nbaseurl = /srv/r\ngpgcheck = 0\n",
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

/* Loads bad.conf, which must fail with error; buf gets the first line logged. */
static void load_error(int error, char *buf, size_t size) {
        ImageDef *d = NULL;
        FILE *f;
        int saved;

        fflush(stderr);
        saved = dup(2);
        f = freopen("err.txt", "w", stderr);
        assert_non_null(f);
        assert_int_equal(image_def_load("bad.conf", NULL, &d), error);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        assert_null(d);
        f = fopen("err.txt", "r");
        assert_non_null(f);
        assert_non_null(fgets(buf, (int) size, f));
        fclose(f);
}

/* The error for an unknown key names file and line. */
static void test_error_location(void **state) {
        char buf[512] = "";
        (void) state;

        write_text("bad.conf", "[image]\nname = t\n\nflavour = x\n");
        load_error(-EINVAL, buf, sizeof(buf));
        assert_non_null(strstr(buf, "bad.conf:4: unknown key 'flavour'"));
}

/* gpgcheck and gpgkey of a [repo ID] section, as in a dnf .repo file. */
static void test_repo_gpg(void **state) {
        static const struct {
                const char *text;
                int code;
                const char *error;
        } cases[] = {
                { "gpgcheck = maybe\n", -EINVAL, "bad.conf:9: invalid gpgcheck 'maybe' (1 or 0)" },
                { "gpgkey = ftp://keys/k.asc\n", -EPROTONOSUPPORT, "bad.conf:9: unsupported gpgkey 'ftp://keys/k.asc'" },
                { "gpgkey = /k1\ngpgkey = /k2\n", -EINVAL, "bad.conf:10: repository 'r' has a second gpgkey" },
                { "gpgsig = 1\n", -EINVAL, "bad.conf:9: unknown key 'gpgsig' in section '[repo r]'" },
                { "[repo s]\ngpgcheck = 0\n", -EINVAL, "bad.conf:10: repository 's' has no baseurl" },
                /* on by default, as in dnf: then the keys must be listed */
                { "[repo s]\nbaseurl = /srv/s\n", -EINVAL,
                  "bad.conf:10: repository 's' has gpgcheck on but no gpgkey" },
                { "[repo s]\nbaseurl = /srv/s\ngpgcheck = yes\n", -EINVAL,
                  "bad.conf:10: repository 's' has gpgcheck on but no gpgkey" },
        };
        _cleanup_image_def_free_ ImageDef *d = NULL;
        (void) state;

        write_text("t.conf", "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n"
                             "[repo signed]\ngpgkey = keys/RPM-GPG-KEY-a https://k.example/b.asc,file:///etc/c\n"
                             "baseurl = /srv/signed\n"
                             "[repo lab]\nbaseurl = /srv/lab\ngpgcheck = False\n"
                             "[repo plain]\ngpgkey = /etc/k\nbaseurl = /srv/plain\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_int_equal(d->n_repos, 3);
        assert_true(d->repos[0].gpgcheck);
        assert_int_equal(strv_length(d->repos[0].gpgkeys), 3);
        assert_true(startswith(d->repos[0].gpgkeys[0], "file:///"));
        assert_true(endswith(d->repos[0].gpgkeys[0], "/keys/RPM-GPG-KEY-a"));
        assert_string_equal(d->repos[0].gpgkeys[1], "https://k.example/b.asc");
        assert_string_equal(d->repos[0].gpgkeys[2], "file:///etc/c");
        assert_int_equal(d->repos[0].line, 7);
        assert_false(d->repos[1].gpgcheck);
        /* default on, as in dnf */
        assert_true(d->repos[2].gpgcheck);
        assert_string_equal(d->repos[2].gpgkeys[0], "file:///etc/k");

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = strdup_printf("[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n"
                                                          "[repo r]\nbaseurl = /srv/r\ngpgcheck = 0\n%s",
                                                          cases[i].text);
                char buf[512] = "";

                write_text("bad.conf", text);
                load_error(cases[i].code, buf, sizeof(buf));
                if (!strstr(buf, cases[i].error))
                        fail_msg("case %zu: '%s' does not say '%s'", i, buf, cases[i].error);
        }
}

/* The slot argument is the boot entries'. A cmdline that named one was
 * built into a disk entry with two slot arguments, while the agent refused
 * to write any entry for the image (its staging failed on every host): it
 * is refused where it is written. */
static void test_cmdline_slot(void **state) {
        char buf[512] = "";
        (void) state;

        write_text("bad.conf", "[image]\nname = t\nversion = 1\n[boot]\ncmdline = quiet slipway.slot=b\n");
        load_error(-EINVAL, buf, sizeof(buf));
        if (!strstr(buf, "bad.conf:5: cmdline must not hold slipway.slot="))
                fail_msg("'%s'", buf);
}

/* [boot] loader and firmware: defaults, values, and systemd-boot refused
 * where a BIOS would have to run it. */
static void test_boot_loader(void **state) {
        static const char base[] = "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n"
                                   "[repo r]\nbaseurl = /srv/r\ngpgcheck = 0\n[boot]\n";
        static const struct {
                const char *keys, *error;
        } bad[] = {
                { "loader = lilo\n", "bad.conf:10: unknown loader 'lilo' (systemd-boot or grub)" },
                { "loader = grub\nfirmware = efi\n", "bad.conf:11: unknown firmware 'efi' (uefi, bios or both)" },
                { "firmware = bios\n", "bad.conf:10: firmware = bios needs loader = grub" },
                { "loader = systemd-boot\nfirmware = both\n", "bad.conf:11: firmware = both needs loader = grub" },
        };
        _cleanup_image_def_free_ ImageDef *d = NULL;
        _cleanup_free_ char *text = NULL;
        char buf[512] = "";
        (void) state;

        write_text("t.conf", base);
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_int_equal(d->loader, BOOT_LOADER_SYSTEMD_BOOT);
        assert_int_equal(d->firmware, BOOT_FIRMWARE_UEFI);
        image_def_free(TAKE_PTR(d));
        text = strdup_printf("%sloader = grub\nfirmware = both\n", base);
        write_text("t.conf", text);
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_int_equal(d->loader, BOOT_LOADER_GRUB);
        assert_int_equal(d->firmware, BOOT_FIRMWARE_BOTH);
        assert_string_equal(boot_loader_type_to_string(d->loader), "grub");
        assert_string_equal(boot_firmware_to_string(d->firmware), "both");
        assert_int_equal(boot_firmware_from_string("BIOS"), _BOOT_FIRMWARE_INVALID);
        assert_int_equal(boot_loader_type_from_string(NULL), _BOOT_LOADER_TYPE_INVALID);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *t = strdup_printf("%s%s", base, bad[i].keys);
                write_text("bad.conf", t);
                load_error(-EINVAL, buf, sizeof(buf));
                if (!strstr(buf, bad[i].error))
                        fail_msg("case %zu: '%s' does not say '%s'", i, buf, bad[i].error);
        }
}

/* The keys of a .repo file in a [repo ID] section. */
static void test_repo_keys(void **state) {
        _cleanup_image_def_free_ ImageDef *d = NULL;
        const RepoDef *r;
        (void) state;

        write_text("t.conf", "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n"
                             "[repo base]\nname = Base OS\n"
                             "baseurl = http://m1/base, http://m2/base/  https://m3/base\n"
                             "mirrorlist = http://lists/base.txt\nmetalink = https://lists/metalink?repo=base\n"
                             "enabled = 1\ngpgcheck = yes\nrepo_gpgcheck = true\n"
                             "gpgkey = /etc/pki/rpm-gpg/RPM-GPG-KEY-a, file:///k/b https://keys/c\n"
                             "timeout = 5\nminrate = 2k\ncountme = 1\nmetadata_expire = 6h\ntype = rpm-md\n"
                             "[repo off]\nbaseurl = http://x/off\nenabled = 0\ngpgcheck = 0\n"
                             "[repo listed]\nmirrorlist = http://lists/listed.txt\ngpgcheck = 0\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        /* the disabled one is dropped */
        assert_int_equal(d->n_repos, 2);
        r = &d->repos[0];
        assert_string_equal(r->id, "base");
        assert_string_equal(r->name, "Base OS");
        assert_int_equal(strv_length(r->baseurls), 3);
        assert_string_equal(r->baseurls[0], "http://m1/base");
        assert_string_equal(r->baseurls[1], "http://m2/base");
        assert_string_equal(r->baseurls[2], "https://m3/base");
        assert_string_equal(r->baseurl, "http://m1/base");
        assert_string_equal(r->mirrorlist, "http://lists/base.txt");
        assert_string_equal(r->metalink, "https://lists/metalink?repo=base");
        assert_true(r->enabled);
        assert_true(r->gpgcheck);
        assert_true(r->repo_gpgcheck);
        assert_int_equal(strv_length(r->gpgkeys), 3);
        assert_string_equal(r->gpgkeys[0], "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-a");
        assert_string_equal(r->gpgkeys[1], "file:///k/b");
        assert_string_equal(r->gpgkeys[2], "https://keys/c");
        assert_int_equal(r->timeout, 5);
        assert_int_equal(r->minrate, 2048);
        assert_true(endswith(r->file, "t.conf"));
        r = &d->repos[1];
        assert_string_equal(r->id, "listed");
        assert_null(r->baseurl);
        assert_null(r->baseurls);
        assert_string_equal(r->mirrorlist, "http://lists/listed.txt");
        assert_false(r->repo_gpgcheck);
}

/* $basearch, $arch, $releasever and ${name}, wherever [image] stands. */
static void test_repo_vars(void **state) {
        _cleanup_image_def_free_ ImageDef *d = NULL;
        _cleanup_free_ char *s = NULL, *unknown = NULL;
        (void) state;

        assert_int_equal(repo_vars_substitute("a/$releasever/${basearch}/$arch-$basearch_x/$5/$", "i686", "9", &s,
                                              NULL),
                         -ENOENT);
        assert_int_equal(repo_vars_substitute("a/$releasever/${basearch}/$arch/$5/$", "i686", "9", &s, NULL), 0);
        assert_string_equal(s, "a/9/i386/i686/$5/$");
        assert_int_equal(repo_vars_substitute("$contentdir/x", "x86_64", "9", &s, &unknown), -ENOENT);
        assert_string_equal(unknown, "contentdir");
        free(TAKE_PTR(unknown));
        assert_int_equal(repo_vars_substitute("$releasever", "x86_64", NULL, &s, &unknown), -ENOENT);
        assert_int_equal(repo_vars_substitute("${arch", "x86_64", NULL, &s, NULL), -EINVAL);
        assert_string_equal(arch_to_basearch("armv7hl"), "armhfp");
        assert_string_equal(arch_to_basearch("aarch64"), "aarch64");

        write_text("t.conf", "[packages]\ninstall = a\n"
                             "[repo baseos]\nbaseurl = http://m/$releasever/BaseOS/$basearch/os\n"
                             "metalink = https://mirrors/metalink?repo=rocky-BaseOS-$releasever&arch=${basearch}\n"
                             "gpgkey = /etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-$releasever\n"
                             "[image]\nname = t\nversion = 1\narch = aarch64\nreleasever = 9.4\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_string_equal(d->releasever, "9.4");
        assert_string_equal(d->repos[0].baseurl, "http://m/9.4/BaseOS/aarch64/os");
        assert_string_equal(d->repos[0].metalink, "https://mirrors/metalink?repo=rocky-BaseOS-9.4&arch=aarch64");
        assert_string_equal(d->repos[0].gpgkeys[0], "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9.4");
}

/* Each bad repository key fails with file:line and a message. */
static void test_repo_key_errors(void **state) {
        static const struct {
                const char *text;
                int error;
                const char *message;
        } cases[] = {
                { "[repo r]\nbaseurl = http://x/$foo\n", -EINVAL, "bad.conf:8: unknown variable '$foo' in 'baseurl'" },
                { "[repo r]\nbaseurl = http://x/$releasever\n", -EINVAL, "bad.conf:8: 'baseurl' uses $releasever, but" },
                { "[repo r]\nbaseurl = http://x/${arch\n", -EINVAL, "bad.conf:8: '${' without its '}'" },
                { "[repo r]\nbaseurl = ftp://x\n", -EPROTONOSUPPORT, "bad.conf:8: unsupported baseurl 'ftp://x'" },
                { "[repo r]\nbaseurl = ,\n", -EINVAL, "bad.conf:8: baseurl names nothing" },
                { "[repo r]\nbaseurl = /a\nbaseurl = /b\n", -EINVAL, "bad.conf:9: repository 'r' has a second baseurl" },
                { "[repo r]\nmirrorlist = http://a http://b\n", -EINVAL, "bad.conf:8: mirrorlist takes one URL" },
                { "[repo r]\nenabled = maybe\n", -EINVAL, "bad.conf:8: invalid enabled 'maybe'" },
                { "[repo r]\nrepo_gpgcheck = 2\n", -EINVAL, "bad.conf:8: invalid repo_gpgcheck '2'" },
                { "[repo r]\ntimeout = 0\n", -EINVAL, "bad.conf:8: invalid timeout '0'" },
                { "[repo r]\nminrate = fast\n", -EINVAL, "bad.conf:8: invalid minrate 'fast'" },
                { "[repo r]\ntype = yast2\n", -EINVAL, "bad.conf:8: unsupported repository type 'yast2'" },
                { "[repo r]\nskip_if_unavailable = 1\n", -EINVAL, "bad.conf:8: unknown key 'skip_if_unavailable'" },
                { "[repo r]\nname = R\ngpgcheck = 0\n", -EINVAL, "bad.conf:8: repository 'r' has no baseurl, mirrorlist or metalink" },
                { "[repo r]\nbaseurl = /a\ngpgcheck = 0\nrepo_gpgcheck = 1\n", -EINVAL, "bad.conf:8: repository 'r' has repo_gpgcheck on but no gpgkey" },
                { "[repo r]\nbaseurl = /a\nenabled = 0\n", -EINVAL, "bad.conf:8: repository 'r' has enabled = 0: not used" },
                { "[repos]\ninclude = nothing.repo\n", -ENOENT, "bad.conf:8: included file '" },
                { "[repos]\nextra = 1\n", -EINVAL, "bad.conf:8: unknown key 'extra' in section '[repos]'" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = strdup_printf("[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n\n%s",
                                                          cases[i].text);
                char buf[512] = "";

                write_text("bad.conf", text);
                load_error(cases[i].error, buf, sizeof(buf));
                if (!strstr(buf, cases[i].message))
                        fail_msg("case %zu: '%s' lacks '%s'", i, buf, cases[i].message);
        }
}

/* [repos] include reads .repo files through the same keys; errors name the
 * included file and line. */
static void test_include(void **state) {
        _cleanup_image_def_free_ ImageDef *d = NULL;
        char buf[512] = "";
        (void) state;

        assert_int_equal(mkdir_p("yum.repos.d", 0755), 0);
        assert_int_equal(mkdir_p("site-repo/x86_64", 0755), 0);
        write_text("yum.repos.d/site.repo", "# a site's repositories\n"
                                            "[site]\nname=Site $releasever\nbaseurl=../site-repo/$basearch\n"
                                            "gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-site\n"
                                            "enabled=1\n\n"
                                            "[site-debug]\nname=Debug\nbaseurl=http://s/debug\nenabled=0\n");
        write_text("yum.repos.d/epel.repo", "[epel]\nmetalink=https://mirrors/metalink?repo=epel-$releasever&arch=$basearch\n"
                                            "gpgkey=/etc/pki/rpm-gpg/RPM-GPG-KEY-EPEL-$releasever\n"
                                            "countme=1\npriority=50\ncost=200\nexcludepkgs=foo-*\n"
                                            "includepkgs=foo* bar\nmodule_hotfixes=1\n");
        write_text("t.conf", "[image]\nname = t\nversion = 1\nreleasever = 9\n[packages]\ninstall = a\n"
                             "[repos]\ninclude = yum.repos.d/site.repo yum.repos.d/epel.repo\n"
                             "[repo local]\nbaseurl = /srv/local\ngpgcheck = 0\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_int_equal(d->n_repos, 3);
        assert_string_equal(d->repos[0].id, "site");
        assert_string_equal(d->repos[0].name, "Site 9");
        /* relative to the included file */
        assert_true(endswith(d->repos[0].baseurl, "/site-repo/x86_64"));
        assert_false(strstr(d->repos[0].baseurl, "yum.repos.d"));
        assert_true(endswith(d->repos[0].file, "yum.repos.d/site.repo"));
        assert_int_equal(d->repos[0].line, 3);
        assert_string_equal(d->repos[1].id, "epel");
        assert_string_equal(d->repos[1].metalink, "https://mirrors/metalink?repo=epel-9&arch=x86_64");
        /* the keys that steer resolution work in an included file too */
        assert_int_equal(d->repos[1].priority, 50);
        assert_int_equal(d->repos[1].cost, 200);
        assert_int_equal(strv_length(d->repos[1].excludepkgs), 1);
        assert_int_equal(strv_length(d->repos[1].includepkgs), 2);
        assert_true(d->repos[1].module_hotfixes);
        assert_int_equal(d->repos[0].priority, 99);
        assert_string_equal(d->repos[2].id, "local");
        image_def_free(TAKE_PTR(d));

        /* a bad key in an included file: its own file:line */
        write_text("yum.repos.d/bad.repo", "[b]\nbaseurl=/x\nsslverify=0\n");
        write_text("bad.conf", "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n[repos]\ninclude = yum.repos.d/bad.repo\n");
        load_error(-EINVAL, buf, sizeof(buf));
        if (!strstr(buf, "yum.repos.d/bad.repo:3: unknown key 'sslverify' in section '[repo b]'"))
                fail_msg("'%s'", buf);
        /* [main] is dnf.conf's */
        write_text("yum.repos.d/bad.repo", "[main]\ngpgcheck=1\n");
        load_error(-EINVAL, buf, sizeof(buf));
        if (!strstr(buf, "yum.repos.d/bad.repo:2: [main] holds dnf's own settings"))
                fail_msg("'%s'", buf);
        /* the same id in two files */
        write_text("yum.repos.d/bad.repo", "[dup]\nbaseurl=/x\ngpgcheck=0\n");
        write_text("bad.conf", "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n[repo dup]\nbaseurl = /y\n"
                               "gpgcheck = 0\n[repos]\ninclude = yum.repos.d/bad.repo\n");
        load_error(-EINVAL, buf, sizeof(buf));
        if (!strstr(buf, "yum.repos.d/bad.repo:2: repository 'dup' is defined twice (first in bad.conf:7)"))
                fail_msg("'%s'", buf);
        /* a definition is no .repo file */
        write_text("bad.conf", "[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n[repos]\ninclude = bad.conf\n");
        load_error(-EINVAL, buf, sizeof(buf));
        if (!strstr(buf, "bad.conf:3: unknown key 'version' in section '[repo image]'"))
                fail_msg("'%s'", buf);
}

/* The keys that steer resolution: [packages] exclude, install_weak_deps
 * and group-package-types, [modules] enable, and the repo keys priority,
 * cost, includepkgs, excludepkgs and module_hotfixes. */
static void test_resolution_keys(void **state) {
        static const struct {
                const char *text;
                const char *error;
        } cases[] = {
                { "priority = 0\n", "bad.conf:9: invalid priority '0' (a whole number from 1 to" },
                { "priority = high\n", "bad.conf:9: invalid priority 'high'" },
                { "cost = -1\n", "bad.conf:9: invalid cost '-1' (a whole number from 0 to" },
                { "cost = 10x\n", "bad.conf:9: invalid cost '10x'" },
                { "includepkgs =\n", "bad.conf:9: 'includepkgs' names no package" },
                { "excludepkgs = a>1\n", "bad.conf:9: 'a>1' in 'excludepkgs' is not a package name or glob" },
                { "module_hotfixes = sometimes\n", "bad.conf:9: invalid module_hotfixes 'sometimes' (1 or 0)" },
                { "[packages]\ninstall_weak_deps = maybe\n", "bad.conf:10: invalid install_weak_deps 'maybe'" },
                { "[packages]\ngroup-package-types = mandatory extra\n",
                  "bad.conf:10: unknown group package type 'extra'" },
                { "[packages]\ngroup-package-types = ,\n", "bad.conf:10: group-package-types names no type" },
                { "[packages]\nexclude = ,\n", "bad.conf:10: 'exclude' names no package" },
                { "[packages]\nweak = no\n", "bad.conf:10: unknown key 'weak' in section '[packages]'" },
                { "[modules]\nenable = nodejs\n", "bad.conf:10: 'nodejs' is not a module stream" },
                { "[modules]\nenable = nodejs:\n", "bad.conf:10: 'nodejs:' is not a module stream" },
                { "[modules]\nenable = nodejs:18/\n", "bad.conf:10: 'nodejs:18/' is not a module stream" },
                { "[modules]\nenable = nodejs:18 nodejs:20\n", "bad.conf:10: module 'nodejs' is enabled twice" },
                { "[modules]\nenable =\n", "bad.conf:10: enable names no module stream" },
                { "[modules]\ndisable = x:1\n", "bad.conf:10: 'x:1' is not a module name" },
                { "[modules]\ndisable =\n", "bad.conf:10: disable names no module" },
                { "[modules]\nenable = x:1\ndisable = y x\n", "bad.conf:11: module 'x' is both enabled and disabled" },
                { "[modules]\ndisable = x\nenable = x:1/p\n", "bad.conf:11: module 'x' is both enabled and disabled" },
                { "[modules]\nsw = x:1\n", "bad.conf:10: unknown key 'sw' in section '[modules]'" },
        };
        _cleanup_image_def_free_ ImageDef *d = NULL;
        (void) state;

        write_text("t.conf", "[image]\nname = t\nversion = 1\n"
                             "[packages]\ninstall = @core @^server /usr/bin/vim a\nexclude = kernel-debug*, b\n"
                             "exclude = c\ninstall_weak_deps = no\ngroup-package-types = mandatory,optional\n"
                             "[modules]\nenable = nodejs:18/common postgresql:15\nenable = perl:5.36\n"
                             "disable = ruby php\ndisable = ruby\n"
                             "[repo main]\nbaseurl = /srv/main\ngpgcheck = 0\n"
                             "[repo extra]\nbaseurl = /srv/extra\ngpgcheck = 0\npriority = 10\ncost = 500\n"
                             "includepkgs = foo*, bar\nexcludepkgs = foo-debug\nexclude = baz\nmodule_hotfixes = 1\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_int_equal(strv_length(d->packages), 4);
        assert_string_equal(d->packages[0], "/usr/bin/vim");
        assert_string_equal(d->packages[1], "@^server");
        assert_string_equal(d->packages[2], "@core");
        assert_int_equal(strv_length(d->exclude), 3);
        assert_string_equal(d->exclude[0], "kernel-debug*");
        assert_false(d->install_weak_deps);
        assert_int_equal(d->group_package_types, GROUP_PACKAGE_MANDATORY | GROUP_PACKAGE_OPTIONAL);
        assert_int_equal(strv_length(d->modules), 3);
        assert_string_equal(d->modules[0], "nodejs:18/common");
        assert_string_equal(d->modules[2], "perl:5.36");
        /* disable: each module once, in file order */
        assert_int_equal(strv_length(d->modules_disable), 2);
        assert_string_equal(d->modules_disable[0], "ruby");
        assert_string_equal(d->modules_disable[1], "php");
        /* dnf's defaults */
        assert_int_equal(d->repos[0].priority, 99);
        assert_int_equal(d->repos[0].cost, 1000);
        assert_null(d->repos[0].includepkgs);
        assert_null(d->repos[0].excludepkgs);
        assert_false(d->repos[0].module_hotfixes);
        assert_int_equal(d->repos[1].priority, 10);
        assert_int_equal(d->repos[1].cost, 500);
        assert_int_equal(strv_length(d->repos[1].includepkgs), 2);
        assert_string_equal(d->repos[1].includepkgs[1], "bar");
        assert_int_equal(strv_length(d->repos[1].excludepkgs), 2);
        assert_string_equal(d->repos[1].excludepkgs[1], "baz");
        assert_true(d->repos[1].module_hotfixes);
        image_def_free(TAKE_PTR(d));

        /* The defaults when the keys are absent; a profile alone installs. */
        write_text("t.conf", "[image]\nname = t\nversion = 1\n[modules]\nenable = nodejs:18/common\n"
                             "[repo main]\nbaseurl = /srv/main\ngpgcheck = 0\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), 0);
        assert_true(d->install_weak_deps);
        assert_int_equal(d->group_package_types,
                         GROUP_PACKAGE_MANDATORY | GROUP_PACKAGE_DEFAULT | GROUP_PACKAGE_CONDITIONAL);
        assert_null(d->exclude);
        image_def_free(TAKE_PTR(d));
        write_text("t.conf", "[image]\nname = t\nversion = 1\n[modules]\nenable = nodejs:18\n"
                             "[repo main]\nbaseurl = /srv/main\ngpgcheck = 0\n");
        assert_int_equal(image_def_load("t.conf", NULL, &d), -EINVAL);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = strdup_printf("[image]\nname = t\nversion = 1\n[packages]\ninstall = a\n"
                                                          "[repo r]\nbaseurl = /srv/r\ngpgcheck = 0\n%s",
                                                          cases[i].text);
                char buf[512] = "";

                write_text("bad.conf", text);
                load_error(-EINVAL, buf, sizeof(buf));
                if (!strstr(buf, cases[i].error))
                        fail_msg("case %zu: '%s' does not say '%s'", i, buf, cases[i].error);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_load),
                test_in_dir(test_version_override),
                test_in_dir(test_install_constraints),
                test_in_dir(test_errors),
                test_in_dir(test_error_location),
                test_in_dir(test_repo_gpg),
                test_in_dir(test_cmdline_slot),
                test_in_dir(test_boot_loader),
                test_in_dir(test_repo_keys),
                test_in_dir(test_repo_vars),
                test_in_dir(test_repo_key_errors),
                test_in_dir(test_include),
                test_in_dir(test_resolution_keys),
        };
        return cmocka_run_group_tests_name("definition", tests, NULL, NULL);
}
