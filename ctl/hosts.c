/* slipctl host list|show|label|assign|unassign. */
#include <time.h>

#include "ctl.h"
#include "log.h"
#include "table.h"
#include "util.h"

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static int64_t num(json_t *o, const char *key) {
        return (int64_t) json_integer_value(json_object_get(o, key));
}

/* True when host carries every label of labels (KEY=VALUE strings). */
static bool host_has_labels(json_t *host, char **labels) {
        json_t *l = json_object_get(host, "labels");

        for (char **p = labels; p && *p; p++) {
                const char *eq = strchr(*p, '=');
                _cleanup_free_ char *key = strndup(*p, (size_t) (eq - *p));
                if (!key || !streq_ptr(json_string_value(json_object_get(l, key)), eq + 1))
                        return false;
        }
        return true;
}

/* The images on the server as an object ID -> "name:version"; an empty
 * object when they cannot be listed (the IDs are shown instead). */
static json_t *image_names(Ctl *ctl) {
        json_t *reply = NULL, *names = json_object(), *img;
        size_t i;

        if (!names || api_request(ctl->api, "GET", "/v1/images", NULL, NULL, &reply) < 0)
                return names;
        json_array_foreach(json_object_get(reply, "images"), i, img) {
                const char *id = str(img, "id");
                char *label = strdup_printf("%s:%s", strempty(str(img, "name")), strempty(str(img, "version")));
                if (id && label)
                        json_object_set_new(names, id, json_string(label));
                free(label);
        }
        json_decref(reply);
        return names;
}

/* "name:version" for an image ID, from names, else its first 12 digits. */
static void image_cell(json_t *names, const char *id, char *buf, size_t size) {
        const char *label = json_string_value(json_object_get(names, strempty(id)));

        if (!id)
                snprintf(buf, size, "-");
        else if (label)
                snprintf(buf, size, "%s", label);
        else
                snprintf(buf, size, "%.12s", id);
}

static char *hosts_query(Ctl *ctl) {
        _cleanup_free_ char *label = NULL, *state = NULL;

        if (ctl->opt.labels) {
                label = api_escape(ctl->opt.labels[0]);
                if (!label)
                        return NULL;
        }
        if (ctl->opt.state) {
                state = api_escape(ctl->opt.state);
                if (!state)
                        return NULL;
        }
        return strdup_printf("/v1/hosts%s%s%s%s%s%s", label || state ? "?" : "", label ? "label=" : "",
                             strempty(label), label && state ? "&" : "", state ? "state=" : "",
                             strempty(state));
}

int ctl_host_list(Ctl *ctl, char **args _unused_) {
        static const char *const headers[] = { "HOST", "MAC", "HOSTNAME", "STATE", "IMAGE", "VERSION", "LABELS",
                                               "LAST SEEN" };
        _cleanup_table_free_ Table *t = NULL;
        _cleanup_free_ char *path = hosts_query(ctl);
        json_t *reply = NULL, *hosts, *h, *names = NULL;
        int64_t now = (int64_t) time(NULL);
        bool any_image = false;
        size_t i;
        int r;

        if (!path)
                return log_oom();
        r = ctl_call(ctl, "GET", path, NULL, &reply, "cannot list hosts");
        if (r < 0)
                return r;
        hosts = json_object_get(reply, "hosts");
        /* The server filters by one label; the others are checked here. */
        for (i = 0; i < json_array_size(hosts);)
                if (host_has_labels(json_array_get(hosts, i), ctl->opt.labels))
                        i++;
                else
                        json_array_remove(hosts, i);
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        json_array_foreach(hosts, i, h)
                any_image = any_image || str(h, "image");
        if (any_image)
                names = image_names(ctl);
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t) {
                json_decref(reply);
                json_decref(names);
                return log_oom();
        }
        json_array_foreach(hosts, i, h) {
                _cleanup_free_ char *labels = json_inline(json_object_get(h, "labels"));
                char image[160], seen[32];

                image_cell(names, str(h, "image"), image, sizeof(image));
                format_ago(seen, sizeof(seen), num(h, "last_seen"), now);
                r = table_add_row(t, (const char *const[]) { str(h, "id"), str(h, "mac"), str(h, "hostname"),
                                                              str(h, "state"), image, str(h, "version"), labels,
                                                              seen });
                if (r < 0)
                        break;
        }
        json_decref(reply);
        json_decref(names);
        return table_print_listing(t, r, ctl->opt.labels || ctl->opt.state ? "no hosts match" : "no hosts are known");
}

/* A field of several lines (a health check's output in a message), a line
 * to a line; "-" when empty. */
static void lines_print(const char *key, const char *text) {
        const char *p = text, *nl;

        if (isempty(text)) {
                field_print(key, "-");
                return;
        }
        for (bool first = true; *p; p = nl ? nl + 1 : p + strlen(p), first = false) {
                int n;

                nl = strchr(p, '\n');
                n = (int) (nl ? (size_t) (nl - p) : strlen(p));
                if (first)
                        field_print(key, "%.*s", n, p);
                else
                        field_continue(0, "%.*s", n, p);
        }
}

/* The health report for a person: a line per check, and below a failed
 * one its output (a script's, or a unit's last journal lines), indented. */
static void health_print(json_t *health) {
        const char *name;
        json_t *c;
        bool first = true;

        if (!json_is_object(health) || json_object_size(health) == 0) {
                field_print("health", "-");
                return;
        }
        json_object_foreach(health, name, c) {
                bool ok = json_is_true(json_object_get(c, "ok"));
                bool required = !json_is_false(json_object_get(c, "required"));
                const char *state = str(c, "state"), *out = str(c, "output");
                json_t *status = json_object_get(c, "exit");
                _cleanup_free_ char *line = NULL, *detail = NULL;

                if (state)
                        detail = strdup_printf(", %s", state);
                else if (!ok && json_is_integer(status))
                        detail = strdup_printf(", exit %" JSON_INTEGER_FORMAT, json_integer_value(status));
                line = strdup_printf("%s: %s (%s)%s%s", name, ok ? "ok" : "FAILED", required ? "required" : "wanted",
                                     strempty(detail),
                                     json_is_true(json_object_get(c, "truncated")) ? ", output left out" : "");
                if (first)
                        field_print("health", "%s", strempty(line));
                else
                        field_continue(0, "%s", strempty(line));
                first = false;
                if (ok || isempty(out))
                        continue;
                for (const char *p = out, *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
                        nl = strchr(p, '\n');
                        field_continue(2, "| %.*s", (int) (nl ? (size_t) (nl - p) : strlen(p)), p);
                }
        }
}

int ctl_host_show(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_path("/v1/hosts/", args[0], NULL);
        _cleanup_free_ char *what = strdup_printf("cannot show host '%s'", args[0]);
        _cleanup_free_ char *labels = NULL, *image = NULL, *current = NULL, *slots = NULL;
        _cleanup_free_ char *facts = NULL;
        json_t *h = NULL;
        int64_t now = (int64_t) time(NULL);
        char t1[64], t2[64];
        int r;

        if (!path || !what)
                return log_oom();
        r = ctl_call(ctl, "GET", path, NULL, &h, what);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(h);
                json_decref(h);
                return r;
        }
        labels = json_inline(json_object_get(h, "labels"));
        slots = json_inline(json_object_get(h, "slots"));
        facts = json_inline(json_object_get(h, "facts"));
        if (str(h, "image"))
                image = ctl_image_label(ctl, str(h, "image"));
        if (str(h, "current_image"))
                current = ctl_image_label(ctl, str(h, "current_image"));

        field_print("id", "%s", strempty(str(h, "id")));
        field_print("mac", "%s", str(h, "mac") ? str(h, "mac") : "-");
        field_print("uuid", "%s", str(h, "uuid") ? str(h, "uuid") : "-");
        field_print("hostname", "%s", str(h, "hostname") ? str(h, "hostname") : "-");
        field_print("state", "%s", strempty(str(h, "state")));
        field_print("labels", "%s", strempty(labels));
        if (str(h, "image"))
                field_print("image", "%s (%.12s), boot %s", image ? image : "?", str(h, "image"),
                            str(h, "boot") ? str(h, "boot") : "disk");
        else
                field_print("image", "none assigned");
        field_print("installed", "%s", json_is_true(json_object_get(h, "installed")) ? "yes" : "no");
        if (str(h, "current_image"))
                field_print("running", "%s (%.12s)", current ? current : strempty(str(h, "version")),
                            str(h, "current_image"));
        else
                field_print("running", "%s", str(h, "version") ? str(h, "version") : "-");
        field_print("booted slot", "%s", str(h, "booted_slot") ? str(h, "booted_slot") : "-");
        field_print("slots", "%s", strempty(slots));
        health_print(json_object_get(h, "health"));
        field_print("facts", "%s", strempty(facts));
        lines_print("message", str(h, "message"));
        field_print("registered", "%s (%s)", format_time(t1, sizeof(t1), num(h, "registered")),
                    format_ago(t2, sizeof(t2), num(h, "registered"), now));
        if (num(h, "last_seen") > 0)
                field_print("last seen", "%s (%s)", format_time(t1, sizeof(t1), num(h, "last_seen")),
                            format_ago(t2, sizeof(t2), num(h, "last_seen"), now));
        else
                field_print("last seen", "never");
        json_decref(h);
        return 0;
}

int ctl_host_label(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_path("/v1/hosts/", args[0], "/labels");
        _cleanup_free_ char *what = strdup_printf("cannot change the labels of host '%s'", args[0]);
        _cleanup_free_ char *labels = NULL, *safe = NULL, *id = NULL;
        json_t *set = json_object(), *remove = json_array(), *body = NULL, *h = NULL;
        int r = 0;

        if (!path || !what || !set || !remove) {
                json_decref(set);
                json_decref(remove);
                return log_oom();
        }
        for (char **p = args + 1; *p && r >= 0; p++) {
                const char *eq = strchr(*p, '=');
                size_t n = strlen(*p);

                if (eq && eq != *p) {
                        _cleanup_free_ char *key = strndup(*p, (size_t) (eq - *p));
                        r = key ? json_object_set_new(set, key, json_string(eq + 1)) : -ENOMEM;
                        if (r < 0)
                                r = log_oom();
                } else if (!eq && n > 1 && (*p)[n - 1] == '-') {
                        _cleanup_free_ char *key = strndup(*p, n - 1);
                        r = key ? json_array_append_new(remove, json_string(key)) : -ENOMEM;
                        if (r < 0)
                                r = log_oom();
                } else
                        r = log_error_errno(-EINVAL, "label argument '%s': expected KEY=VALUE to set or KEY- to remove",
                                            *p);
        }
        if (r >= 0) {
                body = json_pack("{s:o, s:o}", "set", set, "remove", remove);
                set = remove = NULL;
                r = body ? ctl_call(ctl, "POST", path, body, &h, what) : log_oom();
        }
        json_decref(set);
        json_decref(remove);
        json_decref(body);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(h);
                json_decref(h);
                return r;
        }
        labels = json_inline(json_object_get(h, "labels"));
        safe = text_safe(labels);
        id = text_safe(str(h, "id"));
        printf("%s: labels %s\n", id ? id : "?", safe ? safe : "?");
        json_decref(h);
        return 0;
}

static int assign(Ctl *ctl, const char *host, const char *image, const char *boot) {
        _cleanup_free_ char *path = ctl_path("/v1/hosts/", host, "/image");
        _cleanup_free_ char *what = image ? strdup_printf("cannot assign image '%s' to host '%s'", image, host)
                                          : strdup_printf("cannot unassign the image of host '%s'", host);
        _cleanup_free_ char *label = NULL, *id = NULL;
        json_t *body, *h = NULL;
        int r;

        if (!path || !what)
                return log_oom();
        body = json_pack("{s:s?}", "image", image);
        if (!body || (boot && json_object_set_new(body, "boot", json_string(boot)) < 0)) {
                json_decref(body);
                return log_oom();
        }
        r = ctl_call(ctl, "PUT", path, body, &h, what);
        json_decref(body);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(h);
                json_decref(h);
                return r;
        }
        id = text_safe(str(h, "id"));
        if (str(h, "image")) {
                label = ctl_image_label(ctl, str(h, "image"));
                _cleanup_free_ char *safe = text_safe(label ? label : image);
                printf("%s: assigned %s (%.12s), boot %s\n", id ? id : "?", safe ? safe : "?", str(h, "image"),
                       streq_ptr(str(h, "boot"), "live") ? "live" : "disk");
        } else
                printf("%s: no image assigned\n", id ? id : "?");
        json_decref(h);
        return 0;
}

int ctl_host_assign(Ctl *ctl, char **args) {
        return assign(ctl, args[0], args[1], ctl->opt.boot);
}

int ctl_host_unassign(Ctl *ctl, char **args) {
        return assign(ctl, args[0], NULL, NULL);
}
