/* The PostgreSQL driver of the store, over libpq: connections, statements
 * prepared once per connection, transactions. The store's areas are written
 * with sqlite's placeholders (?1, ?); a statement is translated to
 * PostgreSQL's ($1) when it is first prepared on a connection, and its
 * parameters are sent with the types of their first bindings (bigint, text),
 * so that an expression such as ?3 - ?4 has a type without a cast in the
 * SQL. Values come back as text; the column readers parse them (a boolean is
 * 't' or 'f').
 *
 * Errors are negative errnos, from the SQLSTATE (pg_errno()); the server's
 * message is kept for store_last_error(). A connection that was lost fails
 * every call with -ECONNRESET until pg_conn_reset() connects again (libpq
 * tries every host of a multi-host conninfo, in order, as at the start). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

typedef struct PgConn PgConn;
typedef struct PgStmt PgStmt;

/* Connects with conninfo (a URI or key=value string, libpq's syntax). On a
 * failure *ret_error (may be NULL; caller frees) gets libpq's message. */
int pg_conn_open(const char *conninfo, PgConn **ret, char **ret_error);
PgConn *pg_conn_free(PgConn *c);
static inline void pg_conn_freep(PgConn **c) {
        pg_conn_free(*c);
}
#define _cleanup_pg_conn_free_ _cleanup_(pg_conn_freep)

/* The server's message for the last call that failed on this thread, NULL
 * when none did (store_last_error()). */
const char *pg_last_error(void);

/* Whether the connection is up as far as we know: libpq has not seen it
 * close, and no answer said its session is over or that the server is a
 * standby now (a connection lost; pg_conn_reset() connects again). */
bool pg_conn_ok(const PgConn *c);
/* Whether the server is a standby (in recovery), as it last said. */
bool pg_conn_standby(const PgConn *c);
/* The server's process serving the connection, 0 when unknown. */
int pg_conn_backend_pid(const PgConn *c);
/* The connection's socket, to wait for notifications on; -1 when lost. */
int pg_conn_socket(const PgConn *c);
/* Reads what the server sent without waiting and takes the notifications
 * (LISTEN) that came: returns the channels they came on, as a mask (bit i:
 * channels[i], a NULL-terminated list of at most 16), those whose payload
 * is skip (NULL: none) left out; -ECONNRESET when the connection is lost. */
int pg_conn_notified(PgConn *c, const char *skip, const char *const *channels);
/* Connects again after a loss; the prepared statements are made anew. */
int pg_conn_reset(PgConn *c);
/* The server's version as server_version_num (150004), 0 when unknown. */
int pg_conn_server_version(const PgConn *c);

/* Commits the open transaction. -EIO when it had met an error (PostgreSQL
 * then rolls it back, and says COMMIT): nothing of it was kept. */
int pg_commit(PgConn *c);
/* Ends every statement's use on c (their results freed), at the end of a
 * transaction. */
void pg_conn_reset_statements(PgConn *c);

/* Runs sql (one or more statements, no parameters) and discards any rows. */
int pg_exec(PgConn *c, const char *sql);

/* The statement for sql on c, prepared at its first step and kept for the
 * life of the connection (found by its text; sql need not outlive the call).
 * It comes with no bindings and no rows; pg_stmt_reset() ends its use. */
int pg_stmt(PgConn *c, const char *sql, PgStmt **ret);
void pg_stmt_reset(PgStmt *st);
/* The statement as store-db.h's DbStmt (its first member): the PostgreSQL
 * driver hands it out as one and casts it back. */
struct DbStmt *pg_stmt_head(PgStmt *st);
static inline void pg_stmt_resetp(PgStmt **st) {
        if (*st)
                pg_stmt_reset(*st);
}

/* Bindings, 1-based like sqlite's; an unbound parameter is NULL. A text
 * binding is copied. An integer is a bigint: a function that takes an
 * integer wants CAST(? AS integer), which sqlite reads too. A NULL bound as
 * text is text; one bound with pg_bind_null() has the type its place in
 * the statement gives it. A binding that fails (no such parameter: -EIO,
 * no memory) is kept and returned by the next pg_step(). */
void pg_bind_int64(PgStmt *st, int i, int64_t v);
void pg_bind_text(PgStmt *st, int i, const char *v);
void pg_bind_null(PgStmt *st, int i);

/* Runs the statement at its first call and returns its first row; later
 * calls move to the next row. 1 when a row is there, 0 at the end, a
 * negative errno on an error (the end never hides one). */
int pg_step(PgStmt *st);

/* Columns of the current row, 0-based. A NULL reads as 0 or NULL. */
bool pg_column_is_null(PgStmt *st, int col);
const char *pg_column_text(PgStmt *st, int col);
int64_t pg_column_int64(PgStmt *st, int col);
/* Rows the statement changed (an INSERT, UPDATE or DELETE). */
int64_t pg_changes(PgStmt *st);

/* The errno for a SQLSTATE (NULL: none came, a client-side failure):
 * connection failures -ECONNRESET, serialization failures and deadlocks
 * -EAGAIN, constraint violations -EEXIST, a full disk -ENOSPC, out of memory
 * -ENOMEM, a read-only transaction or server -EROFS, a lock not available
 * -EBUSY, a cancelled statement -ECANCELED, others -EIO. */
int pg_errno(const char *sqlstate);

/* Writes sql with sqlite's placeholders as PostgreSQL's into *ret (caller
 * frees): ?N becomes $N, a bare ? the next number after the largest so far,
 * as sqlite numbers them; string literals, quoted names and comments are
 * copied as they are. *ret_n gets the largest number. -EINVAL for a number
 * over 999 or 0. */
int pg_translate(const char *sql, char **ret, int *ret_n);

/* Brings the database's schema to this slipwayd's version, under a lock
 * that makes the instances that start together migrate one at a time (the
 * first does the work). -EPROTO when the database is newer. Defined in
 * store-pg-schema.c. */
int pg_migrate(PgConn *c);

/* A listener: a connection of its own that LISTENs on channels (a
 * NULL-terminated list of at most 16) and calls fn(userdata, mask) from a
 * thread of its own when notifications come, mask saying on which (bit i:
 * channels[i]; several that come together: one call), leaving out those
 * whose payload is skip (the process's own, which it acts on itself; NULL:
 * none). It connects again by itself when the connection is lost, LISTENs
 * again, and then calls fn once with every channel's bit: notifications
 * sent meanwhile are lost. Fails only when the thread cannot start; a
 * server out of reach at the start is tried again by the thread, as after
 * a loss. Defined in store-pg-listen.c. */
typedef struct PgListener PgListener;
typedef void (*PgNotifyFn)(void *userdata, unsigned mask);
int pg_listener_start(const char *conninfo, const char *const *channels, const char *skip, PgNotifyFn fn,
                      void *userdata, PgListener **ret);
/* Stops the thread and closes the connection; fn is not called after it
 * returns. Accepts NULL. */
PgListener *pg_listener_free(PgListener *l);
/* For tests: the server's process of the listener's connection, 0 when it
 * has none. */
int pg_listener_backend_pid(PgListener *l);
