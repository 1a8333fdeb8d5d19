/* The PostgreSQL server of a test's own (tests/unit/pgserver.c, tests/pg.sh):
 * it starts, answers libpq, keeps what a transaction committed, is nobody
 * else's, and is gone without a trace when stopped. */
#include <dirent.h>
#include <libpq-fe.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fileio.h"
#include "pgserver.h"
#include "tests.h"
#include "util.h"

static void PQfinishp(PGconn **c) {
        if (*c)
                PQfinish(*c);
}
static void PQclearp(PGresult **r) {
        PQclear(*r);
}
#define _cleanup_pgconn_ _cleanup_(PQfinishp)
#define _cleanup_pgresult_ _cleanup_(PQclearp)

static PGconn *connect_ok(const char *conninfo) {
        PGconn *c = PQconnectdb(conninfo);

        assert_non_null(c);
        if (PQstatus(c) != CONNECTION_OK)
                fail_msg("cannot connect to '%s': %s", conninfo, PQerrorMessage(c));
        return c;
}

/* Runs sql, which must succeed (a command, or rows); returns the first
 * field of the first row, or "" when there is none. Caller frees. */
static char *exec_ok(PGconn *c, const char *sql) {
        _cleanup_pgresult_ PGresult *r = PQexec(c, sql);
        ExecStatusType s = PQresultStatus(r);

        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
                fail_msg("'%s': %s", sql, PQerrorMessage(c));
        return strdup(PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
}

static void assert_exec(PGconn *c, const char *sql, const char *want) {
        _cleanup_free_ char *got = exec_ok(c, sql);

        assert_non_null(got);
        if (!streq(got, want))
                fail_msg("'%s' gave '%s', not '%s'", sql, got, want);
}

/* The state of pid (a letter) and its parent, from /proc/pid/stat; 0 when
 * it is gone. */
static char proc_state(pid_t pid, pid_t *ret_ppid) {
        char path[64], buf[512], *p;
        _cleanup_fclose_ FILE *f = NULL;
        char state = 0;
        int ppid = 0;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                return 0;
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
                return 0;
        if (ret_ppid)
                *ret_ppid = ppid;
        return state;
}

/* A process runs: it is there and not a zombie (PID 1 reaps when it will). */
static bool alive(pid_t pid) {
        char s = proc_state(pid, NULL);
        return s && s != 'Z';
}

/* The server's processes: the postmaster (from postmaster.pid) and its
 * children. Returns how many, up to max. */
static size_t server_pids(pid_t *pids, size_t max) {
        _cleanup_free_ char *data = NULL;
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *e;
        uint64_t pm;
        size_t n = 0, size;

        if (read_full_file("pg/data/postmaster.pid", 4096, &data, &size) < 0)
                return 0;
        data[strcspn(data, "\n")] = 0;
        if (safe_atou64(data, &pm) < 0 || pm == 0 || pm > INT32_MAX)
                return 0;
        pids[n++] = (pid_t) pm;
        d = opendir("/proc");
        assert_non_null(d);
        while ((e = readdir(d)) && n < max) {
                uint64_t pid;
                pid_t ppid = 0;
                if (safe_atou64(e->d_name, &pid) < 0 || pid > INT32_MAX)
                        continue;
                if (alive((pid_t) pid) && proc_state((pid_t) pid, &ppid) && ppid == (pid_t) pm)
                        pids[n++] = (pid_t) pid;
        }
        return n;
}

/* Start, SELECT 1, a committed write seen from a second connection, a
 * rolled back one not seen; stop: no process left, the directory goes. */
static void test_start_query_write_stop(void **state) {
        _cleanup_free_ char *conninfo = NULL;
        pid_t pids[64];
        size_t n;
        (void) state;

        assert_int_equal(test_pg_start(&conninfo), 0);
        {
                _cleanup_pgconn_ PGconn *c = connect_ok(conninfo);
                _cleanup_pgconn_ PGconn *other = connect_ok(conninfo);

                assert_true(PQserverVersion(c) >= 150000);
                assert_exec(c, "SELECT 1", "1");
                assert_exec(c, "SELECT current_setting('server_version_num')::int >= 150000", "t");
                assert_exec(c, "SELECT current_database()", "slipway");

                assert_exec(c, "BEGIN", "");
                assert_exec(c, "CREATE TABLE hosts (id bigint PRIMARY KEY, name text NOT NULL)", "");
                assert_exec(c, "INSERT INTO hosts VALUES (1, 'web-1'), (2, 'web-2')", "");
                assert_exec(c, "COMMIT", "");
                assert_exec(other, "SELECT string_agg(name, ',' ORDER BY id) FROM hosts", "web-1,web-2");

                assert_exec(c, "BEGIN", "");
                assert_exec(c, "DELETE FROM hosts WHERE id = 1", "");
                assert_exec(other, "SELECT count(*) FROM hosts", "2");
                assert_exec(c, "ROLLBACK", "");
                assert_exec(other, "SELECT count(*) FROM hosts", "2");
        }

        n = server_pids(pids, ELEMENTSOF(pids));
        assert_true(n >= 2); /* the postmaster and its helpers at least */
        test_pg_stop();
        for (size_t i = 0; i < n; i++)
                if (alive(pids[i]))
                        fail_msg("process %d of the server still runs", (int) pids[i]);
        assert_false(path_exists("pg/data/postmaster.pid"));
        assert_int_equal(rm_rf("pg"), 0);
        assert_false(path_exists("pg"));
}

/* The server is the test's: its socket and data in the test's directory,
 * no TCP, not port 5432; a second start while it runs is refused; a
 * second stop does nothing. */
static void test_server_is_the_tests_own(void **state) {
        _cleanup_free_ char *conninfo = NULL, *again = NULL;
        char cwd[PATH_MAX], *p;
        (void) state;

        assert_non_null(getcwd(cwd, sizeof(cwd)));
        assert_int_equal(test_pg_start(&conninfo), 0);
        assert_int_equal(test_pg_start(&again), -EBUSY);
        assert_null(again);
        {
                _cleanup_pgconn_ PGconn *c = connect_ok(conninfo);
                _cleanup_free_ char *data_dir = exec_ok(c, "SHOW data_directory");

                assert_true(strncmp(PQhost(c), cwd, strlen(cwd)) == 0);
                assert_string_not_equal(PQport(c), "5432");
                assert_exec(c, "SHOW listen_addresses", "");
                assert_non_null(data_dir);
                p = strdup_printf("%s/pg/data", cwd);
                assert_string_equal(data_dir, p);
                free(p);
        }
        test_pg_stop();
        test_pg_stop();
        assert_false(path_exists("pg/data/postmaster.pid"));
}

static void test_stop_without_start(void **state) {
        (void) state;
        test_pg_stop();
        assert_false(path_exists("pg"));
}

/* A test that fails half way leaves no server to the next. */
static int pg_teardown(void **state) {
        test_pg_stop();
        return test_dir_teardown(state);
}
#define test_with_pg(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, pg_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                test_with_pg(test_start_query_write_stop),
                test_with_pg(test_server_is_the_tests_own),
                test_with_pg(test_stop_without_start),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
