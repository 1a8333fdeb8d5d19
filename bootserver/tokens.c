#include <sys/random.h>
#include <time.h>

#include "audit.h"
#include "hash.h"
#include "tokens.h"
#include "util.h"

int token_random_hex(char ret[65]) {
        uint8_t b[32];
        size_t got = 0;

        while (got < sizeof b) {
                ssize_t n = getrandom(b + got, sizeof b - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                got += (size_t) n;
        }
        hex_encode(b, sizeof b, ret);
        return 0;
}

static void token_hash(const char *token, char ret[65]) {
        sha256_buffer_hex(token, strlen(token), ret);
}

int tokens_create(Db *db, const char *name, const char *actor, char **ret_token) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char rnd[65], hash[65];
        _cleanup_free_ char *token = NULL;
        sqlite3 *s;
        int r;

        r = token_random_hex(rnd);
        if (r < 0)
                return r;
        token = strdup_printf("slw_%s", rnd);
        if (!token)
                return -ENOMEM;
        token_hash(token, hash);

        s = db_lock(db);
        r = db_begin(s);
        if (r >= 0)
                r = db_prepare(s, "INSERT INTO tokens (name, hash, created) VALUES (?, ?, ?)", &st);
        if (r >= 0) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
                r = db_errno(sqlite3_step(st));
        }
        if (r >= 0)
                r = audit_log(s, actor, "token.create", name, NULL);
        if (r >= 0)
                r = db_commit(s);
        else
                db_rollback(s);
        db_unlock(db);
        if (r < 0)
                return r;
        *ret_token = TAKE_PTR(token);
        return 0;
}

int tokens_revoke(Db *db, const char *name, const char *actor) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *s;
        int r;

        s = db_lock(db);
        r = db_begin(s);
        if (r >= 0)
                r = db_prepare(s, "DELETE FROM tokens WHERE name = ?", &st);
        if (r >= 0) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(st));
                if (r >= 0 && sqlite3_changes(s) == 0)
                        r = -ENOENT;
        }
        if (r >= 0)
                r = audit_log(s, actor, "token.revoke", name, NULL);
        if (r >= 0)
                r = db_commit(s);
        else
                db_rollback(s);
        db_unlock(db);
        return r;
}

int tokens_list(Db *db, int (*cb)(const char *name, long long created, void *userdata), void *userdata) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *s = db_lock(db);
        int r;

        r = db_prepare(s, "SELECT name, created FROM tokens ORDER BY name", &st);
        while (r >= 0 && (r = db_step(st)) > 0)
                r = cb((const char *) sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), userdata);
        db_unlock(db);
        return r;
}

/* Runs sql with the token's hash bound to ?1 and extra to ?2; returns 1 and
 * column 0 when a row matches. */
static int lookup(Db *db, const char *sql, const char *token, const char *extra, char **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char hash[65];
        sqlite3 *s;
        int r;

        token_hash(token, hash);
        s = db_lock(db);
        r = db_prepare(s, sql, &st);
        if (r >= 0) {
                sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
                if (extra)
                        sqlite3_bind_text(st, 2, extra, -1, SQLITE_STATIC);
                r = db_step(st);
                if (r > 0 && ret) {
                        *ret = db_column_strdup(st, 0);
                        if (!*ret)
                                r = -ENOMEM;
                }
        }
        db_unlock(db);
        return r;
}

int tokens_check_admin(Db *db, const char *token, char **ret_name) {
        return lookup(db, "SELECT name FROM tokens WHERE hash = ?1", token, NULL, ret_name);
}

int tokens_check_host(Db *db, const char *host, const char *token, char **ret_actor) {
        return lookup(db, "SELECT 'host:' || id FROM hosts WHERE token_hash = ?1 AND (id = ?2 OR mac = lower(?2))", token,
                      host, ret_actor);
}

int tokens_is_host_token(Db *db, const char *token) {
        return lookup(db, "SELECT id FROM hosts WHERE token_hash = ?1", token, NULL, NULL);
}
