#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store-driver.h"
#include "store-pg.h"
#include "store-stmt-cache.h"
#include "util.h"

/* PostgreSQL's type OIDs for what the store binds (pg_type.h). */
#define OID_INT8 20
#define OID_TEXT 25

#define PG_PARAMS_MAX 999

struct PgStmt {
        DbStmt head; /* first: store-pg-db.c hands it out as a DbStmt */
        PgConn *conn;
        const char *sql; /* the cache's copy of its text */
        char *pg_sql;
        int n_params;
        char name[24];
        bool prepared;
        /* this use */
        char **values; /* n_params, owned */
        Oid *types;    /* of the first bindings: what it is prepared with */
        int error;     /* a binding that failed, returned by the step */
        int error_i;   /* its parameter */
        PGresult *res;
        int row, n_rows;
        bool ran;
};

struct PgConn {
        PGconn *pg;
        char *conninfo;
        StmtCache cache; /* of PgStmt */
        unsigned long next_name;
        /* Lost as far as we know, before libpq may: the server said it
         * ends the session, or that it is a standby now. */
        bool broken;
};

static void remember_error(const char *sql, const char *message) {
        store_remember_error("postgresql", sql, message);
}

const char *pg_last_error(void) {
        return store_last_error();
}

int pg_errno(const char *sqlstate) {
        if (!sqlstate)
                return -ECONNRESET;
        if (strlen(sqlstate) != 5)
                return -EIO;
        /* 08: connection exception; 57P01-57P03: the server is shutting
         * down or not accepting connections yet. */
        if (startswith(sqlstate, "08") || streq(sqlstate, "57P01") || streq(sqlstate, "57P02") ||
            streq(sqlstate, "57P03"))
                return -ECONNRESET;
        if (streq(sqlstate, "40001") || streq(sqlstate, "40P01"))
                return -EAGAIN;
        if (startswith(sqlstate, "23"))
                return -EEXIST;
        if (streq(sqlstate, "53100"))
                return -ENOSPC;
        if (streq(sqlstate, "53200"))
                return -ENOMEM;
        if (streq(sqlstate, "25006") || streq(sqlstate, "42501"))
                return -EROFS;
        if (streq(sqlstate, "55P03"))
                return -EBUSY;
        if (streq(sqlstate, "57014"))
                return -ECANCELED;
        return -EIO;
}

/* The errno of a result that is not a success. One without a SQLSTATE is
 * libpq's own, not the server's: a lost connection (libpq does not always
 * call it CONNECTION_BAD at once: after an immediate shutdown it reports
 * the closed socket on a connection it still calls OK), or no memory when
 * there is no result at all. A connection whose session is over, or that
 * reached a standby (a read-only transaction refused on a server in
 * recovery: it was the primary once), is marked broken: its next use
 * connects again, and libpq picks the host that takes writes. */
static int result_errno(PgConn *c, const PGresult *res, const char *sql) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        int r;

        remember_error(sql, res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
        if (!state)
                r = res || PQstatus(c->pg) != CONNECTION_OK ? -ECONNRESET : -ENOMEM;
        else
                r = pg_errno(state);
        if (r == -ECONNRESET || (state && streq(state, "25006") && pg_conn_standby(c)))
                c->broken = true;
        return r;
}

int pg_translate(const char *sql, char **ret, int *ret_n) {
        _cleanup_free_ char *out = NULL;
        size_t n = 0, cap = strlen(sql) * 2 + 1;
        int max = 0;
        const char *p = sql;

        out = malloc(cap);
        if (!out)
                return -ENOMEM;
        while (*p) {
                if (*p == '\'' || *p == '"') {
                        /* A literal or a quoted name, its quote doubled inside. */
                        char q = *p;
                        out[n++] = *p++;
                        while (*p) {
                                if (*p == q && p[1] == q) {
                                        out[n++] = *p++;
                                        out[n++] = *p++;
                                        continue;
                                }
                                if (*p == q)
                                        break;
                                out[n++] = *p++;
                        }
                        if (*p)
                                out[n++] = *p++;
                } else if (p[0] == '-' && p[1] == '-') {
                        while (*p && *p != '\n')
                                out[n++] = *p++;
                } else if (p[0] == '/' && p[1] == '*') {
                        const char *e = strstr(p + 2, "*/");
                        size_t k = e ? (size_t) (e + 2 - p) : strlen(p);
                        memcpy(out + n, p, k);
                        n += k;
                        p += k;
                } else if (*p == '?') {
                        int num;
                        p++;
                        if (*p >= '0' && *p <= '9') {
                                num = 0;
                                while (*p >= '0' && *p <= '9') {
                                        num = num * 10 + (*p++ - '0');
                                        if (num > PG_PARAMS_MAX)
                                                return -EINVAL;
                                }
                                if (num == 0)
                                        return -EINVAL;
                        } else
                                num = max + 1;
                        if (num > PG_PARAMS_MAX)
                                return -EINVAL;
                        max = MAX(max, num);
                        /* "$NNN" is at most as long as "?" + 2 bytes per digit. */
                        n += (size_t) snprintf(out + n, cap - n, "$%d", num);
                } else
                        out[n++] = *p++;
        }
        out[n] = 0;
        *ret = TAKE_PTR(out);
        *ret_n = max;
        return 0;
}

/* The server's notices (a DROP's cascade, a table that exists already) are
 * for a debug log, not for stderr. */
static void notice(void *userdata _unused_, const char *message) {
        log_debug("postgresql: %.*s", (int) strcspn(message, "\n"), message);
}

/* Defaults that a conninfo may override: a bounded connect, keepalives
 * that notice a dead server in seconds on an idle connection, a bound on
 * how long what was sent may stay unacknowledged on a busy one (TCP only),
 * and a name in pg_stat_activity. */
static PGconn *connect_with_defaults(const char *conninfo) {
        static const char *const keys[] = { "connect_timeout",  "keepalives_idle",
                                            "keepalives_interval", "keepalives_count",
                                            "tcp_user_timeout", "fallback_application_name",
                                            "dbname",           NULL };
        const char *values[] = { "5", "5", "2", "3", "10000", "slipwayd", conninfo, NULL };

        PGconn *pg = PQconnectdbParams(keys, values, 1);

        if (pg)
                PQsetNoticeProcessor(pg, notice, NULL);
        return pg;
}

int pg_conn_open(const char *conninfo, PgConn **ret, char **ret_error) {
        PgConn *c;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->conninfo = strdup(conninfo);
        if (!c->conninfo) {
                free(c);
                return -ENOMEM;
        }
        c->pg = connect_with_defaults(conninfo);
        if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
                const char *m = c->pg ? PQerrorMessage(c->pg) : "out of memory";
                remember_error(NULL, m);
                if (ret_error)
                        *ret_error = strdup(strempty(store_last_error()));
                pg_conn_free(c);
                return -ECONNREFUSED;
        }
        *ret = c;
        return 0;
}

static void stmt_free(PgStmt *st) {
        if (!st)
                return;
        pg_stmt_reset(st);
        free(st->pg_sql);
        free(st->values);
        free(st->types);
        free(st);
}

PgConn *pg_conn_free(PgConn *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->cache.n_max; i++)
                stmt_free(c->cache.slots[i].st);
        stmt_cache_release(&c->cache);
        if (c->pg)
                PQfinish(c->pg);
        free(c->conninfo);
        free(c);
        return NULL;
}

bool pg_conn_ok(const PgConn *c) {
        return c->pg && !c->broken && PQstatus(c->pg) == CONNECTION_OK;
}

bool pg_conn_standby(const PgConn *c) {
        /* Reported by the server (PostgreSQL 14 and later) at the start and
         * whenever it changes. */
        return c->pg && streq_ptr(PQparameterStatus(c->pg, "in_hot_standby"), "on");
}

int pg_conn_backend_pid(const PgConn *c) {
        return c->pg ? PQbackendPID(c->pg) : 0;
}

int pg_conn_socket(const PgConn *c) {
        return pg_conn_ok(c) ? PQsocket(c->pg) : -1;
}

int pg_conn_notified(PgConn *c, const char *skip, const char *const *channels) {
        PGnotify *n;
        int mask = 0;

        if (!pg_conn_ok(c))
                return -ECONNRESET;
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK) {
                remember_error(NULL, PQerrorMessage(c->pg));
                c->broken = true;
                return -ECONNRESET;
        }
        while ((n = PQnotifies(c->pg))) {
                if (!skip || !streq(n->extra, skip))
                        for (int i = 0; i < 16 && channels[i]; i++)
                                if (streq(n->relname, channels[i]))
                                        mask |= 1 << i;
                PQfreemem(n);
        }
        return mask;
}

int pg_conn_server_version(const PgConn *c) {
        return c->pg ? PQserverVersion(c->pg) : 0;
}

int pg_conn_reset(PgConn *c) {
        /* The server forgot the prepared statements with the session. */
        for (size_t i = 0; i < c->cache.n_max; i++) {
                PgStmt *st = c->cache.slots[i].st;

                if (st) {
                        pg_stmt_reset(st);
                        st->prepared = false;
                }
        }
        if (c->pg)
                PQfinish(c->pg);
        c->broken = false;
        c->pg = connect_with_defaults(c->conninfo);
        if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
                remember_error(NULL, c->pg ? PQerrorMessage(c->pg) : "out of memory");
                return -ECONNREFUSED;
        }
        return 0;
}

void pg_conn_reset_statements(PgConn *c) {
        for (size_t i = 0; i < c->cache.n_max; i++)
                if (c->cache.slots[i].st)
                        pg_stmt_reset(c->cache.slots[i].st);
}

int pg_commit(PgConn *c) {
        PGresult *res;
        int r = 0;

        if (!pg_conn_ok(c)) {
                remember_error("COMMIT", "the connection to the database was lost");
                return -ECONNRESET;
        }
        res = PQexec(c->pg, "COMMIT");
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
                r = result_errno(c, res, "COMMIT");
        else if (!streq(PQcmdStatus(res), "COMMIT")) {
                /* A transaction that met an error ends in a rollback, which
                 * COMMIT reports as done. */
                remember_error("COMMIT", "the transaction was rolled back after an error");
                r = -EIO;
        }
        PQclear(res);
        return r;
}

int pg_exec(PgConn *c, const char *sql) {
        PGresult *res;
        int r = 0;

        if (!pg_conn_ok(c)) {
                remember_error(sql, "the connection to the database was lost");
                return -ECONNRESET;
        }
        res = PQexec(c->pg, sql);
        if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK))
                r = result_errno(c, res, sql);
        PQclear(res);
        return r;
}

int pg_stmt(PgConn *c, const char *sql, PgStmt **ret) {
        PgStmt *st = stmt_cache_get(&c->cache, sql);
        int r;

        if (st) {
                *ret = st;
                return 0;
        }
        st = calloc(1, sizeof *st);
        if (!st)
                return -ENOMEM;
        r = pg_translate(sql, &st->pg_sql, &st->n_params);
        if (r < 0) {
                remember_error(sql, "cannot translate the statement's placeholders");
                free(st);
                return r;
        }
        if (st->n_params > 0) {
                st->values = calloc((size_t) st->n_params, sizeof *st->values);
                st->types = calloc((size_t) st->n_params, sizeof *st->types);
        }
        st->conn = c;
        snprintf(st->name, sizeof st->name, "s%lu", c->next_name++);
        if ((st->n_params > 0 && (!st->values || !st->types)) || !(st->sql = stmt_cache_put(&c->cache, sql, st))) {
                free(st->values);
                free(st->types);
                free(st->pg_sql);
                free(st);
                return -ENOMEM;
        }
        *ret = st;
        return 0;
}

DbStmt *pg_stmt_head(PgStmt *st) {
        return &st->head;
}

void pg_stmt_reset(PgStmt *st) {
        PQclear(st->res);
        st->res = NULL;
        for (int i = 0; i < st->n_params; i++) {
                free(st->values[i]);
                st->values[i] = NULL;
        }
        st->error = st->error_i = 0;
        st->ran = false;
        st->row = st->n_rows = 0;
}

/* Keeps the first binding that failed for the step. */
static void bind_failed(PgStmt *st, int i, int error) {
        if (!st->error) {
                st->error = error;
                st->error_i = i;
        }
}

static void bind(PgStmt *st, int i, char *v, Oid type) {
        if (i < 1 || i > st->n_params) {
                free(v);
                bind_failed(st, i, -EIO);
                return;
        }
        free(st->values[i - 1]);
        st->values[i - 1] = v;
        /* The type it is prepared with: the first binding that has one. */
        if (!st->prepared && type)
                st->types[i - 1] = type;
}

void pg_bind_int64(PgStmt *st, int i, int64_t v) {
        char *s = strdup_printf("%" PRIi64, v);

        if (!s)
                bind_failed(st, i, -ENOMEM);
        bind(st, i, s, OID_INT8);
}

void pg_bind_text(PgStmt *st, int i, const char *v) {
        char *s = NULL;

        if (v) {
                s = strdup(v);
                if (!s)
                        bind_failed(st, i, -ENOMEM);
        }
        /* A NULL given as text is text: the caller says so. */
        bind(st, i, s, OID_TEXT);
}

void pg_bind_null(PgStmt *st, int i) {
        bind(st, i, NULL, 0);
}

static int stmt_run(PgStmt *st) {
        PgConn *c = st->conn;
        PGresult *res;
        ExecStatusType status;

        if (st->error) {
                char m[64];

                snprintf(m, sizeof m, "cannot bind parameter %d: %s", st->error_i,
                         st->error == -ENOMEM ? "out of memory" : "no such parameter");
                remember_error(st->sql, m);
                return st->error;
        }
        if (!pg_conn_ok(c)) {
                remember_error(st->sql, "the connection to the database was lost");
                return -ECONNRESET;
        }
        if (!st->prepared) {
                res = PQprepare(c->pg, st->name, st->pg_sql, st->n_params, st->types);
                if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
                        int r = result_errno(c, res, st->sql);
                        PQclear(res);
                        return r;
                }
                PQclear(res);
                st->prepared = true;
        }
        res = PQexecPrepared(c->pg, st->name, st->n_params, (const char *const *) st->values, NULL, NULL, 0);
        status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
                int r = result_errno(c, res, st->sql);
                PQclear(res);
                return r;
        }
        st->res = res;
        st->n_rows = status == PGRES_TUPLES_OK ? PQntuples(res) : 0;
        st->row = 0;
        return 0;
}

int pg_step(PgStmt *st) {
        int r;

        if (!st->ran) {
                st->ran = true;
                r = stmt_run(st);
                if (r < 0) {
                        /* Stays failed until reset: a loop cannot go on
                         * reading past an error. */
                        st->error = r;
                        st->n_rows = 0;
                        return r;
                }
        } else if (st->error)
                return st->error;
        else if (st->row < st->n_rows)
                st->row++;
        return st->row < st->n_rows ? 1 : 0;
}

bool pg_column_is_null(PgStmt *st, int col) {
        if (!st->res || st->row >= st->n_rows || col < 0 || col >= PQnfields(st->res))
                return true;
        return PQgetisnull(st->res, st->row, col);
}

const char *pg_column_text(PgStmt *st, int col) {
        if (pg_column_is_null(st, col))
                return NULL;
        return PQgetvalue(st->res, st->row, col);
}

int64_t pg_column_int64(PgStmt *st, int col) {
        const char *s = pg_column_text(st, col);
        char *end;
        long long v;

        if (!s)
                return 0;
        /* A boolean comes as 't' or 'f'. */
        if (streq(s, "t"))
                return 1;
        if (streq(s, "f"))
                return 0;
        errno = 0;
        v = strtoll(s, &end, 10);
        /* A numeric (sum() of bigints) may come with a fraction of zeros. */
        if (errno != 0 || end == s || (*end && *end != '.'))
                return 0;
        return (int64_t) v;
}

int64_t pg_changes(PgStmt *st) {
        const char *n, *cmd;
        uint64_t v;

        if (!st->res)
                return 0;
        /* A SELECT's count is of the rows it read. */
        cmd = PQcmdStatus(st->res);
        if (!startswith(cmd, "INSERT ") && !startswith(cmd, "UPDATE ") && !startswith(cmd, "DELETE "))
                return 0;
        n = PQcmdTuples(st->res);
        if (isempty(n) || safe_atou64(n, &v) < 0)
                return 0;
        return (int64_t) v;
}
