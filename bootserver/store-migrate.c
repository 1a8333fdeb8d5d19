/* The store's part of `slipwayd migrate` (store-migrate.h). The catalog
 * queries are each database's own (sqlite's pragma functions, PostgreSQL's
 * pg_attribute); the copy and the checksums run the same SQL on both. The
 * SQL of a table is built once, from names checked to be plain
 * identifiers, and kept in the StoreCopy for the drivers' statement
 * caches. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "store-db.h"
#include "store-migrate.h"
#include "util.h"

/* Rows per INSERT, under the drivers' limit of 999 parameters. */
#define BATCH_ROWS 100
#define BATCH_PARAMS 900
/* How often a long table reports its progress. */
#define PROGRESS_ROWS 20000

/* The tables a new schema fills (with counters at zero): they may hold
 * those rows in an empty target, and are emptied before the copy. */
static const char *const seeded_tables[] = { "meta" };

/* The tables of the instances that run on a state, not of the fleet: who
 * runs, who leads, who holds which blob file. They are not copied; an
 * instance started on the copy records itself, and claims the blobs of its
 * state directory (replicator.c). */
static const char *const instance_tables[] = { "instances", "coordinator_leader", "blob_holders" };

static bool instance_table(const char *table) {
        for (size_t i = 0; i < ELEMENTSOF(instance_tables); i++)
                if (streq(instance_tables[i], table))
                        return true;
        return false;
}

typedef struct CopyTable {
        char *name;
        char **columns;  /* sqlite's, in its order */
        char **types;    /* PostgreSQL's type of each */
        char **identity; /* PostgreSQL's identity columns */
        char **refs;     /* the tables it refers to */
        size_t batch;    /* rows in insert_sql */
        char *select_sql, *count_sql, *delete_sql, *insert_sql, *insert_one_sql;
        char *disable_sql, *enable_sql, *seeded_sql, *sequence_sql;
        char **setval_sql; /* one per identity column */
} CopyTable;

struct StoreCopy {
        CopyTable *tables; /* in the order of the copy */
        size_t n_tables;
        bool sqlite_sequence; /* sqlite has its AUTOINCREMENT counters */
};

static void copy_table_release(CopyTable *t) {
        free(t->name);
        strv_free(t->columns);
        strv_free(t->types);
        strv_free(t->identity);
        strv_free(t->refs);
        free(t->select_sql);
        free(t->count_sql);
        free(t->delete_sql);
        free(t->insert_sql);
        free(t->insert_one_sql);
        free(t->disable_sql);
        free(t->enable_sql);
        free(t->seeded_sql);
        free(t->sequence_sql);
        strv_free(t->setval_sql);
}

StoreCopy *store_copy_free(StoreCopy *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_tables; i++)
                copy_table_release(&c->tables[i]);
        free(c->tables);
        free(c);
        return NULL;
}

size_t store_copy_n_tables(const StoreCopy *c) {
        return c->n_tables;
}

const char *store_copy_table(const StoreCopy *c, size_t i) {
        return i < c->n_tables ? c->tables[i].name : NULL;
}

/* A name that goes into SQL as it is: lowercase letters, digits, '_'. */
static bool identifier_ok(const char *s) {
        if (!s || !s[0] || strlen(s) > 63 || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return true;
}

/* Text grown by pieces; NULL once an allocation failed. */
typedef struct Text {
        char *s;
        size_t n, cap;
        bool failed;
} Text;

static void text_add(Text *t, const char *piece) {
        size_t k = strlen(piece);

        if (t->failed)
                return;
        if (t->n + k + 1 > t->cap) {
                size_t cap = MAX(2 * t->cap, t->n + k + 1);
                char *s = realloc(t->s, MAX(cap, (size_t) 256));

                if (!s) {
                        t->failed = true;
                        return;
                }
                t->s = s;
                t->cap = MAX(cap, (size_t) 256);
        }
        memcpy(t->s + t->n, piece, k + 1);
        t->n += k;
}

/* The text (caller frees), NULL when an allocation failed. */
static char *text_take(Text *t) {
        if (t->failed) {
                free(t->s);
                return NULL;
        }
        return t->s ?: strdup("");
}

static char *column_list(char **columns) {
        Text t = {};

        for (size_t i = 0; columns[i]; i++) {
                if (i > 0)
                        text_add(&t, ", ");
                text_add(&t, columns[i]);
        }
        return text_take(&t);
}

/* INSERT INTO t (columns) [OVERRIDING SYSTEM VALUE] VALUES (CAST(?1 AS
 * type), ...), ... for rows rows: each value comes as text and becomes the
 * column's type in PostgreSQL. */
static char *insert_sql(const CopyTable *t, const char *list, size_t rows) {
        size_t n = strv_length(t->columns), p = 0;
        Text s = {};
        char num[32];

        text_add(&s, "INSERT INTO ");
        text_add(&s, t->name);
        text_add(&s, " (");
        text_add(&s, list);
        text_add(&s, strv_length(t->identity) > 0 ? ") OVERRIDING SYSTEM VALUE VALUES " : ") VALUES ");
        for (size_t r = 0; r < rows; r++) {
                text_add(&s, r > 0 ? ", (" : "(");
                for (size_t i = 0; i < n; i++) {
                        snprintf(num, sizeof num, "%sCAST(?%zu AS ", i > 0 ? ", " : "", ++p);
                        text_add(&s, num);
                        text_add(&s, t->types[i]);
                        text_add(&s, ")");
                }
                text_add(&s, ")");
        }
        return text_take(&s);
}

/* The strings of a one-column query with text parameter 1 bound to arg
 * (NULL: none). */
static int query_strv(StoreTx *tx, const char *sql, const char *arg, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        r = store_stmt(tx, sql, &st);
        if (r < 0)
                return r;
        if (arg)
                db_bind_text(st, 1, arg);
        while ((r = db_step(st)) > 0)
                if (strv_extend(&l, strempty(db_column_text(st, 0))) < 0)
                        return -ENOMEM;
        if (r < 0)
                return r;
        if (!l && !(l = calloc(1, sizeof *l)))
                return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

/* PostgreSQL's columns of t: the type of each of sqlite's, and the
 * identity ones. -ENOENT (*ret_what: the table or table.column) when one
 * is missing. */
static int pg_columns(StoreTx *dst, CopyTable *t, char **ret_what) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_strv_free_ char **names = NULL, **types = NULL;
        size_t n = strv_length(t->columns);
        int r;

        r = store_stmt(dst,
                       "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attidentity <> '' "
                       "FROM pg_attribute a WHERE a.attrelid = to_regclass(CAST(?1 AS text)) AND a.attnum > 0 "
                       "AND NOT a.attisdropped ORDER BY a.attnum",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, t->name);
        while ((r = db_step(st)) > 0) {
                const char *name = strempty(db_column_text(st, 0));

                if (strv_extend(&names, name) < 0 || strv_extend(&types, strempty(db_column_text(st, 1))) < 0)
                        return -ENOMEM;
                if (db_column_bool(st, 2) && strv_extend(&t->identity, name) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        if (!names) {
                *ret_what = strdup(t->name);
                return -ENOENT;
        }
        t->types = calloc(n + 1, sizeof *t->types);
        if (!t->types)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t k = 0;

                while (names[k] && !streq(names[k], t->columns[i]))
                        k++;
                if (!names[k]) {
                        *ret_what = strdup_printf("%s.%s", t->name, t->columns[i]);
                        return -ENOENT;
                }
                t->types[i] = strdup(types[k]);
                if (!t->types[i])
                        return -ENOMEM;
        }
        return 0;
}

static bool seeded(const char *table) {
        for (size_t i = 0; i < ELEMENTSOF(seeded_tables); i++)
                if (streq(seeded_tables[i], table))
                        return true;
        return false;
}

/* The SQL of t, once its columns are known. */
static int table_sql(CopyTable *t, bool sqlite_sequence) {
        _cleanup_free_ char *list = column_list(t->columns);
        size_t n = strv_length(t->columns);

        if (!list)
                return -ENOMEM;
        t->batch = MAX((size_t) 1, MIN((size_t) BATCH_ROWS, BATCH_PARAMS / MAX(n, (size_t) 1)));
        t->select_sql = strdup_printf("SELECT %s FROM %s", list, t->name);
        t->count_sql = strdup_printf("SELECT count(*) FROM %s", t->name);
        t->delete_sql = strdup_printf("DELETE FROM %s", t->name);
        t->disable_sql = strdup_printf("ALTER TABLE %s DISABLE TRIGGER USER", t->name);
        t->enable_sql = strdup_printf("ALTER TABLE %s ENABLE TRIGGER USER", t->name);
        /* A seeded table's rows are counters, in its column value. */
        t->seeded_sql = seeded(t->name) ? strdup_printf("SELECT count(*) FROM %s WHERE value <> 0", t->name) : NULL;
        t->sequence_sql = sqlite_sequence ? strdup("SELECT seq FROM sqlite_sequence WHERE name = ?1") : NULL;
        t->insert_sql = insert_sql(t, list, t->batch);
        t->insert_one_sql = insert_sql(t, list, 1);
        if (!t->select_sql || !t->count_sql || !t->delete_sql || !t->disable_sql || !t->enable_sql ||
            (seeded(t->name) && !t->seeded_sql) || (sqlite_sequence && !t->sequence_sql) || !t->insert_sql ||
            !t->insert_one_sql)
                return -ENOMEM;
        /* Past the copied values and anything sqlite handed out (?1, its
         * AUTOINCREMENT counter): the next value is one above both. */
        for (size_t i = 0; t->identity && t->identity[i]; i++)
                if (strv_consume(&t->setval_sql,
                                 strdup_printf("SELECT setval(pg_get_serial_sequence('%s', '%s'), "
                                               "GREATEST(coalesce(max(%s), 0), ?1, 1), "
                                               "GREATEST(coalesce(max(%s), 0), ?1) > 0) FROM %s",
                                               t->name, t->identity[i], t->identity[i], t->identity[i], t->name)) < 0)
                        return -ENOMEM;
        return 0;
}

/* Orders tables so that each comes after the ones it refers to (names
 * first, for a stable order among the rest). -ELOOP on a cycle. */
static int order_tables(CopyTable *tables, size_t n) {
        _cleanup_free_ CopyTable *out = calloc(n, sizeof *out);
        _cleanup_free_ bool *placed = calloc(n, sizeof *placed);
        size_t done = 0;

        if (!out || !placed)
                return -ENOMEM;
        while (done < n) {
                bool moved = false;

                for (size_t i = 0; i < n; i++) {
                        bool ready = !placed[i];

                        for (size_t k = 0; ready && tables[i].refs[k]; k++)
                                for (size_t j = 0; j < n; j++)
                                        if (j != i && !placed[j] && streq(tables[j].name, tables[i].refs[k]))
                                                ready = false;
                        if (ready) {
                                /* Placed at once: a table after it may refer to it. */
                                out[done++] = tables[i];
                                placed[i] = moved = true;
                        }
                }
                if (!moved)
                        return -ELOOP;
        }
        memcpy(tables, out, n * sizeof *out);
        return 0;
}

int store_copy_plan(StoreTx *src, StoreTx *dst, StoreCopy **ret, char **ret_what) {
        _cleanup_store_copy_free_ StoreCopy *c = calloc(1, sizeof *c);
        _cleanup_strv_free_ char **names = NULL, **seq = NULL;
        _cleanup_free_ char *what = NULL;
        int r;

        if (!c)
                return -ENOMEM;
        if (store_tx_postgresql(src) || !store_tx_postgresql(dst))
                return -EINVAL;
        r = query_strv(src,
                       "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' "
                       "ORDER BY name",
                       NULL, &names);
        if (r >= 0)
                r = query_strv(src, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'",
                               NULL, &seq);
        if (r < 0)
                return r;
        c->sqlite_sequence = strv_length(seq) > 0;
        c->tables = calloc(strv_length(names) + 1, sizeof *c->tables);
        if (!c->tables)
                return -ENOMEM;
        for (size_t i = 0; names[i]; i++) {
                if (instance_table(names[i]))
                        continue;
                CopyTable *t = &c->tables[c->n_tables++];

                t->name = strdup(names[i]);
                if (!t->name)
                        return -ENOMEM;
                r = query_strv(src, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", t->name, &t->columns);
                if (r >= 0)
                        r = query_strv(src, "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)", t->name,
                                       &t->refs);
                if (r < 0)
                        return r;
                if (!identifier_ok(t->name)) {
                        what = strdup(t->name);
                        r = -EINVAL;
                }
                for (size_t k = 0; r >= 0 && t->columns[k]; k++)
                        if (!identifier_ok(t->columns[k])) {
                                what = strdup_printf("%s.%s", t->name, t->columns[k]);
                                r = -EINVAL;
                        }
                if (r >= 0)
                        r = pg_columns(dst, t, &what);
                if (r >= 0)
                        r = table_sql(t, c->sqlite_sequence);
                if (r < 0) {
                        if (ret_what)
                                *ret_what = TAKE_PTR(what);
                        return r;
                }
        }
        r = order_tables(c->tables, c->n_tables);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* The integer of a one-row query. */
static int query_int64(StoreTx *tx, const char *sql, int64_t *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r = store_stmt(tx, sql, &st);

        if (r >= 0)
                r = db_step(st);
        if (r < 0)
                return r;
        *ret = r > 0 ? db_column_int64(st, 0) : 0;
        return 0;
}

int store_copy_check_empty(StoreCopy *c, StoreTx *dst, const char **ret_table) {
        for (size_t i = 0; i < c->n_tables; i++) {
                CopyTable *t = &c->tables[i];
                int64_t n = 0;
                int r = query_int64(dst, t->seeded_sql ?: t->count_sql, &n);

                if (r < 0)
                        return r;
                if (n > 0) {
                        *ret_table = t->name;
                        return -ENOTEMPTY;
                }
        }
        return 0;
}

static int exec(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r = store_stmt(tx, sql, &st);

        while (r >= 0 && (r = db_step(st)) > 0)
                ;
        return r;
}

/* A checksum of rows in any order: the sum of the rows' SHA-256 digests,
 * as four 64-bit words each summed on its own. */
typedef struct RowSum {
        uint64_t word[4];
        uint64_t rows;
        Text row;
} RowSum;

/* Adds the current row of st (n columns) to s: each value as its length
 * and text, NULL apart from every text. */
static int row_sum_add(RowSum *s, DbStmt *st, size_t n) {
        char hex[SHA256_HEX_SIZE], len[32];

        s->row.n = 0;
        if (s->row.s)
                s->row.s[0] = 0;
        for (size_t i = 0; i < n; i++) {
                const char *v = db_column_is_null(st, (int) i) ? NULL : strempty(db_column_text(st, (int) i));

                snprintf(len, sizeof len, v ? "%zu:" : "-:", v ? strlen(v) : (size_t) 0);
                text_add(&s->row, len);
                if (v)
                        text_add(&s->row, v);
        }
        if (s->row.failed)
                return -ENOMEM;
        sha256_buffer_hex(s->row.s ?: "", s->row.n, hex);
        for (size_t w = 0; w < 4; w++) {
                char part[17];

                memcpy(part, hex + 16 * w, 16);
                part[16] = 0;
                s->word[w] += strtoull(part, NULL, 16);
        }
        s->rows++;
        return 0;
}

static void row_sum_finish(RowSum *s, StoreCopyTable *ret) {
        *ret = (StoreCopyTable) {};
        snprintf(ret->sha256, sizeof ret->sha256, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                 s->word[0], s->word[1], s->word[2], s->word[3]);
        ret->rows = s->rows;
        free(s->row.s);
        *s = (RowSum) {};
}

static void values_clear(char **v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(v[i]);
                v[i] = NULL;
        }
}

/* Binds rows rows of n values each from v to st (NULL: SQL NULL), runs
 * it, and clears v. */
static int insert_values(DbStmt *st, char **v, size_t n, size_t rows) {
        int r;

        for (size_t i = 0; i < n * rows; i++)
                db_bind_text(st, (int) (i + 1), v[i]);
        r = db_step(st);
        db_reset(st);
        values_clear(v, n * rows);
        return r;
}

/* Copies the rows of t, BATCH rows to an INSERT and the last ones one by
 * one. The values are copied out of sqlite's row, which the next step
 * ends, and kept until their INSERT has run. */
static int copy_rows(CopyTable *t, StoreTx *src, StoreTx *dst, StoreCopyProgress progress, void *userdata,
                     StoreCopyTable *ret) {
        _cleanup_stmt_reset_ DbStmt *sel = NULL, *batch = NULL, *one = NULL;
        size_t n = strv_length(t->columns), in_batch = 0;
        char **v = calloc(n * t->batch, sizeof *v);
        RowSum sum = {};
        int r = v ? 0 : -ENOMEM;

        if (r >= 0)
                r = store_stmt(src, t->select_sql, &sel);
        if (r >= 0)
                r = store_stmt(dst, t->insert_sql, &batch);
        if (r >= 0)
                r = store_stmt(dst, t->insert_one_sql, &one);
        while (r >= 0 && (r = db_step(sel)) > 0) {
                r = row_sum_add(&sum, sel, n);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        if (!db_column_is_null(sel, (int) i) &&
                            !(v[in_batch * n + i] = strdup(strempty(db_column_text(sel, (int) i)))))
                                r = -ENOMEM;
                if (r < 0 || ++in_batch < t->batch)
                        continue;
                r = insert_values(batch, v, n, t->batch);
                in_batch = 0;
                if (progress && sum.rows % PROGRESS_ROWS < t->batch)
                        progress(t->name, sum.rows, false, userdata);
        }
        for (size_t k = 0; r >= 0 && k < in_batch; k++)
                r = insert_values(one, v + k * n, n, 1);
        if (v)
                values_clear(v, n * t->batch);
        free(v);
        if (r < 0) {
                free(sum.row.s);
                return r;
        }
        row_sum_finish(&sum, ret);
        snprintf(ret->name, sizeof ret->name, "%s", t->name);
        if (progress)
                progress(t->name, ret->rows, true, userdata);
        return 0;
}

/* t's identity sequences past what was copied and what sqlite's
 * AUTOINCREMENT counter for t handed out. */
static int set_sequences(CopyTable *t, StoreTx *src, StoreTx *dst) {
        int64_t handed = 0;
        int r;

        if (!t->setval_sql)
                return 0;
        if (t->sequence_sql) {
                _cleanup_stmt_reset_ DbStmt *st = NULL;

                r = store_stmt(src, t->sequence_sql, &st);
                if (r >= 0) {
                        db_bind_text(st, 1, t->name);
                        r = db_step(st);
                }
                if (r < 0)
                        return r;
                handed = r > 0 ? db_column_int64(st, 0) : 0;
        }
        for (size_t i = 0; t->setval_sql[i]; i++) {
                _cleanup_stmt_reset_ DbStmt *st = NULL;

                r = store_stmt(dst, t->setval_sql[i], &st);
                if (r >= 0) {
                        db_bind_int64(st, 1, handed);
                        r = db_step(st);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

int store_copy_run(StoreCopy *c, StoreTx *src, StoreTx *dst, StoreCopyProgress progress, void *userdata,
                   StoreCopyTable *ret) {
        int r = 0;

        /* Children first, so that no delete reaches a copied row. */
        for (size_t i = c->n_tables; r >= 0 && i > 0; i--) {
                r = exec(dst, c->tables[i - 1].disable_sql);
                if (r >= 0)
                        r = exec(dst, c->tables[i - 1].delete_sql);
        }
        for (size_t i = 0; r >= 0 && i < c->n_tables; i++) {
                r = copy_rows(&c->tables[i], src, dst, progress, userdata, &ret[i]);
                if (r >= 0)
                        r = set_sequences(&c->tables[i], src, dst);
        }
        for (size_t i = 0; r >= 0 && i < c->n_tables; i++)
                r = exec(dst, c->tables[i].enable_sql);
        return r;
}

int store_copy_sum(StoreCopy *c, StoreTx *tx, StoreCopyTable *ret) {
        for (size_t i = 0; i < c->n_tables; i++) {
                _cleanup_stmt_reset_ DbStmt *st = NULL;
                size_t n = strv_length(c->tables[i].columns);
                RowSum sum = {};
                int r;

                r = store_stmt(tx, c->tables[i].select_sql, &st);
                while (r >= 0 && (r = db_step(st)) > 0)
                        r = row_sum_add(&sum, st, n);
                if (r < 0) {
                        free(sum.row.s);
                        return r;
                }
                row_sum_finish(&sum, &ret[i]);
                snprintf(ret[i].name, sizeof ret[i].name, "%s", c->tables[i].name);
        }
        return 0;
}
