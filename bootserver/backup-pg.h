/* The PostgreSQL side of a backup and a restore (backup.c does the rest:
 * the directory, the manifest, the blobs): PostgreSQL's own tools, pg_dump
 * (custom format) and pg_restore, found in PATH or in `pg_config --bindir`
 * and refused when their major version is older than the server's. Only
 * backup.c includes this header. */
#pragma once

#include <stdint.h>

#include "store-backup.h"

/* The backup's dump of the database, DIR/state.pgdump. */
#define BACKUP_PG_DUMP "state.pgdump"

/* Dumps the database conninfo names into path as one consistent state, the
 * one ret_info describes (read in the snapshot pg_dump dumps). ret_server
 * and ret_tool (65 bytes each) get the versions of the server and of
 * pg_dump. Logs what failed: -EPROTO for a pg_dump older than the server,
 * -ENOENT when there is none, -EIO when it failed. On success the caller
 * releases ret_info. */
int backup_pg_dump(const char *conninfo, const char *path, StoreSnapshotInfo *ret_info, StoreSnapshotStats *ret_stats,
                   char ret_server[65], char ret_tool[65]);

/* Before a restore into conninfo: -EBUSY when other clients are connected
 * to the database (a slipwayd on another machine), else the lease epoch
 * counter it holds now in *ret_epoch (0 for a new database). Logs what
 * failed. */
int backup_pg_restore_check(const char *conninfo, uint64_t *ret_epoch);

/* Restores the dump at path into conninfo with pg_restore: the dump's
 * objects dropped and made again from it, in one transaction, so that a
 * failure leaves the database as it was. Logs what failed. */
int backup_pg_restore(const char *conninfo, const char *path);
