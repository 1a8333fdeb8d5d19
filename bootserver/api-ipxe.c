/* The iPXE endpoint (docs/api.md, "Network boot"): who asks, what it
 * boots (ipxe_boot()), and the script rendered from its template. */
#include <time.h>

#include "fileio.h"
#include "hosts.h"
#include "images.h"
#include "ipxe.h"
#include "leader.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "util.h"

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
                *ret = strdup(ipxe_builtin(s));
                return *ret ? 0 : -ENOMEM;
        }
        r = read_full_file(path, IPXE_TEMPLATE_MAX, ret, NULL);
        if (r < 0)
                return log_error_errno(r, "cannot read the %s template '%s': %m", ipxe_script_to_string(s), path);
        return 0;
}

/* The manifest's kernel command line, for the boot script. */
static char *image_cmdline(Server *srv, const char *manifest) {
        struct Manifest *m = NULL;

        if (!manifest || images_load_manifest(srv->state_dir, manifest, &m) < 0)
                return NULL;
        return images_manifest_cmdline(m);
}

/* {{servers}}: self (this instance's URL) first, then the other live
 * instances' of the registry when the state is shared; self alone on a
 * state of its own, or when the registry cannot be read (logged: the host
 * still gets its script). Caller frees; NULL when out of memory. */
static char *server_list(Server *srv, const char *self) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        Instance *l = NULL;
        size_t n = 0;
        char *list;
        bool shared;
        int r;

        const ServerConfig *c = config_get(srv);
        shared = c->database;
        config_put(srv);
        if (!shared)
                return strdup(self);
        store_clear_error();
        r = store_tx_begin(srv->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_instance_list(tx, &l, &n);
        store_tx_rollback(&tx);
        if (r < 0)
                log_warning("ipxe: cannot read the instances, so a boot script names this one only: %s",
                            store_last_error() ?: strerror(-r));
        list = ipxe_server_list(self, l, n, INSTANCE_STALE_MS);
        instance_list_free(l, n);
        return list;
}

static enum MHD_Result handle_ipxe(Request *req) {
        _cleanup_free_ char *server = NULL, *servers = NULL, *tmpl = NULL, *text = NULL, *bad = NULL;
        _cleanup_free_ char *cmdline = NULL, *kernel_url = NULL, *initrd_url = NULL, *rootfs_url = NULL;
        const char *mac_s = request_arg(req, "mac"), *uuid_s = request_arg(req, "uuid");
        char mac[18], uuid[37], address[REQUEST_ADDRESS_MAX];
        bool has_uuid = false;
        _cleanup_(ipxe_decision_release) IpxeDecision d = {};
        _cleanup_free_ char *default_image = NULL;
        IpxePolicy policy = { .state_dir = req->server->state_dir };
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        server = server_public_url(req->server);
        if (!server)
                return MHD_NO;
        if (!mac_s) {
                IpxeVars v = { .server = server };
                r = ipxe_render(ipxe_builtin(IPXE_CHAIN), &v, &text, NULL);
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
        r = request_client_address(req, address);
        if (r < 0)
                return reply_errno(req, r, "client address");

        const ServerConfig *c = config_get(req->server);
        bool has_default = c->default_image;
        default_image = has_default ? strdup(c->default_image) : NULL;
        policy.enroll_ttl = c->enroll_ttl;
        config_put(req->server);
        if (has_default && !default_image)
                return MHD_NO;
        policy.default_image = default_image;

        r = store_tx_begin(req->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = ipxe_boot(tx, &policy, mac, has_uuid ? uuid : NULL, address, req->now, &d);
        if (r >= 0 && (d.script == IPXE_INSTALL || d.script == IPXE_LIVE)) {
                cmdline = image_cmdline(req->server, d.boot.manifest);
                if (!cmdline)
                        r = -EIO;
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        store_tx_rollback(&tx);
        if (r < 0)
                return reply_errno(req, r, "boot decision");
        if (d.boot.kernel)
                kernel_url = strdup_printf("%s/blobs/sha256/%s", server, d.boot.kernel);
        if (d.boot.initrd)
                initrd_url = strdup_printf("%s/blobs/sha256/%s", server, d.boot.initrd);
        if (d.boot.rootfs)
                rootfs_url = strdup_printf("%s/blobs/sha256/%s", server, d.boot.rootfs);
        IpxeVars v = {
                .server = server,
                .mac = mac,
                .uuid = has_uuid ? uuid : "",
                .host = d.host,
                .image = d.image,
                .signature = d.boot.signature,
                .name = d.boot.name,
                .version = d.boot.version,
                .kernel_url = kernel_url,
                .initrd_url = initrd_url,
                .rootfs_url = rootfs_url,
                .cmdline = cmdline,
                .enroll = d.enroll,
        };
        r = template_load(req->server, d.script, &tmpl);
        /* The registry is read for the scripts that use it only. */
        if (r >= 0 && strstr(tmpl, "{{servers}}")) {
                v.servers = servers = server_list(req->server, server);
                if (!servers)
                        return MHD_NO;
        }
        if (r >= 0)
                r = ipxe_render(tmpl, &v, &text, &bad);
        log_debug("ipxe: %s (%s) at %s gets the %s script", d.host, mac, address, ipxe_script_to_string(d.script));
        if (r == -EINVAL)
                return reply_error(req, KIND_INTERNAL, "the %s template uses an unknown placeholder %s",
                                   ipxe_script_to_string(d.script), strempty(bad));
        if (r < 0)
                return reply_errno(req, r, "ipxe template");
        return reply_text(req, 200, "text/plain", text);
}

const Route ipxe_routes[] = {
        { "GET", "boot/ipxe", AUTH_PUBLIC, BODY_NONE, handle_ipxe },
        {},
};
