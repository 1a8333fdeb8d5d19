/* Backups of the state and their restore (backup.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "backup-pg.h"
#include "backup.h"
#include "blobstore.h"
#include "crashpoint.h"
#include "fileio.h"
#include "hash.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define STATE_DB "state.db"
#define LOCK_FILE "slipwayd.lock"
/* The key install secrets are derived with (enroll.c): kept beside the
 * database, restored where the state has none. */
#define ENROLL_KEY "enroll.key"
/* A PostgreSQL restore under way (restore_pg()). */
#define RESTORE_PENDING "restore-epoch.pending"
/* A manifest lists every blob: ~100 bytes each. */
#define MANIFEST_MAX (64u << 20)

unsigned backup_fail_at, backup_steps;

/* A point where a backup or restore may be cut short: by a crash (the
 * crash tests) or a failure (the unit tests). */
static int step(const char *name) {
        crashpoint(name);
        backup_steps++;
        if (backup_fail_at && backup_steps == backup_fail_at) {
                log_debug("%s: failing here, as asked", name);
                return -EIO;
        }
        return 0;
}

void backup_report_release(BackupReport *r) {
        if (r)
                store_snapshot_info_release(&r->info);
}

void restore_report_release(RestoreReport *r) {
        if (!r)
                return;
        strv_free(r->missing);
        free(r->previous);
        store_snapshot_info_release(&r->info);
        *r = (RestoreReport) {};
}

/* 0 when path does not exist or is an empty directory; -EEXIST when it is
 * anything else. */
static int check_empty(const char *path) {
        _cleanup_closedir_ DIR *d = opendir(path);
        struct dirent *e;

        if (!d)
                return errno == ENOENT ? 0 : errno == ENOTDIR ? -EEXIST : negative_errno();
        while ((e = readdir(d)))
                if (!streq(e->d_name, ".") && !streq(e->d_name, ".."))
                        return -EEXIST;
        return 0;
}

static void unlink_db(const char *path) {
        _cleanup_free_ char *wal = strdup_printf("%s-wal", path), *shm = strdup_printf("%s-shm", path);

        (void) unlink(path);
        if (wal)
                (void) unlink(wal);
        if (shm)
                (void) unlink(shm);
}

/* Closes db, opened by this process alone on path, and checks that the
 * file alone is the whole database now: closing the last connection folds
 * its write-ahead log in and removes it (-EBUSY when another process has
 * the database open); the log's index goes too. */
static int db_close_settled(StoreDb *db, const char *path) {
        _cleanup_free_ char *wal = strdup_printf("%s-wal", path), *shm = strdup_printf("%s-shm", path);

        store_db_free(db);
        if (!wal || !shm)
                return -ENOMEM;
        if (path_exists(wal))
                return -EBUSY;
        (void) unlink(shm);
        return fsync_path(path);
}

/* What the database at path holds, read by this process alone (opening it
 * migrates it to this slipwayd's schema); the file is settled after. */
static int db_read_info(const char *path, StoreSnapshotInfo *ret) {
        StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        if (!path_exists(path))
                return -ENOENT;
        r = store_db_open(path, &db);
        if (r < 0)
                return r;
        r = store_tx_begin(db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = store_snapshot_read(tx, ret);
        store_tx_rollback(&tx);
        if (r < 0) {
                store_db_free(db);
                return r;
        }
        r = db_close_settled(db, path);
        if (r < 0)
                store_snapshot_info_release(ret);
        return r;
}

/* Copies the blob at src into the blob store at root, hashing while it
 * writes: -EBADMSG when the bytes are not those of hex and size. */
static int copy_blob(const char *src, const char *root, const char *hex, uint64_t size) {
        _cleanup_blobstore_writer_free_ BlobstoreWriter *w = NULL;
        _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = malloc(1 << 17);
        char got[SHA256_HEX_SIZE];
        uint64_t got_size;
        ssize_t n;
        int r;

        if (fd < 0)
                return negative_errno();
        if (!buf)
                return -ENOMEM;
        r = blobstore_writer_new(root, hex, &w);
        if (r < 0)
                return r;
        while ((n = read(fd, buf, 1 << 17)) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                r = blobstore_writer_write(w, buf, (size_t) n);
                if (r < 0)
                        return r;
        }
        r = blobstore_writer_commit(TAKE_PTR(w), got, &got_size);
        if (r < 0)
                return r;
        return got_size == size ? 0 : -EBADMSG;
}

/* Keeps one blob of state_dir in the backup under work: a hard link where
 * both are on one file system (a blob never changes once written, and it
 * was hashed when it was), else a copy hashed as it is written. */
static int keep_blob(const char *state_dir, const char *work, const StoreBlobRef *b, BackupReport *rep) {
        _cleanup_free_ char *src = NULL, *dst = NULL;
        struct stat st;
        int r;

        r = blobstore_path(state_dir, b->sha256, &src);
        if (r >= 0)
                r = blobstore_path(work, b->sha256, &dst);
        if (r >= 0)
                r = mkdir_parents(dst, 0755);
        if (r < 0)
                return r;
        if (link(src, dst) == 0) {
                if (stat(dst, &st) < 0)
                        return negative_errno();
                if ((uint64_t) st.st_size != b->size)
                        return -EBADMSG;
                rep->linked++;
                rep->blob_bytes += b->size;
                return 0;
        }
        if (errno != EXDEV && errno != EPERM && errno != EMLINK)
                return negative_errno();
        r = copy_blob(src, work, b->sha256, b->size);
        if (r < 0)
                return r;
        rep->copied++;
        rep->blob_bytes += b->size;
        return 0;
}

/* Links are durable once their directories are: blobs/sha256/<xx> each,
 * and the ones above. */
static int fsync_blob_dirs(const char *root) {
        _cleanup_free_ char *top = path_join(root, BLOBSTORE_BLOBS_DIR);
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *e;
        int r;

        if (!top)
                return -ENOMEM;
        d = opendir(top);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        while ((e = readdir(d))) {
                _cleanup_free_ char *sub = NULL;

                if (e->d_name[0] == '.')
                        continue;
                sub = path_join(top, e->d_name);
                if (!sub)
                        return -ENOMEM;
                r = fsync_path(sub);
                if (r < 0)
                        return r;
        }
        r = fsync_path(top);
        return r < 0 ? r : fsync_parent_dir(top);
}

static json_t *manifest_build(const BackupReport *rep, const BackupOptions *o, int64_t now) {
        const StoreSnapshotInfo *i = &rep->info;
        _cleanup_json_ json_t *blobs = json_array();
        json_t *m;

        if (!blobs)
                return NULL;
        for (size_t k = 0; k < i->n_blobs; k++)
                if (json_array_append_new(blobs, json_pack("{s:s, s:I}", "sha256", i->blobs[k].sha256, "size",
                                                           (json_int_t) i->blobs[k].size)) < 0)
                        return NULL;
        m = json_pack("{s:s, s:s, s:I, s:i, s:I, s:{s:s, s:s, s:I}, s:{s:I, s:I, s:I, s:I, s:I}, s:b, s:O}",
                      "format", BACKUP_FORMAT, "store", o->database ? "postgresql" : "sqlite", "created",
                      (json_int_t) now, "schema_version", i->schema_version, "lease_epoch",
                      (json_int_t) i->lease_epoch, "database", "file", o->database ? BACKUP_PG_DUMP : STATE_DB,
                      "sha256", rep->db_sha256, "size", (json_int_t) rep->db_size, "counts", "hosts",
                      (json_int_t) i->hosts, "images", (json_int_t) i->images, "rollouts", (json_int_t) i->rollouts,
                      "audit", (json_int_t) i->audit, "tokens", (json_int_t) i->tokens, "blobs_included",
                      !o->no_blobs, "blobs", blobs);
        if (m && rep->enroll_key_sha256[0] &&
            json_object_set_new(m, "enroll_key_sha256", json_string(rep->enroll_key_sha256)) < 0) {
                json_decref(m);
                m = NULL;
        }
        if (m && o->database &&
            json_object_set_new(m, "postgresql", json_pack("{s:s, s:s}", "server", rep->server_version, "pg_dump",
                                                           rep->tool_version)) < 0) {
                json_decref(m);
                m = NULL;
        }
        return m;
}

/* The live database at path, opened beside the server (as the token
 * commands do), copied to dest. */
static int snapshot(const char *path, const char *dest, StoreSnapshotStats *ret_stats) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        int r = store_db_open(path, &db);

        return r < 0 ? r : store_db_snapshot(db, dest, ret_stats);
}

/* The backup's steps, in the work directory that becomes dir. */
static int backup_fill(const char *state_dir, const char *work, const BackupOptions *o, int64_t now,
                       BackupReport *rep) {
        _cleanup_free_ char *db = path_join(state_dir, STATE_DB), *copy = path_join(work, STATE_DB);
        _cleanup_free_ char *tmp = path_join(work, BLOBSTORE_TMP_DIR), *mpath = path_join(work, BACKUP_MANIFEST);
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *m = NULL;
        int r;

        _cleanup_free_ char *key = path_join(state_dir, ENROLL_KEY), *key_copy = path_join(work, ENROLL_KEY);

        if (!db || !copy || !tmp || !mpath || !key || !key_copy)
                return -ENOMEM;
        if (o->database) {
                free(copy);
                copy = path_join(work, BACKUP_PG_DUMP);
                if (!copy)
                        return -ENOMEM;
        } else if (!path_exists(db))
                return -ENOENT;
        r = step("backup-begin");
        if (r >= 0 && path_exists(key)) {
                r = copy_file_atomic(key, key_copy, 0600);
                if (r >= 0)
                        r = sha256_file_hex(key_copy, rep->enroll_key_sha256, NULL);
        }
        /* pg_dump's snapshot and what it holds, read in that snapshot; or
         * sqlite's copy, read after. */
        if (r >= 0 && o->database)
                r = backup_pg_dump(o->database, copy, &rep->info, &rep->snapshot, rep->server_version,
                                   rep->tool_version);
        else if (r >= 0)
                r = snapshot(db, copy, &rep->snapshot);
        if (r >= 0)
                r = step("backup-snapshot");
        if (r >= 0 && !o->database)
                r = db_read_info(copy, &rep->info);
        /* Last: reading the copy settled it in its final form. */
        if (r >= 0)
                r = sha256_file_hex(copy, rep->db_sha256, &rep->db_size);
        if (r >= 0)
                r = step("backup-digest");
        if (r < 0)
                return r;
        if (!o->no_blobs) {
                r = mkdir_p(tmp, 0700);
                for (size_t k = 0; r >= 0 && k < rep->info.n_blobs; k++) {
                        r = keep_blob(state_dir, work, &rep->info.blobs[k], rep);
                        if (r == -ENOENT) {
                                log_debug("blob '%s' went from the state after the snapshot",
                                          rep->info.blobs[k].sha256);
                                r = -ESTALE;
                        }
                        if (r >= 0)
                                r = step("backup-blob");
                }
                if (r >= 0)
                        r = rm_rf(tmp);
                if (r >= 0)
                        r = fsync_blob_dirs(work);
                if (r < 0)
                        return r;
        }
        m = manifest_build(rep, o, now);
        text = m ? json_dumps(m, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
        if (!text)
                return -ENOMEM;
        r = write_file_atomic(mpath, text, strlen(text), 0644);
        if (r >= 0)
                r = step("backup-manifest");
        if (r >= 0)
                r = fsync_path(work);
        return r;
}

int backup_create(const char *state_dir, const char *dir, const BackupOptions *o, int64_t now, BackupReport *ret) {
        _cleanup_free_ char *target = strdup(dir), *work = NULL;
        BackupReport rep = {};
        uint64_t start = now_usec();
        size_t n;
        int r;

        if (!target)
                return -ENOMEM;
        n = strlen(target);
        while (n > 1 && target[n - 1] == '/')
                target[--n] = 0;
        r = check_empty(target);
        if (r < 0)
                return r;
        r = mkdir_parents(target, 0755);
        if (r < 0)
                return r;
        work = strdup_printf("%s.partial-XXXXXX", target);
        if (!work)
                return -ENOMEM;
        if (!mkdtemp(work))
                return negative_errno();
        r = backup_fill(state_dir, work, o, now, &rep);
        /* An empty target is replaced by the rename; a crash before it
         * leaves only the ".partial-" directory. */
        if (r >= 0 && rename(work, target) < 0)
                r = negative_errno();
        if (r >= 0)
                r = fsync_parent_dir(target);
        if (r < 0) {
                (void) rm_rf(work);
                backup_report_release(&rep);
                return r;
        }
        rep.usec = now_usec() - start;
        if (ret)
                *ret = rep;
        else
                backup_report_release(&rep);
        return 0;
}

/* The manifest's checks: a backup of this kind, and the database's digest. */
/* A PostgreSQL backup's blobs and lease epoch, from its manifest: its
 * dump cannot be read before it is restored. */
static int manifest_read_pg(json_t *m, RestoreReport *rep) {
        json_t *blobs = json_object_get(m, "blobs"), *b;
        json_int_t epoch = -1, version = -1;
        size_t i, cap = 0;

        if (json_unpack(m, "{s:I, s:I}", "lease_epoch", &epoch, "schema_version", &version) < 0 || epoch < 0 ||
            version < 0 || !json_is_array(blobs))
                return -EBADMSG;
        rep->info.lease_epoch = (uint64_t) epoch;
        rep->info.schema_version = (int) version;
        json_array_foreach(blobs, i, b) {
                const char *hex = NULL;
                json_int_t size = -1;
                StoreBlobRef *ref;

                if (json_unpack(b, "{s:s, s:I}", "sha256", &hex, "size", &size) < 0 || !sha256_hex_valid(hex) ||
                    size < 0)
                        return -EBADMSG;
                ref = array_push((void **) &rep->info.blobs, &rep->info.n_blobs, &cap, sizeof *ref);
                if (!ref)
                        return -ENOMEM;
                memcpy(ref->sha256, hex, SHA256_HEX_SIZE);
                ref->size = (uint64_t) size;
        }
        return 0;
}

static int manifest_read(const char *dir, const char *database, RestoreReport *rep, char ret_sha[SHA256_HEX_SIZE],
                         uint64_t *ret_size, char ret_key_sha[SHA256_HEX_SIZE]) {
        _cleanup_free_ char *path = path_join(dir, BACKUP_MANIFEST), *text = NULL;
        _cleanup_json_ json_t *m = NULL;
        const char *format = NULL, *store = NULL, *file = NULL, *sha = NULL, *key_sha = NULL;
        json_int_t created = 0, size = -1;
        json_error_t e;
        size_t len;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, MANIFEST_MAX, &text, &len);
        if (r < 0)
                return log_error_errno(r, "cannot read the backup's manifest '%s': %m", path);
        m = json_loadb(text, len, 0, &e);
        if (!m || json_unpack_ex(m, &e, 0, "{s:s, s:s, s:I, s:{s:s, s:s, s:I}, s?s}", "format", &format, "store", &store,
                                 "created", &created, "database", "file", &file, "sha256", &sha, "size", &size,
                                 "enroll_key_sha256", &key_sha) < 0)
                return log_error_errno(-EBADMSG, "the backup's manifest '%s' is damaged: %s", path, e.text);
        if (!streq(format, BACKUP_FORMAT))
                return log_error_errno(-EPROTONOSUPPORT, "'%s' is a backup of format '%s', not " BACKUP_FORMAT, dir,
                                       format);
        if (!database && !streq(store, "sqlite"))
                return log_error_errno(-EPROTONOSUPPORT, "'%s' is a backup of a %s store: set [state] database to "
                                       "restore it", dir, store);
        if (database && !streq(store, "postgresql"))
                return log_error_errno(-EPROTONOSUPPORT, "'%s' is a backup of a %s store, not of PostgreSQL: restore "
                                       "it without [state] database, then move it with slipwayd migrate", dir, store);
        if (!streq(file, database ? BACKUP_PG_DUMP : STATE_DB) || !sha256_hex_valid(sha) || size < 0 ||
            (key_sha && !sha256_hex_valid(key_sha)))
                return log_error_errno(-EBADMSG, "the backup's manifest '%s' names its database wrongly", path);
        if (database) {
                r = manifest_read_pg(m, rep);
                if (r < 0)
                        return log_error_errno(r, "the backup's manifest '%s' lists its blobs wrongly", path);
        }
        rep->backup_created = (int64_t) created;
        memcpy(ret_sha, sha, SHA256_HEX_SIZE);
        *ret_size = (uint64_t) size;
        if (key_sha)
                memcpy(ret_key_sha, key_sha, SHA256_HEX_SIZE);
        else
                ret_key_sha[0] = 0;
        return 0;
}

/* Brings every blob the backup's state refers to into state_dir, or names
 * those that are nowhere in report->missing. */
static int restore_blobs(const char *state_dir, const char *dir, RestoreReport *rep) {
        for (size_t k = 0; k < rep->info.n_blobs; k++) {
                const StoreBlobRef *b = &rep->info.blobs[k];
                _cleanup_free_ char *have = NULL, *src = NULL;
                const char *why = NULL;
                struct stat st;
                int r;

                r = blobstore_path(state_dir, b->sha256, &have);
                if (r >= 0)
                        r = blobstore_path(dir, b->sha256, &src);
                if (r < 0)
                        return r;
                if (stat(have, &st) == 0) {
                        if ((uint64_t) st.st_size == b->size) {
                                rep->blobs_present++;
                                continue;
                        }
                        why = "damaged in the state directory";
                } else if (errno != ENOENT)
                        return negative_errno();
                else if (!path_exists(src))
                        why = "in neither the state directory nor the backup";
                else {
                        r = copy_blob(src, state_dir, b->sha256, b->size);
                        if (r == -EBADMSG)
                                why = "damaged in the backup";
                        else if (r < 0)
                                return log_error_errno(r, "cannot copy the blob '%s' from the backup: %m", b->sha256);
                        else {
                                rep->blobs_copied++;
                                r = step("restore-blob");
                                if (r < 0)
                                        return r;
                                continue;
                        }
                }
                if (strv_consume(&rep->missing, strdup_printf("%s (%s)", b->sha256, why)) < 0)
                        return -ENOMEM;
        }
        return strv_length(rep->missing) > 0 ? -ENOENT : 0;
}

/* In the database at path (a sqlite file, or a PostgreSQL database, whose
 * counts are read anew), which nobody else uses: the lease epochs moved
 * to floor and above (store_restore_epochs()) and the restore audited. */
static int restore_record(const char *path, bool postgresql, uint64_t floor, const char *dir, int64_t now, const char *actor,
                          RestoreReport *rep) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_json_ json_t *detail = NULL;
        int r;

        r = store_db_open(path, &db);
        if (r >= 0)
                r = store_tx_begin(db, STORE_TX_WRITE, &tx);
        /* What the restored database holds: the dump's, only known now. */
        if (r >= 0 && postgresql) {
                store_snapshot_info_release(&rep->info);
                r = store_snapshot_read(tx, &rep->info);
                rep->schema_version = rep->info.schema_version;
        }
        if (r >= 0)
                r = store_restore_epochs(tx, floor, &rep->epoch, &rep->leases_renumbered);
        if (r < 0)
                return r;
        detail = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "backup", dir, "backup_created",
                           (json_int_t) rep->backup_created, "backup_epoch", (json_int_t) rep->epoch_backup,
                           "previous_epoch", (json_int_t) rep->epoch_previous, "epoch", (json_int_t) rep->epoch,
                           "leases_renumbered", (json_int_t) rep->leases_renumbered, "blobs_copied",
                           (json_int_t) rep->blobs_copied);
        if (!detail)
                return -ENOMEM;
        r = audit_log_at(tx, now, actor, "state.restore", NULL, detail);
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                return r;
        return postgresql ? 0 : db_close_settled(TAKE_PTR(db), path);
}

/* The backup's enrollment key, checked against its digest, where the state
 * has none. A state that has one keeps it: the install secrets in flight
 * come from it. */
static int restore_enroll_key(const char *state_dir, const char *dir, const char *sha, RestoreReport *rep) {
        _cleanup_free_ char *src = path_join(dir, ENROLL_KEY), *dst = path_join(state_dir, ENROLL_KEY);
        char got[SHA256_HEX_SIZE];
        int r;

        if (!src || !dst)
                return -ENOMEM;
        if (!sha[0] || path_exists(dst))
                return 0;
        r = copy_file_atomic(src, dst, 0600);
        if (r >= 0)
                r = sha256_file_hex(dst, got, NULL);
        if (r >= 0 && !streq(got, sha))
                r = -EBADMSG;
        if (r < 0) {
                (void) unlink(dst);
                return r;
        }
        rep->enroll_key_restored = true;
        return 0;
}

/* The restore up to the rename: next, a copy of the backup's database
 * beside live, made, checked and read; every blob in place; the live
 * database settled and kept; next's epochs moved and the restore audited. */
static int restore_prepare(const char *state_dir, const char *dir, const char *sha, const char *key_sha,
                           const char *next, const char *live, int64_t now, const char *actor, RestoreReport *rep) {
        _cleanup_free_ char *src = path_join(dir, STATE_DB);
        _cleanup_free_ char *kept = strdup_printf("%s/" STATE_DB ".before-restore-%lld", state_dir, (long long) now);
        StoreSnapshotInfo old = {};
        char got[SHA256_HEX_SIZE];
        uint64_t floor;
        int r;

        if (!src || !kept)
                return -ENOMEM;
        r = copy_file_atomic(src, next, 0640);
        if (r >= 0)
                r = sha256_file_hex(next, got, NULL);
        if (r >= 0 && !streq(got, sha))
                r = -EBADMSG;
        if (r >= 0)
                r = step("restore-copy");
        if (r >= 0)
                r = db_read_info(next, &rep->info);
        if (r < 0)
                return log_error_errno(r, "cannot read the backup's database: %m");
        rep->schema_version = rep->info.schema_version;
        rep->epoch_backup = rep->info.lease_epoch;
        r = restore_blobs(state_dir, dir, rep);
        if (r == -ENOENT)
                return log_error_errno(r, "%zu blobs of the backup's state are missing; the state is unchanged",
                                       strv_length(rep->missing));
        if (r < 0)
                return log_error_errno(r, "cannot restore the blobs into '%s': %m", state_dir);
        r = restore_enroll_key(state_dir, dir, key_sha, rep);
        if (r < 0)
                return log_error_errno(r, "cannot restore the enrollment key into '%s': %m", state_dir);
        if (path_exists(live)) {
                r = db_read_info(live, &old);
                rep->epoch_previous = old.lease_epoch;
                store_snapshot_info_release(&old);
                if (r >= 0)
                        r = step("restore-settle");
                if (r >= 0)
                        (void) unlink(kept);
                if (r >= 0 && link(live, kept) < 0)
                        r = negative_errno();
                if (r >= 0) {
                        rep->previous = TAKE_PTR(kept);
                        r = step("restore-keep");
                }
                if (r == -EBUSY)
                        return log_error_errno(r, "the database in '%s' is in use: is slipwayd running?", state_dir);
                if (r < 0)
                        return log_error_errno(r, "cannot keep the database of '%s': %m", state_dir);
        }
        /* Epochs handed out after the backup are unknown to it, but each
         * was at most one above the counter then: the backup's, or the
         * replaced state's when it is later (it knew them all). */
        floor = MAX(rep->epoch_backup, rep->epoch_previous);
        if (floor > INT64_MAX / 2 - BACKUP_RESTORE_EPOCH_GAP)
                return log_error_errno(-ERANGE, "the lease epoch %" PRIu64 " cannot be raised further", floor);
        r = restore_record(next, false, floor + BACKUP_RESTORE_EPOCH_GAP, dir, now, actor, rep);
        if (r >= 0)
                r = step("restore-prepared");
        if (r < 0)
                return log_error_errno(r, "cannot prepare the backup's database: %m");
        return 0;
}

/* The highest epoch a PostgreSQL restore that did not finish knew of:
 * kept in STATE/RESTORE_PENDING from before its pg_restore until its
 * epochs are moved, so that a restore run again after a crash between the
 * two does not take the backup's epoch for the database's. 0: none. */
static int pending_read(const char *path, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_full_file(path, 64, &text, &len);

        *ret = 0;
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        return safe_atou64(text, ret) < 0 ? -EBADMSG : 0;
}

/* A backup of a PostgreSQL store into the database: blobs and key as for
 * sqlite, then pg_restore in one transaction, then the epochs. */
static int restore_pg(const char *state_dir, const char *dir, const char *database, const char *key_sha, int64_t now,
                      const char *actor, RestoreReport *rep) {
        _cleanup_free_ char *dump = path_join(dir, BACKUP_PG_DUMP), *pending = path_join(state_dir, RESTORE_PENDING);
        _cleanup_free_ char *text = NULL;
        uint64_t known = 0, floor;
        int r;

        if (!dump || !pending)
                return log_oom();
        rep->schema_version = rep->info.schema_version;
        rep->epoch_backup = rep->info.lease_epoch;
        r = backup_pg_restore_check(database, &rep->epoch_previous);
        if (r < 0)
                return r;
        r = restore_blobs(state_dir, dir, rep);
        if (r == -ENOENT)
                return log_error_errno(r, "%zu blobs of the backup's state are missing; the state is unchanged",
                                       strv_length(rep->missing));
        if (r < 0)
                return log_error_errno(r, "cannot restore the blobs into '%s': %m", state_dir);
        r = restore_enroll_key(state_dir, dir, key_sha, rep);
        if (r < 0)
                return log_error_errno(r, "cannot restore the enrollment key into '%s': %m", state_dir);
        r = pending_read(pending, &known);
        if (r < 0)
                return log_error_errno(r, "cannot read '%s', left by a restore that did not finish: %m", pending);
        rep->epoch_unfinished = known;
        floor = MAX(MAX(rep->epoch_backup, rep->epoch_previous), known);
        if (floor > INT64_MAX / 2 - BACKUP_RESTORE_EPOCH_GAP)
                return log_error_errno(-ERANGE, "the lease epoch %" PRIu64 " cannot be raised further", floor);
        text = strdup_printf("%" PRIu64 "\n", floor);
        if (!text)
                return log_oom();
        r = write_file_atomic(pending, text, strlen(text), 0640);
        if (r >= 0)
                r = step("restore-pending");
        if (r < 0)
                return log_error_errno(r, "cannot write '%s': %m", pending);
        r = backup_pg_restore(database, dump);
        if (r < 0)
                return r;
        r = step("restore-dumped");
        if (r >= 0)
                r = restore_record(database, true, floor + BACKUP_RESTORE_EPOCH_GAP, dir, now, actor, rep);
        if (r < 0)
                return log_error_errno(r, "the backup is in the database, but its lease epochs could not be moved "
                                       "(%s): run the restore again before any slipwayd starts",
                                       store_last_error() ?: strerror(-r));
        if (unlink(pending) < 0)
                return log_error_errno(negative_errno(), "cannot remove '%s': %m", pending);
        return fsync_parent_dir(pending);
}

int backup_restore(const char *state_dir, const char *database, const char *dir, int64_t now, const char *actor,
                   RestoreReport *rep) {
        _cleanup_free_ char *db = path_join(dir, database ? BACKUP_PG_DUMP : STATE_DB), *blobs = path_join(state_dir, BLOBSTORE_BLOBS_DIR);
        _cleanup_free_ char *tmp = path_join(state_dir, BLOBSTORE_TMP_DIR), *live = path_join(state_dir, STATE_DB);
        _cleanup_free_ char *next = path_join(state_dir, STATE_DB ".restore");
        char sha[SHA256_HEX_SIZE], got[SHA256_HEX_SIZE], key_sha[SHA256_HEX_SIZE];
        uint64_t start = now_usec(), size = 0, got_size = 0;
        int r;

        *rep = (RestoreReport) {};
        if (!db || !blobs || !tmp || !live || !next)
                return log_oom();
        r = manifest_read(dir, database, rep, sha, &size, key_sha);
        if (r < 0)
                return r;
        r = sha256_file_hex(db, got, &got_size);
        if (r < 0)
                return log_error_errno(r, "cannot read the backup's database '%s': %m", db);
        if (!streq(got, sha) || got_size != size)
                return log_error_errno(-EBADMSG, "the backup's database '%s' is not the one its manifest names", db);
        r = step("restore-checked");
        if (r < 0)
                return log_error_errno(r, "the restore stopped: %m");
        r = mkdir_p(blobs, 0755);
        if (r >= 0)
                r = mkdir_p(tmp, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot set up the state directory '%s': %m", state_dir);
        if (database) {
                r = restore_pg(state_dir, dir, database, key_sha, now, actor, rep);
                rep->usec = now_usec() - start;
                return r;
        }
        /* What an earlier restore cut short left. */
        unlink_db(next);
        r = restore_prepare(state_dir, dir, sha, key_sha, next, live, now, actor, rep);
        if (r >= 0 && rename(next, live) < 0)
                r = log_error_errno(negative_errno(), "cannot put the backup's database in place in '%s': %m",
                                    state_dir);
        if (r < 0) {
                unlink_db(next);
                return r;
        }
        r = fsync_parent_dir(live);
        if (r < 0)
                return log_error_errno(r, "cannot make the restore durable in '%s': %m", state_dir);
        rep->usec = now_usec() - start;
        return 0;
}

int state_lock_take(const char *state_dir, int *ret_fd, pid_t *ret_holder) {
        _cleanup_free_ char *path = path_join(state_dir, LOCK_FILE);
        _cleanup_close_ int fd = -1;
        char text[32];
        int r;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return negative_errno();
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return negative_errno();
                if (ret_holder) {
                        ssize_t n = pread(fd, text, sizeof text - 1, 0);
                        int pid = 0;

                        text[n > 0 ? n : 0] = 0;
                        text[strcspn(text, "\n")] = 0;
                        *ret_holder = safe_atoi(text, &pid) >= 0 ? pid : 0;
                }
                return -EBUSY;
        }
        /* Who holds it, for the message of whoever finds it taken. */
        snprintf(text, sizeof text, "%d\n", (int) getpid());
        if (ftruncate(fd, 0) < 0)
                return negative_errno();
        r = loop_write(fd, text, strlen(text));
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
