/* GET /v1/whoami: the caller's token, by name and role (docs/api.md), for
 * clients that show or hide what the token may do. */
#include "roles.h"
#include "routes.h"
#include "server.h"

static enum MHD_Result handle_whoami(Request *req) {
        const char *role = req->role >= 0 ? role_to_string((Role) req->role) : "host";

        return reply_json(req, 200, json_pack("{ssss}", "name", req->actor, "role", role));
}

const Route whoami_routes[] = {
        { "GET", "v1/whoami", AUTH_ANY, BODY_NONE, handle_whoami },
        {},
};
