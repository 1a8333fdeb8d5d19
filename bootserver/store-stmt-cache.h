/* The prepared statements a database connection keeps (both drivers'),
 * found by their SQL text: a text made again in a buffer of the caller's
 * finds its own statement, whatever was in the buffer before. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct StmtCacheEntry {
        char *sql; /* a copy of the text, the key */
        uint64_t hash;
        void *st; /* the driver's statement; NULL in an empty slot */
} StmtCacheEntry;

typedef struct StmtCache {
        StmtCacheEntry *slots; /* open addressing, n_max slots (a power of 2), at most half full */
        size_t n, n_max;
} StmtCache;

/* The statement kept for sql, or NULL. */
void *stmt_cache_get(const StmtCache *c, const char *sql);

/* Keeps st for sql, which has none yet; the text is copied. Returns the
 * copy (valid as long as c; a statement may keep it to name itself), or
 * NULL when out of memory (st not kept). */
const char *stmt_cache_put(StmtCache *c, const char *sql, void *st);

/* Frees c's table and texts, the statements left to the caller (who goes
 * through c->slots first); c is empty after. */
void stmt_cache_release(StmtCache *c);
