/* A PostgreSQL server of a unit test's own: tests/pg.sh start and stop. */
#include <limits.h>
#include <stdio.h>

#include "fileio.h"
#include "pgserver.h"
#include "process.h"
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
