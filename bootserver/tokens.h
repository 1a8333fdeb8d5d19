/* Tokens: named bearer tokens, each with a role (roles.h; created with
 * `slipwayd token create`), and per-host agent tokens (issued at
 * registration). Only their SHA-256 is stored; the token itself is shown
 * once. */
#pragma once

#include <stdint.h>

#include "roles.h"
#include "store.h"

/* 32 random bytes as 64 hex digits plus NUL. */
int token_random_hex(char ret[65]);

/* Creates a token called name with role at time now (Unix time) and
 * returns it (caller frees). -EEXIST when the name is taken, -EINVAL for a
 * role out of range. Audited as actor. */
int tokens_create(StoreDb *store, const char *name, Role role, int64_t now, const char *actor, char **ret_token);
/* Removes the named token called name at time now, audited as actor;
 * -ENOENT when there is none. */
int tokens_revoke(StoreDb *store, const char *name, int64_t now, const char *actor);
/* Calls cb for each named token (name, role, created). */
int tokens_list(StoreDb *store, int (*cb)(const char *name, const char *role, long long created, void *userdata),
                void *userdata);

/* 1 and the token's name (caller frees) and role when token is a named
 * token, 0 when not, negative on failure. */
int tokens_check_named(StoreDb *store, const char *token, char **ret_name, Role *ret_role);
/* In tx: 1 and "host:<id>" in ret_actor when token belongs to the host
 * whose id or MAC is host; 0 when not. */
int tokens_check_host(StoreTx *tx, const char *host, const char *token, char **ret_actor);
/* 1 and "host:<id>" in ret_actor (may be NULL; caller frees) when token
 * belongs to any host. */
int tokens_is_host_token(StoreDb *store, const char *token, char **ret_actor);
