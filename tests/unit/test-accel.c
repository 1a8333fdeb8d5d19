/* accel_kvm_usable(): the KVM probe, against a fake qemu-system-x86_64 put
 * first in PATH that prints a kernel banner, hangs like a guest stuck under a
 * broken KVM, or exits at once like a qemu that refuses KVM. */
#include "tests.h"

#include <signal.h>
#include <sys/stat.h>

#include "accel.h"
#include "fileio.h"
#include "log.h"
#include "util.h"

static const char fake_qemu[] = "#!/bin/sh\n"
                                "echo $$ >\"$FAKE_QEMU_DIR/pid\"\n"
                                "echo \"$*\" >\"$FAKE_QEMU_DIR/args\"\n"
                                "case \"$FAKE_QEMU_MODE\" in\n"
                                "banner) printf 'early\\r\\n[    0.000000] Linux ver'; sleep 0.2;\n"
                                "        printf 'sion 6.1.0-28-amd64 (debian-kernel)\\r\\n'; exec sleep 30 ;;\n"
                                "hang) exec sleep 30 ;;\n"
                                "*) echo 'qemu-system-x86_64: failed to initialize kvm' >&2; exit 1 ;;\n"
                                "esac\n";

static int group_setup(void **state _unused_) {
        char cwd[PATH_MAX];
        _cleanup_free_ char *path = NULL;

        log_set_level(LOG_LEVEL_ERROR);
        if (!getcwd(cwd, sizeof(cwd)) || mkdir_p("fakebin", 0755) < 0 ||
            write_file_atomic("fakebin/qemu-system-x86_64", fake_qemu, strlen(fake_qemu), 0755) < 0)
                return -1;
        path = strdup_printf("%s/fakebin:%s", cwd, getenv("PATH"));
        if (!path)
                return -1;
        setenv("PATH", path, 1);
        setenv("FAKE_QEMU_DIR", cwd, 1);
        return 0;
}

static void need_kvm(void) {
        if (access("/dev/kvm", R_OK | W_OK) < 0)
                skip();
}

static void assert_reaped(void) {
        _cleanup_free_ char *s = NULL;
        int pid;

        assert_int_equal(read_full_file("../pid", 64, &s, NULL), 0);
        s[strcspn(s, "\n")] = 0;
        assert_int_equal(safe_atoi(s, &pid), 0);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
}

static void test_banner_means_usable_and_is_cached(void **state _unused_) {
        _cleanup_free_ char *cache = NULL, *args = NULL;

        need_kvm();
        setenv("FAKE_QEMU_MODE", "banner", 1);
        assert_int_equal(accel_kvm_usable("/boot/vmlinuz", "cache"), 1);
        assert_reaped();
        assert_int_equal(read_full_file("../args", 4096, &args, NULL), 0);
        assert_non_null(strstr(args, "-accel kvm"));
        assert_non_null(strstr(args, "-kernel /boot/vmlinuz"));
        assert_int_equal(read_full_file("cache/kvm-probe", 256, &cache, NULL), 0);
        assert_true(endswith(cache, " yes\n"));

        /* the cached answer stands: the fake is not asked again */
        setenv("FAKE_QEMU_MODE", "exit", 1);
        assert_int_equal(accel_kvm_usable("/boot/vmlinuz", "cache"), 1);
        /* a cache from another boot of the host does not */
        assert_int_equal(write_file_atomic("cache/kvm-probe", "some-other-boot yes\n", 20, 0644), 0);
        assert_int_equal(accel_kvm_usable("/boot/vmlinuz", "cache"), 0);
        free(cache);
        cache = NULL;
        assert_int_equal(read_full_file("cache/kvm-probe", 256, &cache, NULL), 0);
        assert_true(endswith(cache, " no\n"));
}

static void test_hang_means_unusable(void **state _unused_) {
        uint64_t t0 = now_usec();

        need_kvm();
        setenv("FAKE_QEMU_MODE", "hang", 1);
        assert_int_equal(accel_kvm_usable("/boot/vmlinuz", NULL), 0);
        /* gives up after its timeout rather than waiting for the fake's 30 s */
        assert_true(now_usec() - t0 < 25ULL * 1000 * 1000);
        assert_reaped();
        assert_false(path_exists("kvm-probe"));
}

static void test_exit_means_unusable(void **state _unused_) {
        need_kvm();
        setenv("FAKE_QEMU_MODE", "exit", 1);
        assert_int_equal(accel_kvm_usable("/boot/vmlinuz", "cache"), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_banner_means_usable_and_is_cached),
                test_in_dir(test_hang_means_unusable),
                test_in_dir(test_exit_means_unusable),
        };
        return cmocka_run_group_tests_name("accel", tests, group_setup, NULL);
}
