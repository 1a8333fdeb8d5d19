/* A PostgreSQL server of a unit test's own, for the tests of code that
 * speaks to PostgreSQL: tests/pg.sh run as a program, so that the shell
 * suites and the unit tests make and stop their servers the same way. */
#pragma once

/* Makes a cluster in "pg" below the current directory (the test's own),
 * starts its server as the postgres user on a unix socket in that
 * directory only, and creates the database "slipway". *ret_conninfo gets
 * its libpq URL (the caller frees it). The server is stopped by
 * test_pg_stop(), or at exit. One server at a time: -EBUSY while one runs.
 * Returns 0 or a negative errno; what went wrong is on stderr. */
int test_pg_start(char **ret_conninfo);

/* Stops the server test_pg_start() started (fast shutdown) and returns when
 * none of its processes is left. Nothing to do when none runs. */
void test_pg_stop(void);

/* For tests that run the same cases on both store drivers: a cmocka
 * group's setup starts a server in the group's own directory and sets
 * test_pg_conninfo (NULL outside such a group: the cases run on sqlite);
 * its teardown stops the server. */
extern char *test_pg_conninfo;
int test_pg_group_setup(void **state);
int test_pg_group_teardown(void **state);

/* A new, empty store of the driver under test: a sqlite file "state.db"
 * in the case's directory, or the server's database with its schema
 * dropped (connections a failed case left behind are ended first: cmocka
 * jumps out of a case past its clean-ups). */
struct StoreDb *test_store_open(void);

/* A connection of the store's PostgreSQL driver to the group's server;
 * the test fails when there is none. */
struct PgConn *test_pg_connect(void);
