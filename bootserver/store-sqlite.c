#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "store-driver.h"
#include "store-sqlite.h"
#include "store-files-sql.h"
#include "store-pipelines-sql.h"
#include "store-group-counts-sql.h"
#include "store-instances-sql.h"
#include "util.h"

/* A statement of store-db.h: sqlite's, with the first binding that failed
 * since the last reset (reported by the next step) and the rows the last
 * completed run changed. */
typedef struct SqliteStmt {
        DbStmt head;
        sqlite3_stmt *st;
        int64_t changes;
        int bind_rc; /* SQLITE_OK, or what the failed binding returned */
        int bind_i;  /* its parameter */
} SqliteStmt;

/* One prepared statement kept for the life of the connection, found by the
 * address of its SQL text (a literal). The SqliteStmt is allocated apart: a
 * caller holds it while the table grows. */
typedef struct CachedStmt {
        const char *sql;
        SqliteStmt *st;
} CachedStmt;

/* A connection with its statement cache. Connections are opened in
 * serialized mode (FULLMUTEX): statements made with sqlite_prepare() may be
 * finalized by cleanup handlers after the transaction ended, when the
 * connection may already serve another thread, so sqlite must guard its own
 * calls. */
typedef struct Conn {
        sqlite3 *s;
        CachedStmt *cache; /* open addressing, n_cache_max slots, a power of 2 */
        size_t n_cache, n_cache_max;
        struct Conn *next_idle;
} Conn;

/* One writer and a pool of readers (WAL lets readers run beside the
 * writer, each on the last committed state). The writer's mutex is what
 * makes a write request's statements one transaction, and orders writes
 * without sqlite's busy retries; it guards the writer's statement cache too.
 * A read transaction takes an idle reader, or opens one: there are at most
 * as many readers as threads reading at once. */
typedef struct SqliteDb {
        StoreDb head;
        Conn writer;
        pthread_mutex_t lock;
        char *path; /* NULL: no readers (an in-memory database) */
        pthread_mutex_t pool_lock;
        Conn *idle;   /* readers not in use */
        Conn **all;   /* every reader, for store_db_free() */
        size_t n_all;
} SqliteDb;

typedef struct SqliteTx {
        StoreTx head;
        SqliteDb *store;
        Conn *conn;
        struct SqliteTx *parent; /* the enclosing transaction of a savepoint */
        bool relaxed;
        bool reader;
        bool open;
} SqliteTx;

/* Migration 10's triggers keep rollout_waves by moving one rollout_hosts row
 * out of its wave's counts (OLD) and into its new wave's counts (NEW). */
#define WAVES_REMOVE_OLD                                                                                \
        "  UPDATE rollout_waves SET hosts = hosts - 1, pending = pending - (OLD.status = 'pending'),"   \
        "    assigned = assigned - (OLD.status = 'assigned'), done = done - (OLD.status = 'done'),"     \
        "    failed = failed - (OLD.status = 'failed'), skipped = skipped - (OLD.status = 'skipped'),"  \
        "    failed_new = failed_new - (OLD.status = 'failed' AND NOT OLD.acked)"                       \
        "  WHERE rollout_id = OLD.rollout_id AND wave = OLD.wave;"
#define WAVES_ADD_NEW                                                                                           \
        "  INSERT INTO rollout_waves VALUES (NEW.rollout_id, NEW.wave, 1, NEW.status = 'pending',"              \
        "    NEW.status = 'assigned', NEW.status = 'done', NEW.status = 'failed', NEW.status = 'skipped',"      \
        "    NEW.status = 'failed' AND NOT NEW.acked)"                                                          \
        "  ON CONFLICT (rollout_id, wave) DO UPDATE SET hosts = hosts + 1, pending = pending + excluded.pending," \
        "    assigned = assigned + excluded.assigned, done = done + excluded.done, failed = failed + excluded.failed," \
        "    skipped = skipped + excluded.skipped, failed_new = failed_new + excluded.failed_new;"

/* The schema, versioned with user_version; each step moves one version up. */
static const char *const migrations[] = {
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, created INTEGER NOT NULL);"
        "CREATE TABLE images (id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL,"
        "  arch TEXT NOT NULL, kernel_version TEXT, manifest TEXT NOT NULL, signature TEXT NOT NULL,"
        "  signed_by TEXT, created INTEGER NOT NULL, UNIQUE (name, version));"
        "CREATE TABLE artifacts (image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
        "  type TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, fstype TEXT,"
        "  PRIMARY KEY (image_id, type));"
        "CREATE INDEX artifacts_sha256 ON artifacts(sha256);"
        "CREATE TABLE hosts (id TEXT PRIMARY KEY, mac TEXT UNIQUE, uuid TEXT, hostname TEXT,"
        "  image TEXT REFERENCES images(id), boot TEXT NOT NULL DEFAULT 'disk',"
        "  state TEXT NOT NULL DEFAULT 'registered', installed INTEGER NOT NULL DEFAULT 0,"
        "  version TEXT, current_image TEXT, booted_slot TEXT, slots TEXT, health TEXT, facts TEXT,"
        "  message TEXT, token_hash TEXT, enroll_hash TEXT, enroll_expires INTEGER,"
        "  registered INTEGER NOT NULL, last_seen INTEGER);"
        "CREATE TABLE host_labels (host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,"
        "  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (host_id, key));"
        "CREATE INDEX host_labels_kv ON host_labels(key, value);"
        "CREATE TABLE tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);"
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,"
        "  actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, detail TEXT);",
        /* 2: reboot leases with fencing epochs */
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta (key, value) VALUES ('lease_epoch', 0);"
        "ALTER TABLE hosts ADD COLUMN lease_epoch INTEGER;"
        "ALTER TABLE hosts ADD COLUMN lease_expires INTEGER;",
        /* 3: the coordinator: budgets, quarantine, rollouts */
        "CREATE TABLE budgets (selector TEXT PRIMARY KEY, max_unavailable INTEGER, max_unavailable_pct INTEGER,"
        "  min_available INTEGER);"
        "ALTER TABLE hosts ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE hosts ADD COLUMN rollback INTEGER NOT NULL DEFAULT 0;"
        "CREATE TABLE rollouts (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, image TEXT,"
        "  spec TEXT NOT NULL, state TEXT NOT NULL, wave INTEGER NOT NULL DEFAULT 0, n_waves INTEGER NOT NULL,"
        "  wave_done_at INTEGER, reason TEXT, rollback_of INTEGER, actor TEXT, created INTEGER NOT NULL,"
        "  finished INTEGER);"
        "CREATE TABLE rollout_hosts (rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,"
        "  host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE, wave INTEGER NOT NULL,"
        "  phase INTEGER NOT NULL DEFAULT 0, target TEXT NOT NULL, prev_image TEXT, status TEXT NOT NULL,"
        "  message TEXT, PRIMARY KEY (rollout_id, host_id));"
        "CREATE INDEX rollout_hosts_host ON rollout_hosts(host_id);"
        "ALTER TABLE rollout_hosts ADD COLUMN assigned_at INTEGER;"
        "ALTER TABLE hosts ADD COLUMN state_since INTEGER;",
        /* 4: the image an agent last refused or fell back from */
        "ALTER TABLE hosts ADD COLUMN failed_image TEXT;",
        /* 5: failures an operator has seen and resumed past */
        "ALTER TABLE rollout_hosts ADD COLUMN acked INTEGER NOT NULL DEFAULT 0;",
        /* 6: the tick's look-ups of a rollout's pending and assigned hosts */
        "CREATE INDEX rollout_hosts_status ON rollout_hosts(rollout_id, status, wave);",
        /* 7: PXE requests kept apart from check-ins */
        "ALTER TABLE hosts ADD COLUMN pxe_seen INTEGER;",
        /* 8: one install secret per install, bound to the address that fetched
         * it; derived, not stored (the hash goes) */
        "ALTER TABLE hosts DROP COLUMN enroll_hash;"
        "UPDATE hosts SET enroll_expires = NULL;"
        "ALTER TABLE hosts ADD COLUMN enroll_nonce TEXT;"
        "ALTER TABLE hosts ADD COLUMN enroll_address TEXT;",
        /* 9: the tick's look-ups without a scan of every host or every host
         * of a rollout: the expired leases, and each wave's failures */
        "CREATE INDEX hosts_lease_expires ON hosts(lease_expires) WHERE lease_epoch IS NOT NULL;"
        "CREATE INDEX rollout_hosts_wave ON rollout_hosts(rollout_id, wave, status, acked);",
        /* 10: a tick without a scan of a rollout's hosts: each wave's hosts
         * by status, kept by triggers in the statement that changes a host
         * (failed_new: failed and not acknowledged by a resume), and the
         * earliest phase still on its way found through an index */
        "CREATE TABLE rollout_waves (rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,"
        "  wave INTEGER NOT NULL, hosts INTEGER NOT NULL, pending INTEGER NOT NULL, assigned INTEGER NOT NULL,"
        "  done INTEGER NOT NULL, failed INTEGER NOT NULL, skipped INTEGER NOT NULL, failed_new INTEGER NOT NULL,"
        "  PRIMARY KEY (rollout_id, wave)) WITHOUT ROWID;"
        "INSERT INTO rollout_waves SELECT rollout_id, wave, count(*), sum(status = 'pending'),"
        "  sum(status = 'assigned'), sum(status = 'done'), sum(status = 'failed'), sum(status = 'skipped'),"
        "  sum(status = 'failed' AND NOT acked) FROM rollout_hosts GROUP BY rollout_id, wave;"
        "CREATE TRIGGER rollout_waves_insert AFTER INSERT ON rollout_hosts BEGIN"
        WAVES_ADD_NEW
        "END;"
        "CREATE TRIGGER rollout_waves_delete AFTER DELETE ON rollout_hosts BEGIN"
        WAVES_REMOVE_OLD
        "END;"
        "CREATE TRIGGER rollout_waves_status AFTER UPDATE OF status, acked ON rollout_hosts"
        "  WHEN OLD.rollout_id = NEW.rollout_id AND OLD.wave = NEW.wave AND (OLD.status IS NOT NEW.status OR"
        "  OLD.acked IS NOT NEW.acked) BEGIN"
        "  UPDATE rollout_waves SET pending = pending + (NEW.status = 'pending') - (OLD.status = 'pending'),"
        "    assigned = assigned + (NEW.status = 'assigned') - (OLD.status = 'assigned'),"
        "    done = done + (NEW.status = 'done') - (OLD.status = 'done'),"
        "    failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed'),"
        "    skipped = skipped + (NEW.status = 'skipped') - (OLD.status = 'skipped'),"
        "    failed_new = failed_new + (NEW.status = 'failed' AND NOT NEW.acked) -"
        "      (OLD.status = 'failed' AND NOT OLD.acked)"
        "  WHERE rollout_id = NEW.rollout_id AND wave = NEW.wave;"
        "END;"
        "CREATE TRIGGER rollout_waves_move AFTER UPDATE OF rollout_id, wave ON rollout_hosts"
        "  WHEN OLD.rollout_id != NEW.rollout_id OR OLD.wave != NEW.wave BEGIN"
        WAVES_REMOVE_OLD
        WAVES_ADD_NEW
        "END;"
        "CREATE INDEX rollout_hosts_phase ON rollout_hosts(rollout_id, status, phase);",
        /* 11: a tick without a pass over a rollout's assigned hosts: a trigger
         * marks an assigned row (reported) when its host's report makes it
         * done or failed (store_rollout_update_statuses()'s test; the
         * assignment marks it too when it already does), so the tick reads
         * the marked rows only. The first tick after the migration reads
         * every assigned row once. And the pending hosts of a wave by
         * phase, so that those of later phases, which wait, are not read. */
        "ALTER TABLE rollout_hosts ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;"
        "UPDATE rollout_hosts SET reported = 1 WHERE status = 'assigned';"
        "CREATE INDEX rollout_hosts_reported ON rollout_hosts(rollout_id) WHERE reported;"
        "DROP INDEX rollout_hosts_status;"
        "CREATE INDEX rollout_hosts_status ON rollout_hosts(rollout_id, status, wave, phase);"
        "CREATE TRIGGER rollout_hosts_report AFTER UPDATE OF state, current_image, state_since, failed_image ON hosts"
        "  WHEN OLD.state IS NOT NEW.state OR OLD.current_image IS NOT NEW.current_image OR"
        "  OLD.state_since IS NOT NEW.state_since OR OLD.failed_image IS NOT NEW.failed_image BEGIN"
        "  UPDATE rollout_hosts SET reported = 1 WHERE host_id = NEW.id AND status = 'assigned' AND NOT reported"
        "    AND ((NEW.current_image = target AND NEW.state = 'healthy') OR (NEW.state IN ('rolled-back', 'failed')"
        "    AND NEW.current_image IS NOT target AND (coalesce(NEW.state_since, 0) >= assigned_at OR"
        "    (NEW.failed_image = target AND (SELECT r.kind FROM rollouts r WHERE r.id = rollout_hosts.rollout_id)"
        "    IS NOT 'rollback'))));"
        "END;",
        /* 12: images in the order they were added, as a column (seq) that
         * PostgreSQL's schema has too, so that the catalog orders by it on
         * both and not by sqlite's rowid: a trigger copies the rowid. */
        "ALTER TABLE images ADD COLUMN seq INTEGER;"
        "UPDATE images SET seq = rowid;"
        "CREATE TRIGGER images_seq AFTER INSERT ON images BEGIN"
        "  UPDATE images SET seq = NEW.rowid WHERE rowid = NEW.rowid;"
        "END;",
        /* 13: the marked rows' index under the predicate both databases
         * read (reported <> 0: PostgreSQL has no integer for a boolean);
         * sqlite uses a partial index only for a query whose WHERE implies
         * its predicate word for word. */
        "DROP INDEX rollout_hosts_reported;"
        "CREATE INDEX rollout_hosts_reported ON rollout_hosts(rollout_id) WHERE reported <> 0;",
        /* 14: the instances that share the state and the coordinator's
         * leader lease (store-instances.h): the same text on both. */
        INSTANCES_SCHEMA,
        /* 15: PostgreSQL's notice to the other instances when a lease is
         * given back; a sqlite file has one slipwayd: nothing here. */
        "",
        /* 16: blobs on several instances: which instance holds which blob
         * (and the URL its peers fetch it at), and the images pushed but not
         * yet on enough instances to be visible, with their artifacts. */
        "CREATE TABLE blob_holders (sha256 TEXT NOT NULL, instance TEXT NOT NULL, url TEXT NOT NULL,"
        "  since INTEGER NOT NULL, PRIMARY KEY (sha256, instance));"
        "CREATE INDEX blob_holders_instance ON blob_holders(instance);"
        "CREATE TABLE images_replicating (id TEXT PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL,"
        "  arch TEXT NOT NULL, kernel_version TEXT, manifest TEXT NOT NULL, signature TEXT NOT NULL,"
        "  signed_by TEXT, actor TEXT NOT NULL, created INTEGER NOT NULL, UNIQUE (name, version));"
        "CREATE TABLE artifacts_replicating (image_id TEXT NOT NULL REFERENCES images_replicating(id)"
        "  ON DELETE CASCADE, type TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, fstype TEXT,"
        "  PRIMARY KEY (image_id, type));"
        "CREATE INDEX artifacts_replicating_sha256 ON artifacts_replicating(sha256);",
        INSTANCES_UNSEED,   /* 17: no leader lease row until one is taken (store-instances-sql.h) */
        GROUP_COUNTS_SQLITE, /* 18: groups' members and held hosts by trigger (store-group-counts-sql.h) */
        FILE_SETS_SQLITE,   /* 19: the host file sets (store-files-sql.h) */
        FILE_PINS_SQLITE,   /* 20: file sets in waves: live versions, pins (store-files-sql.h) */
        "ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';", /* 21: token roles (roles.h) */
        "CREATE TABLE webhook_cursors (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);", /* 22: webhooks.h */
        PIPELINES_SQLITE,   /* 23: pipelines (store-pipelines-sql.h) */
        /* 24: a target's entries (a host's history) without reading the
         * whole log; PostgreSQL's 24 also announces new entries. */
        "CREATE INDEX audit_target ON audit(target);",
};

int sqlite_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_READONLY:
        case SQLITE_PERM:
                return -EROFS;
        default:
                return -EIO;
        }
}

/* sqlite's message for the last statement that failed on this thread:
 * sqlite3_errmsg() is overwritten by whatever runs next (a finalize, a
 * rollback), before the caller that logs gets to it. */
static const StoreDriver sqlite_driver;
static StoreDb *db_free(StoreDb *s);

static void remember_error(const char *sql, const char *message) {
        store_remember_error("sqlite", sql, message);
}


static int exec(sqlite3 *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s, sql, NULL, NULL, &err);

        if (rc != SQLITE_OK) {
                remember_error(sql, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return sqlite_errno(rc);
        }
        return 0;
}

static int migrate(sqlite3 *s) {
        sqlite3_stmt *st = NULL;
        int version = 0, r;

        if (sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        r = sqlite_step(st);
        if (r > 0)
                version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        if (version > (int) ELEMENTSOF(migrations))
                return log_error_errno(-EPROTO, "state database has schema %d, newer than this slipwayd (%zu)",
                                       version, ELEMENTSOF(migrations));
        for (size_t i = (size_t) version; i < ELEMENTSOF(migrations); i++) {
                char pragma[64];

                snprintf(pragma, sizeof pragma, "PRAGMA user_version=%zu;", i + 1);
                r = exec(s, "BEGIN IMMEDIATE;");
                if (r >= 0)
                        r = exec(s, migrations[i]);
                if (r >= 0)
                        r = exec(s, pragma);
                if (r >= 0)
                        r = exec(s, "COMMIT;");
                if (r < 0) {
                        char why[512]; /* sqlite's message is gone once the rollback succeeds */
                        snprintf(why, sizeof why, "migration %zu of %zu: %s", i + 1, ELEMENTSOF(migrations),
                                 store_last_error() ?: "failed");
                        (void) exec(s, "ROLLBACK;");
                        remember_error(migrations[i], why);
                        return r;
                }
        }
        return 0;
}

static void conn_close(Conn *c) {
        for (size_t i = 0; i < c->n_cache_max; i++)
                if (c->cache[i].st) {
                        sqlite3_finalize(c->cache[i].st->st);
                        free(c->cache[i].st);
                }
        free(c->cache);
        sqlite3_close_v2(c->s);
        *c = (Conn) {};
}

/* Opens path on c; flags are sqlite3_open_v2()'s besides FULLMUTEX. */
static int conn_open(Conn *c, const char *path, int flags) {
        int rc, r;

        *c = (Conn) {};
        rc = sqlite3_open_v2(path, &c->s, flags | SQLITE_OPEN_FULLMUTEX, NULL);
        if (rc != SQLITE_OK) {
                r = log_error_errno(sqlite_errno(rc), "cannot open '%s': %s", path,
                                    c->s ? sqlite3_errmsg(c->s) : sqlite3_errstr(rc));
                conn_close(c);
                return r;
        }
        sqlite3_busy_timeout(c->s, 10000);
        return 0;
}

int sqlite_db_open(const char *path, StoreDb **ret) {
        SqliteDb *st;
        int r;

        /* No global allocation counters (sqlite3_memory_used() and its
         * mutex on every malloc). Refused, harmlessly, once sqlite is in use. */
        (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        st->head.driver = &sqlite_driver;
        pthread_mutex_init(&st->lock, NULL);
        pthread_mutex_init(&st->pool_lock, NULL);
        /* Another connection to ":memory:" or "" would be another database. */
        if (!streq(path, ":memory:") && !isempty(path)) {
                st->path = strdup(path);
                if (!st->path) {
                        db_free(&st->head);
                        return -ENOMEM;
                }
        }
        r = conn_open(&st->writer, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        if (r < 0) {
                db_free(&st->head);
                return r;
        }
        store_clear_error();
        r = exec(st->writer.s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
        if (r >= 0)
                r = migrate(st->writer.s);
        if (r < 0) {
                log_error_errno(r, "cannot set up the state database '%s': %s", path,
                                store_last_error() ?: strerror(-r));
                db_free(&st->head);
                return r;
        }
        *ret = &st->head;
        return 0;
}

static StoreDb *db_free(StoreDb *s) {
        SqliteDb *st = (SqliteDb *) s;

        if (!st)
                return NULL;
        for (size_t i = 0; i < st->n_all; i++) {
                conn_close(st->all[i]);
                free(st->all[i]);
        }
        free(st->all);
        if (st->writer.s)
                conn_close(&st->writer);
        free(st->path);
        pthread_mutex_destroy(&st->pool_lock);
        pthread_mutex_destroy(&st->lock);
        free(st);
        return NULL;
}

sqlite3 *sqlite_tx_handle(StoreTx *tx) {
        return tx->driver == &sqlite_driver ? ((SqliteTx *) tx)->conn->s : NULL;
}

bool store_db_is_sqlite(StoreDb *s) {
        return s->driver == &sqlite_driver;
}

sqlite3 *store_sqlite(StoreDb *s) {
        assert(s->driver == &sqlite_driver);
        return ((SqliteDb *) s)->writer.s;
}

static int cached_stmt(Conn *c, const char *sql, SqliteStmt **ret);

/* Runs sql, one statement with no rows (BEGIN, COMMIT, a PRAGMA), prepared
 * once and kept: the transaction commands of every request would otherwise
 * be parsed anew each time. */
static int control(Conn *c, const char *sql) {
        sqlite3_stmt *stmt;
        SqliteStmt *cached;
        int rc, r;

        r = cached_stmt(c, sql, &cached);
        if (r < 0)
                return r;
        stmt = cached->st;
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
                sqlite3_reset(stmt);
                return 0;
        }
        remember_error(sql, sqlite3_errmsg(c->s));
        sqlite3_reset(stmt);
        return sqlite_errno(rc) ?: -EIO;
}

/* Resets every statement still running on the connection: a transaction
 * cannot commit under a pending write, and a cached statement left running
 * would hold its read open into the next transaction. */
static void reset_running(sqlite3 *s) {
        for (sqlite3_stmt *st = sqlite3_next_stmt(s, NULL); st; st = sqlite3_next_stmt(s, st))
                if (sqlite3_stmt_busy(st))
                        sqlite3_reset(st);
}

/* An idle reader, opened when there is none; NULL when there are no
 * readers (an in-memory database) or one cannot be opened: then reads go to
 * the writer, as they would with no pool. */
static Conn *reader_take(SqliteDb *st) {
        Conn *c, **all;

        if (!st->path)
                return NULL;
        pthread_mutex_lock(&st->pool_lock);
        c = st->idle;
        if (c)
                st->idle = c->next_idle;
        pthread_mutex_unlock(&st->pool_lock);
        if (c)
                return c;
        c = malloc(sizeof *c);
        if (!c)
                return NULL;
        /* query_only: a write in a read transaction is a bug, refused. */
        if (conn_open(c, st->path, SQLITE_OPEN_READWRITE) < 0 ||
            exec(c->s, "PRAGMA query_only=1; PRAGMA foreign_keys=ON;") < 0) {
                if (c->s)
                        conn_close(c);
                free(c);
                return NULL;
        }
        pthread_mutex_lock(&st->pool_lock);
        all = reallocarray(st->all, st->n_all + 1, sizeof *all);
        if (all) {
                st->all = all;
                st->all[st->n_all++] = c;
        }
        pthread_mutex_unlock(&st->pool_lock);
        if (!all) {
                conn_close(c);
                free(c);
                return NULL;
        }
        return c;
}

static void reader_put(SqliteDb *st, Conn *c) {
        pthread_mutex_lock(&st->pool_lock);
        c->next_idle = st->idle;
        st->idle = c;
        pthread_mutex_unlock(&st->pool_lock);
}

/* Ends the top transaction: a reader back to the pool; the writer back to
 * full durability, its lock released. */
static void tx_release(SqliteTx *tx) {
        if (tx->reader) {
                reader_put(tx->store, tx->conn);
                return;
        }
        if (tx->relaxed)
                (void) control(tx->conn, "PRAGMA synchronous=FULL;");
        pthread_mutex_unlock(&tx->store->lock);
}

static int tx_begin(StoreDb *s, StoreTxMode mode, StoreTx **ret) {
        SqliteDb *st = (SqliteDb *) s;
        SqliteTx *tx;
        Conn *c = NULL;
        int r = 0;

        tx = calloc(1, sizeof *tx);
        if (!tx)
                return -ENOMEM;
        if (mode == STORE_TX_READ)
                c = reader_take(st);
        *tx = (SqliteTx) { .head.driver = &sqlite_driver, .store = st, .conn = c ?: &st->writer,
                           .relaxed = mode == STORE_TX_RELAXED, .reader = c != NULL };
        if (!tx->reader)
                pthread_mutex_lock(&st->lock);
        if (tx->relaxed)
                r = control(tx->conn, "PRAGMA synchronous=NORMAL;");
        if (r >= 0)
                r = control(tx->conn, mode == STORE_TX_READ ? "BEGIN DEFERRED;" : "BEGIN IMMEDIATE;");
        if (r < 0) {
                /* An interrupted BEGIN may have opened the transaction. */
                if (!sqlite3_get_autocommit(tx->conn->s))
                        (void) control(tx->conn, "ROLLBACK;");
                tx_release(tx);
                free(tx);
                return r;
        }
        tx->open = true;
        *ret = &tx->head;
        return 0;
}

static int tx_nest(StoreTx *p, StoreTx **ret) {
        SqliteTx *parent = (SqliteTx *) p;
        SqliteTx *tx;
        int r;

        assert(parent->open);
        tx = calloc(1, sizeof *tx);
        if (!tx)
                return -ENOMEM;
        r = control(parent->conn, "SAVEPOINT unit;");
        if (r < 0) {
                free(tx);
                return r;
        }
        *tx = (SqliteTx) { .head.driver = &sqlite_driver, .store = parent->store, .conn = parent->conn,
                           .parent = parent, .open = true };
        *ret = &tx->head;
        return 0;
}

static bool tx_rollback(StoreTx **txp);

static int tx_commit(StoreTx **txp) {
        SqliteTx *tx = (SqliteTx *) *txp;
        sqlite3 *s = tx->conn->s;
        int r;

        assert(tx->open);
        reset_running(s);
        r = control(tx->conn, tx->parent ? "RELEASE unit;" : "COMMIT;");
        if (r < 0) {
                (void) tx_rollback(txp);
                return r;
        }
        if (!tx->parent)
                tx_release(tx);
        free(tx);
        *txp = NULL;
        return 0;
}

static bool tx_rollback(StoreTx **txp) {
        SqliteTx *tx = (SqliteTx *) *txp;
        sqlite3 *s;
        bool kept = true;

        if (!tx)
                return true;
        s = tx->conn->s;
        reset_running(s);
        if (!tx->parent) {
                if (!sqlite3_get_autocommit(s))
                        (void) control(tx->conn, "ROLLBACK;");
                tx_release(tx);
        } else if (sqlite3_get_autocommit(s))
                /* Some errors (an interrupt, a full disk, an I/O error) make
                 * sqlite roll back the whole transaction, savepoints and all. */
                kept = false;
        else if (control(tx->conn, "ROLLBACK TO unit;") < 0 || control(tx->conn, "RELEASE unit;") < 0)
                kept = !sqlite3_get_autocommit(s);
        free(tx);
        *txp = NULL;
        return kept;
}

static size_t cache_slot(const CachedStmt *cache, size_t n_max, const char *sql) {
        size_t i = ((uintptr_t) sql >> 3) * 0x9E3779B97F4A7C15ull & (n_max - 1);

        while (cache[i].sql && cache[i].sql != sql)
                i = (i + 1) & (n_max - 1);
        return i;
}

static int cache_grow(Conn *c) {
        size_t n_max = c->n_cache_max ? 2 * c->n_cache_max : 64;
        CachedStmt *cache = calloc(n_max, sizeof *cache);

        if (!cache)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_cache_max; i++)
                if (c->cache[i].sql)
                        cache[cache_slot(cache, n_max, c->cache[i].sql)] = c->cache[i];
        free(c->cache);
        c->cache = cache;
        c->n_cache_max = n_max;
        return 0;
}

static int cached_stmt(Conn *c, const char *sql, SqliteStmt **ret) {
        SqliteStmt *st;
        size_t i;
        int rc, r;

        if (c->n_cache_max) {
                i = cache_slot(c->cache, c->n_cache_max, sql);
                if (c->cache[i].sql) {
                        *ret = c->cache[i].st;
                        return 0;
                }
        }
        /* At most half full, so a probe always ends. */
        if (2 * (c->n_cache + 1) > c->n_cache_max) {
                r = cache_grow(c);
                if (r < 0)
                        return r;
        }
        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        st->head.driver = &sqlite_driver;
        rc = sqlite3_prepare_v3(c->s, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->st, NULL);
        if (rc != SQLITE_OK) {
                remember_error(sql, sqlite3_errmsg(c->s));
                free(st);
                return sqlite_errno(rc) ?: -EIO;
        }
        i = cache_slot(c->cache, c->n_cache_max, sql);
        c->cache[i] = (CachedStmt) { .sql = sql, .st = st };
        c->n_cache++;
        *ret = st;
        return 0;
}

static int stmt(StoreTx *tx, const char *sql, DbStmt **ret) {
        SqliteStmt *st;
        int r = cached_stmt(((SqliteTx *) tx)->conn, sql, &st);

        if (r >= 0)
                *ret = &st->head;
        return r;
}

static void reset(DbStmt *d) {
        SqliteStmt *st = (SqliteStmt *) d;

        sqlite3_reset(st->st);
        sqlite3_clear_bindings(st->st);
        st->bind_rc = SQLITE_OK;
}

/* Keeps the first binding that failed for db_step(). */
static void bound(SqliteStmt *st, int i, int rc) {
        if (rc != SQLITE_OK && st->bind_rc == SQLITE_OK) {
                st->bind_rc = rc;
                st->bind_i = i;
        }
}

static void bind_int64(DbStmt *d, int i, int64_t v) {
        SqliteStmt *st = (SqliteStmt *) d;

        bound(st, i, sqlite3_bind_int64(st->st, i, (sqlite3_int64) v));
}

static void bind_text(DbStmt *d, int i, const char *v) {
        SqliteStmt *st = (SqliteStmt *) d;

        bound(st, i, sqlite3_bind_text(st->st, i, v, -1, SQLITE_STATIC));
}

static void bind_null(DbStmt *d, int i) {
        SqliteStmt *st = (SqliteStmt *) d;

        bound(st, i, sqlite3_bind_null(st->st, i));
}

static int step(DbStmt *d) {
        SqliteStmt *st = (SqliteStmt *) d;
        sqlite3 *s = sqlite3_db_handle(st->st);
        int rc;

        if (st->bind_rc != SQLITE_OK) {
                char m[160];

                snprintf(m, sizeof m, "cannot bind parameter %d: %s", st->bind_i, sqlite3_errstr(st->bind_rc));
                remember_error(sqlite3_sql(st->st), m);
                return sqlite_errno(st->bind_rc) ?: -EIO;
        }
        rc = sqlite3_step(st->st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE) {
                /* sqlite counts per connection, and only the statements
                 * that write. */
                st->changes = sqlite3_stmt_readonly(st->st) ? 0 : sqlite3_changes64(s);
                return 0;
        }
        remember_error(sqlite3_sql(st->st), sqlite3_errmsg(s));
        return sqlite_errno(rc) ?: -EIO;
}

static int64_t changes(DbStmt *d) {
        return ((SqliteStmt *) d)->changes;
}

static int64_t column_int64(DbStmt *d, int col) {
        return sqlite3_column_int64(((SqliteStmt *) d)->st, col);
}

static const char *column_text(DbStmt *d, int col) {
        return (const char *) sqlite3_column_text(((SqliteStmt *) d)->st, col);
}

static bool column_is_null(DbStmt *d, int col) {
        return sqlite3_column_type(((SqliteStmt *) d)->st, col) == SQLITE_NULL;
}

static const StoreDriver sqlite_driver = {
        .db_free = db_free,
        .tx_begin = tx_begin,
        .tx_nest = tx_nest,
        .tx_commit = tx_commit,
        .tx_rollback = tx_rollback,
        .stmt = stmt,
        .reset = reset,
        .bind_int64 = bind_int64,
        .bind_text = bind_text,
        .bind_null = bind_null,
        .step = step,
        .changes = changes,
        .column_int64 = column_int64,
        .column_text = column_text,
        .column_is_null = column_is_null,
};

int sqlite_prepare(sqlite3 *s, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(s, sql, -1, ret, NULL);

        if (rc != SQLITE_OK) {
                remember_error(sql, sqlite3_errmsg(s));
                return sqlite_errno(rc) ?: -EIO;
        }
        return 0;
}

int sqlite_step(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        remember_error(sqlite3_sql(st), sqlite3_errmsg(sqlite3_db_handle(st)));
        return sqlite_errno(rc) ?: -EIO;
}
