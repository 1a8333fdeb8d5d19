#include <stddef.h>
#include <sys/stat.h>

#include "config.h"
#include "conftab.h"
#include "log.h"
#include "util.h"

#define F(field) offsetof(ServerConfig, field)

static const ConfKey keys[] = {
        { "server", "listen", "listen", CONF_STRING, F(listen), "ADDR:PORT", "address to serve on (0.0.0.0:8080)" },
        { "server", "public-url", "public-url", CONF_STRING, F(public_url), "URL",
          "how hosts reach this server (default from listen)" },
        { "server", "state-dir", "state-dir", CONF_STRING, F(state_dir), "DIR",
          "catalog, blobs and dnsmasq files (/var/lib/slipway)" },
        { "server", "trusted-keys", "trusted-keys", CONF_STRING, F(trusted_keys), "DIR",
          "*.pub keys a pushed manifest must verify against (/etc/slipway/keys)" },
        { "server", "tls-cert", "tls-cert", CONF_STRING, F(tls_cert), "FILE", "PEM certificate: serve HTTPS" },
        { "server", "tls-key", "tls-key", CONF_STRING, F(tls_key), "FILE", "PEM private key for tls-cert" },
        { "server", "default-image", "default-image", CONF_STRING, F(default_image), "IMAGE",
          "image installed on new hosts with none assigned" },
        { "server", "enroll-token", "enroll-token", CONF_STRING, F(enroll_token), "SECRET",
          "site-wide secret that lets an agent register without a PXE install" },
        { "server", "enroll-ttl", "enroll-ttl", CONF_UINT, F(enroll_ttl), "SEC",
          "lifetime of an install boot's enrollment secret (3600)" },
        { "server", "checkin-interval", "checkin-interval", CONF_UINT, F(checkin_interval), "SEC",
          "how often agents check in (30)" },
        { "server", "lease-ttl", "lease-ttl", CONF_UINT, F(lease_ttl), "SEC",
          "a reboot lease expires unless renewed (900)" },
        { "server", "heartbeat-timeout", "heartbeat-timeout", CONF_UINT, F(heartbeat_timeout), "SEC",
          "a host is unreachable after this long without a check-in (3 check-ins)" },
        { "server", "max-json", "max-json", CONF_SIZE, F(max_json), "SIZE", "cap on JSON request bodies (1M)" },
        { "server", "max-blob", "max-blob", CONF_SIZE, F(max_blob), "SIZE", "cap on an uploaded blob (16G)" },
        { "server", "threads", "threads", CONF_UINT, F(threads), "N", "HTTP worker threads (4)" },
        { "server", "log-level", "log-level", CONF_STRING, F(log_level), "LEVEL", "error, warning, info, debug (info)" },
        { "server", "log-json", "log-json", CONF_BOOL, F(log_json), "BOOL",
          "one JSON object per log line (yes)" },
        { "dhcp", "mode", "dhcp-mode", CONF_STRING, F(dhcp_mode), "MODE", "off, proxy or full (off)" },
        { "dhcp", "interface", "dhcp-interface", CONF_STRING, F(dhcp_interface), "IFACE",
          "interface dnsmasq answers on" },
        { "dhcp", "range", "dhcp-range", CONF_STRING, F(dhcp_range), "RANGE",
          "full: START,END[,MASK][,LEASE]; proxy: the subnet" },
        { "dhcp", "tftp-root", "tftp-root", CONF_STRING, F(tftp_root), "DIR",
          "holds ipxe.efi and undionly.kpxe (/usr/lib/ipxe)" },
        { "dhcp", "dnsmasq", "dnsmasq", CONF_STRING, F(dnsmasq), "PATH", "the dnsmasq binary (dnsmasq)" },
        { "ipxe", "install", "ipxe-install", CONF_STRING, F(ipxe_install), "FILE", "install script template" },
        { "ipxe", "local", "ipxe-local", CONF_STRING, F(ipxe_local), "FILE", "boot-from-disk script template" },
        { "ipxe", "live", "ipxe-live", CONF_STRING, F(ipxe_live), "FILE", "live boot script template" },
        { "ipxe", "wait", "ipxe-wait", CONF_STRING, F(ipxe_wait), "FILE", "script for hosts with no image" },
};

int server_config_init(ServerConfig *c) {
        *c = (ServerConfig) {
                .enroll_ttl = 3600,
                .checkin_interval = 30,
                .lease_ttl = 900,
                .max_json = 1024 * 1024,
                .max_blob = 16ULL << 30,
                .threads = 4,
                .log_json = true,
        };
        if (conftab_set_string(&c->listen, "0.0.0.0:8080") < 0 || conftab_set_string(&c->state_dir, "/var/lib/slipway") < 0 ||
            conftab_set_string(&c->trusted_keys, "/etc/slipway/keys") < 0 || conftab_set_string(&c->log_level, "info") < 0 ||
            conftab_set_string(&c->dhcp_mode, "off") < 0 || conftab_set_string(&c->tftp_root, "/usr/lib/ipxe") < 0 ||
            conftab_set_string(&c->dnsmasq, "dnsmasq") < 0)
                return -ENOMEM;
        return 0;
}

void server_config_release(ServerConfig *c) {
        conftab_release(keys, ELEMENTSOF(keys), c);
}

int server_config_load(ServerConfig *c, const char *path, bool must_exist) {
        return conftab_load(keys, ELEMENTSOF(keys), c, path, must_exist);
}

int server_config_apply_flag(ServerConfig *c, const char *flag, const char *value) {
        return conftab_apply_flag(keys, ELEMENTSOF(keys), c, flag, value);
}

int server_config_listen(const ServerConfig *c, char **ret_host, uint16_t *ret_port) {
        const char *colon = c->listen ? strrchr(c->listen, ':') : NULL;
        uint64_t port;
        char *host;

        if (!colon || colon == c->listen || safe_atou64(colon + 1, &port) < 0 || port > 65535)
                return -EINVAL;
        host = strndup(c->listen, (size_t) (colon - c->listen));
        if (!host)
                return -ENOMEM;
        *ret_host = host;
        *ret_port = (uint16_t) port;
        return 0;
}

static int check_readable(const char *what, const char *path) {
        if (path && access(path, R_OK) < 0)
                return log_error_errno(negative_errno(), "%s '%s': %m", what, path);
        return 0;
}

int server_config_check(const ServerConfig *c) {
        _cleanup_free_ char *host = NULL;
        uint16_t port;
        int r = 0;

        if (server_config_listen(c, &host, &port) < 0)
                return log_error_errno(-EINVAL, "listen: expected ADDR:PORT, got \"%s\"", strempty(c->listen));
        if (!!c->tls_cert != !!c->tls_key)
                return log_error_errno(-EINVAL, "tls-cert and tls-key go together");
        if (!c->state_dir)
                return log_error_errno(-EINVAL, "state-dir is not set");
        if (c->public_url && !startswith(c->public_url, "http://") && !startswith(c->public_url, "https://"))
                return log_error_errno(-EINVAL, "public-url: not an http(s) URL: \"%s\"", c->public_url);
        if (log_level_from_string(c->log_level) < 0)
                return log_error_errno(-EINVAL, "log-level: unknown level \"%s\"", strempty(c->log_level));
        if (c->threads == 0 || c->threads > 256)
                return log_error_errno(-EINVAL, "threads: %llu is outside 1..256", (unsigned long long) c->threads);
        if (!streq_ptr(c->dhcp_mode, "off") && !streq_ptr(c->dhcp_mode, "proxy") && !streq_ptr(c->dhcp_mode, "full"))
                return log_error_errno(-EINVAL, "dhcp mode: expected off, proxy or full, got \"%s\"",
                                       strempty(c->dhcp_mode));
        if (r >= 0)
                r = check_readable("tls-cert", c->tls_cert);
        if (r >= 0)
                r = check_readable("tls-key", c->tls_key);
        if (r >= 0)
                r = check_readable("ipxe install template", c->ipxe_install);
        if (r >= 0)
                r = check_readable("ipxe local template", c->ipxe_local);
        if (r >= 0)
                r = check_readable("ipxe live template", c->ipxe_live);
        if (r >= 0)
                r = check_readable("ipxe wait template", c->ipxe_wait);
        return r;
}

void server_config_help(FILE *f) {
        conftab_help(keys, ELEMENTSOF(keys), f);
}
