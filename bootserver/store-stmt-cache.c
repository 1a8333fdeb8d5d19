/* The statement cache of a connection (store-stmt-cache.h). */
#include <stdlib.h>
#include <string.h>

#include "store-stmt-cache.h"
#include "util.h"

/* FNV-1a: the texts are short, and one is hashed per statement taken. */
static uint64_t text_hash(const char *s) {
        uint64_t h = 0xcbf29ce484222325ull;

        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 0x100000001b3ull;
        return h;
}

/* The slot of sql in slots (n_max of them), or the empty one where it
 * would go. */
static size_t slot_of(const StmtCacheEntry *slots, size_t n_max, const char *sql, uint64_t hash) {
        size_t i = hash & (n_max - 1);

        while (slots[i].st && (slots[i].hash != hash || !streq(slots[i].sql, sql)))
                i = (i + 1) & (n_max - 1);
        return i;
}

void *stmt_cache_get(const StmtCache *c, const char *sql) {
        if (c->n == 0)
                return NULL;
        return c->slots[slot_of(c->slots, c->n_max, sql, text_hash(sql))].st;
}

static int grow(StmtCache *c) {
        size_t n_max = c->n_max ? 2 * c->n_max : 64;
        StmtCacheEntry *slots = calloc(n_max, sizeof *slots);

        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_max; i++)
                if (c->slots[i].st)
                        slots[slot_of(slots, n_max, c->slots[i].sql, c->slots[i].hash)] = c->slots[i];
        free(c->slots);
        c->slots = slots;
        c->n_max = n_max;
        return 0;
}

const char *stmt_cache_put(StmtCache *c, const char *sql, void *st) {
        uint64_t hash = text_hash(sql);
        char *copy;
        size_t i;

        /* At most half full, so a probe always ends. */
        if (2 * (c->n + 1) > c->n_max && grow(c) < 0)
                return NULL;
        copy = strdup(sql);
        if (!copy)
                return NULL;
        i = slot_of(c->slots, c->n_max, sql, hash);
        c->slots[i] = (StmtCacheEntry) { .sql = copy, .hash = hash, .st = st };
        c->n++;
        return copy;
}

void stmt_cache_release(StmtCache *c) {
        for (size_t i = 0; i < c->n_max; i++)
                free(c->slots[i].sql);
        free(c->slots);
        *c = (StmtCache) {};
}
