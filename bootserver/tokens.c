#include <sys/random.h>

#include "audit.h"
#include "hash.h"
#include "roles.h"
#include "json.h"
#include "tokens.h"
#include "store-tokens.h"
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

int tokens_create(StoreDb *store, const char *name, Role role, int64_t now, const char *actor, char **ret_token) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *token = NULL;
        _cleanup_json_ json_t *detail = NULL;
        char rnd[65], hash[65];
        int r;

        if (!role_to_string(role))
                return -EINVAL;
        detail = json_pack("{ss}", "role", role_to_string(role));
        if (!detail)
                return -ENOMEM;

        r = token_random_hex(rnd);
        if (r < 0)
                return r;
        token = strdup_printf("slw_%s", rnd);
        if (!token)
                return -ENOMEM;
        token_hash(token, hash);

        r = store_tx_begin(store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = store_token_insert(tx, name, hash, role_to_string(role), now);
        if (r >= 0)
                r = audit_log_at(tx, now, actor, "token.create", name, detail);
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                return r;
        *ret_token = TAKE_PTR(token);
        return 0;
}

int tokens_revoke(StoreDb *store, const char *name, int64_t now, const char *actor) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = store_token_delete(tx, name);
        if (r >= 0)
                r = audit_log_at(tx, now, actor, "token.revoke", name, NULL);
        if (r >= 0)
                r = store_tx_commit(&tx);
        return r;
}

int tokens_list(StoreDb *store, int (*cb)(const char *name, const char *role, long long created, void *userdata),
                void *userdata) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_token_list(tx, cb, userdata);
        return r;
}

int tokens_check_named(StoreDb *store, const char *token, char **ret_name, Role *ret_role) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *name = NULL, *role = NULL;
        char hash[65];
        Role ro;
        int r;

        token_hash(token, hash);
        r = store_tx_begin(store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_token_admin(tx, hash, &name, &role);
        if (r <= 0)
                return r;
        /* A role this version does not know (a newer one wrote it) gives
         * the least. */
        ro = role_from_string(role);
        *ret_role = ro < 0 ? ROLE_VIEWER : ro;
        *ret_name = TAKE_PTR(name);
        return 1;
}

int tokens_check_host(StoreTx *tx, const char *host, const char *token, char **ret_actor) {
        char hash[65];

        token_hash(token, hash);
        return store_token_host(tx, hash, host, ret_actor);
}

int tokens_is_host_token(StoreDb *store, const char *token, char **ret_actor) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char hash[65];
        int r;

        token_hash(token, hash);
        r = store_tx_begin(store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_token_is_host(tx, hash, ret_actor);
        return r;
}
