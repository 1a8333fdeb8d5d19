/* Installing RPM files into the staging root with librpm.
 *
 * Reproducibility of the rpmdb (rpm 4.18, sqlite backend), as found by
 * installing the same RPMs into two roots and comparing the files:
 *
 *  - INSTALLTID comes from the transaction id, which rpmtsCreate() takes from
 *    time(NULL); rpmtsSetTid() fixes it.
 *  - INSTALLTIME is stamped per package in the psm from rpmtsGetTime(), which
 *    in 4.18 returns SOURCE_DATE_EPOCH when the variable is set (that is what
 *    the "SOURCE_DATE_EPOCH" string in librpm.so is for) and time(NULL)
 *    otherwise. rpmtsSetTid() alone does not fix it: we set SOURCE_DATE_EPOCH
 *    for the length of the transaction and restore the caller's value after.
 *  - INSTALLTID and INSTALLTIME both come from the transaction: rpmtsCreate()
 *    reads SOURCE_DATE_EPOCH (secure_getenv + strtol, visible in librpm.so's
 *    disassembly) into an override time and the tid, else it uses
 *    time(NULL). rpmtsSetTid() alone fixes INSTALLTID only. So we set
 *    SOURCE_DATE_EPOCH around rpmtsCreate() and restore the caller's value
 *    right after. Each package's INSTALLTIME is then epoch + its position in
 *    the install order (rpm steps the override time per package), which is
 *    deterministic too.
 *  - The main sqlite file is deterministic for the same statements; their
 *    order is fixed by rpmtsOrder(), which depends on the packages only, not
 *    on the order of rpm_paths.
 *  - But rpm always runs sqlite in WAL mode with SQLITE_FCNTL_PERSIST_WAL, so
 *    rpmdb.sqlite-wal (empty after the final TRUNCATE checkpoint) and
 *    rpmdb.sqlite-shm stay behind, and -shm holds the WAL's random salts: it
 *    differed between two identical installs. A read-only root has no use
 *    for WAL either, so after the transaction we switch the database to
 *    journal_mode=DELETE, which checkpoints and removes both files. rpm
 *    turns WAL back on whenever it opens the database writable.
 *
 * Installed files get the mtimes recorded in the packages; directories that
 * no package owns get the current time. Neither matters: the rootfs step sets
 * every timestamp to the epoch.
 *
 * Signatures: each package's is checked against the keys of its own
 * repository (sigcheck.c) as it is added, before anything of it reaches the
 * root. A librpm transaction has one keyring for all its packages, which
 * would let one repository's key vouch for another's packages; so the
 * transaction itself checks digests only.
 *
 * Transaction plugins are disabled: on a build host they would announce the
 * transaction on D-Bus, inhibit shutdown, log to syslog or apply the host's
 * SELinux policy, none of which belongs in an image build. */

#include <fcntl.h>
#include <inttypes.h>
#include <rpm/header.h>
#include <rpm/rpmcallback.h>
#include <rpm/rpmdb.h>
#include <rpm/rpmio.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmlog.h>
#include <rpm/rpmmacro.h>
#include <rpm/rpmps.h>
#include <rpm/rpmts.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "fileio.h"
#include "install.h"
#include "librpm.h"
#include "log.h"
#include "sigcheck.h"
#include "util.h"

typedef struct InstallContext {
        Progress *progress;
        uint64_t n_total;
        uint64_t n_done;
        FD_t fd;            /* the package librpm is reading */
        int error;          /* first unpack or scriptlet failure */
} InstallContext;

/* librpm's own messages go through our log, at a matching level. */
static int rpm_log_cb(rpmlogRec rec, rpmlogCallbackData data _unused_) {
        const char *msg = rpmlogRecMessage(rec);
        size_t n = strlen(msg);
        LogLevel level;

        switch (rpmlogRecPriority(rec)) {
        case RPMLOG_EMERG:
        case RPMLOG_ALERT:
        case RPMLOG_CRIT:
        case RPMLOG_ERR:
                level = LOG_LEVEL_ERROR;
                break;
        case RPMLOG_WARNING:
                level = LOG_LEVEL_WARNING;
                break;
        case RPMLOG_NOTICE:
        case RPMLOG_INFO:
                level = LOG_LEVEL_INFO;
                break;
        default:
                level = LOG_LEVEL_DEBUG;
        }
        while (n > 0 && msg[n - 1] == '\n')
                n--;
        log_full(level, 0, "rpm: %.*s", (int) n, msg);
        return 0;
}

static int rpm_init_once(void) {
        static bool done = false;

        if (done)
                return 0;
        if (librpm_init() < 0)
                return -EIO;
        rpmlogSetCallback(rpm_log_cb, NULL);
        rpmSetVerbosity(log_get_level() >= LOG_LEVEL_DEBUG ? RPMLOG_DEBUG : RPMLOG_WARNING);
        done = true;
        return 0;
}

static void *install_notify(const void *h _unused_, const rpmCallbackType what, const rpm_loff_t amount,
                            const rpm_loff_t total _unused_, fnpyKey key, rpmCallbackData data) {
        InstallContext *c = data;
        const char *path = key;

        switch (what) {
        case RPMCALLBACK_INST_OPEN_FILE:
                if (!path)
                        return NULL;
                if (c->fd)
                        Fclose(c->fd);
                c->fd = Fopen(path, "r.ufdio");
                if (!c->fd || Ferror(c->fd)) {
                        log_error("failed to open '%s': %s", path, c->fd ? Fstrerror(c->fd) : "unknown error");
                        if (c->fd)
                                Fclose(c->fd);
                        c->fd = NULL;
                }
                return c->fd;
        case RPMCALLBACK_INST_CLOSE_FILE:
                if (c->fd)
                        Fclose(c->fd);
                c->fd = NULL;
                break;
        case RPMCALLBACK_TRANS_START:
                progress_update(c->progress, 0, c->n_total, 0, 0);
                break;
        case RPMCALLBACK_INST_START:
                log_debug("installing '%s'", strempty(path));
                break;
        case RPMCALLBACK_INST_PROGRESS:
                progress_update(c->progress, c->n_done, c->n_total, 0, 0);
                break;
        case RPMCALLBACK_INST_STOP:
                c->n_done++;
                progress_update(c->progress, c->n_done, c->n_total, 0, 0);
                break;
        case RPMCALLBACK_UNPACK_ERROR:
        case RPMCALLBACK_CPIO_ERROR:
                log_error("failed to unpack '%s'", strempty(path));
                if (c->error == 0)
                        c->error = -EIO;
                break;
        case RPMCALLBACK_SCRIPT_ERROR:
                /* amount is the scriptlet tag; total is its result, and a
                 * failing %pre aborts the package while others only warn. */
                log_warning("scriptlet %" PRIu64 " of '%s' failed", (uint64_t) amount, strempty(path));
                break;
        default:
                break;
        }
        return NULL;
}

static void log_problems(rpmps ps, const char *what) {
        rpmpsi it = rpmpsInitIterator(ps);
        rpmProblem p;

        while ((p = rpmpsiNext(it))) {
                _cleanup_free_ char *s = rpmProblemString(p);
                log_error("%s: %s", what, strempty(s));
        }
        rpmpsFreeIterator(it);
}

static int add_package(rpmts ts, const char *path, const RepoKeys *keys) {
        _cleanup_(rpm_fclosep) FD_t fd = NULL;
        _cleanup_(header_freep) Header h = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE];
        rpmRC rc;
        int k, r;

        r = sigcheck_package(keys, path, path, key_id);
        if (r < 0)
                return r;
        fd = Fopen(path, "r.ufdio");
        if (!fd || Ferror(fd))
                return log_error_errno(-ENOENT, "failed to open package '%s': %s", path,
                                       fd ? Fstrerror(fd) : "unknown error");
        rc = rpmReadPackageFile(ts, fd, path, &h);
        switch (rc) {
        case RPMRC_OK:
        case RPMRC_NOKEY: /* the transaction has no keys: see the top */
        case RPMRC_NOTTRUSTED:
                break;
        case RPMRC_NOTFOUND:
                return log_error_errno(-EBADMSG, "'%s' is not an RPM package", path);
        default:
                return log_error_errno(-EBADMSG, "package '%s' failed verification", path);
        }
        /* The key is handed back in the notify callback to reopen the file;
         * rpm_paths outlives the transaction. */
        k = rpmtsAddInstallElement(ts, h, (fnpyKey) path, 0, NULL);
        if (k != 0)
                return log_error_errno(-EINVAL, "failed to add '%s' to the transaction", path);
        return 0;
}

/* Sets SOURCE_DATE_EPOCH, returning the previous value (NULL if unset) in
 * ret_saved for restore_epoch_env(). */
static int set_epoch_env(uint64_t epoch, char **ret_saved) {
        const char *old = getenv("SOURCE_DATE_EPOCH");
        _cleanup_free_ char *saved = NULL;
        char buf[32];

        if (old) {
                saved = strdup(old);
                if (!saved)
                        return -ENOMEM;
        }
        snprintf(buf, sizeof(buf), "%" PRIu64, epoch);
        if (setenv("SOURCE_DATE_EPOCH", buf, 1) < 0)
                return negative_errno();
        *ret_saved = TAKE_PTR(saved);
        return 0;
}

static void restore_epoch_env(char *saved) {
        if (saved)
                setenv("SOURCE_DATE_EPOCH", saved, 1);
        else
                unsetenv("SOURCE_DATE_EPOCH");
        free(saved);
}

/* Leaves the rpmdb as a single rollback-journal sqlite file: see the top. */
static int rpmdb_finalize(const char *dbdir) {
        _cleanup_free_ char *path = path_join(dbdir, "rpmdb.sqlite");
        sqlite3 *db = NULL;
        char *err = NULL;
        int k;

        if (!path)
                return log_oom();
        if (!path_exists(path))
                return log_error_errno(-ENOENT, "rpm did not create '%s'", path);
        k = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
        if (k == SQLITE_OK)
                k = sqlite3_exec(db, "PRAGMA journal_mode = DELETE", NULL, NULL, &err);
        if (k != SQLITE_OK)
                log_error("failed to switch '%s' to journal_mode=DELETE: %s", path,
                          err ? err : db ? sqlite3_errmsg(db) : sqlite3_errstr(k));
        sqlite3_free(err);
        if (sqlite3_close(db) != SQLITE_OK && k == SQLITE_OK)
                k = SQLITE_ERROR;
        if (k != SQLITE_OK)
                return -EIO;

        for (const char *const *s = (const char *const[]) { "-wal", "-shm", NULL }; *s; s++) {
                _cleanup_free_ char *p = strdup_printf("%s%s", path, *s);
                if (!p)
                        return log_oom();
                if (unlink(p) < 0 && errno != ENOENT)
                        return log_error_errno(negative_errno(), "failed to remove '%s': %m", p);
        }
        return 0;
}

static int install_run(const char *root, char *const *rpm_paths, const RepoKeys *const *keys, uint64_t epoch,
                       Progress *progress) {
        _cleanup_(rpmts_freep) rpmts ts = NULL;
        _cleanup_(rpmps_freep) rpmps ps = NULL;
        InstallContext c = { .progress = progress };
        char *saved_env = NULL;
        int k, r;

        /* rpmtsCreate() reads SOURCE_DATE_EPOCH, once: see the top. */
        r = set_epoch_env(epoch, &saved_env);
        if (r < 0)
                return log_error_errno(r, "failed to set SOURCE_DATE_EPOCH: %m");
        ts = rpmtsCreate();
        restore_epoch_env(saved_env);
        if (!ts)
                return log_oom();
        if (rpmtsSetRootDir(ts, root) != 0)
                return log_error_errno(-EINVAL, "failed to set the rpm root to '%s'", root);
        /* Digests must be present and right; signatures were checked per
         * repository in add_package() (see the top). */
        rpmtsSetVSFlags(ts, RPMVSF_MASK_NOSIGNATURES);
        rpmtsSetVfyFlags(ts, RPMVSF_MASK_NOSIGNATURES);
        rpmtsSetVfyLevel(ts, RPMSIG_DIGEST_TYPE);
        rpmtsSetFlags(ts, RPMTRANS_FLAG_NOPLUGINS);
        rpmtsSetTid(ts, (rpm_tid_t) epoch);

        if (rpmtsInitDB(ts, 0644) != 0)
                return log_error_errno(-EIO, "failed to create the rpmdb in '%s'", root);

        for (size_t i = 0; rpm_paths && rpm_paths[i]; i++) {
                r = add_package(ts, rpm_paths[i], keys[i]);
                if (r < 0)
                        return r;
                c.n_total++;
        }
        if (c.n_total == 0)
                return log_error_errno(-EINVAL, "no packages to install");

        if (rpmtsCheck(ts) != 0)
                return log_error_errno(-EIO, "failed to check the transaction");
        ps = rpmtsProblems(ts);
        if (rpmpsNumProblems(ps) > 0) {
                log_problems(ps, "dependency problem");
                return log_error_errno(-EDEADLK, "the package set is not installable (%d problem(s))",
                                       rpmpsNumProblems(ps));
        }
        ps = rpmpsFree(ps);

        if (rpmtsOrder(ts) != 0)
                return log_error_errno(-ELOOP, "failed to order the transaction");

        if (rpmtsSetNotifyCallback(ts, install_notify, &c) != 0)
                return log_error_errno(-EINVAL, "failed to set the rpm notify callback");

        k = rpmtsRun(ts, NULL, RPMPROB_FILTER_NONE);
        if (c.fd)
                Fclose(TAKE_PTR(c.fd));

        if (k != 0) {
                ps = rpmtsProblems(ts);
                if (ps && rpmpsNumProblems(ps) > 0)
                        log_problems(ps, "install problem");
                return log_error_errno(c.error < 0 ? c.error : -EIO, "the transaction failed (%d)", k);
        }
        if (c.error < 0)
                return log_error_errno(c.error, "the transaction failed");
        progress_update(progress, c.n_total, c.n_total, 0, 0);
        return 0;
}

/* Installs rpm_paths into root with one librpm transaction; the rpmdb is
 * created at dbpath inside root. Each package's signature is checked against
 * keys[i], the keys of its repository, first. epoch becomes the transaction
 * id and install time of every package, so the same RPMs give the same rpmdb
 * bytes. Returns -EDEADLK when dependencies are missing or conflicting,
 * -EBADMSG for a package that fails its digests or its signature, -ENOKEY
 * for one signed by a key its repository does not list, -EIO when the
 * transaction fails. */
int install_packages(const char *root, char *const *rpm_paths, const RepoKeys *const *keys, const char *dbpath,
                     uint64_t epoch, Progress *progress) {
        _cleanup_free_ char *abs_root = NULL, *dbdir = NULL;
        int r;

        if (!root || !keys || !dbpath || dbpath[0] != '/')
                return -EINVAL;
        if (epoch > UINT32_MAX)
                return log_error_errno(-ERANGE, "epoch %" PRIu64 " does not fit an rpm transaction id", epoch);

        abs_root = realpath(root, NULL);
        if (!abs_root)
                return log_error_errno(negative_errno(), "failed to resolve root '%s': %m", root);
        dbdir = path_join(abs_root, dbpath);
        if (!dbdir)
                return log_oom();
        r = mkdir_p(dbdir, 0755);
        if (r < 0)
                return log_error_errno(r, "failed to create '%s': %m", dbdir);

        r = rpm_init_once();
        if (r < 0)
                return log_error_errno(r, "failed to read the rpm configuration");

        /* Debian's librpm defaults %_dbpath to ~/.rpmdb. */
        rpmPushMacro(NULL, "_dbpath", NULL, dbpath, RMIL_CMDLINE);
        r = install_run(abs_root, rpm_paths, keys, epoch, progress);
        rpmPopMacro(NULL, "_dbpath");
        if (r < 0)
                return r;
        return rpmdb_finalize(dbdir);
}
