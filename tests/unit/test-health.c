/* Health checks (agent/health.c): name order, required and wanted checks,
 * output capture, the time limit, and what a check leaves running: a
 * background child that keeps the output pipe open does not hold the run
 * up, and is killed with the check's process group, as is a timed-out
 * check's child. Under systemd (agent/units.c, against the fake systemctl
 * and journalctl in tests/bin): units active, failed, not found, or still
 * activating at the deadline; boot-complete.target reached or not; failed
 * units; the journal lines and the bounds of the report. greenboot's
 * required.d and wanted.d. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"

#include "fileio.h"
#include "health.h"
#include "units.h"
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

/* The fake systemd in ./sd: units/, journal/, requires/, and tests/bin
 * first in PATH. */
static char *path0;

static void fake_systemd(void) {
        char cwd[PATH_MAX], *p;

        if (!path0)
                path0 = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
        assert_non_null(getcwd(cwd, sizeof cwd));
        p = strdup_printf("%s/tests/bin:%s", SLIPWAY_SOURCE_DIR, path0);
        setenv("PATH", p, 1);
        free(p);
        p = strdup_printf("%s/sd", cwd);
        setenv("SLIPWAY_FAKE_SYSTEMD", p, 1);
        free(p);
        unsetenv("SLIPWAY_VERSION");
        assert_int_equal(mkdir("sd", 0755), 0);
        assert_int_equal(mkdir("sd/units", 0755), 0);
        assert_int_equal(mkdir("sd/journal", 0755), 0);
        assert_int_equal(mkdir("sd/requires", 0755), 0);
}

static void sd_file(const char *dir, const char *name, const char *body) {
        char path[256];
        snprintf(path, sizeof path, "sd/%s/%s", dir, name);
        assert_int_equal(write_file_atomic(path, body, strlen(body), 0644), 0);
}

/* Whether the fake was called with a command line containing needle. */
static bool called(const char *needle) {
        char buf[65536];
        FILE *f = fopen("sd/calls", "re");
        size_t n = 0;

        if (f) {
                n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
        }
        buf[n] = 0;
        return strstr(buf, needle);
}

static const char *entry(json_t *report, const char *name, const char *key) {
        return json_string_value(json_object_get(json_object_get(report, name), key));
}

static bool entry_ok(json_t *report, const char *name) {
        return json_is_true(json_object_get(json_object_get(report, name), "ok"));
}

/* A config with the units and a deadline in_ms from now. */
static HealthConfig units_config(char **units, uint64_t in_ms) {
        return (HealthConfig) { .timeout_sec = 5, .required_units = units, .log_lines = 3,
                                .units_deadline = now_usec() + in_ms * 1000, .poll_usec = 10 * 1000 };
}

static void test_units_active(void **state) {
        char *units[] = { (char *) "app.service", (char *) "db", NULL };
        HealthConfig c = units_config(units, 5000);
        json_t *report = NULL;
        char *failed = NULL;
        (void) state;

        fake_systemd();
        sd_file("units", "app.service", "activating start\nactivating start\nactive running\n");
        sd_file("units", "db.service", "active running\n");
        uint64_t t0 = now_usec();
        assert_int_equal(health_judge(&c, &report, &failed), 1);
        assert_true(now_usec() - t0 < 4 * 1000000ULL);
        assert_null(failed);
        assert_true(entry_ok(report, "app.service"));
        assert_string_equal(entry(report, "app.service", "state"), "active");
        assert_true(entry_ok(report, "db"));
        /* It waited for app.service: three looks. */
        assert_true(called("show --property=Id,LoadState,ActiveState,SubState -- app.service db"));
        assert_false(called("journalctl"));
        json_decref(report);
}

static void test_unit_failed(void **state) {
        char *units[] = { (char *) "db.service", (char *) "app.service", NULL };
        HealthConfig c = units_config(units, 60 * 1000);
        json_t *report = NULL;
        char *failed = NULL;
        (void) state;

        fake_systemd();
        sd_file("units", "db.service", "activating start\n");
        sd_file("units", "app.service", "failed failed\n");
        sd_file("journal", "app.service", "line 1\nline 2\napp: cannot bind port 8080\napp.service: Failed with result 'exit-code'.\n");
        /* A failed unit fails at once, long before the deadline. */
        uint64_t t0 = now_usec();
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_true(now_usec() - t0 < 30 * 1000000ULL);
        assert_non_null(failed);
        assert_true(startswith(failed, "app.service is failed (failed)"));
        assert_non_null(strstr(failed, "cannot bind port 8080"));
        assert_null(strstr(failed, "line 1"));   /* log-lines 3 */
        assert_false(entry_ok(report, "app.service"));
        assert_string_equal(entry(report, "app.service", "state"), "failed");
        assert_non_null(strstr(entry(report, "app.service", "output"), "Failed with result 'exit-code'"));
        /* The one still coming up is reported as it is. */
        assert_false(entry_ok(report, "db.service"));
        assert_string_equal(entry(report, "db.service", "state"), "activating");
        assert_true(called("journalctl --no-pager --no-hostname -b -n 3 -u app.service"));
        free(failed);
        json_decref(report);
}

static void test_unit_activating_past_deadline(void **state) {
        char *units[] = { (char *) "slow.service", NULL };
        HealthConfig c = units_config(units, 300);
        json_t *report = NULL;
        char *failed = NULL;
        (void) state;

        fake_systemd();
        sd_file("units", "slow.service", "activating start-pre\n");
        sd_file("journal", "slow.service", "waiting for the network\n");
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_true(now_usec() >= c.units_deadline);
        assert_string_equal(failed, "slow.service is activating (start-pre) at the deadline; last log lines:\n"
                                    "waiting for the network\n");
        free(failed);
        json_decref(report);

        /* Judged after the deadline: one look. */
        c.units_deadline = now_usec() - 1;
        assert_int_equal(health_judge(&c, NULL, &failed), 0);
        assert_non_null(strstr(failed, "at the deadline"));
        free(failed);
}

static void test_unit_not_found(void **state) {
        char *units[] = { (char *) "typo.service", NULL };
        HealthConfig c = units_config(units, 60 * 1000);
        char *failed = NULL;
        (void) state;

        fake_systemd();
        assert_int_equal(health_judge(&c, NULL, &failed), 0);
        assert_true(startswith(failed, "typo.service is not-found; last log lines:\n-- No entries --"));
        free(failed);
}

static void test_boot_complete(void **state) {
        HealthConfig c = units_config(NULL, 300);
        json_t *report = NULL;
        char *failed = NULL;
        (void) state;

        c.boot_complete = true;
        fake_systemd();
        sd_file("requires", "boot-complete.target", "greenboot-healthcheck.service app-check.service\n");
        sd_file("units", "greenboot-healthcheck.service", "active exited\n");
        sd_file("units", "app-check.service", "active exited\n");
        sd_file("units", "boot-complete.target", "active\n");
        assert_int_equal(health_judge(&c, &report, &failed), 1);
        assert_true(entry_ok(report, "boot-complete.target"));
        assert_true(called("systemctl --no-pager start boot-complete.target"));
        json_decref(report);

        /* A unit it requires failed: named with its log, not started again. */
        assert_int_equal(unlink("sd/calls"), 0);
        sd_file("units", "app-check.service", "failed failed\n");
        sd_file("journal", "app-check.service", "app-check: /healthz answered 503\n");
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_true(startswith(failed, "app-check.service is failed, and boot-complete.target requires it"));
        assert_non_null(strstr(failed, "answered 503"));
        assert_false(entry_ok(report, "boot-complete.target"));
        assert_string_equal(entry(report, "boot-complete.target", "output"), "not reached: 1 unit it requires failed");
        assert_false(called(" start "));
        free(failed);
        json_decref(report);

        /* Its start fails. */
        sd_file("units", "app-check.service", "active exited\n");
        sd_file("units", "boot-complete.target", "failed\n");
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_string_equal(failed, "boot-complete.target not reached: A dependency job for boot-complete.target "
                                    "failed. See 'journalctl -xe' for details.");
        free(failed);
        json_decref(report);

        /* Not reached by the deadline (at least a second's look). */
        sd_file("units", "boot-complete.target", "hang\n");
        uint64_t t0 = now_usec();
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_true(now_usec() - t0 < 10 * 1000000ULL);
        assert_string_equal(failed, "boot-complete.target not reached by the deadline");
        free(failed);
        json_decref(report);
}

static void test_no_failed_units(void **state) {
        HealthConfig c = units_config(NULL, 0);
        json_t *report = NULL;
        char *failed = NULL;
        (void) state;

        c.no_failed_units = true;
        fake_systemd();
        sd_file("units", "ok.service", "active running\n");
        assert_int_equal(health_judge(&c, &report, &failed), 1);
        json_decref(report);

        sd_file("units", "logrotate.service", "failed failed\n");
        sd_file("journal", "logrotate.service", "error: bad config\n");
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_true(startswith(failed, "logrotate.service is failed; last log lines:\nerror: bad config"));
        assert_false(entry_ok(report, "logrotate.service"));
        free(failed);
        json_decref(report);
}

/* Bounds: a unit's log lines are the last ones, within HEALTH_OUTPUT_MAX
 * and starting at a line; at most UNITS_FAILED_REPORTED failed units are
 * named; the outputs add up to at most HEALTH_REPORT_MAX. */
static void test_report_bounds(void **state) {
        HealthConfig c = units_config(NULL, 0);
        json_t *report = NULL;
        char *failed = NULL, name[64], *journal = NULL;
        size_t total = 0;
        const char *k;
        json_t *v;
        (void) state;

        c.no_failed_units = true;
        c.log_lines = HEALTH_LOG_LINES_MAX;
        fake_systemd();
        for (int i = 0; i < 200; i++) {
                char *next = strdup_printf("%sline %03d %s\n", journal ? journal : "", i,
                                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                free(journal);
                journal = next;
        }
        for (int i = 0; i < UNITS_FAILED_REPORTED + 4; i++) {
                snprintf(name, sizeof name, "u%02d.service", i);
                sd_file("units", name, "failed failed\n");
                sd_file("journal", name, journal);
        }
        free(journal);
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_int_equal(json_object_size(report), UNITS_FAILED_REPORTED + 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(report, "failed units not shown"), "count")), 4);
        json_object_foreach(report, k, v) {
                const char *out = json_string_value(json_object_get(v, "output"));
                total += strlen(out);
                assert_true(strlen(out) <= HEALTH_OUTPUT_MAX);
        }
        assert_true(total <= HEALTH_REPORT_MAX);
        const char *out = entry(report, "u00.service", "output");
        assert_true(startswith(out, "line "));
        assert_true(endswith(out, "line 199 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"));
        free(failed);
        json_decref(report);

        /* Past HEALTH_REPORT_MAX in all, entries keep their verdict. */
        json_t *r = json_object();
        size_t used = 0;
        char big[HEALTH_OUTPUT_MAX + 1];
        memset(big, 'y', HEALTH_OUTPUT_MAX);
        big[HEALTH_OUTPUT_MAX] = 0;
        for (int i = 0; i < 40; i++) {
                snprintf(name, sizeof name, "c%02d", i);
                health_report_add(r, &used, name, json_pack("{s:b}", "ok", false), big);
        }
        assert_int_equal(used, HEALTH_REPORT_MAX);
        assert_true(json_is_true(json_object_get(json_object_get(r, "c39"), "truncated")));
        assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(r, "c39"), "output"))), 0);
        assert_true(json_is_false(json_object_get(json_object_get(r, "c39"), "ok")));
        json_decref(r);
}

/* Without systemctl (the busybox image), asking for units fails the boot;
 * not asking never runs it. */
static void test_no_systemd(void **state) {
        char *units[] = { (char *) "app.service", NULL };
        HealthConfig c = units_config(units, 0);
        char *failed = NULL, cwd[PATH_MAX];
        (void) state;

        fake_systemd();
        assert_non_null(getcwd(cwd, sizeof cwd));
        setenv("PATH", cwd, 1);
        assert_int_equal(health_judge(&c, NULL, &failed), 0);
        assert_string_equal(failed, "systemctl show: cannot run: No such file or directory");
        free(failed);
        assert_int_equal(mkdir("checks", 0755), 0);
        assert_int_equal(health_run("checks", 5, NULL, NULL), 1);
        setenv("PATH", path0, 1);
}

static void write_file(const char *path, const char *body, mode_t mode) {
        assert_int_equal(write_file_atomic(path, body, strlen(body), mode), 0);
}

/* greenboot: "*.sh" run with bash, executable or not; a failing required.d
 * script fails the boot and ends greenboot's run; wanted.d is reported. */
static void test_greenboot(void **state) {
        char *roots[] = { NULL, NULL, NULL };
        char cwd[PATH_MAX];
        json_t *report = NULL;
        char *failed = NULL, *p;
        HealthConfig c = { .timeout_sec = 1, .greenboot_dirs = roots };
        (void) state;

        assert_non_null(getcwd(cwd, sizeof cwd));
        roots[0] = strdup_printf("%s/lib", cwd);
        roots[1] = strdup_printf("%s/etc", cwd);
        assert_int_equal(mkdir("lib", 0755), 0);
        assert_int_equal(mkdir("lib/required.d", 0755), 0);
        assert_int_equal(mkdir("etc", 0755), 0);
        assert_int_equal(mkdir("etc/required.d", 0755), 0);
        assert_int_equal(mkdir("etc/wanted.d", 0755), 0);
        write_file("lib/required.d/00_start.sh", "echo \"running in bash ${BASH_VERSION%%.*}\"\n", 0644);
        write_file("etc/required.d/10_app.sh", "exit 0\n", 0644);
        write_file("etc/required.d/README", "exit 1\n", 0755);
        write_file("etc/wanted.d/50_optional.sh", "echo 'disk 91% full' >&2; exit 1\n", 0644);
        assert_int_equal(health_judge(&c, &report, &failed), 1);
        assert_null(failed);
        p = strdup_printf("%s/lib/required.d/00_start.sh", cwd);
        assert_true(entry_ok(report, p));
        assert_true(startswith(entry(report, p, "output"), "running in bash "));
        free(p);
        p = strdup_printf("%s/etc/wanted.d/50_optional.sh", cwd);
        assert_false(entry_ok(report, p));
        assert_string_equal(entry(report, p, "output"), "disk 91% full\n");
        assert_true(json_is_false(json_object_get(json_object_get(report, p), "required")));
        free(p);
        assert_int_equal(json_object_size(report), 3);
        json_decref(report);

        /* A failing required script: the rest of greenboot's run is skipped. */
        write_file("lib/required.d/05_dns.sh", "echo 'cannot resolve repo.example.net'; exit 1\n", 0644);
        write_file("lib/required.d/07_later.sh", "touch later-ran\n", 0644);
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        p = strdup_printf("%s/lib/required.d/05_dns.sh: cannot resolve repo.example.net\n", cwd);
        assert_string_equal(failed, p);
        free(p);
        assert_int_equal(access("later-ran", F_OK), -1);
        assert_int_equal(json_object_size(report), 2);
        free(failed);
        json_decref(report);

        /* Time limits hold for them too. */
        assert_int_equal(unlink("lib/required.d/05_dns.sh"), 0);
        write_file("lib/required.d/05_dns.sh", "sleep 300\n", 0644);
        uint64_t t0 = now_usec();
        assert_int_equal(health_judge(&c, &report, &failed), 0);
        assert_true(now_usec() - t0 < 10 * 1000000ULL);
        assert_non_null(strstr(failed, "timed out"));
        free(failed);
        json_decref(report);

        /* greenboot.conf's DISABLED_HEALTHCHECKS leaves a script out. */
        write_file("greenboot.conf", "# DISABLED_HEALTHCHECKS=(\"00_start.sh\")\nGREENBOOT_WATCHDOG_CHECK_ENABLED=true\n"
                                     "DISABLED_HEALTHCHECKS=(\n\t\"05_dns.sh\" # slow here\n  '07_later.sh' )\n", 0644);
        c.greenboot_conf = "greenboot.conf";
        assert_int_equal(health_judge(&c, &report, &failed), 1);
        assert_null(failed);
        assert_int_equal(access("later-ran", F_OK), -1);
        assert_int_equal(json_object_size(report), 3);
        json_decref(report);
        free(roots[0]);
        free(roots[1]);
}

static void test_greenboot_disabled(void **state) {
        char **l = NULL;
        (void) state;

        assert_int_equal(greenboot_disabled("none.conf", &l), 0);
        assert_null(l);
        write_file("a.conf", "DISABLED_HEALTHCHECKS=()\n", 0644);
        assert_int_equal(greenboot_disabled("a.conf", &l), 0);
        assert_null(l);
        write_file("b.conf", "  DISABLED_HEALTHCHECKS=(\"01_repository_dns_check.sh\" 02_watchdog.sh)\nX=(y)\n", 0644);
        assert_int_equal(greenboot_disabled("b.conf", &l), 0);
        assert_int_equal(strv_length(l), 2);
        assert_string_equal(l[0], "01_repository_dns_check.sh");
        assert_string_equal(l[1], "02_watchdog.sh");
        strv_free(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_order_and_report),
                test_in_dir(test_background_child),
                test_in_dir(test_timeout_kills_the_group),
                test_in_dir(test_units_active),
                test_in_dir(test_unit_failed),
                test_in_dir(test_unit_activating_past_deadline),
                test_in_dir(test_unit_not_found),
                test_in_dir(test_boot_complete),
                test_in_dir(test_no_failed_units),
                test_in_dir(test_report_bounds),
                test_in_dir(test_no_systemd),
                test_in_dir(test_greenboot),
                test_in_dir(test_greenboot_disabled),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
