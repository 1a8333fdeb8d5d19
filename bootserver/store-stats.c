/* Fleet counts (store-stats.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-db.h"
#include "store-stats.h"
#include "util.h"

static void counts_free(StatsCount *l, size_t n) {
        for (size_t k = 0; l && k < n; k++)
                free(l[k].key);
        free(l);
}

void fleet_stats_release(FleetStats *s) {
        if (!s)
                return;
        counts_free(s->by_state, s->n_by_state);
        counts_free(s->by_version, s->n_by_version);
        *s = (FleetStats) {};
}

/* The rows (key, n) of sql. */
static int group(StoreTx *tx, const char *sql, StatsCount **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        StatsCount *l = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r < 0)
                return r;
        while ((r = db_step(st)) > 0) {
                StatsCount *t = ARRAY_PUSH(l, n, cap);
                const char *v = db_column_text(st, 0);
                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                *t = (StatsCount) { .key = strdup(v ? v : ""), .n = db_column_int64(st, 1) };
                if (!t->key) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                counts_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

/* The one number sql selects. */
static int count(StoreTx *tx, const char *sql, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r >= 0)
                r = db_step(st);
        if (r == 0)
                r = -EIO;
        if (r < 0)
                return r;
        *ret = db_column_int64(st, 0);
        return 0;
}

int store_stats_read(StoreTx *tx, bool groups, FleetStats *ret) {
        FleetStats s = {};
        int r = 0;

        if (groups) {
                r = group(tx, "SELECT state, count(*) FROM hosts GROUP BY state ORDER BY state", &s.by_state,
                          &s.n_by_state);
                if (r >= 0)
                        r = group(tx, "SELECT coalesce(version, ''), count(*) FROM hosts GROUP BY 1 ORDER BY 1",
                                  &s.by_version, &s.n_by_version);
                if (r >= 0)
                        r = count(tx, "SELECT coalesce(sum(size), 0) FROM blobs", &s.blob_bytes);
        }
        if (r >= 0)
                r = count(tx, "SELECT count(*) FROM images", &s.images);
        if (r >= 0)
                r = count(tx, "SELECT count(*) FROM hosts", &s.hosts);
        if (r < 0) {
                fleet_stats_release(&s);
                return r;
        }
        *ret = s;
        return 0;
}
