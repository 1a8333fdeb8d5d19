/* Health checks (agent/health.c): name order, required and wanted checks,
 * output capture, the time limit, and what a check leaves running: a
 * background child that keeps the output pipe open does not hold the run
 * up, and is killed with the check's process group, as is a timed-out
 * check's child. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tests.h"

#include "fileio.h"
#include "health.h"
#include "util.h"

static void write_check(const char *name, const char *body) {
        char path[256];
        snprintf(path, sizeof path, "checks/%s", name);
        assert_int_equal(write_file_atomic(path, body, strlen(body), 0755), 0);
}

/* The PID a check wrote to file, or 0. */
static pid_t read_pid(const char *file) {
        FILE *f = fopen(file, "re");
        int pid = 0;
        if (f) {
                if (fscanf(f, "%d", &pid) != 1)
                        pid = 0;
                fclose(f);
        }
        return (pid_t) pid;
}

/* Whether pid is gone (or a zombie of someone else: not ours to reap). */
static bool gone(pid_t pid) {
        char path[64], state = 0;
        FILE *f;

        for (int i = 0; i < 50; i++) {
                snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
                f = fopen(path, "re");
                if (!f)
                        return true;
                if (fscanf(f, "%*d %*s %c", &state) != 1)
                        state = 0;
                fclose(f);
                if (state == 'Z')
                        return true;
                struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return false;
}

static void test_order_and_report(void **state) {
        json_t *report = NULL;
        char *failed = NULL;
        (void) state;

        assert_int_equal(mkdir("checks", 0755), 0);
        write_check("10-ok", "#!/bin/sh\necho fine\n");
        write_check("20-optional.wanted", "#!/bin/sh\necho meh; exit 3\n");
        assert_int_equal(health_run("checks", 5, &report, &failed), 1);
        assert_null(failed);
        assert_true(json_is_true(json_object_get(json_object_get(report, "10-ok"), "ok")));
        assert_string_equal(json_string_value(json_object_get(json_object_get(report, "10-ok"), "output")), "fine\n");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(report, "20-optional.wanted"), "exit")), 3);
        json_decref(report);

        write_check("30-bad", "#!/bin/sh\necho broken >&2; exit 1\n");
        assert_int_equal(health_run("checks", 5, NULL, &failed), 0);
        assert_non_null(failed);
        assert_non_null(strstr(failed, "30-bad"));
        assert_non_null(strstr(failed, "broken"));
        free(failed);

        /* No directory: nothing to check. */
        assert_int_equal(health_run("none", 5, NULL, NULL), 1);
}

static void test_background_child(void **state) {
        char *failed = NULL;
        (void) state;

        /* Exits at once, leaving a child on its stdout. */
        assert_int_equal(mkdir("checks", 0755), 0);
        write_check("10-daemon", "#!/bin/sh\nsleep 300 &\necho $! >child.pid\necho started\nexit 0\n");
        uint64_t t0 = now_usec();
        assert_int_equal(health_run("checks", 20, NULL, &failed), 1);
        assert_true(now_usec() - t0 < 10 * 1000000ULL);
        pid_t child = read_pid("child.pid");
        assert_true(child > 0);
        assert_true(gone(child));
}

static void test_timeout_kills_the_group(void **state) {
        json_t *report = NULL;
        char *failed = NULL;
        (void) state;

        assert_int_equal(mkdir("checks", 0755), 0);
        write_check("10-hang", "#!/bin/sh\nsleep 300 &\necho $! >child.pid\nwait\n");
        uint64_t t0 = now_usec();
        assert_int_equal(health_run("checks", 1, &report, &failed), 0);
        assert_true(now_usec() - t0 < 10 * 1000000ULL);
        assert_non_null(strstr(failed, "timed out"));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(report, "10-hang"), "exit")), -ETIMEDOUT);
        pid_t child = read_pid("child.pid");
        assert_true(child > 0);
        assert_true(gone(child));
        free(failed);
        json_decref(report);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_order_and_report),
                test_in_dir(test_background_child),
                test_in_dir(test_timeout_kills_the_group),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
