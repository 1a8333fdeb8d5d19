/* `slipwayd migrate` (migrate.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "migrate.h"
#include "util.h"

#define STATE_DB "state.db"

bool migrate_is_postgresql(const char *where) {
        return startswith(where, "postgresql://") || startswith(where, "postgres://") || strchr(where, '=');
}

void migrate_report_release(MigrateReport *r) {
        if (!r)
                return;
        free(r->source);
        free(r->target);
        store_snapshot_info_release(&r->info);
        *r = (MigrateReport) {};
}

/* The copy in the two transactions, checked and committed. */
static int migrate_copy(StoreDb *src_db, StoreDb *dst_db, StoreCopy **copy, MigrateProgress progress,
                        void *userdata, MigrateReport *rep) {
        _cleanup_store_tx_ StoreTx *src = NULL, *dst = NULL;
        _cleanup_free_ char *what = NULL;
        const char *table = NULL;
        uint64_t t;
        size_t n;
        int r;

        r = store_tx_begin(src_db, STORE_TX_READ, &src);
        if (r < 0)
                return log_error_errno(r, "cannot read the sqlite state: %s", store_last_error() ?: "");
        r = store_tx_begin(dst_db, STORE_TX_WRITE, &dst);
        if (r < 0)
                return log_error_errno(r, "cannot write to the PostgreSQL database: %s", store_last_error() ?: "");
        r = store_copy_plan(src, dst, copy, &what);
        if (r == -ENOENT)
                return log_error_errno(r, "the PostgreSQL database has no '%s', which the sqlite state has: is it "
                                       "another slipwayd's schema?", strempty(what));
        if (r == -EINVAL)
                return log_error_errno(r, "the sqlite state has a table or column named '%s', which this slipwayd "
                                       "does not know", strempty(what));
        if (r < 0)
                return log_error_errno(r, "cannot read the tables of both databases: %s", store_last_error() ?: "");
        r = store_copy_check_empty(*copy, dst, &table);
        if (r == -ENOTEMPTY)
                return log_error_errno(r, "the PostgreSQL database holds a fleet already (table '%s' has rows): "
                                       "migrate into an empty database", table);
        if (r < 0)
                return log_error_errno(r, "cannot read the PostgreSQL database: %s", store_last_error() ?: "");
        n = store_copy_n_tables(*copy);
        rep->source = calloc(n, sizeof *rep->source);
        rep->target = calloc(n, sizeof *rep->target);
        if (!rep->source || !rep->target)
                return log_oom();
        rep->n_tables = n;
        t = now_usec();
        r = store_copy_run(*copy, src, dst, progress, userdata, rep->source);
        rep->copy_usec = now_usec() - t;
        if (r < 0)
                return log_error_errno(r, "cannot copy the state into PostgreSQL (nothing was kept): %s",
                                       store_last_error() ?: "");
        t = now_usec();
        r = store_copy_sum(*copy, dst, rep->target);
        if (r >= 0)
                r = store_snapshot_read(dst, &rep->info);
        rep->verify_usec = now_usec() - t;
        if (r < 0)
                return log_error_errno(r, "cannot read the copy back from PostgreSQL (nothing was kept): %s",
                                       store_last_error() ?: "");
        for (size_t i = 0; i < n; i++) {
                rep->rows += rep->source[i].rows;
                if (rep->source[i].rows != rep->target[i].rows || !streq(rep->source[i].sha256, rep->target[i].sha256))
                        r = log_error_errno(-EBADMSG, "table '%s' differs after the copy: %" PRIu64 " rows in sqlite, "
                                            "%" PRIu64 " in PostgreSQL (nothing was kept)",
                                            rep->source[i].name, rep->source[i].rows, rep->target[i].rows);
        }
        if (r < 0)
                return r;
        r = store_tx_commit(&dst);
        if (r < 0)
                return log_error_errno(r, "cannot commit the copy into PostgreSQL (nothing was kept): %s",
                                       store_last_error() ?: "");
        return 0;
}

int migrate_run(const char *state_dir, const char *conninfo, MigrateProgress progress, void *userdata,
                MigrateReport *rep) {
        _cleanup_free_ char *path = path_join(state_dir, STATE_DB);
        StoreDb *src = NULL, *dst = NULL;
        StoreCopy *copy = NULL;
        uint64_t start = now_usec();
        int r;

        *rep = (MigrateReport) {};
        if (!path)
                return log_oom();
        if (!migrate_is_postgresql(conninfo))
                return log_error_errno(-EINVAL, "'%s' is not a PostgreSQL connection string (postgresql://… or "
                                       "key=value …)", conninfo);
        /* Opening a file that is not there would make a new state. */
        if (!path_exists(path))
                return log_error_errno(-ENOENT, "no sqlite state in '%s' (no %s)", state_dir, STATE_DB);
        r = store_db_open(path, &src);
        if (r < 0)
                return log_error_errno(r, "cannot open the sqlite state '%s': %m", path);
        /* The driver logged why it cannot connect. */
        r = store_db_open(conninfo, &dst);
        if (r < 0)
                log_error_errno(r, "cannot open the PostgreSQL database: %m");
        else
                r = migrate_copy(src, dst, &copy, progress, userdata, rep);
        /* The copy's SQL outlives the connections that prepared it. */
        store_db_free(dst);
        store_db_free(src);
        store_copy_free(copy);
        rep->usec = now_usec() - start;
        return r;
}
