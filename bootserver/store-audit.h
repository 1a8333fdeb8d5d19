/* The audit log in the store: appending an entry and reading entries back.
 * Backend-neutral; store-audit.c implements it. */
#pragma once

#include <stdint.h>
#include <stddef.h>

#include "store.h"

typedef struct AuditEntry {
        int64_t id;
        int64_t time;
        char *actor;
        char *action;
        char *target; /* may be NULL */
        char *detail; /* compact JSON text, may be NULL */
} AuditEntry;

/* Frees the entries and their strings (n of them); NULL is fine. */
void audit_entries_free(AuditEntry *e, size_t n);

/* Appends an entry in tx. detail is JSON text or NULL. */
int store_audit_append(StoreTx *tx, int64_t time, const char *actor, const char *action, const char *target,
                       const char *detail);

typedef struct AuditQuery {
        uint64_t since;     /* entries with an id above this */
        uint64_t limit;     /* at most this many, the oldest first */
        uint64_t last;      /* when not 0: the newest this many instead */
        const char *action; /* NULL, an action, or a prefix before '.' */
        const char *target; /* NULL, or the one target */
} AuditQuery;

/* The entries q selects, oldest first; the caller frees them with
 * audit_entries_free(). */
int store_audit_list(StoreTx *tx, const AuditQuery *q, AuditEntry **ret, size_t *ret_n);
