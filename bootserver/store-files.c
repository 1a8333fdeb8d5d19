/* The host file sets' versions (store-files.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-db.h"
#include "store-files.h"
#include "util.h"

/* The most versions a list or a history hands back: far more than a site
 * keeps, and a bound on what one reply holds. */
#define FILE_SET_ROWS_MAX 100000

void file_set_row_release(FileSetRow *r) {
        if (!r)
                return;
        free(r->name);
        free(r->digest);
        free(r->spec);
        free(r->actor);
        *r = (FileSetRow) {};
}

void file_set_rows_free(FileSetRow *rows, size_t n) {
        for (size_t i = 0; rows && i < n; i++)
                file_set_row_release(&rows[i]);
        free(rows);
}

/* Reads the row st is on: name, seq, digest, spec, actor, created. */
static int row_read(DbStmt *st, FileSetRow *ret) {
        FileSetRow r = {
                .name = db_column_strdup(st, 0),
                .seq = db_column_int64(st, 1),
                .digest = db_column_strdup(st, 2),
                .spec = db_column_strdup(st, 3),
                .actor = db_column_strdup(st, 4),
                .created = db_column_int64(st, 5),
        };

        if (!r.name || !r.digest || !r.actor || (!r.spec && !db_column_is_null(st, 3))) {
                file_set_row_release(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

int store_file_set_get(StoreTx *tx, const char *name, int64_t seq, FileSetRow *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT name, seq, digest, spec, actor, created FROM file_sets WHERE name = ?1 AND"
                       " (seq = ?2 OR (?2 = 0 AND seq = (SELECT max(seq) FROM file_sets WHERE name = ?1)))",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_int64(st, 2, seq);
        r = db_step(st);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        return row_read(st, ret);
}

int store_file_set_put(StoreTx *tx, const char *name, const char *digest, const char *spec, const char *actor,
                       int64_t now, int64_t *ret_seq) {
        _cleanup_(file_set_row_release) FileSetRow last = {};
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int64_t seq = 1;
        int r;

        r = store_file_set_get(tx, name, 0, &last);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r >= 0) {
                if (streq(last.digest, digest) && !!last.spec == !!spec) {
                        if (ret_seq)
                                *ret_seq = last.seq;
                        return 0;
                }
                seq = last.seq + 1;
        }
        r = store_stmt(tx, "INSERT INTO file_sets (name, seq, digest, spec, actor, created) VALUES (?, ?, ?, ?, ?, ?)",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_int64(st, 2, seq);
        db_bind_text(st, 3, digest);
        db_bind_text(st, 4, spec);
        db_bind_text(st, 5, actor);
        db_bind_int64(st, 6, now);
        r = db_step(st);
        if (r < 0)
                return r;
        if (ret_seq)
                *ret_seq = seq;
        return 1;
}

/* Runs st and collects its rows (with_spec: column 3 is the spec). */
static int rows_collect(DbStmt *st, FileSetRow **ret, size_t *ret_n) {
        FileSetRow *rows = NULL;
        size_t n = 0;
        int r;

        while ((r = db_step(st)) > 0) {
                FileSetRow *m;

                if (n >= FILE_SET_ROWS_MAX) {
                        r = -E2BIG;
                        break;
                }
                m = reallocarray(rows, n + 1, sizeof *rows);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                rows = m;
                r = row_read(st, &rows[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r < 0) {
                file_set_rows_free(rows, n);
                return r;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

int store_file_set_list(StoreTx *tx, FileSetRow **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* Each set's newest version; a deletion only while it is held back
         * and hosts still get a live version of the set. */
        r = store_stmt(tx,
                       "SELECT name, seq, digest, spec, actor, created FROM file_sets f WHERE"
                       " seq = (SELECT max(seq) FROM file_sets g WHERE g.name = f.name) AND (spec IS NOT NULL OR"
                       " EXISTS (SELECT 1 FROM file_set_live l JOIN file_sets h ON h.name = l.name AND h.seq = l.seq"
                       " WHERE l.name = f.name AND h.spec IS NOT NULL)) ORDER BY name",
                       &st);
        if (r < 0)
                return r;
        return rows_collect(st, ret, ret_n);
}

int store_file_set_history(StoreTx *tx, const char *name, FileSetRow **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        FileSetRow *rows = NULL;
        size_t n = 0;
        int r;

        /* The spec's place holds whether it was a deletion, not the spec. */
        r = store_stmt(tx,
                       "SELECT name, seq, digest, CASE WHEN spec IS NULL THEN NULL ELSE '' END, actor, created"
                       " FROM file_sets WHERE name = ? ORDER BY seq",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        r = rows_collect(st, &rows, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                free(rows);
                return -ENOENT;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

int store_file_set_live_get(StoreTx *tx, const char *name, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT seq FROM file_set_live WHERE name = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        r = db_step(st);
        if (r <= 0)
                return r;
        *ret = db_column_int64(st, 0);
        return 1;
}

int store_file_set_live_set(StoreTx *tx, const char *name, int64_t seq) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO file_set_live (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET "
                       "seq = excluded.seq",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_int64(st, 2, seq);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_file_set_for_host(StoreTx *tx, const char *host, FileSetRow **ret, size_t *ret_n) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* Every set has a live row (migration 20 and every change make
         * one); the host's pin, when it has one, wins over it. */
        r = store_stmt(tx,
                       "SELECT f.name, f.seq, f.digest, f.spec, f.actor, f.created FROM file_set_live l JOIN "
                       "file_sets f ON f.name = l.name AND f.seq = coalesce((SELECT p.seq FROM file_pins p WHERE "
                       "p.host_id = ?1 AND p.name = l.name), l.seq) WHERE f.spec IS NOT NULL ORDER BY f.name",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        return rows_collect(st, ret, ret_n);
}

int store_file_pin_get(StoreTx *tx, const char *host, const char *name, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT seq FROM file_pins WHERE host_id = ? AND name = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        db_bind_text(st, 2, name);
        r = db_step(st);
        if (r <= 0)
                return r;
        *ret = db_column_int64(st, 0);
        return 1;
}

int store_file_pin_set(StoreTx *tx, const char *host, const char *name, int64_t seq) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO file_pins (host_id, name, seq) VALUES (?1, ?2, ?3) ON CONFLICT (host_id, name) "
                       "DO UPDATE SET seq = excluded.seq",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, host);
        db_bind_text(st, 2, name);
        db_bind_int64(st, 3, seq);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_file_pins_drop(StoreTx *tx, const char *name, int64_t seq) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM file_pins WHERE name = ?1 AND (?2 < 0 OR seq = ?2)", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        db_bind_int64(st, 2, seq);
        r = db_step(st);
        return r < 0 ? r : 0;
}

int store_file_pins_count(StoreTx *tx, const char *name, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT count(*) FROM file_pins WHERE name = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        *ret = db_column_int64(st, 0);
        return 0;
}

int store_file_set_rolling(StoreTx *tx, const char *name, int64_t *ret_id) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT id FROM rollouts r WHERE files = ?1 AND (state IN ('running', 'paused') OR (state "
                       "= 'done' AND EXISTS (SELECT 1 FROM rollout_hosts rh WHERE rh.rollout_id = r.id AND "
                       "rh.status IN ('pending', 'assigned')))) ORDER BY id LIMIT 1",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        r = db_step(st);
        if (r <= 0)
                return r;
        *ret_id = db_column_int64(st, 0);
        return 1;
}
