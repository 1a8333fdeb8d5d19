/* slipctl status: is the server there, what does it hold, is the token good. */
#include "ctl.h"
#include "log.h"
#include "table.h"
#include "util.h"

int ctl_status(Ctl *ctl, char **args _unused_) {
        json_t *reply = NULL;
        char buf[64];
        int r;

        r = ctl_call(ctl, "GET", "/v1/status", NULL, &reply, "cannot get the server's status");
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        field_print("server", "%s", api_client_url(ctl->api));
        if (api_client_n_urls(ctl->api) > 1)
                field_print("servers", "%s", api_client_urls(ctl->api));
        field_print("version", "%s", strempty(json_string_value(json_object_get(reply, "version"))));
        field_print("images", "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(reply, "images")));
        field_print("hosts", "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(reply, "hosts")));
        field_print("uptime", "%s",
                    format_duration(buf, sizeof(buf), (uint64_t) json_integer_value(json_object_get(reply, "uptime_sec"))));
        json_decref(reply);

        /* /v1/status is public: ask an admin endpoint, cheaply, whether the
         * token is any good, which is what people run status to find out. */
        if (!ctl->has_token) {
                field_print("token", "none (admin commands need --token, --token-file or SLIPWAY_TOKEN)");
                return 0;
        }
        r = api_request(ctl->api, "GET", "/v1/audit?limit=1", NULL, NULL, NULL);
        if (r == -EACCES || r == -EPERM) {
                field_print("token", "refused");
                return log_error_errno(r, "the token was refused: %s", api_client_error(ctl->api));
        }
        if (r < 0)
                return log_error_errno(r, "cannot check the token: %s", api_client_error(ctl->api));
        field_print("token", "accepted");
        return 0;
}
