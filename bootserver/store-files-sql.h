/* Migration 19 on both drivers: the host file sets (store-files.c). Each
 * change of a set is a new row, never changed afterwards: its number in
 * the set (seq, from 1), the SHA-256 of its canonical JSON (digest) and
 * that JSON (spec: the selector and the files). A set's current version
 * is its highest seq; a deleted set is a version whose spec is null. */
#pragma once

#define FILE_SETS_SQLITE                                                                             \
        "CREATE TABLE file_sets (name TEXT NOT NULL, seq INTEGER NOT NULL, digest TEXT NOT NULL,"    \
        "  spec TEXT, actor TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (name, seq));"

#define FILE_SETS_PG                                                                                 \
        "CREATE TABLE file_sets (name TEXT COLLATE \"C\" NOT NULL, seq BIGINT NOT NULL,"             \
        "  digest TEXT COLLATE \"C\" NOT NULL, spec TEXT COLLATE \"C\", actor TEXT COLLATE \"C\" NOT NULL," \
        "  created BIGINT NOT NULL, PRIMARY KEY (name, seq));"

/* Migration 20 on both drivers: file sets rolled out in waves
 * (docs/host-files.md, "Rollouts"). file_set_live: the version of each set
 * that a host without a pin gets (0: none of it); a change made without a
 * rollout moves it, one held back does not. file_pins: the version of a
 * set one host gets instead, moved by the rollouts. A rollout that moves a
 * set names it and the version it goes to (and came from); each of its
 * hosts the version it goes to and came from, and the files digest it is
 * to report once assigned. */
#define FILE_PINS_SQLITE                                                                             \
        "CREATE TABLE file_set_live (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);"                  \
        "INSERT INTO file_set_live (name, seq) SELECT name, max(seq) FROM file_sets GROUP BY name;"  \
        "CREATE TABLE file_pins (host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,"      \
        "  name TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (host_id, name));"                  \
        "CREATE INDEX file_pins_name ON file_pins(name);"                                            \
        "ALTER TABLE rollouts ADD COLUMN files TEXT;"                                                \
        "ALTER TABLE rollouts ADD COLUMN files_seq INTEGER;"                                         \
        "ALTER TABLE rollouts ADD COLUMN files_from INTEGER;"                                        \
        "ALTER TABLE rollout_hosts ADD COLUMN files_seq INTEGER;"                                    \
        "ALTER TABLE rollout_hosts ADD COLUMN files_prev INTEGER;"                                   \
        "ALTER TABLE rollout_hosts ADD COLUMN files_digest TEXT;"

#define FILE_PINS_PG                                                                                 \
        "CREATE TABLE file_set_live (name TEXT COLLATE \"C\" PRIMARY KEY, seq BIGINT NOT NULL);"     \
        "INSERT INTO file_set_live (name, seq) SELECT name, max(seq) FROM file_sets GROUP BY name;"  \
        "CREATE TABLE file_pins (host_id TEXT COLLATE \"C\" NOT NULL REFERENCES hosts(id) ON DELETE CASCADE," \
        "  name TEXT COLLATE \"C\" NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (host_id, name));"     \
        "CREATE INDEX file_pins_name ON file_pins(name);"                                            \
        "ALTER TABLE rollouts ADD COLUMN files TEXT COLLATE \"C\";"                                  \
        "ALTER TABLE rollouts ADD COLUMN files_seq BIGINT;"                                          \
        "ALTER TABLE rollouts ADD COLUMN files_from BIGINT;"                                         \
        "ALTER TABLE rollout_hosts ADD COLUMN files_seq BIGINT;"                                     \
        "ALTER TABLE rollout_hosts ADD COLUMN files_prev BIGINT;"                                    \
        "ALTER TABLE rollout_hosts ADD COLUMN files_digest TEXT COLLATE \"C\";"
