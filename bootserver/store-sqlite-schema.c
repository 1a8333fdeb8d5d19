/* The state database's schema on sqlite: its migrations, in order
 * (store-sqlite-schema.h). */
#include "macro.h"
#include "store-files-sql.h"
#include "store-group-counts-sql.h"
#include "store-instances-sql.h"
#include "store-pipelines-sql.h"
#include "store-sqlite-schema.h"

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
const char *const sqlite_migrations[] = {
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

const size_t sqlite_n_migrations = ELEMENTSOF(sqlite_migrations);
