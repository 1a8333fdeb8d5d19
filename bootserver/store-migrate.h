/* The store's part of `slipwayd migrate` (migrate.h): a sqlite state copied
 * table by table into a PostgreSQL database through the statement API, and
 * both sides counted and checksummed after. Generic over the schema: the
 * tables and their columns are read from sqlite's catalog, so that a table
 * a later migration adds is copied too; PostgreSQL must have each of them
 * (its schema comes from the same migrations, store-pg-schema.c).
 *
 * A StoreCopy holds the SQL it builds for these tables. The drivers keep a
 * prepared statement per SQL text, found by its address, for the life of
 * the connection: free the StoreCopy only after both databases. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "store.h"

typedef struct StoreCopy StoreCopy;

/* One table's figures, on one side. */
typedef struct StoreCopyTable {
        char name[64];
        uint64_t rows;
        char sha256[65]; /* the rows' checksum, independent of their order */
} StoreCopyTable;

/* Called as a table's copy goes on: rows copied so far (done: the table is
 * complete). */
typedef void (*StoreCopyProgress)(const char *table, uint64_t rows, bool done, void *userdata);

/* Reads the tables of the sqlite state in src (a read transaction) and
 * finds each with its columns in the PostgreSQL database of dst (a write
 * transaction). -ENOENT when PostgreSQL lacks a table or a column, -EINVAL
 * for a table or column name that is not a plain identifier; ret_what
 * (caller frees, may be NULL) names it. On success the caller frees *ret
 * with store_copy_free(), after both databases. */
int store_copy_plan(StoreTx *src, StoreTx *dst, StoreCopy **ret, char **ret_what);
StoreCopy *store_copy_free(StoreCopy *c);
static inline void store_copy_freep(StoreCopy **c) {
        store_copy_free(*c);
}
#define _cleanup_store_copy_free_ _cleanup_(store_copy_freep)

/* The tables of the plan, in the order they are copied (a table after the
 * ones it refers to). */
size_t store_copy_n_tables(const StoreCopy *c);
const char *store_copy_table(const StoreCopy *c, size_t i);

/* Inside dst: whether the database holds a fleet already. 0 when every
 * table of the plan is empty, but for the counters a new schema starts with
 * at zero (meta); -ENOTEMPTY when not, *ret_table (owned by c) naming the
 * first table that has rows. */
int store_copy_check_empty(StoreCopy *c, StoreTx *dst, const char **ret_table);

/* Copies every table of the plan from src into dst, in dst's one
 * transaction: the tables emptied first (a new schema's counters), the
 * triggers of the tables off during the copy (the rows they would derive
 * are copied as they are) and on again, each identity column's sequence
 * set past the copied values and past any sqlite handed out. ret (an array
 * of store_copy_n_tables() entries) gets each table's rows and checksum as
 * read from src. */
int store_copy_run(StoreCopy *c, StoreTx *src, StoreTx *dst, StoreCopyProgress progress, void *userdata,
                   StoreCopyTable *ret);

/* Counts and checksums every table of the plan in tx (either side), into
 * ret (an array of store_copy_n_tables() entries). */
int store_copy_sum(StoreCopy *c, StoreTx *tx, StoreCopyTable *ret);
