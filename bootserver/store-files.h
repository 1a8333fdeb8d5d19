/* The store of host file sets (migration 19): every version of every set,
 * kept for ever. Backend-neutral; store-files.c implements it. The spec is
 * the set's canonical JSON text (filesets.h makes and reads it); the store
 * does not look inside. Strings handed back are the caller's to free. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct FileSetRow {
        char *name;
        int64_t seq;  /* 1, 2, ... within the set */
        char *digest; /* SHA-256 of spec, hex */
        char *spec;   /* NULL: the set was deleted in this version */
        char *actor;
        int64_t created;
} FileSetRow;

void file_set_row_release(FileSetRow *r);
/* Frees n rows and the array; NULL is fine. */
void file_set_rows_free(FileSetRow *rows, size_t n);

/* Adds a version of set name (spec NULL: a deletion) after the newest.
 * Returns 1 and its seq in *ret_seq (may be NULL) when one was added, 0
 * and the newest's seq when the newest has this digest already (nothing
 * changes). */
int store_file_set_put(StoreTx *tx, const char *name, const char *digest, const char *spec, const char *actor,
                       int64_t now, int64_t *ret_seq);
/* Version seq of set name, or its newest when seq is 0: -ENOENT when there
 * is no such version. The newest of a deleted set is found (spec NULL). */
int store_file_set_get(StoreTx *tx, const char *name, int64_t seq, FileSetRow *ret);
/* The newest version of every set that is not deleted, by name. */
int store_file_set_list(StoreTx *tx, FileSetRow **ret, size_t *ret_n);
/* Every version of set name, oldest first, without their specs; -ENOENT
 * when it never existed. */
int store_file_set_history(StoreTx *tx, const char *name, FileSetRow **ret, size_t *ret_n);

/* The live version of set name (the one a host without a pin gets; 0 for
 * none) into *ret: 1, or 0 when the set has no live row (it never
 * existed). */
int store_file_set_live_get(StoreTx *tx, const char *name, int64_t *ret);
/* Sets the live version of set name to seq (0: none). */
int store_file_set_live_set(StoreTx *tx, const char *name, int64_t seq);
/* The version of every set that host gets: its pin, or else the set's
 * live version; those that hold files (not none, not a deletion), by
 * name, as store_file_set_list(). */
int store_file_set_for_host(StoreTx *tx, const char *host, FileSetRow **ret, size_t *ret_n);
/* The pin of host for set name into *ret: 1, or 0 when it has none. */
int store_file_pin_get(StoreTx *tx, const char *host, const char *name, int64_t *ret);
/* Pins host to version seq of set name (0: none of the set). */
int store_file_pin_set(StoreTx *tx, const char *host, const char *name, int64_t seq);
/* Drops the pins of set name: all of them when seq is negative, else those
 * at version seq. */
int store_file_pins_drop(StoreTx *tx, const char *name, int64_t seq);
/* How many hosts are pinned to set name (for the list). */
int store_file_pins_count(StoreTx *tx, const char *name, int64_t *ret);
/* The rollout that moves set name and is not over (running, paused, or
 * done with hosts still on their way): 1 with *ret_id, 0 when none. */
int store_file_set_rolling(StoreTx *tx, const char *name, int64_t *ret_id);
