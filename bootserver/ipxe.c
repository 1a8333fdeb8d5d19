#include <stddef.h>
#include <time.h>

#include "audit.h"
#include "enroll.h"
#include "fileio.h"
#include "hosts.h"
#include "images.h"
#include "ipxe.h"
#include "log.h"
#include "server.h"
#include "tokens.h"
#include "store-sqlite.h"
#include "util.h"

#define RETRY                                                                                  \
        ":retry\n"                                                                             \
        "echo Slipway: boot failed, asking {{server}} again in 10 s\n"                         \
        "sleep 10\n"                                                                           \
        "chain --replace {{server}}/boot/ipxe?mac={{mac}}&uuid={{uuid}} || goto retry\n"

static const char *const builtin[_IPXE_SCRIPT_MAX] = {
        [IPXE_INSTALL] = "#!ipxe\n"
                         "# slipway: install {{name}} {{version}} on {{host}} ({{mac}})\n"
                         "echo Slipway: installing {{name}} {{version}} on {{host}}\n"
                         "kernel {{kernel_url}} initrd=initrd.img {{cmdline}} slipway.mode=install "
                         "slipway.server={{server}} slipway.host={{host}} slipway.mac={{mac}} slipway.enroll={{enroll}} "
                         "slipway.image={{image}} || goto retry\n"
                         "initrd --name initrd.img {{initrd_url}} || goto retry\n"
                         "boot || goto retry\n" RETRY,
        [IPXE_LOCAL] = "#!ipxe\n"
                       "# slipway: {{host}} ({{mac}}) is installed: boot its disk\n"
                       "echo Slipway: {{host}} boots from its disk\n"
                       "iseq ${platform} efi && goto efi ||\n"
                       "sanboot --no-describe --drive 0x80 || goto retry\n"
                       ":efi\n"
                       "# leaving iPXE hands the machine back to the firmware's next boot option\n"
                       "exit 1\n" RETRY,
        [IPXE_LIVE] = "#!ipxe\n"
                      "# slipway: live boot of {{name}} {{version}} on {{host}} ({{mac}})\n"
                      "echo Slipway: live boot of {{name}} {{version}}\n"
                      "kernel {{kernel_url}} initrd=initrd.img {{cmdline}} slipway.mode=live "
                      "slipway.server={{server}} slipway.host={{host}} slipway.image={{image}} "
                      "slipway.signature={{signature}} slipway.rootfs={{rootfs_url}} || goto retry\n"
                      "initrd --name initrd.img {{initrd_url}} || goto retry\n"
                      "boot || goto retry\n" RETRY,
        [IPXE_WAIT] = "#!ipxe\n"
                      "# slipway: no image for {{host}} ({{mac}})\n"
                      "echo Slipway: no image is assigned to {{host}} ({{mac}}); asking again in 30 s\n"
                      "sleep 30\n"
                      "chain --replace {{server}}/boot/ipxe?mac={{mac}}&uuid={{uuid}} || goto retry\n" RETRY,
        [IPXE_HELD] = "#!ipxe\n"
                      "# slipway: the install secret of {{host}} ({{mac}}) was issued to another client\n"
                      "echo Slipway: {{host}} ({{mac}}) is to be installed, but its enrollment secret went to another "
                      "client\n"
                      "echo Slipway: an operator revokes it by assigning the image to the host again; asking again in 30 s\n"
                      "sleep 30\n"
                      "chain --replace {{server}}/boot/ipxe?mac={{mac}}&uuid={{uuid}} || goto retry\n" RETRY,
        [IPXE_CHAIN] = "#!ipxe\n"
                       "chain --replace {{server}}/boot/ipxe?mac=${mac}&uuid=${uuid}\n",
};

static const char *const script_names[_IPXE_SCRIPT_MAX] = {
        [IPXE_INSTALL] = "install", [IPXE_LOCAL] = "local", [IPXE_LIVE] = "live",
        [IPXE_WAIT] = "wait",       [IPXE_HELD] = "held",     [IPXE_CHAIN] = "chain",
};

const char *ipxe_builtin(IpxeScript s) {
        return s < _IPXE_SCRIPT_MAX ? builtin[s] : NULL;
}

const char *ipxe_script_to_string(IpxeScript s) {
        return s < _IPXE_SCRIPT_MAX ? script_names[s] : NULL;
}

static const char *var_lookup(const IpxeVars *v, const char *name, size_t n, bool *ret_known) {
        static const struct {
                const char *name;
                size_t offset;
        } names[] = {
#define V(f) { #f, offsetof(IpxeVars, f) }
                V(server),  V(mac),        V(uuid),       V(host),       V(image),   V(signature),
                V(name),    V(version),    V(kernel_url), V(initrd_url), V(rootfs_url), V(cmdline),
                V(enroll),
#undef V
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strlen(names[i].name) == n && memcmp(names[i].name, name, n) == 0) {
                        *ret_known = true;
                        return *(const char *const *) ((const char *) v + names[i].offset);
                }
        *ret_known = false;
        return NULL;
}

/* ipxe_render(), and the offset in template of what it could not render. */
static int render(const char *template, const IpxeVars *v, char **ret, char **ret_bad, size_t *ret_offset) {
        _cleanup_free_ char *out = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&out, &size);
        if (!f)
                return -ENOMEM;
        for (const char *p = template; *p;) {
                const char *open = strstr(p, "{{"), *close;
                bool known;

                if (!open) {
                        fputs(p, f);
                        break;
                }
                fwrite(p, 1, (size_t) (open - p), f);
                *ret_offset = (size_t) (open - template);
                close = strstr(open + 2, "}}");
                if (!close) {
                        fclose(f);
                        if (ret_bad)
                                *ret_bad = strdup("{{ without }}");
                        return -EINVAL;
                }
                const char *val = var_lookup(v, open + 2, (size_t) (close - open - 2), &known);
                if (!known) {
                        fclose(f);
                        if (ret_bad)
                                *ret_bad = strndup(open, (size_t) (close - open + 2));
                        return -EINVAL;
                }
                fputs(strempty(val), f);
                p = close + 2;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(out);
        return 0;
}

int ipxe_render(const char *template, const IpxeVars *v, char **ret, char **ret_bad) {
        size_t offset;

        return render(template, v, ret, ret_bad, &offset);
}

int ipxe_template_check(const char *template, unsigned *ret_line, char **ret_why) {
        _cleanup_free_ char *out = NULL, *bad = NULL;
        size_t offset = 0;
        unsigned line = 1;
        int r;

        if (!startswith(template, "#!ipxe")) {
                *ret_line = 1;
                *ret_why = strdup("does not start with #!ipxe, so iPXE would not run it as a script");
                return *ret_why ? -EINVAL : -ENOMEM;
        }
        r = render(template, &(IpxeVars) {}, &out, &bad, &offset);
        if (r != -EINVAL)
                return r;
        for (size_t i = 0; i < offset; i++)
                line += template[i] == '\n';
        *ret_line = line;
        *ret_why = streq_ptr(bad, "{{ without }}") ? strdup("'{{' without '}}'")
                                                   : strdup_printf("unknown placeholder %s", strempty(bad));
        return *ret_why ? -EINVAL : -ENOMEM;
}

/* The template text for s: the configured file, or the built-in one. */
static int template_load(Server *srv, IpxeScript s, char **ret) {
        const ServerConfig *c = config_get(srv);
        const char *file = s == IPXE_INSTALL ? c->ipxe_install
                         : s == IPXE_LOCAL   ? c->ipxe_local
                         : s == IPXE_LIVE    ? c->ipxe_live
                         : s == IPXE_WAIT    ? c->ipxe_wait
                                             : NULL;
        _cleanup_free_ char *path = file ? strdup(file) : NULL;
        int r;

        config_put(srv);
        if (!path) {
                *ret = strdup(builtin[s]);
                return *ret ? 0 : -ENOMEM;
        }
        r = read_full_file(path, IPXE_TEMPLATE_MAX, ret, NULL);
        if (r < 0)
                return log_error_errno(r, "cannot read the %s template '%s': %m", script_names[s], path);
        return 0;
}

typedef struct Decision {
        IpxeScript script;
        char host[16];
        char image[65];
        char *name, *version, *signature, *cmdline, *kernel, *initrd, *rootfs;
        char enroll[65];
} Decision;

static void decision_release(Decision *d) {
        free(d->name);
        free(d->version);
        free(d->signature);
        free(d->cmdline);
        free(d->kernel);
        free(d->initrd);
        free(d->rootfs);
}

/* With the lock held and a transaction open: what host mac, asking from
 * address at now, boots. The request is recorded as pxe_seen, never as
 * last_seen: firmware looping on a script is no sign that the host's
 * system runs. */
static int decide(Server *srv, StoreTx *tx, const char *mac, const char *uuid, const char *address, uint64_t now,
                  Decision *d) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *ar = NULL, *up = NULL, *seen = NULL;
        _cleanup_free_ char *default_image = NULL, *boot = NULL, *image = NULL;
        bool is_new, installed = false;
        int r;

        r = hosts_ensure(tx, mac, uuid, "pxe", d->host, &is_new);
        if (r >= 0)
                r = db_prepare(db, "UPDATE hosts SET pxe_seen = ? WHERE id = ?", &seen);
        if (r >= 0) {
                sqlite3_bind_int64(seen, 1, (sqlite3_int64) now);
                sqlite3_bind_text(seen, 2, d->host, -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(seen));
        }
        if (r < 0)
                return r;
        r = db_prepare(db, "SELECT image, boot, installed FROM hosts WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, d->host, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -EIO;
        image = db_column_strdup(st, 0);
        boot = db_column_strdup(st, 1);
        installed = sqlite3_column_int(st, 2);

        if (!image) {
                const ServerConfig *c = config_get(srv);
                default_image = c->default_image ? strdup(c->default_image) : NULL;
                config_put(srv);
                if (default_image && images_resolve(tx, default_image, d->image) >= 0) {
                        image = strdup(d->image);
                        if (!image)
                                return -ENOMEM;
                        r = db_prepare(db, "UPDATE hosts SET image = ? WHERE id = ?", &up);
                        if (r >= 0) {
                                sqlite3_bind_text(up, 1, image, -1, SQLITE_STATIC);
                                sqlite3_bind_text(up, 2, d->host, -1, SQLITE_STATIC);
                                r = db_errno(sqlite3_step(up));
                        }
                        if (r >= 0) {
                                json_t *detail = json_pack("{s:s, s:s}", "image", image, "ref", default_image);
                                r = audit_log(tx, "default-image", "host.assign", d->host, detail);
                                json_decref(detail);
                        }
                        if (r < 0)
                                return r;
                }
        }
        if (installed && streq_ptr(boot, "disk")) {
                d->script = IPXE_LOCAL;
                return 0;
        }
        if (!image) {
                d->script = IPXE_WAIT;
                return 0;
        }
        snprintf(d->image, sizeof d->image, "%s", image);
        sqlite3_finalize(st);
        st = NULL;
        r = db_prepare(db, "SELECT name, version, signature FROM images WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, image, -1, SQLITE_STATIC);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        d->name = db_column_strdup(st, 0);
        d->version = db_column_strdup(st, 1);
        d->signature = db_column_strdup(st, 2);
        r = db_prepare(db, "SELECT type, sha256 FROM artifacts WHERE image_id = ?", &ar);
        if (r < 0)
                return r;
        sqlite3_bind_text(ar, 1, image, -1, SQLITE_STATIC);
        while ((r = db_step(ar)) > 0) {
                const char *type = (const char *) sqlite3_column_text(ar, 0);
                char **slot = streq(type, "kernel") ? &d->kernel
                            : streq(type, "initrd") ? &d->initrd
                            : streq(type, "rootfs") ? &d->rootfs
                                                    : NULL;
                if (slot)
                        *slot = db_column_strdup(ar, 1);
        }
        if (r < 0)
                return r;
        if (!d->kernel || !d->initrd) {
                /* An image without kernel + initrd cannot be network-booted. */
                d->script = IPXE_WAIT;
                return 0;
        }
        d->script = streq_ptr(boot, "live") ? IPXE_LIVE : IPXE_INSTALL;
        if (d->script == IPXE_INSTALL) {
                uint64_t ttl;
                const ServerConfig *c = config_get(srv);
                ttl = c->enroll_ttl;
                config_put(srv);
                r = enroll_issue(tx, srv->state_dir, d->host, mac, address, ttl, now, d->enroll);
                if (r == ENROLL_HELD)
                        d->script = IPXE_HELD;
        }
        return r < 0 ? r : 0;
}

/* The manifest's kernel command line, for the boot script. */
static char *image_cmdline(Server *srv, StoreTx *tx, const char *image) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        struct Manifest *m = NULL;
        char *cmdline = NULL;

        if (db_prepare(db, "SELECT manifest FROM images WHERE id = ?", &st) < 0)
                return NULL;
        sqlite3_bind_text(st, 1, image, -1, SQLITE_STATIC);
        if (db_step(st) <= 0)
                return NULL;
        if (images_load_manifest(srv, (const char *) sqlite3_column_text(st, 0), &m) < 0)
                return NULL;
        cmdline = images_manifest_cmdline(m);
        return cmdline;
}

static enum MHD_Result handle_ipxe(Request *req) {
        _cleanup_free_ char *server = NULL, *tmpl = NULL, *text = NULL, *bad = NULL;
        _cleanup_free_ char *kernel_url = NULL, *initrd_url = NULL, *rootfs_url = NULL;
        const char *mac_s = request_arg(req, "mac"), *uuid_s = request_arg(req, "uuid");
        char mac[18], uuid[37], address[ENROLL_ADDRESS_MAX];
        bool has_uuid = false;
        Decision d = {};
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        server = server_public_url(req->server);
        if (!server)
                return MHD_NO;
        if (!mac_s) {
                IpxeVars v = { .server = server };
                r = ipxe_render(builtin[IPXE_CHAIN], &v, &text, NULL);
                if (r < 0)
                        return reply_errno(req, r, "ipxe");
                return reply_text(req, 200, "text/plain", text);
        }
        if (mac_normalize(mac_s, mac) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'mac': not a MAC address");
        /* iPXE sends an empty or all-zero UUID when SMBIOS has none. */
        if (!isempty(uuid_s)) {
                if (uuid_normalize(uuid_s, uuid) < 0)
                        return reply_error(req, KIND_INVALID_VALUE, "'uuid': not a UUID");
                has_uuid = !streq(uuid, "00000000-0000-0000-0000-000000000000");
        }
        r = enroll_client_address(req->conn, address);
        if (r < 0)
                return reply_errno(req, r, "client address");

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = decide(req->server, tx, mac, has_uuid ? uuid : NULL, address, (uint64_t) time(NULL), &d);
        if (r >= 0 && (d.script == IPXE_INSTALL || d.script == IPXE_LIVE)) {
                d.cmdline = image_cmdline(req->server, tx, d.image);
                if (!d.cmdline)
                        r = -EIO;
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        store_tx_rollback(&tx);
        if (r < 0) {
                decision_release(&d);
                return reply_errno(req, r, "boot decision");
        }
        if (d.kernel)
                kernel_url = strdup_printf("%s/blobs/sha256/%s", server, d.kernel);
        if (d.initrd)
                initrd_url = strdup_printf("%s/blobs/sha256/%s", server, d.initrd);
        if (d.rootfs)
                rootfs_url = strdup_printf("%s/blobs/sha256/%s", server, d.rootfs);
        IpxeVars v = {
                .server = server,
                .mac = mac,
                .uuid = has_uuid ? uuid : "",
                .host = d.host,
                .image = d.image,
                .signature = d.signature,
                .name = d.name,
                .version = d.version,
                .kernel_url = kernel_url,
                .initrd_url = initrd_url,
                .rootfs_url = rootfs_url,
                .cmdline = d.cmdline,
                .enroll = d.enroll,
        };
        r = template_load(req->server, d.script, &tmpl);
        if (r >= 0)
                r = ipxe_render(tmpl, &v, &text, &bad);
        log_debug("ipxe: %s (%s) at %s gets the %s script", d.host, mac, address, script_names[d.script]);
        decision_release(&d);
        if (r == -EINVAL)
                return reply_error(req, KIND_INTERNAL, "the %s template uses an unknown placeholder %s",
                                   script_names[d.script], strempty(bad));
        if (r < 0)
                return reply_errno(req, r, "ipxe template");
        return reply_text(req, 200, "text/plain", text);
}

const Route ipxe_routes[] = {
        { "GET", "boot/ipxe", AUTH_PUBLIC, BODY_NONE, handle_ipxe },
        {},
};
