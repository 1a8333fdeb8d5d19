#include "tests.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fileio.h"
#include "grubenv.h"
#include "util.h"

/* Debian's and Red Hat's GRUB tool, when installed: the block must read the
 * same through it. SLIPWAY_GRUB_EDITENV names another. */
static const char *editenv(void) {
        const char *e = getenv("SLIPWAY_GRUB_EDITENV");

        if (e)
                return *e ? e : NULL;
        if (access("/usr/bin/grub-editenv", X_OK) == 0)
                return "/usr/bin/grub-editenv";
        if (access("/usr/bin/grub2-editenv", X_OK) == 0)
                return "/usr/bin/grub2-editenv";
        return NULL;
}

static char *run_out(const char *cmd) {
        FILE *f = popen(cmd, "r");
        char *out = NULL;
        size_t n = 0;

        assert_non_null(f);
        assert_true(getdelim(&out, &n, 0, f) >= 0 || out);
        assert_int_equal(pclose(f), 0);
        return out;
}

static void test_format_parse(void **state) {
        GrubEnv env = {}, back = {};
        char block[GRUBENV_SIZE];
        size_t used;
        (void) state;

        assert_int_equal(grubenv_set(&env, "slipway_order", "b a"), 0);
        assert_int_equal(grubenv_set(&env, "odd", "x\\y\nz"), 0);
        assert_int_equal(grubenv_set(&env, "slipway_a", "good"), 0);
        assert_int_equal(grubenv_set(&env, "bad=name", "v"), -EINVAL);
        assert_int_equal(grubenv_format(&env, block, &used), 0);
        assert_memory_equal(block, GRUBENV_HEADER "slipway_order=b a\nodd=x\\\\y\\\nz\nslipway_a=good\n",
                            used);
        for (size_t i = used; i < GRUBENV_SIZE; i++)
                assert_int_equal(block[i], '#');
        assert_int_equal(grubenv_parse(block, GRUBENV_SIZE, &back), 0);
        assert_int_equal(back.n, 3);
        assert_string_equal(grubenv_get(&back, "odd"), "x\\y\nz");
        assert_string_equal(back.names[2], "slipway_a");
        /* In place when set again, GRUB's order kept; unset removes. */
        assert_int_equal(grubenv_set(&back, "slipway_order", "a b"), 0);
        assert_string_equal(back.names[0], "slipway_order");
        assert_int_equal(grubenv_set(&back, "odd", NULL), 0);
        assert_int_equal(back.n, 2);
        assert_null(grubenv_get(&back, "odd"));
        grubenv_release(&back);
        /* Not a block: another size, no header, a line without '='. */
        assert_int_equal(grubenv_parse(block, GRUBENV_SIZE - 1, &back), -EBADMSG);
        block[0] = 'x';
        assert_int_equal(grubenv_parse(block, GRUBENV_SIZE, &back), -EBADMSG);
        block[0] = '#';
        memcpy(block + strlen(GRUBENV_HEADER), "junk\n", 5);
        assert_int_equal(grubenv_parse(block, GRUBENV_SIZE, &back), -EBADMSG);
        /* Too much for one block. */
        char big[1100];
        memset(big, 'v', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal(grubenv_set(&env, "big", big), 0);
        assert_int_equal(grubenv_format(&env, block, NULL), -E2BIG);
        grubenv_release(&env);
}

static void test_save_in_place(void **state) {
        GrubEnv env = {}, back = {};
        struct stat a, b;
        _cleanup_free_ char *data = NULL;
        size_t n;
        const char *const first[] = { "slipway_a", NULL };
        (void) state;

        /* Missing: created whole. */
        assert_int_equal(grubenv_set(&env, "slipway_a", "staged"), 0);
        assert_int_equal(grubenv_save("grubenv", &env, first), 0);
        assert_int_equal(stat("grubenv", &a), 0);
        assert_int_equal(a.st_size, GRUBENV_SIZE);
        /* Existing: the same file (inode), rewritten in place. */
        assert_int_equal(grubenv_set(&env, "slipway_a", "trial"), 0);
        assert_int_equal(grubenv_save("grubenv", &env, first), 0);
        assert_int_equal(stat("grubenv", &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        assert_int_equal(b.st_size, GRUBENV_SIZE);
        assert_int_equal(grubenv_load("grubenv", &back), 0);
        assert_string_equal(grubenv_get(&back, "slipway_a"), "trial");
        grubenv_release(&back);
        /* A variable that must be in the first sector and is not: refused,
         * the file untouched. */
        char filler[600];
        memset(filler, 'f', sizeof filler - 1);
        filler[sizeof filler - 1] = 0;
        assert_int_equal(grubenv_set(&env, "slipway_a", NULL), 0);
        assert_int_equal(grubenv_set(&env, "kernelopts", filler), 0);
        assert_int_equal(grubenv_set(&env, "slipway_a", "good"), 0);
        assert_int_equal(grubenv_save("grubenv", &env, first), -E2BIG);
        assert_int_equal(grubenv_load("grubenv", &back), 0);
        assert_string_equal(grubenv_get(&back, "slipway_a"), "trial");
        grubenv_release(&back);
        /* A file of the wrong size is replaced by a whole block. */
        assert_int_equal(write_file_atomic("grubenv", "# GRUB Environment Block\n", 25, 0644), 0);
        assert_int_equal(grubenv_load("grubenv", &back), -EBADMSG);
        assert_int_equal(grubenv_save("grubenv", &env, NULL), 0);
        assert_int_equal(read_full_file("grubenv", 4096, &data, &n), 0);
        assert_int_equal(n, GRUBENV_SIZE);
        grubenv_release(&env);
}

/* Killed at each crash point of a save, the file is the old block or the
 * new one, whole. */
static void test_save_crash_points(void **state) {
        const char *points[] = { "grubenv-first-sector", "grubenv-written" };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(points); i++) {
                GrubEnv env = {}, back = {};
                pid_t pid;
                int status;

                assert_int_equal(grubenv_set(&env, "slipway_a", "good"), 0);
                assert_int_equal(grubenv_save("grubenv", &env, NULL), 0);
                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        setenv("SLIPWAY_CRASH_AT", points[i], 1);
                        (void) grubenv_set(&env, "slipway_a", "bad");
                        (void) grubenv_save("grubenv", &env, NULL);
                        _exit(0);
                }
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFSIGNALED(status));
                assert_int_equal(grubenv_load("grubenv", &back), 0);
                assert_string_equal(grubenv_get(&back, "slipway_a"), i == 0 ? "good" : "bad");
                grubenv_release(&back);
                grubenv_release(&env);
        }
}

static void test_grub_editenv_interop(void **state) {
        const char *tool = editenv();
        _cleanup_free_ char *cmd = NULL, *out = NULL;
        GrubEnv env = {}, back = {};
        struct stat a, b;
        (void) state;

        if (!tool) {
                skip();
                return;
        }
        /* Ours, read by GRUB's tool. */
        assert_int_equal(grubenv_set(&env, "slipway_order", "b a"), 0);
        assert_int_equal(grubenv_set(&env, "slipway_b", "trial"), 0);
        assert_int_equal(grubenv_set(&env, "odd", "x\\y"), 0);
        assert_int_equal(grubenv_save("grubenv", &env, NULL), 0);
        cmd = strdup_printf("%s grubenv list", tool);
        out = run_out(cmd);
        assert_string_equal(out, "slipway_order=b a\nslipway_b=trial\nodd=x\\y\n");
        /* GRUB's tool's block (with its warning comment), changed by it, then
         * by us in place. */
        free(cmd);
        cmd = strdup_printf("rm -f tool && %s tool create && %s tool set slipway_a=good slipway_a_tries=3", tool, tool);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(grubenv_load("tool", &back), 0);
        assert_string_equal(grubenv_get(&back, "slipway_a"), "good");
        assert_string_equal(grubenv_get(&back, "slipway_a_tries"), "3");
        assert_int_equal(stat("tool", &a), 0);
        assert_int_equal(grubenv_set(&back, "slipway_a_tries", "2"), 0);
        assert_int_equal(grubenv_save("tool", &back, NULL), 0);
        assert_int_equal(stat("tool", &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        free(cmd);
        free(out);
        cmd = strdup_printf("%s tool list", tool);
        out = run_out(cmd);
        assert_string_equal(out, "slipway_a=good\nslipway_a_tries=2\n");
        grubenv_release(&back);
        grubenv_release(&env);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_format_parse),
                test_in_dir(test_save_in_place),
                test_in_dir(test_save_crash_points),
                test_in_dir(test_grub_editenv_interop),
        };
        return cmocka_run_group_tests_name("grubenv", tests, NULL, NULL);
}
