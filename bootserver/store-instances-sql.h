/* SQL of the instances' area of the store (store-instances.c) that the
 * drivers' migrations share: the tables, and the database's clock. */
#pragma once

/* Schema 14 on both databases: the registry of the instances that share
 * the state, and the one row of the coordinator's leader lease. Times are
 * milliseconds since the epoch on the database's clock. holder is the
 * incarnation (a random token per process) that holds the lease, so that
 * a process that took over a name does not inherit its predecessor's
 * lease; instance is its name, for people. */
#define INSTANCES_SCHEMA                                                                                  \
        "CREATE TABLE instances (name TEXT PRIMARY KEY, incarnation TEXT NOT NULL, url TEXT NOT NULL,"    \
        "  version TEXT NOT NULL, pid BIGINT NOT NULL, started BIGINT NOT NULL, heartbeat BIGINT NOT NULL);" \
        "CREATE TABLE coordinator_leader (id INTEGER PRIMARY KEY CHECK (id = 1), instance TEXT, holder TEXT," \
        "  epoch BIGINT NOT NULL, expires BIGINT NOT NULL, since BIGINT NOT NULL);"                       \
        "INSERT INTO coordinator_leader (id, instance, holder, epoch, expires, since) VALUES (1, NULL, NULL, 0, 0, 0);"

/* The database's clock in milliseconds since the epoch, as each reads it
 * when the statement runs: PostgreSQL's clock_timestamp() (not now(), which
 * is when the transaction began, before it waited for the write lock), and
 * sqlite's 'now' (the time of the statement's step). */
#define NOW_MS_PG "(CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT))"
#define NOW_MS_SQLITE "(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))"
