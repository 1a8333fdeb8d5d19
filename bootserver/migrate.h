/* `slipwayd migrate --to CONNINFO`: the sqlite state of a state directory
 * copied into a PostgreSQL database (docs/operations.md, "Moving to
 * PostgreSQL"). The target's schema is made by its driver; every table
 * goes in one PostgreSQL transaction, which commits only once each table's
 * rows and checksum read back from PostgreSQL are the same as sqlite's. A
 * failure leaves the target as it was and the sqlite state untouched. The
 * blobs stay in the state directory: the instance that served it keeps
 * serving them. No SQL here: the store's part is store-migrate.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store-backup.h"
#include "store-migrate.h"

typedef struct MigrateReport {
        StoreCopyTable *source, *target; /* each table's figures, on each side */
        size_t n_tables;
        uint64_t rows;        /* rows copied, all tables */
        StoreSnapshotInfo info; /* what PostgreSQL holds after the copy */
        uint64_t copy_usec;   /* reading sqlite and writing PostgreSQL */
        uint64_t verify_usec; /* reading PostgreSQL back */
        uint64_t usec;        /* the whole migration, connecting included */
} MigrateReport;

void migrate_report_release(MigrateReport *r);

/* Tells how a table's copy goes (store-migrate.h). */
typedef StoreCopyProgress MigrateProgress;

/* Copies the sqlite state under state_dir (STATE/state.db) into the
 * PostgreSQL database conninfo names, which must hold no fleet. The caller
 * holds the state directory's lock (state_lock_take()), so that no server
 * writes the state meanwhile. Logs what failed, and returns -ENOENT when
 * state_dir has no database, -ENOTEMPTY when the target holds a fleet,
 * -EBADMSG when what PostgreSQL holds after the copy differs from sqlite
 * (nothing is kept), another negative errno for a failure of either
 * database. report is filled as far as the migration went; the caller
 * releases it. */
int migrate_run(const char *state_dir, const char *conninfo, MigrateProgress progress, void *userdata,
                MigrateReport *report);

/* Whether where names a PostgreSQL database (a postgresql:// or
 * postgres:// URI, or a libpq key=value string), as store_db_open() reads
 * it, and not a sqlite file. */
bool migrate_is_postgresql(const char *where);
