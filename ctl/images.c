/* slipctl image list|show|delete. */
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

static uint64_t image_size(json_t *img) {
        json_t *a;
        size_t i;
        uint64_t total = 0;

        json_array_foreach(json_object_get(img, "artifacts"), i, a)
                total += (uint64_t) num(a, "size");
        return total;
}

int ctl_image_list(Ctl *ctl, char **args _unused_) {
        static const char *const headers[] = { "NAME", "VERSION", "ARCH", "ID", "SIZE", "HOSTS", "CREATED" };
        _cleanup_table_free_ Table *t = NULL;
        json_t *reply = NULL, *images, *img;
        int64_t now = (int64_t) time(NULL);
        size_t i;
        int r = 0;

        r = ctl_call(ctl, "GET", "/v1/images", NULL, &reply, "cannot list images");
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        images = json_object_get(reply, "images");
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t) {
                json_decref(reply);
                return log_oom();
        }
        json_array_foreach(images, i, img) {
                char id[13], size[32], hosts[24], created[32];

                snprintf(id, sizeof(id), "%.12s", strempty(str(img, "id")));
                format_bytes(size, sizeof(size), image_size(img));
                snprintf(hosts, sizeof(hosts), "%lld", (long long) num(img, "hosts"));
                format_ago(created, sizeof(created), num(img, "created"), now);
                r = table_add_row(t, (const char *const[]) { str(img, "name"), str(img, "version"), str(img, "arch"),
                                                              id, size, hosts, created });
                if (r < 0)
                        break;
        }
        json_decref(reply);
        return table_print_listing(t, r, "no images are published");
}

int ctl_image_show(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_path("/v1/images/", args[0], NULL);
        _cleanup_free_ char *what = strdup_printf("cannot show image '%s'", args[0]);
        json_t *img = NULL, *a;
        char buf[64], ago[32];
        size_t i;
        int r;

        if (!path || !what)
                return log_oom();
        r = ctl_call(ctl, "GET", path, NULL, &img, what);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(img);
                json_decref(img);
                return r;
        }
        field_print("id", "%s", strempty(str(img, "id")));
        field_print("name", "%s", strempty(str(img, "name")));
        field_print("version", "%s", strempty(str(img, "version")));
        field_print("arch", "%s", strempty(str(img, "arch")));
        field_print("kernel", "%s", str(img, "kernel_version") ? str(img, "kernel_version") : "-");
        field_print("created", "%s (%s)", format_time(buf, sizeof(buf), num(img, "created")),
                    format_ago(ago, sizeof(ago), num(img, "created"), (int64_t) time(NULL)));
        field_print("signed by", "%s", str(img, "signed_by") ? str(img, "signed_by") : "-");
        field_print("manifest", "%s", strempty(str(img, "manifest")));
        field_print("signature", "%s", strempty(str(img, "signature")));
        field_print("size", "%s", format_bytes(buf, sizeof(buf), image_size(img)));
        field_print("hosts", "%lld", (long long) num(img, "hosts"));
        printf("artifacts:\n");
        json_array_foreach(json_object_get(img, "artifacts"), i, a) {
                _cleanup_free_ char *type = text_safe(str(a, "type")), *fstype = text_safe(str(a, "fstype"));
                _cleanup_free_ char *sha = text_safe(str(a, "sha256"));

                printf("  %-8s %10s  %s%s%s%s\n", type ? type : "?",
                       format_bytes(buf, sizeof(buf), (uint64_t) num(a, "size")), sha ? sha : "?",
                       str(a, "fstype") ? " (" : "", str(a, "fstype") && fstype ? fstype : "",
                       str(a, "fstype") ? ")" : "");
        }
        json_decref(img);
        return 0;
}

int ctl_image_delete(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_path("/v1/images/", args[0], NULL);
        _cleanup_free_ char *what = strdup_printf("cannot delete image '%s'", args[0]);
        _cleanup_free_ char *ref = NULL;
        json_t *reply = NULL;
        int r;

        if (!path || !what)
                return log_oom();
        r = ctl_call(ctl, "DELETE", path, NULL, &reply, what);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        ref = text_safe(args[0]);
        printf("deleted image %s (%.12s), %lld blob(s) removed\n", ref ? ref : "?", strempty(str(reply, "deleted")),
               (long long) num(reply, "blobs_removed"));
        json_decref(reply);
        return 0;
}

char *ctl_image_label(Ctl *ctl, const char *id) {
        _cleanup_free_ char *path = ctl_path("/v1/images/", id, NULL);
        json_t *img = NULL;
        char *label;

        if (!path || api_request(ctl->api, "GET", path, NULL, NULL, &img) < 0)
                return NULL;
        label = strdup_printf("%s:%s", strempty(str(img, "name")), strempty(str(img, "version")));
        json_decref(img);
        return label;
}
