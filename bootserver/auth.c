/* Who may call a route: the bearer token, named (with its role) or a
 * host's, against the route's least role (server.h, Auth). */
#include "roles.h"
#include "server.h"
#include "tokens.h"
#include "util.h"

static const char *bearer_token(Request *req) {
        const char *h = request_header(req, "Authorization");
        const char *t = h ? startswith(h, "Bearer ") : NULL;

        return t && *t ? t : NULL;
}

/* The least role of a named token that may call rt. */
static Role route_role(const Route *rt) {
        switch (rt->auth) {
        case AUTH_OPERATOR:
                return ROLE_OPERATOR;
        case AUTH_ADMIN:
        case AUTH_HOST:
                return ROLE_ADMIN;
        default:
                return ROLE_VIEWER;
        }
}

/* A named token whose role is below the route's: 403 naming the role the
 * route takes and the token's. */
static enum MHD_Result reply_role_refused(Request *req, const char *name, Role role) {
        Role need = route_role(req->route);

        return reply_error_extra(req, KIND_FORBIDDEN,
                                 json_pack("{ssss}", "role_needed", role_to_string(need), "role", role_to_string(role)),
                                 "%s /%s needs the %s role; the token '%s' has the %s role", req->method, req->path,
                                 role_to_string(need), name, role_to_string(role));
}

bool request_authenticate(Request *req, enum MHD_Result *ret_result) {
        _cleanup_free_ char *name = NULL;
        const char *token;
        Role role;
        int r;

        req->role = -1;
        if (req->route->auth == AUTH_PUBLIC) {
                req->actor = strdup("anonymous");
                return true;
        }
        token = bearer_token(req);
        if (!token) {
                *ret_result = reply_error(req, KIND_UNAUTHORIZED, "a bearer token is required");
                return false;
        }
        if (req->route->auth == AUTH_HOST) {
                /* Agents are the common case here: their token first, in the
                 * read transaction the handler may go on in. */
                r = store_tx_begin(req->server->store, STORE_TX_READ, &req->tx);
                if (r >= 0)
                        r = tokens_check_host(req->tx, req->args[0], token, &name);
                if (r > 0) {
                        req->actor = TAKE_PTR(name);
                        return true;
                }
                store_tx_rollback(&req->tx);
                if (r < 0) {
                        *ret_result = reply_errno(req, r, "token check");
                        return false;
                }
        }
        r = tokens_check_named(req->server->store, token, &name, &role);
        if (r > 0) {
                if (role < route_role(req->route)) {
                        *ret_result = reply_role_refused(req, name, role);
                        return false;
                }
                req->actor = TAKE_PTR(name);
                req->role = (int) role;
                return true;
        }
        if (r == 0)
                r = tokens_is_host_token(req->server->store, token, &name);
        if (r < 0) {
                *ret_result = reply_errno(req, r, "token check");
                return false;
        }
        /* Only a token that is known gets 403; an unknown or revoked one is
         * 401 on every route, whatever host the path names. */
        if (r == 0)
                *ret_result = reply_error(req, KIND_UNAUTHORIZED, "unknown token");
        else if (req->route->auth == AUTH_ANY) {
                req->actor = TAKE_PTR(name);
                return true;
        } else if (req->route->auth == AUTH_HOST)
                *ret_result = reply_error(req, KIND_FORBIDDEN, "the token does not belong to host '%s'",
                                          req->args[0]);
        else
                *ret_result = reply_error(req, KIND_FORBIDDEN, "a host token cannot make admin calls");
        return false;
}
