#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seen.h"
#include "store-hosts.h"
#include "util.h"

typedef struct Seen {
        char id[HOST_ID_MAX];
        uint64_t at;
} Seen;

/* Open addressing on the host ID, at most half full; swapped out whole by a
 * flush, so that a note never waits for the database. */
typedef struct SeenTable {
        Seen *slots;
        size_t n, n_max; /* n_max a power of 2, or 0 */
} SeenTable;

struct SeenLog {
        pthread_mutex_t lock;
        SeenTable t;
};

static size_t slot_of(const SeenTable *t, const char *id) {
        uint64_t h = 1469598103934665603ull; /* FNV-1a */
        size_t i;

        for (const char *p = id; *p; p++)
                h = (h ^ (unsigned char) *p) * 1099511628211ull;
        for (i = h & (t->n_max - 1); t->slots[i].id[0] && !streq(t->slots[i].id, id); i = (i + 1) & (t->n_max - 1))
                ;
        return i;
}

/* Puts id at `at` into t, keeping the later time; t has room. */
static void put(SeenTable *t, const char *id, uint64_t at) {
        Seen *s = &t->slots[slot_of(t, id)];

        if (!s->id[0]) {
                snprintf(s->id, sizeof s->id, "%s", id);
                s->at = at;
                t->n++;
        } else if (at > s->at)
                s->at = at;
}

static int reserve(SeenTable *t, size_t n) {
        SeenTable bigger = {};

        if (2 * n <= t->n_max)
                return 0;
        bigger.n_max = t->n_max ? 2 * t->n_max : 64;
        while (2 * n > bigger.n_max)
                bigger.n_max *= 2;
        bigger.slots = calloc(bigger.n_max, sizeof *bigger.slots);
        if (!bigger.slots)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_max; i++)
                if (t->slots[i].id[0])
                        put(&bigger, t->slots[i].id, t->slots[i].at);
        free(t->slots);
        *t = bigger;
        return 0;
}

SeenLog *seen_log_new(void) {
        SeenLog *l = calloc(1, sizeof *l);

        if (l)
                pthread_mutex_init(&l->lock, NULL);
        return l;
}

SeenLog *seen_log_free(SeenLog *l) {
        if (!l)
                return NULL;
        free(l->t.slots);
        pthread_mutex_destroy(&l->lock);
        free(l);
        return NULL;
}

int seen_log_note(SeenLog *l, const char *id, uint64_t now) {
        int r;

        if (strlen(id) >= HOST_ID_MAX)
                return -EINVAL;
        pthread_mutex_lock(&l->lock);
        r = reserve(&l->t, l->t.n + 1);
        if (r >= 0)
                put(&l->t, id, now);
        pthread_mutex_unlock(&l->lock);
        return r;
}

/* Puts back what a failed flush took, where nothing newer was noted since. */
static void give_back(SeenLog *l, SeenTable *taken) {
        pthread_mutex_lock(&l->lock);
        if (reserve(&l->t, l->t.n + taken->n) >= 0)
                for (size_t i = 0; i < taken->n_max; i++)
                        if (taken->slots[i].id[0])
                                put(&l->t, taken->slots[i].id, taken->slots[i].at);
        pthread_mutex_unlock(&l->lock);
}

int seen_log_flush(SeenLog *l, StoreDb *db) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        SeenTable taken;
        int r;

        pthread_mutex_lock(&l->lock);
        taken = l->t;
        l->t = (SeenTable) {};
        pthread_mutex_unlock(&l->lock);
        if (taken.n == 0) {
                free(taken.slots);
                return 0;
        }
        r = store_tx_begin(db, STORE_TX_RELAXED, &tx);
        for (size_t i = 0; r >= 0 && i < taken.n_max; i++)
                if (taken.slots[i].id[0])
                        r = store_host_seen(tx, taken.slots[i].id, taken.slots[i].at);
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                give_back(l, &taken);
        else
                r = (int) taken.n;
        free(taken.slots);
        return r;
}
