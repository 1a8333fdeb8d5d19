#include <sys/random.h>
#include <time.h>

#include "audit.h"
#include "hash.h"
#include "tokens.h"
#include "store-sqlite.h"
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

int tokens_create(StoreDb *store, const char *name, const char *actor, char **ret_token) {
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

        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(store, STORE_TX_WRITE, &tx);
        if (r >= 0) {
                s = store_tx_sqlite(tx);
                r = db_prepare(s, "INSERT INTO tokens (name, hash, created) VALUES (?, ?, ?)", &st);
        }
        if (r >= 0) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
                r = db_errno(sqlite3_step(st));
        }
        if (r >= 0)
                r = audit_log(tx, actor, "token.create", name, NULL);
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                return r;
        *ret_token = TAKE_PTR(token);
        return 0;
}

int tokens_revoke(StoreDb *store, const char *name, const char *actor) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sqlite3 *s;
        int r;

        _cleanup_store_tx_ StoreTx *tx = NULL;
        r = store_tx_begin(store, STORE_TX_WRITE, &tx);
        if (r >= 0) {
                s = store_tx_sqlite(tx);
                r = db_prepare(s, "DELETE FROM tokens WHERE name = ?", &st);
        }
        if (r >= 0) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(st));
                if (r >= 0 && sqlite3_changes(s) == 0)
                        r = -ENOENT;
        }
        if (r >= 0)
                r = audit_log(tx, actor, "token.revoke", name, NULL);
        if (r >= 0)
                r = store_tx_commit(&tx);
        return r;
}

int tokens_list(StoreDb *store, int (*cb)(const char *name, long long created, void *userdata), void *userdata) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = db_prepare(store_tx_sqlite(tx), "SELECT name, created FROM tokens ORDER BY name", &st);
        while (r >= 0 && (r = db_step(st)) > 0)
                r = cb((const char *) sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), userdata);
        return r;
}

/* Runs sql with the token's hash bound to ?1 and extra to ?2; returns 1 and
 * column 0 when a row matches. */
static int lookup(StoreDb *store, const char *sql, const char *token, const char *extra, char **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char hash[65];
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        token_hash(token, hash);
        r = store_tx_begin(store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = db_prepare(store_tx_sqlite(tx), sql, &st);
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
        return r;
}

int tokens_check_admin(StoreDb *store, const char *token, char **ret_name) {
        return lookup(store, "SELECT name FROM tokens WHERE hash = ?1", token, NULL, ret_name);
}

int tokens_check_host(StoreDb *store, const char *host, const char *token, char **ret_actor) {
        return lookup(store, "SELECT 'host:' || id FROM hosts WHERE token_hash = ?1 AND (id = ?2 OR mac = lower(?2))", token,
                      host, ret_actor);
}

int tokens_is_host_token(StoreDb *store, const char *token) {
        return lookup(store, "SELECT id FROM hosts WHERE token_hash = ?1", token, NULL, NULL);
}
