/* The roles of named API tokens, lowest first: a route names the least
 * role it takes (server.h's Auth) and a token of that role or a higher one
 * may call it. docs/api.md lists each endpoint's role. */
#pragma once

#include <errno.h>

typedef enum Role {
        ROLE_VIEWER,   /* reads everything an admin token reads; changes nothing */
        ROLE_OPERATOR, /* runs rollouts, sets labels, budgets and a host's image */
        ROLE_ADMIN,    /* everything: images, blobs, file sets, and the above */
        _ROLE_MAX,
        _ROLE_INVALID = -EINVAL,
} Role;

/* "viewer", "operator", "admin"; NULL for a value out of range. */
const char *role_to_string(Role r);
/* The role called s, or _ROLE_INVALID. */
Role role_from_string(const char *s);
