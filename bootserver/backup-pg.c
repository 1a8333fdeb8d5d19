/* The PostgreSQL side of a backup and a restore (backup-pg.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup-pg.h"
#include "fileio.h"
#include "log.h"
#include "process.h"
#include "util.h"

/* A tool's output: its --version line. */
#define OUTPUT_MAX 4096

/* Runs argv and keeps what it writes (stdout and stderr, up to
 * OUTPUT_MAX bytes) in *ret (caller frees). Returns its exit status or a
 * negative errno. */
static int run_output(char *const *argv, char **ret) {
        _cleanup_free_ char *buf = calloc(1, OUTPUT_MAX + 1);
        size_t n = 0;
        pid_t pid;
        int fd, r;

        if (!buf)
                return -ENOMEM;
        r = spawn_piped(argv, false, &pid, &fd);
        if (r < 0)
                return r;
        for (;;) {
                char drop[512];
                ssize_t k = n < OUTPUT_MAX ? read(fd, buf + n, OUTPUT_MAX - n) : read(fd, drop, sizeof drop);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                if (n < OUTPUT_MAX)
                        n += (size_t) k;
        }
        close(fd);
        r = spawn_wait(pid);
        if (r >= 0)
                *ret = TAKE_PTR(buf);
        return r;
}

/* The first line of s, without its newline, for a message. */
static const char *first_line(char *s) {
        if (!s)
                return "";
        s[strcspn(s, "\n")] = 0;
        return s;
}

/* Where tool is: the first executable one in PATH, else in the directory
 * `pg_config --bindir` names. NULL when neither has it. */
static char *tool_find(const char *tool) {
        const char *path = getenv("PATH");
        _cleanup_free_ char *bindir = NULL;
        char *const config[] = { (char *) "pg_config", (char *) "--bindir", NULL };

        for (const char *p = path; p && *p;) {
                size_t k = strcspn(p, ":");
                _cleanup_free_ char *dir = strndup(p, k), *f = NULL;

                if (!dir)
                        return NULL;
                f = path_join(dir[0] ? dir : ".", tool);
                if (f && access(f, X_OK) == 0)
                        return TAKE_PTR(f);
                p += k + (p[k] == ':');
        }
        if (run_output(config, &bindir) != 0)
                return NULL;
        bindir[strcspn(bindir, "\n")] = 0;
        if (!bindir[0])
                return NULL;
        {
                char *f = path_join(bindir, tool);

                if (f && access(f, X_OK) == 0)
                        return f;
                free(f);
        }
        return NULL;
}

/* The major version in "pg_dump (PostgreSQL) 15.4 (Debian ...)": the
 * number after the last ") " before the first digit run; 0 when none. */
static int tool_major(const char *version) {
        const char *p = strstr(version, ") ");
        int major = 0;

        if (!p)
                return 0;
        for (p += 2; *p >= '0' && *p <= '9'; p++)
                major = major * 10 + (*p - '0');
        return major > 1000 ? 0 : major;
}

/* Finds tool and checks that its major version is the server's
 * (server_num: server_version_num) or later: *ret_path (caller frees) and
 * its version line in ret_version. */
static int tool_check(const char *tool, int server_num, char **ret_path, char ret_version[65]) {
        _cleanup_free_ char *path = tool_find(tool), *out = NULL;
        int server = server_num / 10000, major, r;

        if (!path)
                return log_error_errno(-ENOENT, "no %s in PATH nor in `pg_config --bindir`: install PostgreSQL's client "
                                       "programs (postgresql-client-%d)", tool, server);
        {
                char *const argv[] = { path, (char *) "--version", NULL };

                r = run_output(argv, &out);
        }
        if (r != 0)
                return log_error_errno(r < 0 ? r : -EIO, "cannot run '%s --version': %s", path,
                                       r < 0 ? strerror(-r) : first_line(out));
        major = tool_major(first_line(out));
        snprintf(ret_version, 65, "%s", first_line(out));
        if (major < server)
                return log_error_errno(-EPROTO, "'%s' is %s, older than the server (PostgreSQL %d.%d): use a %s of "
                                       "version %d or later (PATH, or pg_config --bindir)",
                                       path, first_line(out), server, server_num % 10000, tool, server);
        *ret_path = TAKE_PTR(path);
        return 0;
}

int backup_pg_dump(const char *conninfo, const char *path, StoreSnapshotInfo *ret_info, StoreSnapshotStats *ret_stats,
                   char ret_server[65], char ret_tool[65]) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *snapshot = NULL, *tool = NULL, *snap_arg = NULL, *err = NULL;
        StoreSnapshotInfo info = {};
        uint64_t start = now_usec();
        int server = 0, r;

        r = store_db_open(conninfo, &db);
        if (r < 0)
                return log_error_errno(r, "cannot open the PostgreSQL state database: %m");
        /* pg_dump dumps the snapshot this read sees, while it stays open:
         * the counts and the blobs below are those of the dump. */
        r = store_tx_begin(db, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_pg_server_version(tx, &server);
        if (r >= 0)
                r = store_pg_snapshot_export(tx, &snapshot);
        if (r >= 0)
                r = store_snapshot_read(tx, &info);
        if (r < 0)
                return log_error_errno(r, "cannot read the PostgreSQL state database: %s",
                                       store_last_error() ?: strerror(-r));
        snprintf(ret_server, 65, "PostgreSQL %d.%d", server / 10000, server % 10000);
        r = tool_check("pg_dump", server, &tool, ret_tool);
        if (r < 0) {
                store_snapshot_info_release(&info);
                return r;
        }
        snap_arg = strdup_printf("--snapshot=%s", snapshot);
        if (!snap_arg) {
                store_snapshot_info_release(&info);
                return log_oom();
        }
        {
                char *const argv[] = { tool,     (char *) "--format=custom", (char *) "--no-owner",
                                       (char *) "--no-privileges",        snap_arg,
                                       (char *) "--file",                 (char *) path,
                                       (char *) "--dbname",               (char *) conninfo,
                                       NULL };

                r = spawn_capture(argv, NULL, NULL, &err);
        }
        if (r != 0) {
                store_snapshot_info_release(&info);
                return log_error_errno(r < 0 ? r : -EIO, "pg_dump failed: %s",
                                       r < 0 ? strerror(-r) : first_line(err));
        }
        (void) store_tx_rollback(&tx);
        r = fsync_path(path);
        if (r < 0) {
                store_snapshot_info_release(&info);
                return log_error_errno(r, "cannot make the dump '%s' durable: %m", path);
        }
        if (ret_stats)
                *ret_stats = (StoreSnapshotStats) { .usec = now_usec() - start, .steps = 1 };
        *ret_info = info;
        return 0;
}

int backup_pg_restore_check(const char *conninfo, uint64_t *ret_epoch) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        StoreSnapshotInfo info = {};
        uint64_t others = 0;
        int r;

        r = store_db_open(conninfo, &db);
        if (r < 0)
                return log_error_errno(r, "cannot open the PostgreSQL state database: %m");
        r = store_tx_begin(db, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_pg_other_sessions(tx, &others);
        if (r >= 0)
                r = store_snapshot_read(tx, &info);
        if (r < 0)
                return log_error_errno(r, "cannot read the PostgreSQL state database: %s",
                                       store_last_error() ?: strerror(-r));
        *ret_epoch = info.lease_epoch;
        store_snapshot_info_release(&info);
        if (others > 0)
                return log_error_errno(-EBUSY, "%" PRIu64 " other clients are connected to the state database: stop "
                                       "every slipwayd that uses it (on every machine) before a restore",
                                       others);
        return 0;
}

int backup_pg_restore(const char *conninfo, const char *path) {
        _cleanup_store_db_free_ StoreDb *db = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *tool = NULL, *err = NULL;
        char version[65];
        int server = 0, r;

        r = store_db_open(conninfo, &db);
        if (r < 0)
                return log_error_errno(r, "cannot open the PostgreSQL state database: %m");
        r = store_tx_begin(db, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_pg_server_version(tx, &server);
        (void) store_tx_rollback(&tx);
        /* pg_restore's --clean waits for no lock of ours. */
        db = store_db_free(db);
        if (r < 0)
                return log_error_errno(r, "cannot read the PostgreSQL state database: %s",
                                       store_last_error() ?: strerror(-r));
        r = tool_check("pg_restore", server, &tool, version);
        if (r < 0)
                return r;
        {
                char *const argv[] = { tool,
                                       (char *) "--clean",
                                       (char *) "--if-exists",
                                       (char *) "--single-transaction",
                                       (char *) "--exit-on-error",
                                       (char *) "--no-owner",
                                       (char *) "--no-privileges",
                                       (char *) "--dbname",
                                       (char *) conninfo,
                                       (char *) path,
                                       NULL };

                r = spawn_capture(argv, NULL, NULL, &err);
        }
        if (r != 0)
                return log_error_errno(r < 0 ? r : -EIO, "pg_restore failed (the database is as it was): %s",
                                       r < 0 ? strerror(-r) : first_line(err));
        return 0;
}
