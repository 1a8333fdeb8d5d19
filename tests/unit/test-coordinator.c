/* The coordinator against a database that fails: every statement of a lease
 * request, a tick and a rollout start is made to fail in turn (sqlite's
 * progress handler interrupts the Nth virtual machine step). A lease request
 * must then end in an error or a refusal, never in a grant it should not
 * make, and a committed request holds its whole decision or no lease at
 * all; a tick or a start must leave no host assigned twice or half, each
 * rollout as before the tick or as a tick without faults leaves it, and a
 * fault in one part of a tick (lease expiry, one rollout) must not stop the
 * others. Then what used to stop every tick for good: a rollback to an image
 * the catalog does not have, a stored spec that does not read, a rollout
 * whose tick keeps failing; these, and the other cases without a fault
 * injected, run on PostgreSQL too (a server of the test's own). */
#include <fcntl.h>
#include <time.h>

#include "tests.h"

#include "coordinator.h"
#include "store-sqlite.h"
#include "fileio.h"
#include "hosts.h"
#include "pgserver.h"
#include "store-db.h"
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

/* sql with the same text as an earlier one gets that one's address: the
 * store caches statements by the address of their text. Kept to the end. */
static const char *interned(char *sql) {
        static char **seen;

        for (size_t i = 0; seen && seen[i]; i++)
                if (streq(seen[i], sql)) {
                        free(sql);
                        return seen[i];
                }
        assert_int_equal(strv_consume(&seen, sql), 0);
        return sql;
}

/* Runs sql, statements separated by ";" (none inside quotes), in one write
 * transaction, through the statement API: on either driver. */
static void exec_sql(StoreDb *db, const char *sql) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        const char *p = sql;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        while (*p) {
                const char *end = strchr(p, ';');
                size_t n = end ? (size_t) (end - p) : strlen(p);
                _cleanup_stmt_reset_ DbStmt *st = NULL;
                char *one = strndup(p, n);

                assert_non_null(one);
                p += n + (end ? 1 : 0);
                if (strspn(one, " \n") == n) {
                        free(one);
                        continue;
                }
                assert_int_equal(store_stmt(tx, interned(one), &st), 0);
                if (db_step(st) < 0)
                        fail_msg("%s: %s", one, strempty(store_last_error()));
        }
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* Runs sql, one statement (a literal), in a write transaction of its own. */
static void exec_one(StoreDb *db, const char *sql) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(store_stmt(tx, sql, &st), 0);
        if (db_step(st) < 0)
                fail_msg("%s: %s", sql, strempty(store_last_error()));
        db_reset(st);
        assert_int_equal(store_tx_commit(&tx), 0);
}

/* Three hosts in rack r1, whose budget lets one be down; h1 holds a lease. */
static StoreDb *fleet_open(uint64_t now) {
        StoreDb *db = NULL;
        char sql[1024];

        assert_int_equal(store_db_open("state.db", &db), 0);
        sqlite3 *s = store_sqlite(db);
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
        return db;
}

/* Asks for host's lease with the fault armed; returns the result and the
 * decision. */
static int ask(StoreDb *db, Fault *f, const char *host, uint64_t now, LeaseDecision *d) {
        StoreTx *tx = NULL;
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        sqlite3 *s = store_sqlite(db);
        int r = store_tx_begin(db, STORE_TX_WRITE, &tx);

        assert_int_equal(r, 0);
        sqlite3_progress_handler(s, 1, interrupt_at, f);
        r = coord_lease_acquire(tx, &cc, host, now, "test", d);
        sqlite3_progress_handler(s, 0, NULL, NULL);
        store_tx_rollback(&tx);
        return r;
}

static void test_lease_refused_on_any_error(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_store_db_free_ StoreDb *db = fleet_open(now);
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
        _cleanup_store_db_free_ StoreDb *db = fleet_open(now);
        LeaseDecision d = {};
        unsigned long steps;
        Fault f = {};
        (void) state;

        sqlite3 *s = store_sqlite(db);
        exec_ok(s, "UPDATE budgets SET max_unavailable = 2");
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

/* Three images; hosts h-1..h-6 on the first, healthy, in racks r1..r3
 * (one host down at a time per rack) and services a (h-1..h-3) and b;
 * h-1's lease expired ten seconds ago. */
#define IMG1 "1111111111111111111111111111111111111111111111111111111111111111"
#define IMG2 "2222222222222222222222222222222222222222222222222222222222222222"
#define IMG3 "3333333333333333333333333333333333333333333333333333333333333333"
#define UNKNOWN "9999999999999999999999999999999999999999999999999999999999999999"

static StoreDb *rollout_fleet_open(const char *path, uint64_t now) {
        StoreDb *db = NULL;
        char sql[4096];
        int n = 0;

        if (test_pg_conninfo)
                db = test_store_open();
        else
                assert_int_equal(store_db_open(path, &db), 0);
        n += snprintf(sql + n, sizeof sql - (size_t) n,
                      "INSERT INTO images (id, name, version, arch, manifest, signature, created) VALUES "
                      "('" IMG1 "', 'tiny', '1.0', 'x86_64', '" IMG1 "', '" IMG1 "', 0), "
                      "('" IMG2 "', 'tiny', '2.0', 'x86_64', '" IMG2 "', '" IMG2 "', 0), "
                      "('" IMG3 "', 'tiny', '3.0', 'x86_64', '" IMG3 "', '" IMG3 "', 0);"
                      "INSERT INTO budgets (selector, max_unavailable) VALUES ('rack', 1);");
        for (int i = 1; i <= 6; i++)
                n += snprintf(sql + n, sizeof sql - (size_t) n,
                              "INSERT INTO hosts (id, mac, state, image, current_image, registered, last_seen) VALUES "
                              "('h-%d', '52:54:00:00:00:0%d', 'healthy', '" IMG1 "', '" IMG1 "', 0, %llu);"
                              "INSERT INTO host_labels (host_id, key, value) VALUES ('h-%d', 'rack', 'r%d'), "
                              "('h-%d', 'service', '%s');",
                              i, i, (unsigned long long) now, i, (i - 1) % 3 + 1, i, i <= 3 ? "a" : "b");
        snprintf(sql + n, sizeof sql - (size_t) n,
                 "UPDATE hosts SET lease_epoch = 1, lease_expires = %llu WHERE id = 'h-1';"
                 "UPDATE meta SET value = 1 WHERE key = 'lease_epoch';",
                 (unsigned long long) now - 10);
        exec_sql(db, sql);
        return db;
}

static int64_t query_int(StoreDb *db, const char *format, ...) _printf_(2, 3);
static int64_t query_int(StoreDb *db, const char *format, ...) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        char *sql = NULL;
        const char *text;
        int64_t v = -1;
        va_list ap;
        int r;

        va_start(ap, format);
        assert_true(vasprintf(&sql, format, ap) >= 0);
        va_end(ap);
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        if (store_stmt(tx, interned(sql), &st) < 0)
                fail_msg("%s: %s", sql, strempty(store_last_error()));
        r = db_step(st);
        if (r < 0)
                fail_msg("%s: %s", sql, strempty(store_last_error()));
        if (r == 0 || db_column_is_null(st, 0))
                return v;
        /* A comparison is a boolean on PostgreSQL. */
        text = db_column_text(st, 0);
        if (streq(text, "t") || streq(text, "f"))
                return streq(text, "t");
        return db_column_int64(st, 0);
}

/* Starts a rollout of spec in one transaction, as POST /v1/rollouts does,
 * without its first tick. */
static int64_t rollout_start(StoreDb *db, const char *spec_text, uint64_t now) {
        StoreTx *tx = NULL;
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        _cleanup_free_ char *error = NULL;
        json_t *spec = json_loads(spec_text, 0, NULL);
        int64_t id = 0;

        assert_non_null(spec);
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        int r = coord_rollout_start(tx, &cc, spec, "test", now, &id, &error);
        if (r < 0)
                fail_msg("start %s: %s: %s", spec_text, strerror(-r), strempty(error));
        assert_int_equal(store_tx_commit(&tx), 0);
        json_decref(spec);
        return id;
}

/* A tick as slipwayd runs it: each part in a transaction of its own. */
static int tick(StoreDb *db, CoordTicker *t, Fault *f, uint64_t now) {
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        int r;

        if (!f)
                return coord_ticker_run(t, db, &cc, now);
        sqlite3 *s = store_sqlite(db);
        sqlite3_progress_handler(s, 1, interrupt_at, f);
        r = coord_ticker_run(t, db, &cc, now);
        sqlite3_progress_handler(s, 0, NULL, NULL);
        assert_true(sqlite3_get_autocommit(s));
        /* A fault fails its part alone: the tick itself went on. */
        return f ? 0 : r;
}

/* Nothing half done: no host is on its way in two active rollouts, every
 * host assigned by a rollout is assigned its target, and no rack has more
 * leases than its budget. */
/* Each wave's hosts by status, counted, and as the store keeps them. */
#define COUNT_IF(cond) "sum(CASE WHEN " cond " THEN 1 ELSE 0 END)"
#define WAVE_COUNTS_SQL                                                                                            \
        "SELECT rollout_id, wave, count(*), " COUNT_IF("status = 'pending'") ", " COUNT_IF("status = 'assigned'") \
        ", " COUNT_IF("status = 'done'") ", " COUNT_IF("status = 'failed'") ", " COUNT_IF("status = 'skipped'")   \
        ", " COUNT_IF("status = 'failed' AND acked = 0") " FROM rollout_hosts GROUP BY rollout_id, wave"
#define WAVES_SQL                                                                                                  \
        "SELECT rollout_id, wave, hosts, pending, assigned, done, failed, skipped, failed_new FROM rollout_waves " \
        "WHERE hosts > 0"

static void check_invariants(StoreDb *db, const char *when) {
        int64_t twice = query_int(db, "SELECT count(*) FROM (SELECT rh.host_id FROM rollout_hosts rh JOIN rollouts r "
                                      "ON r.id = rh.rollout_id WHERE r.state IN ('running', 'paused', 'done') AND "
                                      "rh.status IN ('pending', 'assigned') GROUP BY rh.host_id HAVING count(*) > 1) AS t");
        int64_t half = query_int(db, "SELECT count(*) FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id "
                                     "JOIN hosts h ON h.id = rh.host_id WHERE r.state IN ('running', 'paused', 'done') "
                                     "AND rh.status = 'assigned' AND h.image IS DISTINCT FROM rh.target");
        int64_t leases = query_int(db, "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM hosts h JOIN "
                                       "host_labels l ON l.host_id = h.id AND l.key = 'rack' WHERE h.lease_epoch IS NOT "
                                       "NULL GROUP BY l.value) AS g");
        /* Every assigned host that its report finishes (done or failed, by
         * the tick's test) is marked for the tick, whatever failed. */
        int64_t unmarked = query_int(
                db, "SELECT count(*) FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id JOIN hosts h ON "
                    "h.id = rh.host_id WHERE r.state IN ('running', 'paused', 'done') AND rh.status = 'assigned' AND "
                    "rh.reported = 0 AND ((h.current_image = rh.target AND h.state = 'healthy') OR (h.state IN "
                    "('rolled-back', 'failed') AND h.current_image IS DISTINCT FROM rh.target AND (coalesce(h.state_since, 0) >= "
                    "rh.assigned_at OR (r.kind != 'rollback' AND h.failed_image = rh.target))))");
        /* The waves' counts are their hosts', whatever failed. */
        int64_t counts = query_int(db, "SELECT count(*) FROM (SELECT * FROM (" WAVE_COUNTS_SQL " EXCEPT " WAVES_SQL
                                       ") AS x UNION ALL SELECT * FROM (" WAVES_SQL " EXCEPT " WAVE_COUNTS_SQL
                                       ") AS y) AS z");

        if (twice != 0 || half != 0 || leases > 1 || counts != 0 || unmarked != 0)
                fail_msg("%s: %lld host(s) in two rollouts, %lld assigned half, %lld leases in a rack, %lld wave(s) "
                         "miscounted, %lld finished host(s) not marked for the tick",
                         when, (long long) twice, (long long) half, (long long) leases, (long long) counts,
                         (long long) unmarked);
}

/* The template database copied into db for one run: a thousand runs
 * reopen nothing, and need no durability. */
static void restore(StoreDb *db, const char *template) {
        sqlite3 *from = NULL;
        sqlite3_backup *b;

        assert_int_equal(sqlite3_open_v2(template, &from, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3 *s = store_sqlite(db);
        b = sqlite3_backup_init(s, "main", from, "main");
        assert_non_null(b);
        assert_int_equal(sqlite3_backup_step(b, -1), SQLITE_DONE);
        assert_int_equal(sqlite3_backup_finish(b), SQLITE_OK);
        exec_ok(s, "PRAGMA synchronous=OFF");
        sqlite3_close(from);
}

static StoreDb *copy_open(const char *from, const char *to) {
        StoreDb *db = NULL;

        assert_int_equal(store_db_open(to, &db), 0);
        restore(db, from);
        return db;
}

/* What a tick has done: h-1's expired lease quarantined, and each of two
 * rollouts' first wave assigned. */
typedef struct TickDone {
        bool expired, a, b;
} TickDone;

static TickDone tick_done(StoreDb *db, int64_t a, int64_t b) {
        return (TickDone) {
                .expired = query_int(db, "SELECT quarantined <> 0 AND lease_epoch IS NULL FROM hosts WHERE id = 'h-1'") == 1,
                .a = query_int(db, "SELECT count(*) FROM rollout_hosts WHERE rollout_id = %lld AND status = 'assigned'",
                               (long long) a) > 0,
                .b = query_int(db, "SELECT count(*) FROM rollout_hosts WHERE rollout_id = %lld AND status = 'assigned'",
                               (long long) b) > 0,
        };
}

static void test_tick_fault_stays_in_its_part(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        unsigned long steps, errors = 0;
        int64_t a, b;
        Fault f = {};
        (void) state;

        /* Two running rollouts whose first waves the next tick assigns. */
        StoreDb *tmpl = rollout_fleet_open("template.db", now);
        a = rollout_start(tmpl, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}, \"waves\": [1, \"100%\"]}", now);
        b = rollout_start(tmpl, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"b\"}, \"waves\": [1, \"100%\"]}", now);
        store_db_free(tmpl);

        _cleanup_store_db_free_ StoreDb *db = copy_open("template.db", "state.db");
        assert_int_equal(tick(db, NULL, &f, now + 1), 0);
        TickDone d = tick_done(db, a, b);
        assert_true(d.expired && d.a && d.b);
        steps = f.calls;
        assert_true(steps > 50);

        for (unsigned long k = 1; k <= steps; k++) {
                CoordTicker *t = coord_ticker_new();
                char when[64];

                assert_non_null(t);
                restore(db, "template.db");
                f = (Fault) { .fail_at = k };
                /* Each part fails alone: the tick itself goes through. */
                assert_int_equal(tick(db, t, &f, now + 1), 0);
                assert_true(f.fired);
                snprintf(when, sizeof when, "a fault at step %lu of %lu", k, steps);
                check_invariants(db, when);
                d = tick_done(db, a, b);
                int failed = !d.expired + !d.a + !d.b;
                /* One part lost at most, or the list of rollouts (then no
                 * rollout moved, but leases expired). */
                if (failed > 1 && !(d.expired && !d.a && !d.b))
                        fail_msg("%s stopped more than its part: expiry %d, rollout a %d, rollout b %d", when,
                                 d.expired, d.a, d.b);
                errors += failed > 0;
                /* The next tick does what this one could not. */
                assert_int_equal(tick(db, t, NULL, now + 2), 0);
                d = tick_done(db, a, b);
                if (!d.expired || !d.a || !d.b)
                        fail_msg("%s: the next tick did not catch up", when);
                check_invariants(db, when);
                coord_ticker_free(t);
        }
        assert_true(errors > 0);
}

/* The first column of the first row of sql, duplicated ("" for NULL). */
static char *query_text(StoreDb *db, const char *sql) {
        sqlite3_stmt *st = NULL;
        char *v = NULL;

        sqlite3 *s = store_sqlite(db);
        if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(s));
        if (sqlite3_step(st) == SQLITE_ROW)
                v = strdup(strempty((const char *) sqlite3_column_text(st, 0)));
        sqlite3_finalize(st);
        assert_non_null(v);
        return v;
}

/* What a lease request may write: the epoch counter and every host's lease. */
#define LEASE_STATE_SQL                                                                                             \
        "SELECT (SELECT value FROM meta WHERE key = 'lease_epoch') || '|' || coalesce((SELECT group_concat(x, ',') " \
        "FROM (SELECT id || ':' || coalesce(lease_epoch, '-') || ':' || coalesce(lease_expires, '-') AS x FROM "    \
        "hosts ORDER BY id)), '')"
/* What it wrote to the audit log. */
#define LEASE_AUDIT_SQL                                                                                             \
        "SELECT coalesce((SELECT group_concat(x, ',') FROM (SELECT action || ':' || coalesce(target, '') AS x FROM " \
        "audit ORDER BY id)), '')"

/* A lease request as POST /v1/hosts/ID/lease makes it: the decision and its audit
 * record committed together, or nothing. Returns the result of the request
 * or of its commit. */
static int ask_commit(StoreDb *db, Fault *f, const char *host, uint64_t now, LeaseDecision *d) {
        StoreTx *tx = NULL;
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        sqlite3 *s = store_sqlite(db);
        int r = store_tx_begin(db, STORE_TX_WRITE, &tx);

        assert_int_equal(r, 0);
        sqlite3_progress_handler(s, 1, interrupt_at, f);
        r = coord_lease_acquire(tx, &cc, host, now, "test", d);
        /* Not the commit: sqlite calls the progress handler once more after
         * a COMMIT is done, so an interrupt there reports a commit that
         * happened as failed, which no real fault does. */
        sqlite3_progress_handler(s, 0, NULL, NULL);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        assert_true(sqlite3_get_autocommit(s));
        return r;
}

/* Write faults: the at-th row written to hosts, meta, audit, rollouts or
 * rollout_hosts fails alone
 * (RAISE(ABORT) undoes that statement only), so the transaction goes on and
 * only the code's own checks keep a half-written decision from a commit. An
 * interrupt cannot show that: sqlite rolls the whole transaction back on
 * one. Returns how many rows were written since the last call. */
static int64_t write_fault_at(StoreDb *db, int64_t at) {
        sqlite3 *s = store_sqlite(db);
        int64_t n;

        exec_ok(s, "CREATE TEMP TABLE IF NOT EXISTS fault (n INTEGER NOT NULL, at INTEGER NOT NULL);"
                   "INSERT INTO fault SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM fault);"
                   "CREATE TEMP TRIGGER IF NOT EXISTS fault_hosts BEFORE UPDATE ON main.hosts BEGIN "
                   "UPDATE fault SET n = n + 1; SELECT RAISE(ABORT, 'injected') FROM fault WHERE n = at; END;"
                   "CREATE TEMP TRIGGER IF NOT EXISTS fault_meta BEFORE UPDATE ON main.meta BEGIN "
                   "UPDATE fault SET n = n + 1; SELECT RAISE(ABORT, 'injected') FROM fault WHERE n = at; END;"
                   "CREATE TEMP TRIGGER IF NOT EXISTS fault_audit BEFORE INSERT ON main.audit BEGIN "
                   "UPDATE fault SET n = n + 1; SELECT RAISE(ABORT, 'injected') FROM fault WHERE n = at; END;"
                   "CREATE TEMP TRIGGER IF NOT EXISTS fault_rollouts BEFORE UPDATE ON main.rollouts BEGIN "
                   "UPDATE fault SET n = n + 1; SELECT RAISE(ABORT, 'injected') FROM fault WHERE n = at; END;"
                   "CREATE TEMP TRIGGER IF NOT EXISTS fault_rollout_hosts BEFORE UPDATE ON main.rollout_hosts BEGIN "
                   "UPDATE fault SET n = n + 1; SELECT RAISE(ABORT, 'injected') FROM fault WHERE n = at; END;");
        /* The temporary table is the writing connection's own. */
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(s, "SELECT n FROM fault", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE fault SET n = 0, at = %lld", (long long) at);
        exec_ok(s, sql);
        return n;
}

/* A fault at each step of a grant: afterwards either
 * the whole grant is in the database (epoch, expiry, audit record) and the
 * request succeeded, or no lease was written at all. */
static void test_lease_grant_whole_or_nothing(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_free_ char *state0 = NULL, *audit0 = NULL, *state1 = NULL, *audit1 = NULL, *refused = NULL;
        unsigned long steps, errors = 0;
        LeaseDecision d = {};
        Fault f = {};
        (void) state;

        StoreDb *tmpl = fleet_open(now);
        exec_ok(store_sqlite(tmpl), "UPDATE budgets SET max_unavailable = 2");
        store_db_free(tmpl);
        _cleanup_store_db_free_ StoreDb *db = copy_open("state.db", "work.db");
        state0 = query_text(db, LEASE_STATE_SQL);
        audit0 = query_text(db, LEASE_AUDIT_SQL);
        assert_true(asprintf(&refused, "%s%slease.refuse:h-2", audit0, *audit0 ? "," : "") >= 0);

        assert_int_equal(ask_commit(db, &f, "h-2", now, &d), 0);
        assert_true(d.granted);
        lease_decision_release(&d);
        state1 = query_text(db, LEASE_STATE_SQL);
        audit1 = query_text(db, LEASE_AUDIT_SQL);
        assert_string_not_equal(state0, state1);
        assert_non_null(strstr(audit1, "lease.grant:h-2"));
        steps = f.calls;
        assert_true(steps > 10);

        for (unsigned long k = 1; k <= steps; k++) {
                _cleanup_free_ char *got_state = NULL, *got_audit = NULL;

                restore(db, "state.db");
                f = (Fault) { .fail_at = k };
                int r = ask_commit(db, &f, "h-2", now, &d);
                assert_true(f.fired);
                got_state = query_text(db, LEASE_STATE_SQL);
                got_audit = query_text(db, LEASE_AUDIT_SQL);
                if (r >= 0 && d.granted) {
                        if (!streq(got_state, state1) || !streq(got_audit, audit1))
                                fail_msg("a fault at step %lu of %lu: granted, but wrote '%s' / '%s' instead of "
                                         "'%s' / '%s'",
                                         k, steps, got_state, got_audit, state1, audit1);
                } else {
                        /* Refused or failed: no lease, and at most the
                         * refusal's audit record. */
                        if (!streq(got_state, state0) ||
                            !(streq(got_audit, audit0) || (r >= 0 && streq(got_audit, refused))))
                                fail_msg("a fault at step %lu of %lu: not granted (%s), but wrote '%s' / '%s'", k,
                                         steps, r < 0 ? strerror(-r) : "refused", got_state, got_audit);
                }
                errors += r < 0;
                lease_decision_release(&d);
        }
        assert_true(errors > 0);

        /* The same with each row the grant writes failing alone. */
        restore(db, "state.db");
        write_fault_at(db, 0);
        f = (Fault) {};
        assert_int_equal(ask_commit(db, &f, "h-2", now, &d), 0);
        assert_true(d.granted);
        lease_decision_release(&d);
        int64_t writes = write_fault_at(db, 0);
        assert_true(writes >= 3); /* the epoch, the lease, the audit record */
        for (int64_t k = 1; k <= writes; k++) {
                _cleanup_free_ char *got_state = NULL, *got_audit = NULL;

                restore(db, "state.db");
                write_fault_at(db, k);
                f = (Fault) {};
                int r = ask_commit(db, &f, "h-2", now, &d);
                write_fault_at(db, 0);
                got_state = query_text(db, LEASE_STATE_SQL);
                got_audit = query_text(db, LEASE_AUDIT_SQL);
                if (r >= 0 || d.granted || !streq(got_state, state0) || !streq(got_audit, audit0))
                        fail_msg("write %lld of %lld failed: %s, %s, wrote '%s' / '%s'", (long long) k,
                                 (long long) writes, r < 0 ? strerror(-r) : "succeeded",
                                 d.granted ? "granted" : "not granted", got_state, got_audit);
                lease_decision_release(&d);
        }
}

/* What one rollout's tick may write: the rollout, its hosts' rows, what
 * those hosts are assigned, and the audit records about them. */
static char *rollout_state(StoreDb *db, int64_t id) {
        _cleanup_free_ char *sql = NULL;

        assert_true(asprintf(&sql,
                             "SELECT (SELECT state || ':' || wave || ':' || coalesce(wave_done_at, '-') || ':' || "
                             "coalesce(reason, '-') || ':' || coalesce(finished, '-') FROM rollouts WHERE id = %1$lld) "
                             "|| '|' || coalesce((SELECT group_concat(x, ',') FROM (SELECT host_id || ':' || wave || "
                             "':' || phase || ':' || status || ':' || coalesce(assigned_at, '-') || ':' || "
                             "coalesce(message, '') AS x FROM rollout_hosts WHERE rollout_id = %1$lld ORDER BY "
                             "host_id)), '') || '|' || coalesce((SELECT group_concat(x, ',') FROM (SELECT id || ':' || "
                             "coalesce(image, '-') || ':' || rollback || ':' || coalesce(lease_epoch, '-') AS x FROM "
                             "hosts WHERE id IN (SELECT host_id FROM rollout_hosts WHERE rollout_id = %1$lld) ORDER "
                             "BY id)), '') || '|' || coalesce((SELECT group_concat(x, ',') FROM (SELECT action || ':' "
                             "|| coalesce(target, '') || ':' || coalesce(detail, '') AS x FROM audit WHERE target = "
                             "'rollout %1$lld' OR target IN (SELECT host_id FROM rollout_hosts WHERE rollout_id = "
                             "%1$lld) ORDER BY id)), '')",
                             (long long) id) >= 0);
        return query_text(db, sql);
}

/* A fault at each step of a tick that moves two rollouts on: each rollout
 * afterwards is as before the tick or as a tick without faults leaves it,
 * never a part of the way. */
static void test_tick_rollout_whole_or_nothing(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_free_ char *a0 = NULL, *b0 = NULL, *a1 = NULL, *b1 = NULL;
        unsigned long steps, errors = 0;
        int64_t a, b;
        Fault f = {};
        (void) state;

        /* No lease to expire: the rollouts are all the tick does. */
        StoreDb *tmpl = rollout_fleet_open("template.db", now);
        exec_ok(store_sqlite(tmpl), "UPDATE hosts SET lease_epoch = NULL, lease_expires = NULL");
        a = rollout_start(tmpl, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}, \"waves\": [1, \"100%\"]}", now);
        b = rollout_start(tmpl, "{\"image\": \"tiny:3.0\", \"selector\": {\"service\": \"b\"}, \"waves\": [2, \"100%\"]}", now);
        store_db_free(tmpl);

        _cleanup_store_db_free_ StoreDb *db = copy_open("template.db", "state.db");
        a0 = rollout_state(db, a);
        b0 = rollout_state(db, b);
        assert_int_equal(tick(db, NULL, &f, now + 1), 0);
        a1 = rollout_state(db, a);
        b1 = rollout_state(db, b);
        assert_string_not_equal(a0, a1);
        assert_string_not_equal(b0, b1);
        steps = f.calls;
        assert_true(steps > 50);

        for (unsigned long k = 1; k <= steps; k++) {
                _cleanup_free_ char *ga = NULL, *gb = NULL;
                CoordTicker *t = coord_ticker_new();

                assert_non_null(t);
                restore(db, "template.db");
                f = (Fault) { .fail_at = k };
                assert_int_equal(tick(db, t, &f, now + 1), 0);
                assert_true(f.fired);
                ga = rollout_state(db, a);
                gb = rollout_state(db, b);
                if (!streq(ga, a0) && !streq(ga, a1))
                        fail_msg("a fault at step %lu of %lu left rollout a half moved: '%s' (before '%s', after '%s')",
                                 k, steps, ga, a0, a1);
                if (!streq(gb, b0) && !streq(gb, b1))
                        fail_msg("a fault at step %lu of %lu left rollout b half moved: '%s' (before '%s', after '%s')",
                                 k, steps, gb, b0, b1);
                errors += streq(ga, a0) || streq(gb, b0);
                coord_ticker_free(t);
        }
        assert_true(errors > 0);

        /* The same with each row the tick writes failing alone (a part
         * that fails is undone with its count of writes, so a later part
         * may fail at the same count: each part is still whole or not). */
        restore(db, "template.db");
        write_fault_at(db, 0);
        assert_int_equal(tick(db, NULL, NULL, now + 1), 0);
        int64_t writes = write_fault_at(db, 0);
        assert_true(writes >= 4);
        for (int64_t k = 1; k <= writes; k++) {
                _cleanup_free_ char *ga = NULL, *gb = NULL;
                CoordTicker *t = coord_ticker_new();

                assert_non_null(t);
                restore(db, "template.db");
                write_fault_at(db, k);
                assert_int_equal(tick(db, t, &(Fault) {}, now + 1), 0);
                write_fault_at(db, 0);
                ga = rollout_state(db, a);
                gb = rollout_state(db, b);
                if (!streq(ga, a0) && !streq(ga, a1))
                        fail_msg("write %lld of %lld failed and left rollout a half moved: '%s'", (long long) k,
                                 (long long) writes, ga);
                if (!streq(gb, b0) && !streq(gb, b1))
                        fail_msg("write %lld of %lld failed and left rollout b half moved: '%s'", (long long) k,
                                 (long long) writes, gb);
                if (streq(ga, a1) && streq(gb, b1))
                        fail_msg("write %lld of %lld failed, yet both rollouts moved", (long long) k, (long long) writes);
                check_invariants(db, "a write fault");
                coord_ticker_free(t);
        }
}

/* A rollout start and its first tick in one transaction, as POST
 * /v1/rollouts runs them, with a fault at each step: a start either happens
 * whole or not at all, and one over hosts in another rollout never does. */
static void test_start_faults(void **state) {
        StoreTx *tx = NULL;
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        uint64_t now = (uint64_t) time(NULL);
        const char *specs[] = { "{\"image\": \"tiny:3.0\"}", "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"b\"}, "
                                                             "\"waves\": [1, \"100%\"]}" };
        (void) state;

        StoreDb *tmpl = rollout_fleet_open("template.db", now);
        int64_t a = rollout_start(tmpl, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}}", now);
        store_db_free(tmpl);
        assert_true(a > 0);

        _cleanup_store_db_free_ StoreDb *db = copy_open("template.db", "state.db");
        for (size_t i = 0; i < ELEMENTSOF(specs); i++) {
                json_t *spec = json_loads(specs[i], 0, NULL);
                unsigned long steps = 0;

                for (unsigned long k = 0; k == 0 || k <= steps; k++) {
                        _cleanup_free_ char *error = NULL;
                        Fault f = { .fail_at = k };
                        int64_t id = 0;
                        char when[96];

                        restore(db, "template.db");
                        sqlite3 *s = store_sqlite(db);
                        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
                        sqlite3_progress_handler(s, 1, interrupt_at, &f);
                        int r = coord_rollout_start(tx, &cc, spec, "test", now, &id, &error);
                        if (r >= 0)
                                r = coord_rollout_tick(tx, &cc, id, now);
                        sqlite3_progress_handler(s, 0, NULL, NULL);
                        if (r >= 0)
                                r = store_tx_commit(&tx);
                        else
                                store_tx_rollback(&tx);
                        if (k == 0) {
                                /* Without a fault: the first is refused, the second starts. */
                                assert_int_equal(r, i == 0 ? -EBUSY : 0);
                                steps = f.calls;
                                continue;
                        }
                        snprintf(when, sizeof when, "start %zu, a fault at step %lu of %lu", i + 1, k, steps);
                        check_invariants(db, when);
                        int64_t n = query_int(db, "SELECT count(*) FROM rollouts");
                        if (i == 0 && (r >= 0 || n != 1))
                                fail_msg("%s: a rollout over hosts of rollout %lld started", when, (long long) a);
                        if (r < 0 && n != 1)
                                fail_msg("%s: failed, and left a rollout behind", when);
                        if (r >= 0 && (n != 2 || query_int(db, "SELECT count(*) FROM rollout_hosts WHERE "
                                                               "rollout_id = %lld AND status = 'assigned'",
                                                           (long long) id) != 1))
                                fail_msg("%s: started without its first wave", when);
                }
                json_decref(spec);
        }
}

/* A rollout with on_failure rollback whose canary failed: the tick that
 * rolls it back, with a fault at each step, rolls back whole or not at all. */
static void test_rollback_faults(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        unsigned long steps;
        int64_t a;
        Fault f = {};
        (void) state;

        StoreDb *tmpl = rollout_fleet_open("template.db", now);
        a = rollout_start(tmpl, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}, \"waves\": [2, \"100%\"], "
                                "\"on_failure\": \"rollback\"}", now);
        assert_int_equal(tick(tmpl, NULL, NULL, now), 0);
        sqlite3 *s = store_sqlite(tmpl);
        /* One host of the first wave is done, the other fell back. */
        exec_ok(s, "UPDATE hosts SET current_image = '" IMG2 "' WHERE id = 'h-1';"
                   "UPDATE hosts SET state = 'rolled-back', failed_image = '" IMG2 "' WHERE id = 'h-2';");
        store_db_free(tmpl);

        _cleanup_store_db_free_ StoreDb *db = copy_open("template.db", "state.db");
        assert_int_equal(tick(db, NULL, &f, now + 1), 0);
        assert_int_equal(query_int(db, "SELECT count(*) FROM rollouts WHERE kind = 'rollback'"), 1);
        steps = f.calls;
        for (unsigned long k = 1; k <= steps; k++) {
                char when[64];

                restore(db, "template.db");
                f = (Fault) { .fail_at = k };
                assert_int_equal(tick(db, NULL, &f, now + 1), 0);
                snprintf(when, sizeof when, "a fault at step %lu of %lu", k, steps);
                check_invariants(db, when);
                int64_t rb = query_int(db, "SELECT count(*) FROM rollouts WHERE kind = 'rollback'");
                int64_t state_a = query_int(db, "SELECT state = 'aborted' FROM rollouts WHERE id = %lld", (long long) a);
                int64_t rows = query_int(db, "SELECT count(*) FROM rollout_hosts rh JOIN rollouts r ON r.id = "
                                             "rh.rollout_id WHERE r.kind = 'rollback'");
                if (rb != state_a || (rb == 1 && rows != 2) || (rb == 0 && rows != 0))
                        fail_msg("%s: %lld rollback(s) with %lld host(s), rollout aborted: %lld", when, (long long) rb,
                                 (long long) rows, (long long) state_a);
        }
}

/* A host that checks in with an image the catalog does not have: it is
 * recorded as what the host runs, but a rollout notes the image it was
 * assigned as the one to go back to. A rollback whose previous image is
 * unknown (as a server before this one recorded it) or gone skips that
 * host, says why, and the ticks go on. */
static void test_rollback_skips_what_it_cannot_assign(void **state) {
        StoreTx *tx = NULL;
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_store_db_free_ StoreDb *db = rollout_fleet_open("state.db", now);
        json_t *body = json_pack("{s:s, s:s}", "state", "healthy", "image", UNKNOWN);
        int64_t a, b, rb;
        (void) state;

        assert_null(hosts_checkin_invalid(body));
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(hosts_checkin_apply(tx, "h-2", body, now, "h-2", NULL), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        json_decref(body);
        assert_int_equal(query_int(db, "SELECT current_image = '" UNKNOWN "' FROM hosts WHERE id = 'h-2'"), 1);

        a = rollout_start(db, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}, \"waves\": [\"100%\"], "
                              "\"on_failure\": \"rollback\"}", now);
        b = rollout_start(db, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"b\"}, \"waves\": [1, \"100%\"], "
                              "\"bake\": 5}", now);
        assert_int_equal(query_int(db, "SELECT prev_image = '" IMG1 "' FROM rollout_hosts WHERE host_id = 'h-2'"), 1);
        /* h-3's previous image as a server that trusted the check-in recorded it. */
        exec_sql(db, "UPDATE rollout_hosts SET prev_image = '" UNKNOWN "' WHERE host_id = 'h-3'");
        assert_int_equal(tick(db, NULL, NULL, now), 0);
        /* All of rollout a fail; it rolls back. */
        exec_sql(db, "UPDATE hosts SET state = 'failed', failed_image = '" IMG2 "' WHERE id IN ('h-1', 'h-2', 'h-3')");
        assert_int_equal(tick(db, NULL, NULL, now + 1), 0);
        rb = query_int(db, "SELECT id FROM rollouts WHERE rollback_of = %lld", (long long) a);
        assert_true(rb > 0);
        assert_int_equal(query_int(db, "SELECT count(*) FROM rollout_hosts WHERE rollout_id = %lld AND status = "
                                       "'skipped' AND host_id = 'h-3' AND message LIKE '%%not in the catalog%%'",
                                   (long long) rb),
                         1);
        /* Dated by the tick's clock, as its other entries. */
        assert_int_equal(query_int(db, "SELECT count(*) FROM audit WHERE action = 'rollout.skip' AND detail LIKE "
                                       "'%%h-3%%' AND time = %lld",
                                   (long long) now + 1),
                         1);
        assert_int_equal(tick(db, NULL, NULL, now + 2), 0);
        assert_int_equal(query_int(db, "SELECT image = '" IMG1 "' FROM hosts WHERE id = 'h-2'"), 1);

        /* An image deleted behind the coordinator's back (as a server
         * before this one allowed): rollout b's canary is done, and the
         * hosts of its second wave, which wait for that image, are skipped;
         * leases still expire. */
        if (test_pg_conninfo)
                /* Foreign keys are triggers there, off for this session. */
                exec_sql(db, "SET session_replication_role = replica; DELETE FROM images WHERE id = '" IMG2 "';"
                             "SET session_replication_role = origin");
        else
                exec_ok(store_sqlite(db), "PRAGMA foreign_keys = OFF; DELETE FROM images WHERE id = '" IMG2 "';"
                                          "PRAGMA foreign_keys = ON;");
        exec_sql(db, "UPDATE hosts SET current_image = '" IMG2 "' WHERE id = 'h-4';"
                     "UPDATE hosts SET lease_epoch = 7, lease_expires = 0 WHERE id = 'h-6';");
        assert_int_equal(tick(db, NULL, NULL, now + 20), 0);
        assert_int_equal(tick(db, NULL, NULL, now + 30), 0);
        assert_int_equal(query_int(db, "SELECT count(*) FROM rollout_hosts WHERE rollout_id = %lld AND status = "
                                       "'skipped' AND message LIKE '%%not in the catalog%%'",
                                   (long long) b),
                         2);
        assert_int_equal(query_int(db, "SELECT quarantined FROM hosts WHERE id = 'h-6'"), 1);
        assert_int_equal(query_int(db, "SELECT count(*) FROM rollouts WHERE state = 'paused'"), 0);
        check_invariants(db, "after the skips");
}

/* An image a host uses, a rollout would assign or may roll back to cannot
 * be deleted, and the reason says which; a done rollout, once aborted, no
 * longer holds its previous image. */
/* coord_image_users() in a transaction of its own. */
static int image_users(StoreDb *db, const char *id, char **ret_why) {
        _cleanup_store_tx_ StoreTx *tx = NULL;

        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        return coord_image_users(tx, id, ret_why);
}

static void test_image_users(void **state) {
        StoreTx *tx = NULL;
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_store_db_free_ StoreDb *db = rollout_fleet_open("state.db", now);
        _cleanup_free_ char *why = NULL, *error = NULL;
        int64_t a;
        (void) state;

        assert_int_equal(image_users(db, IMG1, &why), 1);
        assert_string_equal(why, "assigned to or running on 6 host(s)");
        free(why);
        why = NULL;
        assert_int_equal(image_users(db, IMG3, &why), 0);
        assert_null(why);

        /* Every host of rollout a is away: nothing runs 2.0 yet. */
        a = rollout_start(db, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}}", now);
        assert_int_equal(image_users(db, IMG2, &why), 1);
        assert_string_equal(why, "rollout 1 would assign it");
        free(why);
        why = NULL;
        /* Done: every host moved on; 1.0 is what a rollback would go back to. */
        exec_sql(db, "UPDATE hosts SET image = '" IMG2 "', current_image = '" IMG2 "';"
                     "UPDATE rollout_hosts SET status = 'done'; UPDATE rollouts SET state = 'done';");
        assert_int_equal(image_users(db, IMG1, &why), 1);
        assert_string_equal(why, "rollout 1 may roll back to it");
        free(why);
        why = NULL;
        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
        assert_int_equal(coord_rollout_action(tx, a, "abort", "test", now, NULL, &error), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(image_users(db, IMG1, &why), 0);
}

/* A running rollout whose stored spec no longer reads (an older server's,
 * or edited by hand) is paused with the reason, not run without a bake and
 * a failure threshold. */
static void test_unreadable_spec_pauses(void **state) {
        StoreTx *tx = NULL;
        const char *bad[] = { "{\"image\": \"tiny:2.0\", \"bake\": 9223372036854775807}", "{\"image\": ",
                              "{\"image\": \"tiny:2.0\", \"waves\": [\"150%\"]}" };
        const char *reason[] = { "''bake''", "not JSON", "''waves''" }; /* SQL quoted */
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_store_db_free_ StoreDb *db = rollout_fleet_open("state.db", now);
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int64_t id = rollout_start(db, "{\"image\": \"tiny:2.0\", \"waves\": [\"100%\"]}", now);
                {
                        _cleanup_store_tx_ StoreTx *w = NULL;
                        _cleanup_stmt_reset_ DbStmt *st = NULL;

                        assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &w), 0);
                        assert_int_equal(store_stmt(w, "UPDATE rollouts SET spec = ? WHERE id = ?", &st), 0);
                        db_bind_text(st, 1, bad[i]);
                        db_bind_int64(st, 2, id);
                        assert_int_equal(db_step(st), 0);
                        db_reset(st);
                        assert_int_equal(store_tx_commit(&w), 0);
                }
                assert_int_equal(tick(db, NULL, NULL, now), 0);
                assert_int_equal(query_int(db, "SELECT state = 'paused' AND reason LIKE 'its stored spec cannot be "
                                               "read: %s%%' FROM rollouts WHERE id = %lld",
                                           reason[i], (long long) id),
                                 1);
                assert_int_equal(query_int(db, "SELECT count(*) FROM rollout_hosts WHERE rollout_id = %lld AND "
                                               "status = 'assigned'",
                                           (long long) id),
                                 0);
                /* Out of the way of the next one. */
                assert_int_equal(store_tx_begin(db, STORE_TX_WRITE, &tx), 0);
                char *error = NULL;
                assert_int_equal(coord_rollout_action(tx, id, "abort", "test", now, NULL, &error), 0);
                assert_int_equal(store_tx_commit(&tx), 0);
        }
}

/* Lines of file that contain needle. */
static int count_lines(const char *path, const char *needle) {
        _cleanup_free_ char *data = NULL;
        size_t n;
        int c = 0;

        assert_int_equal(read_full_file(path, 1 << 20, &data, &n), 0);
        for (char *p = data; p && (p = strstr(p, needle)); p++)
                c++;
        return c;
}

/* A rollout whose tick fails every time: the other rollout and lease
 * expiry go on, the failure is logged once (and its recovery once), and
 * after three ticks the rollout is paused with the reason. */
static void test_failing_rollout_paused_and_logged_once(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_store_db_free_ StoreDb *db = rollout_fleet_open("state.db", now);
        CoordTicker *t = coord_ticker_new();
        int64_t a, b;
        int saved, fd;
        (void) state;

        a = rollout_start(db, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"a\"}, \"waves\": [1, \"100%\"]}", now);
        b = rollout_start(db, "{\"image\": \"tiny:2.0\", \"selector\": {\"service\": \"b\"}, \"waves\": [1, \"100%\"]}", now);
        if (test_pg_conninfo) {
                exec_one(db, "CREATE FUNCTION broken() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RAISE "
                             "EXCEPTION 'the disk is on fire'; END $f$");
                exec_one(db, "CREATE TRIGGER broken BEFORE UPDATE OF image ON hosts FOR EACH ROW WHEN (NEW.id IN "
                             "('h-1', 'h-2', 'h-3')) EXECUTE FUNCTION broken()");
        } else
                exec_one(db, "CREATE TRIGGER broken BEFORE UPDATE OF image ON hosts WHEN NEW.id IN ('h-1', 'h-2', "
                             "'h-3') BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END");

        fflush(stderr);
        saved = dup(STDERR_FILENO);
        fd = open("log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(saved >= 0 && fd >= 0);
        assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
        /* Rollout a's part fails three times, then a is paused and the
         * ticks go through. */
        for (int i = 0; i < 5; i++)
                assert_true(i < 3 ? tick(db, t, NULL, now + (uint64_t) i) < 0
                                  : tick(db, t, NULL, now + (uint64_t) i) == 0);
        exec_one(db, test_pg_conninfo ? "DROP TRIGGER broken ON hosts" : "DROP TRIGGER broken");
        assert_int_equal(tick(db, t, NULL, now + 5), 0);
        fflush(stderr);
        assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        close(saved);
        close(fd);

        TickDone d = tick_done(db, a, b);
        assert_true(d.expired);
        assert_false(d.a);
        assert_true(d.b);
        assert_int_equal(query_int(db, "SELECT state = 'paused' AND reason LIKE '%%3 times in a row%%the disk is on "
                                       "fire%%' FROM rollouts WHERE id = %lld",
                                   (long long) a),
                         1);
        assert_int_equal(query_int(db, "SELECT count(*) FROM audit WHERE action = 'rollout.pause' AND target = "
                                       "'rollout %lld' AND detail LIKE '%%the disk is on fire%%'",
                                   (long long) a),
                         1);
        assert_int_equal(count_lines("log", "the disk is on fire"), 2); /* the failure, the pause */
        assert_int_equal(count_lines("log", "working again"), 1);
        coord_ticker_free(t);
}

/* The plan's estimate: a bake past its cap is refused, naming it, instead
 * of wrapping around. */
static void test_plan_bake_capped(void **state) {
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_store_db_free_ StoreDb *db = rollout_fleet_open("state.db", now);
        _cleanup_free_ char *error = NULL;
        json_t *plan = NULL, *spec;
        (void) state;

        _cleanup_store_tx_ StoreTx *tx = NULL;
        assert_int_equal(store_tx_begin(db, STORE_TX_READ, &tx), 0);
        spec = json_pack("{s:s, s:[i, s], s:I}", "image", "tiny:2.0", "waves", 1, "100%", "bake",
                         (json_int_t) INT64_MAX);
        assert_int_equal(coord_rollout_plan(tx, &cc, spec, 60, &plan, &error), -EINVAL);
        assert_non_null(strstr(error, "'bake'"));
        json_decref(spec);
        spec = json_pack("{s:s, s:[i, s], s:i}", "image", "tiny:2.0", "waves", 1, "100%", "bake", 30 * 86400);
        assert_int_equal(coord_rollout_plan(tx, &cc, spec, 60, &plan, &error), 0);
        assert_int_equal(json_integer_value(json_object_get(plan, "estimate_sec")), 2 * 60 + 30 * 86400);
        json_decref(plan);
        json_decref(spec);
}

/* A tick assigns at most assign_per_tick hosts of a rollout; the rest are
 * assigned by the next ticks, and keep their wave open meanwhile, even when
 * every host assigned so far is done. */
static void test_assign_per_tick(void **state) {
        uint64_t now = (uint64_t) time(NULL);
        _cleanup_store_db_free_ StoreDb *db = rollout_fleet_open("state.db", now);
        CoordConfig cc = COORD_CONFIG_DEFAULT;
        int64_t id;
        (void) state;

        cc.assign_per_tick = 2;
        id = rollout_start(db, "{\"image\": \"tiny:2.0\", \"waves\": [4, \"100%\"]}", now);
        for (int k = 1; k <= 2; k++) {
                assert_int_equal(coord_ticker_run(NULL, db, &cc, now + (uint64_t) k), 0);
                assert_int_equal(query_int(db, "SELECT count(*) FROM rollout_hosts WHERE rollout_id = %lld AND "
                                               "wave = 0 AND status != 'pending'", (long long) id),
                                 2 * k);
                assert_int_equal(query_int(db, "SELECT count(*) FROM hosts WHERE image = '" IMG2 "'"), 2 * k);
                assert_int_equal(query_int(db, "SELECT wave FROM rollouts WHERE id = %lld", (long long) id), 0);
                /* The hosts assigned so far arrive, healthy. */
                exec_sql(db, "UPDATE hosts SET current_image = image WHERE image = '" IMG2 "'");
        }
        check_invariants(db, "after the first wave");
        /* The wave is complete only now: the next tick moves on and assigns
         * two of the second wave's hosts. */
        assert_int_equal(coord_ticker_run(NULL, db, &cc, now + 3), 0);
        assert_int_equal(query_int(db, "SELECT count(*) FROM rollout_hosts WHERE rollout_id = %lld AND status = "
                                       "'done'", (long long) id),
                         4);
        assert_int_equal(query_int(db, "SELECT wave FROM rollouts WHERE id = %lld", (long long) id), 1);
        assert_int_equal(coord_ticker_run(NULL, db, &cc, now + 4), 0);
        assert_int_equal(query_int(db, "SELECT count(*) FROM hosts WHERE image = '" IMG2 "'"), 6);
}

/* The cases that inject no fault, on either driver. */
#define PORTABLE_CASES(test)                                                                                     \
        test(test_rollback_skips_what_it_cannot_assign), test(test_image_users), test(test_unreadable_spec_pauses), \
                test(test_failing_rollout_paused_and_logged_once), test(test_plan_bake_capped),                     \
                test(test_assign_per_tick)

int main(void) {
        const struct CMUnitTest pg[] = { PORTABLE_CASES(cmocka_unit_test) };
        const struct CMUnitTest tests[] = {
                test_in_dir(test_lease_refused_on_any_error),
                test_in_dir(test_lease_grant_needs_success),
                test_in_dir(test_lease_grant_whole_or_nothing),
                test_in_dir(test_tick_fault_stays_in_its_part),
                test_in_dir(test_tick_rollout_whole_or_nothing),
                test_in_dir(test_start_faults),
                test_in_dir(test_rollback_faults),
                PORTABLE_CASES(test_in_dir),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);

        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
