/* A PostgreSQL server of a unit test's own: tests/pg.sh start and stop. */
#include "tests.h"
#include <limits.h>
#include <stdio.h>

#include "fileio.h"
#include "pgserver.h"
#include "process.h"
#include "store-db.h"
#include "store-pg.h"
#include "util.h"

/* The cluster's directory while its server may run; empty otherwise. */
static char pg_dir[PATH_MAX];

/* Runs tests/pg.sh VERB DIR [UPTO] (upto may be NULL). Its messages go to
 * our stderr when it fails. Returns 0, -EIO when it failed, or a negative
 * errno when it could not run. */
static int pg_sh(const char *verb, const char *dir, const char *upto) {
        const char *src = getenv("SLIPWAY_SOURCE_DIR");
        _cleanup_free_ char *script = NULL, *err = NULL;
        int r;

        if (!src)
                src = SLIPWAY_SOURCE_DIR;
        script = path_join(src, "tests/pg.sh");
        if (!script)
                return -ENOMEM;
        char *argv[] = { "bash", script, (char *) verb, (char *) dir, (char *) upto, NULL };
        r = spawn_capture(argv, NULL, NULL, &err);
        if (r != 0) {
                fprintf(stderr, "tests/pg.sh %s '%s' failed (%d): %s", verb, dir, r, err ? err : "");
                return r < 0 ? r : -EIO;
        }
        return 0;
}

void test_pg_stop(void) {
        if (!pg_dir[0])
                return;
        (void) pg_sh("stop", pg_dir, NULL);
        pg_dir[0] = 0;
}

int test_pg_start(char **ret_conninfo) {
        static bool at_exit;
        _cleanup_free_ char *url_path = NULL, *url = NULL;
        char cwd[PATH_MAX];
        const char *upto;
        size_t n;
        int r;

        if (pg_dir[0])
                return -EBUSY;
        if (!getcwd(cwd, sizeof(cwd)))
                return negative_errno();
        if ((size_t) snprintf(pg_dir, sizeof(pg_dir), "%s/pg", cwd) >= sizeof(pg_dir)) {
                pg_dir[0] = 0;
                return -ENAMETOOLONG;
        }
        /* The postgres user must get through our directory and the runner's
         * (tests/run-unit.sh), both made 0700. */
        upto = getenv("SLIPWAY_TEST_DIR");
        n = upto ? strlen(upto) : 0;
        if (!upto || strncmp(cwd, upto, n) != 0 || (cwd[n] != '/' && cwd[n] != 0))
                upto = cwd;
        if (!at_exit && atexit(test_pg_stop) == 0)
                at_exit = true;
        r = pg_sh("start", pg_dir, upto);
        if (r < 0) {
                pg_dir[0] = 0;
                return r;
        }
        url_path = path_join(pg_dir, "url");
        if (!url_path)
                return -ENOMEM;
        r = read_full_file(url_path, 4096, &url, &n);
        if (r < 0)
                return r;
        while (n > 0 && url[n - 1] == '\n')
                url[--n] = 0;
        if (n == 0)
                return -EIO;
        *ret_conninfo = TAKE_PTR(url);
        return 0;
}

char *test_pg_conninfo;

int test_pg_group_setup(void **state) {
        if (test_dir_setup(state) < 0)
                return -1;
        return test_pg_start(&test_pg_conninfo) < 0 ? -1 : 0;
}

int test_pg_group_teardown(void **state) {
        test_pg_stop();
        free(test_pg_conninfo);
        test_pg_conninfo = NULL;
        return test_dir_teardown(state);
}

PgConn *test_pg_connect(void) {
        _cleanup_free_ char *error = NULL;
        PgConn *c = NULL;

        if (pg_conn_open(test_pg_conninfo, &c, &error) < 0)
                fail_msg("cannot connect to %s: %s", test_pg_conninfo, strempty(error));
        return c;
}

StoreDb *test_store_open(void) {
        StoreDb *db = NULL;

        if (test_pg_conninfo) {
                _cleanup_pg_conn_free_ PgConn *c = NULL;

                assert_int_equal(pg_conn_open(test_pg_conninfo, &c, NULL), 0);
                assert_int_equal(pg_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                            "current_database() AND pid <> pg_backend_pid()"),
                                 0);
                assert_int_equal(pg_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), 0);
        }
        assert_int_equal(store_db_open(test_pg_conninfo ?: "state.db", &db), 0);
        return db;
}
