/* slipctl status: is the server there, what does it hold, which instances
 * share its state and which one coordinates, is the token good. */
#include "ctl.h"
#include "log.h"
#include "table.h"
#include "util.h"

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

/* The instances of /v1/instances as a table, the leader marked. */
static int print_instances(json_t *reply) {
        static const char *const headers[] = { "INSTANCE", "URL", "VERSION", "HEARTBEAT", "STATE", "LEADER" };
        _cleanup_table_free_ Table *t = table_new(ELEMENTSOF(headers), headers);
        json_t *lead = json_object_get(reply, "leader"), *i;
        size_t k, n = 0, stale = 0;
        int r = 0;

        if (!t)
                return log_oom();
        json_array_foreach(json_object_get(reply, "instances"), k, i) {
                char age[32], epoch[48] = "";
                bool self = streq_ptr(str(i, "name"), str(reply, "instance"));
                _cleanup_free_ char *name = strdup_printf("%s%s", strempty(str(i, "name")), self ? " (this)" : "");

                snprintf(age, sizeof age, "%.1f s ago",
                         (double) json_integer_value(json_object_get(i, "heartbeat_age_ms")) / 1000.0);
                if (json_is_true(json_object_get(i, "leader")))
                        snprintf(epoch, sizeof epoch, "yes (epoch %" JSON_INTEGER_FORMAT ")",
                                 json_integer_value(json_object_get(i, "epoch")));
                n++;
                stale += streq_ptr(str(i, "state"), "stale");
                r = name ? table_add_row(t, (const char *const[]) { name, str(i, "url"), str(i, "version"), age,
                                                                    str(i, "state"), epoch })
                         : -ENOMEM;
                if (r < 0)
                        return log_oom();
        }
        if (json_is_string(json_object_get(lead, "instance")))
                field_print("coordinator", "%s (epoch %" JSON_INTEGER_FORMAT ")", str(lead, "instance"),
                            json_integer_value(json_object_get(lead, "epoch")));
        else
                field_print("coordinator", "none: no instance holds the lease (epoch %" JSON_INTEGER_FORMAT ")",
                            json_integer_value(json_object_get(lead, "epoch")));
        field_print("instances", "%zu up, %zu stale", n - stale, stale);
        table_print(t, stdout, true, NULL);
        return 0;
}

int ctl_status(Ctl *ctl, char **args _unused_) {
        json_t *reply = NULL, *instances = NULL;
        char buf[64];
        int r;

        r = ctl_call(ctl, "GET", "/v1/status", NULL, &reply, "cannot get the server's status");
        if (r < 0)
                return r;
        /* A server without the registry (an older one) has no such route. */
        r = api_request(ctl->api, "GET", "/v1/instances", NULL, NULL, &instances);
        if (r < 0 && r != -ENOENT) {
                json_decref(reply);
                return ctl_log_error(ctl, r, "cannot list the server's instances");
        }
        if (ctl->json) {
                if (instances)
                        json_object_set(reply, "instances", instances);
                r = ctl_print_json(reply);
                json_decref(reply);
                json_decref(instances);
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

        /* /v1/status is public: ask whoami, cheaply, whether the token is
         * any good and what it may do, which is what people run status to
         * find out (an older server without whoami: an admin endpoint). */
        if (!ctl->has_token)
                field_print("token", "none (admin commands need --token, --token-file or SLIPWAY_TOKEN)");
        else {
                json_t *me = NULL;

                r = api_request(ctl->api, "GET", "/v1/whoami", NULL, NULL, &me);
                if (r == -ENOENT && streq(api_client_error_kind(ctl->api), "not_found"))
                        r = api_request(ctl->api, "GET", "/v1/audit?limit=1", NULL, NULL, NULL);
                if (r == -EACCES || r == -EPERM) {
                        field_print("token", "refused");
                        json_decref(instances);
                        return log_error_errno(r, "the token was refused: %s", api_client_error(ctl->api));
                }
                if (r < 0) {
                        json_decref(instances);
                        return log_error_errno(r, "cannot check the token: %s", api_client_error(ctl->api));
                }
                field_print("token", "accepted");
                if (me)
                        field_print("role", "%s (token '%s')", strempty(json_string_value(json_object_get(me, "role"))),
                                    strempty(json_string_value(json_object_get(me, "name"))));
                json_decref(me);
        }
        r = instances ? print_instances(instances) : 0;
        json_decref(instances);
        return r;
}
