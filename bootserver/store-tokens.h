/* Tokens in the store: named tokens with their roles and the hosts' agent tokens,
 * both kept as the SHA-256 of the token only. Backend-neutral;
 * store-tokens.c implements it. */
#pragma once

#include <stdint.h>

#include "store.h"

/* Records the named token with its hash and role ("admin", "operator",
 * "viewer"); -EEXIST when the name is taken. */
int store_token_insert(StoreTx *tx, const char *name, const char *hash, const char *role, int64_t created);
/* Forgets the named token name; -ENOENT when there is none. */
int store_token_delete(StoreTx *tx, const char *name);
/* Calls cb for each named token by name; a negative return of cb stops
 * and is returned. */
int store_token_list(StoreTx *tx,
                     int (*cb)(const char *name, const char *role, long long created, void *userdata),
                     void *userdata);

/* 1 and the named token's name and role in ret_name and ret_role (each may
 * be NULL; caller frees) when hash is a named token's, 0 when not. */
int store_token_admin(StoreTx *tx, const char *hash, char **ret_name, char **ret_role);
/* 1 and "host:<id>" in ret_actor (caller frees) when hash is the token of
 * the host whose id or MAC is host; 0 when not. */
int store_token_host(StoreTx *tx, const char *hash, const char *host, char **ret_actor);
/* 1 and "host:<id>" in ret_actor (may be NULL; caller frees) when hash is
 * any host's token. */
int store_token_is_host(StoreTx *tx, const char *hash, char **ret_actor);
