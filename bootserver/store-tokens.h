/* Tokens in the store: admin tokens by name and the hosts' agent tokens,
 * both kept as the SHA-256 of the token only. Backend-neutral;
 * store-tokens.c implements it. */
#pragma once

#include <stdint.h>

#include "store.h"

/* Records admin token name with its hash; -EEXIST when the name is taken. */
int store_token_insert(StoreTx *tx, const char *name, const char *hash, int64_t created);
/* Forgets admin token name; -ENOENT when there is none. */
int store_token_delete(StoreTx *tx, const char *name);
/* Calls cb for each admin token by name; a negative return of cb stops
 * and is returned. */
int store_token_list(StoreTx *tx, int (*cb)(const char *name, long long created, void *userdata), void *userdata);

/* 1 and the admin token's name in ret_name (may be NULL; caller frees)
 * when hash is an admin token's, 0 when not. */
int store_token_admin(StoreTx *tx, const char *hash, char **ret_name);
/* 1 and "host:<id>" in ret_actor (caller frees) when hash is the token of
 * the host whose id or MAC is host; 0 when not. */
int store_token_host(StoreTx *tx, const char *hash, const char *host, char **ret_actor);
/* 1 when hash is any host's token. */
int store_token_is_host(StoreTx *tx, const char *hash);
