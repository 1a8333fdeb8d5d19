#include <assert.h>
#include <pthread.h>
#include <stdio.h>

#include "db.h"
#include "log.h"

/* The connection is opened in serialized mode (FULLMUTEX): statements are
 * finalized by cleanup handlers after db_unlock(), so sqlite must guard its
 * own calls. The Db mutex is what makes a request's statements one
 * transaction. */
struct Db {
        sqlite3 *s;
        pthread_mutex_t lock;
};

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
};

int db_errno(int rc) {
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
static _Thread_local char last_error[256];

static void remember_error(const char *sql, const char *message) {
        snprintf(last_error, sizeof last_error, "%s", message);
        log_debug("sqlite: \"%s\": %s", strempty(sql), message);
}

const char *db_last_error(void) {
        return last_error[0] ? last_error : NULL;
}

void db_clear_error(void) {
        last_error[0] = 0;
}

static int exec(sqlite3 *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s, sql, NULL, NULL, &err);

        if (rc != SQLITE_OK) {
                remember_error(sql, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return db_errno(rc);
        }
        return 0;
}

static int migrate(sqlite3 *s) {
        sqlite3_stmt *st = NULL;
        int version = 0, r;

        if (sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        r = db_step(st);
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
                        exec(s, "ROLLBACK;");
                        return r;
                }
        }
        return 0;
}

int db_open(const char *path, Db **ret) {
        Db *db;
        int rc, r;

        db = calloc(1, sizeof *db);
        if (!db)
                return -ENOMEM;
        pthread_mutex_init(&db->lock, NULL);
        rc = sqlite3_open_v2(path, &db->s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
        if (rc != SQLITE_OK) {
                r = log_error_errno(db_errno(rc), "cannot open '%s': %s", path,
                                    db->s ? sqlite3_errmsg(db->s) : sqlite3_errstr(rc));
                db_free(db);
                return r;
        }
        sqlite3_busy_timeout(db->s, 10000);
        r = exec(db->s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
        if (r >= 0)
                r = migrate(db->s);
        if (r < 0) {
                log_error_errno(r, "cannot set up the state database '%s': %s", path, sqlite3_errmsg(db->s));
                db_free(db);
                return r;
        }
        *ret = db;
        return 0;
}

Db *db_free(Db *db) {
        if (!db)
                return NULL;
        sqlite3_close_v2(db->s);
        pthread_mutex_destroy(&db->lock);
        free(db);
        return NULL;
}

sqlite3 *db_lock(Db *db) {
        pthread_mutex_lock(&db->lock);
        return db->s;
}

void db_unlock(Db *db) {
        pthread_mutex_unlock(&db->lock);
}

int db_begin(sqlite3 *s) {
        return exec(s, "BEGIN IMMEDIATE;");
}

int db_begin_relaxed(sqlite3 *s) {
        int r = exec(s, "PRAGMA synchronous=NORMAL;");
        return r < 0 ? r : exec(s, "BEGIN IMMEDIATE;");
}

int db_commit(sqlite3 *s) {
        int r = exec(s, "COMMIT;");

        if (r < 0)
                exec(s, "ROLLBACK;");
        /* Back to full durability after a relaxed transaction. */
        (void) exec(s, "PRAGMA synchronous=FULL;");
        return r;
}

void db_rollback(sqlite3 *s) {
        if (!sqlite3_get_autocommit(s))
                exec(s, "ROLLBACK;");
        (void) exec(s, "PRAGMA synchronous=FULL;");
}

int db_step(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        remember_error(sqlite3_sql(st), sqlite3_errmsg(sqlite3_db_handle(st)));
        return db_errno(rc) ?: -EIO;
}

int db_prepare(sqlite3 *s, const char *sql, sqlite3_stmt **ret) {
        int rc = sqlite3_prepare_v2(s, sql, -1, ret, NULL);

        if (rc != SQLITE_OK) {
                remember_error(sql, sqlite3_errmsg(s));
                return db_errno(rc) ?: -EIO;
        }
        return 0;
}

char *db_column_strdup(sqlite3_stmt *st, int col) {
        const unsigned char *t = sqlite3_column_text(st, col);

        return t ? strdup((const char *) t) : NULL;
}

int db_unit_begin(sqlite3 *s, DbUnit *ret) {
        bool nested = !sqlite3_get_autocommit(s);
        int r = exec(s, nested ? "SAVEPOINT unit;" : "BEGIN IMMEDIATE;");

        if (r < 0) {
                /* An interrupted BEGIN may have opened the transaction. */
                if (!nested && !sqlite3_get_autocommit(s))
                        (void) exec(s, "ROLLBACK;");
                return r;
        }
        *ret = (DbUnit) { .s = s, .nested = nested, .open = true };
        return 0;
}

int db_unit_commit(DbUnit *u) {
        int r;

        assert(u->open);
        r = exec(u->s, u->nested ? "RELEASE unit;" : "COMMIT;");
        if (r < 0) {
                (void) db_unit_rollback(u);
                return r;
        }
        u->open = false;
        return 0;
}

bool db_unit_rollback(DbUnit *u) {
        if (!u->open)
                return true;
        u->open = false;
        if (!u->nested) {
                if (!sqlite3_get_autocommit(u->s))
                        (void) exec(u->s, "ROLLBACK;");
                return true;
        }
        /* Some errors (an interrupt, a full disk, an I/O error) make sqlite
         * roll back the whole transaction, savepoints and all. */
        if (sqlite3_get_autocommit(u->s))
                return false;
        if (exec(u->s, "ROLLBACK TO unit;") < 0 || exec(u->s, "RELEASE unit;") < 0)
                return !sqlite3_get_autocommit(u->s);
        return true;
}
