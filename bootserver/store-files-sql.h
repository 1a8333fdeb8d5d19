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
