/* bootfiles_find(): the boot files of a staging root, named by the lock's
 * package that installed them (asked from the root's rpmdb), and the build
 * host's systemd-boot for a root without one. Fixture RPMs are built with
 * rpmbuild and installed with rpm --root into the test's directory. */
#include "tests.h"

#include <sys/stat.h>

#include "bootfiles.h"
#include "fileio.h"
#include "hash.h"
#include "log.h"
#include "util.h"

#define DBPATH "/usr/lib/sysimage/rpm"

static const char spec_loader[] =
        "Name: fix-loader\nEpoch: 2\nVersion: 1.0\nRelease: 4\nSummary: l\nLicense: MIT\nBuildArch: noarch\n"
        "%description\nl\n"
        "%install\nd=%{buildroot}/usr/lib/systemd/boot/efi\nmkdir -p $d %{buildroot}/boot/efi/EFI/vendor\n"
        "echo not-really-efi > $d/systemd-bootx64.efi\necho shim > %{buildroot}/boot/efi/EFI/vendor/shimx64.efi\n"
        "%files\n/usr/lib/systemd/boot/efi/systemd-bootx64.efi\n/boot/efi/EFI/vendor/shimx64.efi\n";

static const char spec_other[] = "Name: fix-other\nVersion: 3\nRelease: 1\nSummary: o\nLicense: MIT\n"
                                 "BuildArch: noarch\n%description\no\n"
                                 "%install\nmkdir -p %{buildroot}/etc\necho o > %{buildroot}/etc/other\n"
                                 "%files\n/etc/other\n";

static int run(const char *cmd) {
        int k = system(cmd);
        return k == 0 ? 0 : -1;
}

/* Builds NAME from spec and installs it into root with rpm --root. */
static void install_fixture(const char *root, const char *name, const char *spec) {
        _cleanup_free_ char *path = strdup_printf("%s.spec", name), *cmd = NULL;

        assert_int_equal(write_file_atomic(path, spec, strlen(spec), 0644), 0);
        cmd = strdup_printf("rpmbuild -bb --quiet --define \"_topdir $PWD/rpmbuild\" "
                            "--define \"__os_install_post %%{nil}\" --define \"_build_id_links none\" "
                            "--define \"_rpmdir $PWD/rpms\" --define \"_rpmfilename %%{NAME}.rpm\" %s "
                            ">rpmbuild.log 2>&1 && mkdir -p %s && "
                            "rpm --root \"$PWD/%s\" --dbpath " DBPATH " -i --nodeps --nosignature --noscripts "
                            "rpms/%s.rpm >rpm.log 2>&1",
                            path, root, root, name);
        assert_int_equal(run(cmd), 0);
}

static void lock_add(Lock *l, const char *name, const char *epoch, const char *version, const char *release) {
        LockPackage *p;

        l->packages = realloc(l->packages, sizeof(LockPackage) * (l->n_packages + 1));
        assert_non_null(l->packages);
        p = &l->packages[l->n_packages++];
        *p = (LockPackage){
                .name = strdup(name),
                .epoch = strdup(epoch),
                .version = strdup(version),
                .release = strdup(release),
                .arch = strdup("noarch"),
        };
}

static void test_from_packages(void **state) {
        _cleanup_lock_free_ Lock *lock = calloc(1, sizeof(Lock));
        BootFiles b = {};
        json_t *j = NULL;
        char sha[65];
        (void) state;

        install_fixture("root", "fix-loader", spec_loader);
        install_fixture("root", "fix-other", spec_other);
        lock_add(lock, "fix-loader", "2", "1.0", "4");
        lock_add(lock, "fix-other", "0", "3", "1");

        assert_int_equal(bootfiles_find("root", DBPATH, lock, true, &b), 0);
        const BootFile *sd = &b.files[BOOT_ROLE_SYSTEMD_BOOT], *shim = &b.files[BOOT_ROLE_SHIM];
        assert_string_equal(sd->image_path, BOOTFILES_SYSTEMD_BOOT_PATH);
        assert_string_equal(sd->package, "fix-loader-2:1.0-4.noarch");
        assert_false(sd->from_host);
        assert_int_equal(sha256_file_hex("root" BOOTFILES_SYSTEMD_BOOT_PATH, sha, NULL), 0);
        assert_string_equal(sd->sha256, sha);
        assert_string_equal(shim->image_path, "/boot/efi/EFI/vendor/shimx64.efi");
        assert_string_equal(shim->package, "fix-loader-2:1.0-4.noarch");
        assert_null(b.files[BOOT_ROLE_GRUB].image_path);

        assert_int_equal(bootfiles_to_json(&b, &j), 0);
        assert_int_equal(json_object_size(j), 2);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "shim"), "source")), "package");
        assert_null(json_object_get(j, "grub"));
        json_decref(j);
        bootfiles_release(&b);

        assert_false(bootfiles_lock_has_loader(lock)); /* by name: fix-loader is none of them */
        free(lock->packages[0].name);
        lock->packages[0].name = strdup("systemd-boot-efi");
        assert_true(bootfiles_lock_has_loader(lock));
}

/* No systemd-boot in the root: none without the fallback; with it, the
 * host's file (when the host has one), or an error naming the packages. */
static void test_host_fallback(void **state) {
        _cleanup_lock_free_ Lock *lock = calloc(1, sizeof(Lock));
        BootFiles b = {};
        json_t *j = NULL;
        (void) state;

        install_fixture("root", "fix-other", spec_other);
        lock_add(lock, "fix-other", "0", "3", "1");

        assert_int_equal(bootfiles_find("root", DBPATH, lock, false, &b), 0);
        assert_null(b.files[BOOT_ROLE_SYSTEMD_BOOT].image_path);
        bootfiles_release(&b);

        if (access(BOOTFILES_SYSTEMD_BOOT_PATH, R_OK) < 0) {
                assert_int_equal(bootfiles_find("root", DBPATH, lock, true, &b), -ENOENT);
                return;
        }
        assert_int_equal(bootfiles_find("root", DBPATH, lock, true, &b), 0);
        assert_true(b.files[BOOT_ROLE_SYSTEMD_BOOT].from_host);
        assert_string_equal(b.files[BOOT_ROLE_SYSTEMD_BOOT].host_path, BOOTFILES_SYSTEMD_BOOT_PATH);
        assert_int_equal(bootfiles_to_json(&b, &j), 0);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "systemd-boot"), "source")),
                            "build host");
        json_decref(j);
        bootfiles_release(&b);

        assert_int_equal(bootfiles_host_loader_json(&j), 0);
        assert_non_null(json_string_value(json_object_get(j, "sha256")));
        assert_non_null(json_string_value(json_object_get(j, "package")));
        json_decref(j);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_from_packages),
                test_in_dir(test_host_fallback),
        };
        log_set_level(LOG_LEVEL_ERROR);
        return cmocka_run_group_tests_name("bootfiles", tests, NULL, NULL);
}
