/* The coordinator against a database that fails: every statement of a lease
 * request is made to fail in turn (sqlite's progress handler interrupts the
 * Nth virtual machine step), and the request must then end in an error or a
 * refusal, never in a grant it should not make. */
#include <time.h>

#include "tests.h"

#include "coordinator.h"
#include "db.h"
#include "util.h"

typedef struct Fault {
        unsigned long calls, fail_at;
        bool fired;
} Fault;

static int interrupt_at(void *userdata) {
        Fault *f = userdata;

        if (++f->calls != f->fail_at)
                return 0;
        f->fired = true;
        return 1;
}

static void exec_ok(sqlite3 *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK)
                fail_msg("%s: %s", sql, err ? err : sqlite3_errstr(rc));
}

/* Three hosts in rack r1, whose budget lets one be down; h1 holds a lease. */
static Db *fleet_open(uint64_t now) {
        Db *db = NULL;
        char sql[1024];

        assert_int_equal(db_open("state.db", &db), 0);
        sqlite3 *s = db_lock(db);
        snprintf(sql, sizeof sql,
                 "INSERT INTO hosts (id, mac, state, registered, last_seen) VALUES "
                 "('h-1', '52:54:00:00:00:01', 'healthy', 0, %1$llu), "
                 "('h-2', '52:54:00:00:00:02', 'healthy', 0, %1$llu), "
                 "('h-3', '52:54:00:00:00:03', 'healthy', 0, %1$llu);"
                 "INSERT INTO host_labels (host_id, key, value) VALUES ('h-1', 'rack', 'r1'), "
                 "('h-2', 'rack', 'r1'), ('h-3', 'rack', 'r1'), ('h-1', 'service', 'web'), "
                 "('h-2', 'service', 'web'), ('h-3', 'service', 'web');"
                 "INSERT INTO budgets (selector, max_unavailable) VALUES ('rack', 1);"
                 "UPDATE hosts SET lease_epoch = 1, lease_expires = %1$llu + 600 WHERE id = 'h-1';"
                 "UPDATE meta SET value = 1 WHERE key = 'lease_epoch';",
                 (unsigned long long) now);
        exec_ok(s, sql);
        db_unlock(db);
        return db;
}

/* Asks for host's lease with the fault armed; returns the result and the
 * decision. */
static int ask(Db *db, Fault *f, const char *host, uint64_t now, LeaseDecision *d) {
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        sqlite3 *s = db_lock(db);
        int r = db_begin(s);

        assert_int_equal(r, 0);
        sqlite3_progress_handler(s, 1, interrupt_at, f);
        r = coord_lease_acquire(s, &cc, host, now, "test", d);
        sqlite3_progress_handler(s, 0, NULL, NULL);
        db_rollback(s);
        db_unlock(db);
        return r;
}

static void test_lease_refused_on_any_error(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_db_free_ Db *db = fleet_open(now);
        unsigned long steps, errors = 0;
        LeaseDecision d = {};
        Fault f = {};
        (void) state;

        /* Without a fault: h-2 is refused, rack r1 is at its budget. */
        assert_int_equal(ask(db, &f, "h-2", now, &d), 0);
        assert_false(d.granted);
        assert_non_null(d.group);
        assert_string_equal(d.group, "rack=r1");
        lease_decision_release(&d);
        steps = f.calls;
        assert_true(steps > 10);

        for (unsigned long k = 1; k <= steps; k++) {
                f = (Fault) { .fail_at = k };
                int r = ask(db, &f, "h-2", now, &d);
                assert_true(f.fired);
                if (r >= 0 && d.granted)
                        fail_msg("a fault at step %lu of %lu granted h-2 a lease past rack r1's budget", k, steps);
                if (r < 0)
                        errors++;
                lease_decision_release(&d);
        }
        /* The faults really reached the statements. */
        assert_true(errors > 0);
}

/* With room in the budget a fault may cost the grant, never more: the
 * decision is a grant only when the request succeeded. */
static void test_lease_grant_needs_success(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_db_free_ Db *db = fleet_open(now);
        LeaseDecision d = {};
        unsigned long steps;
        Fault f = {};
        (void) state;

        sqlite3 *s = db_lock(db);
        exec_ok(s, "UPDATE budgets SET max_unavailable = 2");
        db_unlock(db);
        assert_int_equal(ask(db, &f, "h-2", now, &d), 0);
        assert_true(d.granted);
        lease_decision_release(&d);
        steps = f.calls;
        for (unsigned long k = 1; k <= steps; k++) {
                f = (Fault) { .fail_at = k };
                int r = ask(db, &f, "h-2", now, &d);
                if (r < 0)
                        assert_false(d.granted);
                lease_decision_release(&d);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_lease_refused_on_any_error),
                test_in_dir(test_lease_grant_needs_success),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
