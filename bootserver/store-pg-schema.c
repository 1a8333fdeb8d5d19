/* The schema in PostgreSQL: the same tables, indexes and triggers as the
 * sqlite schema (store-sqlite.c), written once for PostgreSQL at the version
 * sqlite had reached when PostgreSQL came (11), and versioned from there
 * with sqlite: a migration after it is added to both lists. What differs:
 * bigint where sqlite's INTEGER holds times, counters and IDs; identity
 * columns for AUTOINCREMENT; triggers as PL/pgSQL functions; flags stay
 * integers (0/1), as the store's SQL reads them. Every text column has
 * the C collation, whatever the database's default: text sorts and
 * compares bytewise, as in sqlite (lists by name, ID or key; an image
 * ID's prefix range). rollout_hosts has seq where sqlite has its rowid:
 * the order the rows were added, which the assignments follow. A
 * migration that adds a text column gives it COLLATE "C" too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "store-files-sql.h"
#include "store-pipelines-sql.h"
#include "store-group-counts-sql.h"
#include "store-instances-sql.h"
#include "store-pg.h"
#include "util.h"

/* Migration 10's counts of a wave's hosts by status, kept on every insert,
 * delete and change of a rollout_hosts row, as sqlite's three triggers do. */
#define ROLLOUT_WAVES_FN                                                                                        \
        "CREATE FUNCTION rollout_waves_keep() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN\n"                  \
        "  IF TG_OP = 'UPDATE' AND OLD.rollout_id = NEW.rollout_id AND OLD.wave = NEW.wave THEN\n"              \
        "    UPDATE rollout_waves SET\n"                                                                        \
        "      pending = pending + (NEW.status = 'pending')::int - (OLD.status = 'pending')::int,\n"            \
        "      assigned = assigned + (NEW.status = 'assigned')::int - (OLD.status = 'assigned')::int,\n"        \
        "      done = done + (NEW.status = 'done')::int - (OLD.status = 'done')::int,\n"                        \
        "      failed = failed + (NEW.status = 'failed')::int - (OLD.status = 'failed')::int,\n"                \
        "      skipped = skipped + (NEW.status = 'skipped')::int - (OLD.status = 'skipped')::int,\n"            \
        "      failed_new = failed_new + (NEW.status = 'failed' AND NEW.acked = 0)::int\n"                      \
        "        - (OLD.status = 'failed' AND OLD.acked = 0)::int\n"                                            \
        "      WHERE rollout_id = NEW.rollout_id AND wave = NEW.wave;\n"                                        \
        "    RETURN NULL;\n"                                                                                    \
        "  END IF;\n"                                                                                           \
        "  IF TG_OP IN ('UPDATE', 'DELETE') THEN\n"                                                             \
        "    UPDATE rollout_waves SET hosts = hosts - 1, pending = pending - (OLD.status = 'pending')::int,\n"  \
        "      assigned = assigned - (OLD.status = 'assigned')::int, done = done - (OLD.status = 'done')::int,\n" \
        "      failed = failed - (OLD.status = 'failed')::int, skipped = skipped - (OLD.status = 'skipped')::int,\n" \
        "      failed_new = failed_new - (OLD.status = 'failed' AND OLD.acked = 0)::int\n"                      \
        "      WHERE rollout_id = OLD.rollout_id AND wave = OLD.wave;\n"                                        \
        "  END IF;\n"                                                                                           \
        "  IF TG_OP IN ('UPDATE', 'INSERT') THEN\n"                                                             \
        "    INSERT INTO rollout_waves AS w VALUES (NEW.rollout_id, NEW.wave, 1, (NEW.status = 'pending')::int,\n" \
        "      (NEW.status = 'assigned')::int, (NEW.status = 'done')::int, (NEW.status = 'failed')::int,\n"     \
        "      (NEW.status = 'skipped')::int, (NEW.status = 'failed' AND NEW.acked = 0)::int)\n"                \
        "      ON CONFLICT (rollout_id, wave) DO UPDATE SET hosts = w.hosts + 1,\n"                             \
        "      pending = w.pending + excluded.pending, assigned = w.assigned + excluded.assigned,\n"            \
        "      done = w.done + excluded.done, failed = w.failed + excluded.failed,\n"                           \
        "      skipped = w.skipped + excluded.skipped, failed_new = w.failed_new + excluded.failed_new;\n"      \
        "  END IF;\n"                                                                                           \
        "  RETURN NULL;\n"                                                                                      \
        "END $f$;\n"

/* Migration 11's mark on an assigned row that its host's report finishes
 * (store_rollout_update_statuses()'s test). */
#define ROLLOUT_HOSTS_REPORT_FN                                                                                 \
        "CREATE FUNCTION rollout_hosts_report() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN\n"                \
        "  UPDATE rollout_hosts rh SET reported = 1 WHERE rh.host_id = NEW.id AND rh.status = 'assigned'\n"     \
        "    AND rh.reported = 0 AND ((NEW.current_image = rh.target AND NEW.state = 'healthy') OR\n"           \
        "    (NEW.state IN ('rolled-back', 'failed') AND NEW.current_image IS DISTINCT FROM rh.target AND\n"    \
        "    (coalesce(NEW.state_since, 0) >= rh.assigned_at OR (NEW.failed_image = rh.target AND\n"            \
        "    (SELECT r.kind FROM rollouts r WHERE r.id = rh.rollout_id) IS DISTINCT FROM 'rollback'))));\n"     \
        "  RETURN NULL;\n"                                                                                      \
        "END $f$;\n"

static const char baseline[] =
        "CREATE TABLE blobs (sha256 TEXT COLLATE \"C\" PRIMARY KEY, size BIGINT NOT NULL, created BIGINT NOT\n"
        "  NULL);\n"
        "CREATE TABLE images (id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT COLLATE \"C\" NOT NULL, version TEXT\n"
        "  COLLATE \"C\" NOT NULL, arch TEXT COLLATE \"C\" NOT NULL, kernel_version TEXT COLLATE \"C\", manifest\n"
        "  TEXT COLLATE \"C\" NOT NULL, signature TEXT COLLATE \"C\" NOT NULL, signed_by TEXT COLLATE \"C\",\n"
        "  created BIGINT NOT NULL, seq BIGINT GENERATED ALWAYS AS IDENTITY, UNIQUE (name, version));\n"
        "CREATE TABLE artifacts (image_id TEXT COLLATE \"C\" NOT NULL REFERENCES images(id) ON DELETE CASCADE,\n"
        "  type TEXT COLLATE \"C\" NOT NULL, sha256 TEXT COLLATE \"C\" NOT NULL, size BIGINT NOT NULL, fstype\n"
        "  TEXT COLLATE \"C\", PRIMARY KEY (image_id, type));\n"
        "CREATE INDEX artifacts_sha256 ON artifacts(sha256);\n"
        "CREATE TABLE hosts (id TEXT COLLATE \"C\" PRIMARY KEY, mac TEXT COLLATE \"C\" UNIQUE, uuid TEXT COLLATE\n"
        "  \"C\", hostname TEXT COLLATE \"C\", image TEXT COLLATE \"C\" REFERENCES images(id), boot TEXT COLLATE\n"
        "  \"C\" NOT NULL DEFAULT 'disk', state TEXT COLLATE \"C\" NOT NULL DEFAULT 'registered', installed\n"
        "  INTEGER NOT NULL DEFAULT 0, version TEXT COLLATE \"C\", current_image TEXT COLLATE \"C\", booted_slot\n"
        "  TEXT COLLATE \"C\", slots TEXT COLLATE \"C\", health TEXT COLLATE \"C\", facts TEXT COLLATE \"C\", message\n"
        "  TEXT COLLATE \"C\", token_hash TEXT COLLATE \"C\", enroll_expires BIGINT, registered BIGINT NOT NULL,\n"
        "  last_seen BIGINT, lease_epoch BIGINT, lease_expires BIGINT, quarantined INTEGER NOT NULL DEFAULT\n"
        "  0, rollback INTEGER NOT NULL DEFAULT 0, state_since BIGINT, failed_image TEXT COLLATE \"C\",\n"
        "  pxe_seen BIGINT, enroll_nonce TEXT COLLATE \"C\", enroll_address TEXT COLLATE \"C\");\n"
        "CREATE TABLE host_labels (host_id TEXT COLLATE \"C\" NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,\n"
        "  key TEXT COLLATE \"C\" NOT NULL, value TEXT COLLATE \"C\" NOT NULL, PRIMARY KEY (host_id, key));\n"
        "CREATE INDEX host_labels_kv ON host_labels(key, value);\n"
        "CREATE TABLE tokens (name TEXT COLLATE \"C\" PRIMARY KEY, hash TEXT COLLATE \"C\" NOT NULL UNIQUE,\n"
        "  created BIGINT NOT NULL);\n"
        "CREATE TABLE audit (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, time BIGINT NOT NULL,\n"
        "  actor TEXT COLLATE \"C\" NOT NULL, action TEXT COLLATE \"C\" NOT NULL, target TEXT COLLATE \"C\", detail\n"
        "  TEXT COLLATE \"C\");\n"
        "CREATE TABLE meta (key TEXT COLLATE \"C\" PRIMARY KEY, value BIGINT NOT NULL);\n"
        "INSERT INTO meta (key, value) VALUES ('lease_epoch', 0);\n"
        "CREATE TABLE budgets (selector TEXT COLLATE \"C\" PRIMARY KEY, max_unavailable BIGINT,\n"
        "  max_unavailable_pct BIGINT, min_available BIGINT);\n"
        "CREATE TABLE rollouts (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, kind TEXT COLLATE \"C\"\n"
        "  NOT NULL, image TEXT COLLATE \"C\", spec TEXT COLLATE \"C\" NOT NULL, state TEXT COLLATE \"C\" NOT NULL,\n"
        "  wave INTEGER NOT NULL DEFAULT 0, n_waves INTEGER NOT NULL, wave_done_at BIGINT, reason TEXT\n"
        "  COLLATE \"C\", rollback_of BIGINT, actor TEXT COLLATE \"C\", created BIGINT NOT NULL, finished\n"
        "  BIGINT);\n"
        "CREATE TABLE rollout_hosts (rollout_id BIGINT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,\n"
        "  host_id TEXT COLLATE \"C\" NOT NULL REFERENCES hosts(id) ON DELETE CASCADE, wave INTEGER NOT NULL,\n"
        "  phase INTEGER NOT NULL DEFAULT 0, target TEXT COLLATE \"C\" NOT NULL, prev_image TEXT COLLATE \"C\",\n"
        "  status TEXT COLLATE \"C\" NOT NULL, message TEXT COLLATE \"C\", assigned_at BIGINT, acked INTEGER NOT\n"
        "  NULL DEFAULT 0, reported INTEGER NOT NULL DEFAULT 0, seq BIGINT GENERATED ALWAYS AS IDENTITY,\n"
        "  PRIMARY KEY (rollout_id, host_id));\n"
        "CREATE INDEX rollout_hosts_host ON rollout_hosts(host_id);\n"
        "CREATE INDEX hosts_lease_expires ON hosts(lease_expires) WHERE lease_epoch IS NOT NULL;\n"
        "CREATE INDEX rollout_hosts_wave ON rollout_hosts(rollout_id, wave, status, acked);\n"
        "CREATE TABLE rollout_waves (rollout_id BIGINT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,\n"
        "  wave INTEGER NOT NULL, hosts BIGINT NOT NULL, pending BIGINT NOT NULL, assigned BIGINT NOT NULL,\n"
        "  done BIGINT NOT NULL, failed BIGINT NOT NULL, skipped BIGINT NOT NULL, failed_new BIGINT NOT NULL,\n"
        "  PRIMARY KEY (rollout_id, wave));\n"
        "CREATE INDEX rollout_hosts_phase ON rollout_hosts(rollout_id, status, phase);\n"
        "CREATE INDEX rollout_hosts_reported ON rollout_hosts(rollout_id) WHERE reported <> 0;\n"
        "CREATE INDEX rollout_hosts_status ON rollout_hosts(rollout_id, status, wave, phase, seq);\n"
        ROLLOUT_WAVES_FN
        "CREATE TRIGGER rollout_waves_change AFTER UPDATE OF status, acked, rollout_id, wave ON rollout_hosts\n"
        "  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.acked IS DISTINCT FROM NEW.acked\n"
        "  OR OLD.rollout_id <> NEW.rollout_id OR OLD.wave <> NEW.wave)\n"
        "  EXECUTE FUNCTION rollout_waves_keep();\n"
        "CREATE TRIGGER rollout_waves_add_remove AFTER INSERT OR DELETE ON rollout_hosts\n"
        "  FOR EACH ROW EXECUTE FUNCTION rollout_waves_keep();\n"
        ROLLOUT_HOSTS_REPORT_FN
        "CREATE TRIGGER rollout_hosts_report AFTER UPDATE OF state, current_image, state_since, failed_image\n"
        "  ON hosts FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR\n"
        "  OLD.current_image IS DISTINCT FROM NEW.current_image OR OLD.state_since IS DISTINCT FROM\n"
        "  NEW.state_since OR OLD.failed_image IS DISTINCT FROM NEW.failed_image)\n"
        "  EXECUTE FUNCTION rollout_hosts_report();\n";

/* 24: sqlite's 24, a target's entries through an index; and the other
 * instances learn of new entries (their event streams, events.h): a
 * notice when the transaction that appends commits, with the instance
 * that wrote them as the payload, as 15's. One a statement; PostgreSQL
 * folds a transaction's same notices into one. */
static const char v24[] =
        "CREATE INDEX audit_target ON audit(target);\n"
        "CREATE FUNCTION audit_appended() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN\n"
        "  PERFORM pg_notify('slipway_audit', coalesce(current_setting('slipway.instance', true), ''));\n"
        "  RETURN NULL;\n"
        "END $f$;\n"
        "CREATE TRIGGER audit_appended AFTER INSERT ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_appended();\n";

typedef struct PgMigration {
        int version; /* the version it brings the schema to */
        const char *sql;
} PgMigration;

/* 13: sqlite's index of the marked rows takes the predicate this schema's
 * has had from the start; here it is made again as it was. */
static const char v13[] =
        "DROP INDEX rollout_hosts_reported;\n"
        "CREATE INDEX rollout_hosts_reported ON rollout_hosts(rollout_id) WHERE reported <> 0;\n";

/* 15: instances learn of a lease given back on another one: a place may
 * have been freed when a host's lease ends (given back, expired, or the
 * host deleted with it) or its quarantine is lifted. The notice goes out
 * when the transaction commits, with the instance that wrote it as the
 * payload (store-pg-db.c names it on each connection); several in one
 * transaction are one. */
static const char v15[] =
        "CREATE FUNCTION lease_released() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN\n"
        "  PERFORM pg_notify('slipway_lease_released', coalesce(current_setting('slipway.instance', true), ''));\n"
        "  RETURN NULL;\n"
        "END $f$;\n"
        "CREATE TRIGGER lease_released AFTER UPDATE OF lease_epoch, quarantined ON hosts FOR EACH ROW\n"
        "  WHEN ((OLD.lease_epoch IS NOT NULL AND NEW.lease_epoch IS NULL) OR\n"
        "  (OLD.quarantined <> 0 AND NEW.quarantined = 0))\n"
        "  EXECUTE FUNCTION lease_released();\n"
        "CREATE TRIGGER lease_released_delete AFTER DELETE ON hosts FOR EACH ROW\n"
        "  WHEN (OLD.lease_epoch IS NOT NULL OR OLD.quarantined <> 0)\n"
        "  EXECUTE FUNCTION lease_released();\n";

/* 16: sqlite's 16, the holders of blobs and the images not yet visible. */
static const char v16[] =
        "CREATE TABLE blob_holders (sha256 TEXT COLLATE \"C\" NOT NULL, instance TEXT COLLATE \"C\" NOT NULL,\n"
        "  url TEXT COLLATE \"C\" NOT NULL, since BIGINT NOT NULL, PRIMARY KEY (sha256, instance));\n"
        "CREATE INDEX blob_holders_instance ON blob_holders(instance);\n"
        "CREATE TABLE images_replicating (id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT COLLATE \"C\" NOT NULL,\n"
        "  version TEXT COLLATE \"C\" NOT NULL, arch TEXT COLLATE \"C\" NOT NULL, kernel_version TEXT COLLATE \"C\",\n"
        "  manifest TEXT COLLATE \"C\" NOT NULL, signature TEXT COLLATE \"C\" NOT NULL, signed_by TEXT COLLATE \"C\",\n"
        "  actor TEXT COLLATE \"C\" NOT NULL, created BIGINT NOT NULL, UNIQUE (name, version));\n"
        "CREATE TABLE artifacts_replicating (image_id TEXT COLLATE \"C\" NOT NULL\n"
        "  REFERENCES images_replicating(id) ON DELETE CASCADE, type TEXT COLLATE \"C\" NOT NULL,\n"
        "  sha256 TEXT COLLATE \"C\" NOT NULL, size BIGINT NOT NULL, fstype TEXT COLLATE \"C\",\n"
        "  PRIMARY KEY (image_id, type));\n"
        "CREATE INDEX artifacts_replicating_sha256 ON artifacts_replicating(sha256);\n";

static const PgMigration migrations[] = {
        { 11, baseline },
        /* images.seq came with the baseline; sqlite's 12 adds it. */
        { 12, "COMMENT ON COLUMN images.seq IS 'the order in which images were added'" },
        { 13, v13 },
        { 14, INSTANCES_SCHEMA },
        { 15, v15 },
        { 16, v16 },
        { 17, INSTANCES_UNSEED },
        { 18, GROUP_COUNTS_PG },
        { 19, FILE_SETS_PG },
        { 20, FILE_PINS_PG },
        /* 21: sqlite's 21, each named token's role (roles.h). */
        { 21, "ALTER TABLE tokens ADD COLUMN role TEXT COLLATE \"C\" NOT NULL DEFAULT 'admin'" },
        /* 22: sqlite's 22, each webhook's cursor over the audit log. */
        { 22, "CREATE TABLE webhook_cursors (name TEXT COLLATE \"C\" PRIMARY KEY, last_id BIGINT NOT NULL)" },
        { 23, PIPELINES_PG },
        { 24, v24 },
};

#define PG_SCHEMA_VERSION 24

/* The key of the session lock that the instances take to migrate, one at a
 * time ("slipway" in ASCII). */
#define MIGRATE_LOCK 0x736c6970776179

static int schema_version(PgConn *c, int *ret) {
        static const char sql[] = "SELECT version FROM schema_version";
        PgStmt *st;
        int r;

        r = pg_exec(c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
                       "INSERT INTO schema_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version);");
        if (r < 0)
                return r;
        r = pg_stmt(c, sql, &st);
        if (r < 0)
                return r;
        r = pg_step(st);
        if (r > 0)
                *ret = (int) pg_column_int64(st, 0);
        pg_stmt_reset(st);
        return r < 0 ? r : r == 0 ? -EIO : 0;
}

static int migrate_locked(PgConn *c) {
        int version = 0, r;

        r = pg_exec(c, "BEGIN");
        if (r >= 0)
                r = schema_version(c, &version);
        if (r >= 0)
                r = pg_exec(c, "COMMIT");
        if (r < 0) {
                (void) pg_exec(c, "ROLLBACK");
                return r;
        }
        if (version > PG_SCHEMA_VERSION)
                return log_error_errno(-EPROTO, "state database has schema %d, newer than this slipwayd (%d)",
                                       version, PG_SCHEMA_VERSION);
        for (size_t i = 0; i < ELEMENTSOF(migrations); i++) {
                _cleanup_free_ char *set = NULL;

                if (migrations[i].version <= version)
                        continue;
                set = strdup_printf("UPDATE schema_version SET version = %d", migrations[i].version);
                if (!set)
                        return -ENOMEM;
                r = pg_exec(c, "BEGIN");
                if (r >= 0)
                        r = pg_exec(c, migrations[i].sql);
                if (r >= 0)
                        r = pg_exec(c, set);
                if (r >= 0)
                        r = pg_exec(c, "COMMIT");
                if (r < 0) {
                        (void) pg_exec(c, "ROLLBACK");
                        return log_error_errno(r, "cannot migrate the state database to schema %d: %s",
                                               migrations[i].version, strempty(pg_last_error()));
                }
                log_info("state database: schema %d", migrations[i].version);
        }
        return 0;
}

int pg_migrate(PgConn *c) {
        char lock[96];
        int r;

        /* The first instance to start migrates; the others wait for it and
         * then find nothing to do. The lock is the session's: it is let go
         * below, or with the connection if this one dies. */
        snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%lld)", (long long) MIGRATE_LOCK);
        r = pg_exec(c, lock);
        if (r < 0)
                return r;
        r = migrate_locked(c);
        snprintf(lock, sizeof lock, "SELECT pg_advisory_unlock(%lld)", (long long) MIGRATE_LOCK);
        (void) pg_exec(c, lock);
        return r;
}
