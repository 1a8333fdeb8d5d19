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
