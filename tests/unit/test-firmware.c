#include "tests.h"

#include "bootentry.h"
#include "fileio.h"
#include "firmware.h"
#include "util.h"

/* Stages an image on the ESP as the agent does: kernel and initrd first,
 * the entry last. */
static void stage(unsigned gen, const char *version, char slot, int tries) {
        _cleanup_free_ char *dir = strdup_printf("esp/slipway/%s", version);
        _cleanup_free_ char *k = path_join(dir, "vmlinuz"), *i = path_join(dir, "initrd");

        assert_int_equal(mkdir_p(dir, 0755), 0);
        assert_int_equal(write_file_atomic(k, "kernel", 6, 0644), 0);
        assert_int_equal(write_file_atomic(i, "initrd", 6, 0644), 0);
        assert_int_equal(bootentry_write("esp", gen, "tiny", version, slot, "console=ttyS0", tries, NULL), 0);
}

/* Boots once and checks what the firmware chose and how it renamed it. */
static void boot_expect(const char *file, char slot) {
        BootEntry e = {};
        _cleanup_free_ char *path = strdup_printf("esp/loader/entries/%s", file);

        assert_int_equal(firmware_boot("esp", &e), 0);
        assert_string_equal(e.file, file);
        assert_int_equal(e.slot, slot);
        assert_true(path_exists(path));
        bootentry_release(&e);
}

static void assert_entries(const char *const *want, size_t n_want) {
        BootEntry *e = NULL;
        size_t n = 0;

        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(n, n_want);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(e[i].file, want[i]);
        bootentries_free(e, n);
}

static void test_fresh_entry_three_tries(void **state) {
        (void) state;

        stage(1, "1.0", 'a', -1);
        stage(2, "1.1", 'b', BOOTENTRY_TRIES);
        boot_expect("slipway-2-1.1+2-1.conf", 'b');
        boot_expect("slipway-2-1.1+1-2.conf", 'b');
        boot_expect("slipway-2-1.1+0-3.conf", 'b');
        /* No tries left: the older blessed entry from now on, and the bad
         * one is left as it is. */
        boot_expect("slipway-1-1.0.conf", 'a');
        boot_expect("slipway-1-1.0.conf", 'a');
        assert_entries((const char *const[]) { "slipway-1-1.0.conf", "slipway-2-1.1+0-3.conf" }, 2);
}

static void test_blessed_newer_wins(void **state) {
        (void) state;

        stage(1, "1.0", 'a', -1);
        stage(2, "1.1", 'b', -1);
        for (int i = 0; i < 3; i++)
                boot_expect("slipway-2-1.1.conf", 'b');
        assert_entries((const char *const[]) { "slipway-2-1.1.conf", "slipway-1-1.0.conf" }, 2);
}

static void test_bad_never_chosen(void **state) {
        BootEntry e = {};
        (void) state;

        stage(1, "1.0", 'a', -1);
        stage(2, "1.1", 'b', 0);
        stage(3, "1.2", 'a', 0);
        for (int i = 0; i < 3; i++)
                boot_expect("slipway-1-1.0.conf", 'a');
        assert_entries((const char *const[]) { "slipway-1-1.0.conf", "slipway-3-1.2+0.conf", "slipway-2-1.1+0.conf" },
                       3);

        /* Only bad entries left: systemd-boot boots the first of them
         * anyway, and still counts the try (+0 → +0-1). */
        assert_int_equal(unlink("esp/loader/entries/slipway-1-1.0.conf"), 0);
        boot_expect("slipway-3-1.2+0-1.conf", 'a');
        boot_expect("slipway-3-1.2+0-2.conf", 'a');
        assert_int_equal(firmware_boot("esp", &e), 0);
        assert_true(bootentry_is_bad(&e));
        assert_int_equal(e.tries_done, 3);
        bootentry_release(&e);
}

static void test_update_then_fail(void **state) {
        (void) state;

        /* Blessed generation 1 in slot a; generation 2 staged into slot b,
         * never blessed (its health checks fail, or it never comes up). */
        stage(1, "1.0", 'a', -1);
        boot_expect("slipway-1-1.0.conf", 'a');
        stage(2, "1.1", 'b', BOOTENTRY_TRIES);
        boot_expect("slipway-2-1.1+2-1.conf", 'b');
        boot_expect("slipway-2-1.1+1-2.conf", 'b');
        boot_expect("slipway-2-1.1+0-3.conf", 'b');
        boot_expect("slipway-1-1.0.conf", 'a');
        boot_expect("slipway-1-1.0.conf", 'a');
}

static void test_update_then_bless(void **state) {
        BootEntry e = {};
        (void) state;

        stage(1, "1.0", 'a', -1);
        stage(2, "1.1", 'b', BOOTENTRY_TRIES);
        assert_int_equal(firmware_boot("esp", &e), 0);
        assert_string_equal(e.file, "slipway-2-1.1+2-1.conf");
        /* The agent, healthy in slot b, blesses what it booted. */
        assert_int_equal(bootentry_bless("esp", &e), 0);
        bootentry_release(&e);
        for (int i = 0; i < 5; i++)
                boot_expect("slipway-2-1.1.conf", 'b');
}

static void test_agent_gives_up(void **state) {
        BootEntry e = {};
        (void) state;

        /* Health checks fail on the first try: the agent marks the entry
         * bad and reboots; the firmware goes back to slot a at once. */
        stage(1, "1.0", 'a', -1);
        stage(2, "1.1", 'b', BOOTENTRY_TRIES);
        assert_int_equal(firmware_boot("esp", &e), 0);
        assert_int_equal(bootentry_mark_bad("esp", &e), 0);
        bootentry_release(&e);
        assert_entries((const char *const[]) { "slipway-1-1.0.conf", "slipway-2-1.1+0-1.conf" }, 2);
        boot_expect("slipway-1-1.0.conf", 'a');
}

static void test_rollback_generation_wins(void **state) {
        (void) state;

        /* A signed rollback stages an older version under a newer
         * generation: the newer generation boots, not the newer version. */
        stage(1, "1.0", 'a', -1);
        stage(2, "2.0", 'b', -1);
        stage(3, "1.0", 'a', BOOTENTRY_TRIES);
        boot_expect("slipway-3-1.0+2-1.conf", 'a');
        /* And generation 10 is newer than 9. */
        stage(9, "3.0", 'b', -1);
        stage(10, "2.5", 'a', -1);
        boot_expect("slipway-10-2.5.conf", 'a');
}

static void test_not_bootable(void **state) {
        static const char other[] = "title Other\nlinux /other/vmlinuz\n";
        (void) state;

        /* Nothing at all, then only an entry the pattern does not match. */
        assert_int_equal(firmware_boot("esp", NULL), -ENOENT);
        assert_int_equal(mkdir_p("esp/loader/entries", 0755), 0);
        assert_int_equal(mkdir_p("esp/other", 0755), 0);
        assert_int_equal(write_file_atomic("esp/other/vmlinuz", "k", 1, 0644), 0);
        assert_int_equal(write_file_atomic("esp/loader/entries/other.conf", other, strlen(other), 0644), 0);
        assert_int_equal(firmware_boot("esp", NULL), -ENOENT);

        /* An entry whose kernel is missing is no entry to systemd-boot: the
         * older one boots, and the counter of the broken one is untouched. */
        stage(1, "1.0", 'a', -1);
        assert_int_equal(bootentry_write("esp", 2, "tiny", "1.1", 'b', NULL, BOOTENTRY_TRIES, NULL), 0);
        boot_expect("slipway-1-1.0.conf", 'a');
        assert_entries((const char *const[]) { "slipway-2-1.1+3.conf", "slipway-1-1.0.conf", "other.conf" }, 3);
}

static void test_select(void **state) {
        BootEntry *e = NULL;
        size_t n = 0;
        (void) state;

        /* firmware_select() only looks: no rename. */
        stage(1, "1.0", 'a', -1);
        stage(2, "1.1", 'b', BOOTENTRY_TRIES);
        assert_int_equal(bootentries_load("esp", &e, &n), 0);
        assert_int_equal(firmware_select("esp", e, n), 0);
        assert_string_equal(e[0].file, "slipway-2-1.1+3.conf");
        assert_int_equal(firmware_select("esp", e + 1, n - 1), 0);
        assert_int_equal(firmware_select("esp", e, 0), -ENOENT);
        bootentries_free(e, n);
        assert_entries((const char *const[]) { "slipway-2-1.1+3.conf", "slipway-1-1.0.conf" }, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_fresh_entry_three_tries),
                test_in_dir(test_blessed_newer_wins),
                test_in_dir(test_bad_never_chosen),
                test_in_dir(test_update_then_fail),
                test_in_dir(test_update_then_bless),
                test_in_dir(test_agent_gives_up),
                test_in_dir(test_rollback_generation_wins),
                test_in_dir(test_not_bootable),
                test_in_dir(test_select),
        };
        return cmocka_run_group_tests_name("firmware", tests, NULL, NULL);
}
