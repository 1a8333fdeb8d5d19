/* The GRUB back end against the generated grub.cfg, run by the GRUB
 * emulator: updates, fallbacks, and a power cut at every grubenv write. */
#include "tests.h"

#include <string.h>
#include <sys/wait.h>

#include "bootgrub.h"
#include "crashpoint.h"
#include "fileio.h"
#include "grubcfg.h"
#include "grubenv.h"
#include "grubfirmware.h"
#include "util.h"

#define ENV "esp" GRUBCFG_ENV_PATH
#define CFG "/slipway/grub.cfg"

static const GrubCfgOptions cfg_options = { .name = "tiny", .cmdline = "console=ttyS0 ro", .timeout = 0 };

static void put_kernel(const char *esp, const char *version) {
        _cleanup_free_ char *dir = strdup_printf("%s/slipway/%s", esp, version);
        _cleanup_free_ char *k = path_join(dir, "vmlinuz"), *i = path_join(dir, "initrd");

        assert_int_equal(mkdir_p(dir, 0755), 0);
        assert_int_equal(write_file_atomic(k, "kernel", 6, 0644), 0);
        assert_int_equal(write_file_atomic(i, "initrd", 6, 0644), 0);
}

static void setup_esp(void) {
        _cleanup_free_ char *text = NULL;

        assert_int_equal(mkdir_p("esp/slipway", 0755), 0);
        assert_int_equal(grubcfg_generate(&cfg_options, &text), 0);
        assert_int_equal(write_file_atomic("esp" CFG, text, strlen(text), 0644), 0);
        put_kernel("esp", "1.0");
        put_kernel("esp", "2.0");
        put_kernel("esp", "3.0");
}

/* Boots the ESP esp once; the slot must be the one the agent's reading of
 * the state predicts (grub_state_next()), and the count spent as it says. */
static char boot_in(const char *esp) {
        _cleanup_free_ char *env = path_join(esp, GRUBCFG_ENV_PATH + 1), *id = NULL;
        GrubState before = {}, after = {};
        char want, got = 0;
        bool counts;

        if (grub_state_load(env, &before) < 0)
                before = (GrubState) { .order = { 'a', 'b' }, .tries = { -1, -1 } };
        assert_int_equal(grub_state_next(&before, &want, &counts, NULL), 0);
        assert_int_equal(grub_firmware_boot(esp, CFG, &got, &id), 0);
        assert_int_equal(got, want);
        assert_string_equal(id, got == 'a' ? "slipway-a" : "slipway-b");
        if (grub_state_load(env, &after) >= 0)
                assert_int_equal(after.tries[got == 'b'], before.tries[got == 'b'] - (counts ? 1 : 0));
        grub_state_release(&before);
        grub_state_release(&after);
        return got;
}

static char boot(void) {
        return boot_in("esp");
}

static void assert_slot(char slot, GrubSlotState st, int tries) {
        GrubState s = {};

        assert_int_equal(grub_state_load(ENV, &s), 0);
        assert_int_equal(s.state[slot == 'b'], st);
        assert_int_equal(s.tries[slot == 'b'], tries);
        grub_state_release(&s);
}

static void test_cfg(void **state) {
        _cleanup_free_ char *text = NULL, *path = NULL, *want = NULL;
        (void) state;

        assert_int_equal(grubcfg_generate(&cfg_options, &text), 0);
        path = strdup_printf("%s/tests/unit/golden/grub-ab.cfg", SLIPWAY_SOURCE_DIR);
        if (getenv("SLIPWAY_UPDATE_GOLDEN"))
                assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
        assert_int_equal(read_full_file(path, 65536, &want, NULL), 0);
        if (!streq(text, want))
                fail_msg("%s differs from its golden file:\n%s", path, text);
        /* GRUB's own parser accepts it, when installed. */
        if (access("/usr/bin/grub-script-check", X_OK) == 0) {
                _cleanup_free_ char *cmd = strdup_printf("/usr/bin/grub-script-check '%s'", path);
                assert_int_equal(system(cmd), 0);
        }
        free(text);
        text = NULL;
        assert_int_equal(grubcfg_generate(&(GrubCfgOptions) { .name = "tiny", .cmdline = "a=\"b\"" }, &text),
                         -EINVAL);
        assert_int_equal(grubcfg_generate(&(GrubCfgOptions) { .name = "tiny", .esp_label = "E$P" }, &text), -EINVAL);
        assert_int_equal(grubcfg_generate(&(GrubCfgOptions) { .name = "tiny", .esp_label = "ESP" }, &text), 0);
        assert_non_null(strstr(text, "search --no-floppy --set=slipway_esp --label \"ESP\"\n"));
}

static void test_as_built(void **state) {
        (void) state;

        setup_esp();
        /* No grubenv at all: GRUB finds neither the ESP (by the file) nor a
         * version to boot. The builder writes one. */
        char slot;
        assert_int_equal(grub_firmware_boot("esp", CFG, &slot, NULL), -ENOENT);
        assert_int_equal(bootgrub_install(ENV, 'a', "1.0"), 0);
        assert_int_equal(boot(), 'a');
        assert_int_equal(boot(), 'a');
        assert_slot('a', GRUB_SLOT_GOOD, 0);
        assert_slot('b', GRUB_SLOT_EMPTY, 0);
}

/* The grubenv slipway-build writes is the block the agent's install
 * writes, byte for byte, and boots slot a. */
static void test_builder_env(void **state) {
        _cleanup_free_ char *agent = NULL;
        char block[GRUBENV_SIZE];
        size_t n;
        (void) state;

        setup_esp();
        assert_int_equal(bootgrub_install(ENV, 'a', "1.0"), 0);
        assert_int_equal(read_full_file(ENV, GRUBENV_SIZE, &agent, &n), 0);
        assert_int_equal(n, GRUBENV_SIZE);
        assert_int_equal(grubcfg_initial_env("1.0", block, sizeof(block)), 0);
        assert_memory_equal(block, agent, GRUBENV_SIZE);
        assert_int_equal(grubcfg_initial_env("1.0+1", block, sizeof(block)), -EINVAL);
        assert_int_equal(grubcfg_initial_env("1.0", block, GRUBENV_SIZE - 1), -EINVAL);

        assert_int_equal(unlink(ENV), 0);
        assert_int_equal(grubcfg_initial_env("2.0", block, sizeof(block)), 0);
        assert_int_equal(write_file_atomic(ENV, block, sizeof(block), 0644), 0);
        assert_int_equal(boot(), 'a');
        assert_slot('a', GRUB_SLOT_GOOD, 0);
        assert_slot('b', GRUB_SLOT_EMPTY, 0);
}

static void test_update_blessed(void **state) {
        (void) state;

        setup_esp();
        assert_int_equal(bootgrub_install(ENV, 'a', "1.0"), 0);
        assert_int_equal(bootgrub_drop(ENV, 'b'), 0);
        assert_int_equal(boot(), 'a');
        assert_int_equal(bootgrub_staged(ENV, 'b', "2.0"), 0);
        /* Staged but not offered: an unplanned reboot stays on a. */
        assert_int_equal(boot(), 'a');
        assert_int_equal(bootgrub_arm(ENV, 'b', 3), 0);
        assert_int_equal(boot(), 'b');
        assert_slot('b', GRUB_SLOT_TRIAL, 2);
        assert_int_equal(bootgrub_bless(ENV, 'b'), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(boot(), 'b');
        assert_slot('b', GRUB_SLOT_GOOD, 0);
        assert_slot('a', GRUB_SLOT_GOOD, 0);
}

static void test_counter_runs_out(void **state) {
        (void) state;

        setup_esp();
        assert_int_equal(bootgrub_install(ENV, 'a', "1.0"), 0);
        assert_int_equal(bootgrub_drop(ENV, 'b'), 0);
        assert_int_equal(bootgrub_staged(ENV, 'b', "2.0"), 0);
        assert_int_equal(bootgrub_arm(ENV, 'b', 3), 0);
        assert_int_equal(boot(), 'b');
        assert_int_equal(boot(), 'b');
        assert_int_equal(boot(), 'b');
        assert_slot('b', GRUB_SLOT_TRIAL, 0);
        assert_int_equal(boot(), 'a');
        assert_int_equal(boot(), 'a');
        assert_int_equal(bootgrub_mark_bad(ENV, 'b'), 0);
        assert_int_equal(boot(), 'a');
        assert_slot('b', GRUB_SLOT_BAD, 0);
}

static void test_check_fails(void **state) {
        GrubState s = {};
        char next;
        _cleanup_free_ char *why = NULL;
        (void) state;

        setup_esp();
        assert_int_equal(bootgrub_install(ENV, 'b', "2.0"), 0);
        assert_int_equal(bootgrub_drop(ENV, 'a'), 0);
        assert_int_equal(bootgrub_staged(ENV, 'a', "3.0"), 0);
        assert_int_equal(bootgrub_arm(ENV, 'a', 3), 0);
        assert_int_equal(boot(), 'a');
        /* The agent's checks fail on a: it is given up at once. */
        assert_int_equal(bootgrub_mark_bad(ENV, 'a'), 0);
        assert_int_equal(boot(), 'b');
        assert_int_equal(grub_state_load(ENV, &s), 0);
        assert_int_equal(grub_state_next(&s, &next, NULL, &why), 0);
        assert_int_equal(next, 'b');
        assert_string_equal(why, "slot b is good and first in order");
        grub_state_release(&s);
}

/* A count GRUB cannot save is no try: the trial slot is skipped. */
static void test_unsaved_count(void **state) {
        GrubEnv env = {};
        (void) state;

        setup_esp();
        assert_int_equal(bootgrub_install(ENV, 'a', "1.0"), 0);
        assert_int_equal(bootgrub_drop(ENV, 'b'), 0);
        assert_int_equal(bootgrub_staged(ENV, 'b', "2.0"), 0);
        assert_int_equal(bootgrub_arm(ENV, 'b', 3), 0);
        /* A count the chain does not know ("x") is not a try either. */
        assert_int_equal(grubenv_load(ENV, &env), 0);
        assert_int_equal(grubenv_set(&env, "slipway_b_tries", "x"), 0);
        assert_int_equal(grubenv_save(ENV, &env, NULL), 0);
        assert_int_equal(boot(), 'a');
        grubenv_release(&env);
}

static void test_describe(void **state) {
        GrubState s = {};
        _cleanup_free_ char *text = NULL;
        size_t n = 0;
        FILE *f;
        (void) state;

        setup_esp();
        assert_int_equal(bootgrub_install(ENV, 'a', "1.0"), 0);
        assert_int_equal(bootgrub_drop(ENV, 'b'), 0);
        assert_int_equal(bootgrub_staged(ENV, 'b', "2.0"), 0);
        assert_int_equal(bootgrub_arm(ENV, 'b', 3), 0);
        assert_int_equal(boot(), 'b');
        assert_int_equal(grub_state_load(ENV, &s), 0);
        f = open_memstream(&text, &n);
        grub_state_describe(&s, f);
        fclose(f);
        assert_string_equal(text, "boots next:  slot b (slot b is on trial, first in order; this boot spends a try)\n"
                                  "grub order:  b, then a\n"
                                  "grub slot a: 1.0 good\n"
                                  "grub slot b: 2.0 on trial, 2 tries left\n");
        grub_state_release(&s);
}

/* The agent's writes of an update that is blessed and of one that fails,
 * in order; writing: the slot whose contents are incomplete once the
 * write is done (from its drop until it is staged). */
typedef struct Step {
        enum { DROP, STAGED, ARM, BOOT, BLESS, BAD } what;
        char slot;
        const char *version;
        char writing;
} Step;

static const Step steps[] = {
        { DROP, 'b', NULL, 'b' },  { STAGED, 'b', "2.0", 0 }, { ARM, 'b', NULL, 0 },
        { BOOT, 0, NULL, 0 },      { BLESS, 'b', NULL, 0 },   { DROP, 'a', NULL, 'a' },
        { STAGED, 'a', "3.0", 0 }, { ARM, 'a', NULL, 0 },     { BOOT, 0, NULL, 0 },
        { BAD, 'a', NULL, 0 },
};

static int do_step(const Step *s) {
        switch (s->what) {
        case DROP:
                return bootgrub_drop(ENV, s->slot);
        case STAGED:
                return bootgrub_staged(ENV, s->slot, s->version);
        case ARM:
                return bootgrub_arm(ENV, s->slot, 3);
        case BLESS:
                return bootgrub_bless(ENV, s->slot);
        case BAD:
                return bootgrub_mark_bad(ENV, s->slot);
        default:
                return boot();
        }
}

/* Boots a copy of the ESP as it is after a cut and checks the slot is
 * complete: not the one being written, and not empty. */
static void boot_after_cut(char writing) {
        GrubState s = {};
        char slot;

        assert_int_equal(system("rm -rf cut && cp -a esp cut"), 0);
        slot = boot_in("cut");
        assert_int_not_equal(slot, writing);
        assert_int_equal(grub_state_load("cut" GRUBCFG_ENV_PATH, &s), 0);
        assert_int_not_equal(s.state[slot == 'b'], GRUB_SLOT_EMPTY);
        grub_state_release(&s);
}

static void test_cut_at_every_write(void **state) {
        const char *points[] = { "grubenv-first-sector", "grubenv-written" };
        char writing = 0;
        (void) state;

        setup_esp();
        assert_int_equal(bootgrub_install(ENV, 'a', "1.0"), 0);
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                _cleanup_free_ char *old = NULL, *new = NULL;
                size_t n;

                if (steps[i].what == BOOT) {
                        assert_int_equal(boot(), steps[i - 1].slot);
                        continue;
                }
                assert_int_equal(read_full_file(ENV, 4096, &old, &n), 0);
                /* Killed before the commit and after it. */
                for (size_t p = 0; p < ELEMENTSOF(points); p++) {
                        int status;
                        pid_t pid;

                        assert_int_equal(system("rm -rf saved && cp -a esp saved"), 0);
                        pid = fork();
                        assert_true(pid >= 0);
                        if (pid == 0) {
                                setenv("SLIPWAY_CRASH_AT", points[p], 1);
                                (void) do_step(&steps[i]);
                                _exit(0);
                        }
                        assert_int_equal(waitpid(pid, &status, 0), pid);
                        /* A step that changes nothing writes no sector. */
                        if (!WIFSIGNALED(status)) {
                                _cleanup_free_ char *now = NULL;
                                assert_int_equal(p, 0);
                                assert_int_equal(read_full_file(ENV, 4096, &now, &n), 0);
                                assert_memory_equal(now, old, GRUBENV_SIZE);
                        }
                        /* Before the commit the slot is still being written
                         * if it was; after it, as the step leaves it. */
                        boot_after_cut(p == 0 ? writing : (steps[i].writing ? steps[i].writing : 0));
                        if (steps[i].writing)
                                boot_after_cut(steps[i].writing);
                        assert_int_equal(system("rm -rf esp && mv saved esp"), 0);
                }
                assert_int_equal(do_step(&steps[i]), 0);
                /* Torn: a cut between the sectors of one save leaves the new
                 * later sectors and the old first one. */
                assert_int_equal(read_full_file(ENV, 4096, &new, &n), 0);
                assert_int_equal(n, GRUBENV_SIZE);
                {
                        _cleanup_free_ char *torn = NULL;
                        assert_int_equal(system("rm -rf saved && cp -a esp saved"), 0);
                        torn = malloc(GRUBENV_SIZE);
                        memcpy(torn, old, GRUBENV_SECTOR);
                        memcpy(torn + GRUBENV_SECTOR, new + GRUBENV_SECTOR, GRUBENV_SIZE - GRUBENV_SECTOR);
                        assert_int_equal(write_file_atomic(ENV, torn, GRUBENV_SIZE, 0644), 0);
                        boot_after_cut(steps[i].writing ? steps[i].writing : writing);
                        assert_int_equal(system("rm -rf esp && mv saved esp"), 0);
                }
                if (steps[i].what == DROP)
                        writing = steps[i].slot;
                else if (steps[i].what == STAGED)
                        writing = 0;
        }
        /* The end: a good (blessed b), the failed a given up. */
        assert_slot('a', GRUB_SLOT_BAD, 0);
        assert_int_equal(boot(), 'b');
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_cfg),
                test_in_dir(test_as_built),
                test_in_dir(test_builder_env),
                test_in_dir(test_update_blessed),
                test_in_dir(test_counter_runs_out),
                test_in_dir(test_check_fails),
                test_in_dir(test_unsaved_count),
                test_in_dir(test_describe),
                test_in_dir(test_cut_at_every_write),
        };
        return cmocka_run_group_tests_name("grubfirmware", tests, NULL, NULL);
}
