#include <stddef.h>
#include <sys/stat.h>

#include "config.h"
#include "ini.h"
#include "log.h"
#include "util.h"

typedef enum KeyType {
        KEY_STRING,
        KEY_SIZE,
        KEY_UINT,
        KEY_BOOL,
} KeyType;

typedef struct ConfigKey {
        const char *section;
        const char *key;
        const char *flag; /* without the leading "--" */
        KeyType type;
        size_t offset;
        const char *arg;
        const char *help;
} ConfigKey;

#define F(field) offsetof(ServerConfig, field)

static const ConfigKey keys[] = {
        { "server", "listen", "listen", KEY_STRING, F(listen), "ADDR:PORT", "address to serve on (0.0.0.0:8080)" },
        { "server", "public-url", "public-url", KEY_STRING, F(public_url), "URL",
          "how hosts reach this server (default from listen)" },
        { "server", "state-dir", "state-dir", KEY_STRING, F(state_dir), "DIR",
          "catalog, blobs and dnsmasq files (/var/lib/slipway)" },
        { "server", "trusted-keys", "trusted-keys", KEY_STRING, F(trusted_keys), "DIR",
          "*.pub keys a pushed manifest must verify against (/etc/slipway/keys)" },
        { "server", "tls-cert", "tls-cert", KEY_STRING, F(tls_cert), "FILE", "PEM certificate: serve HTTPS" },
        { "server", "tls-key", "tls-key", KEY_STRING, F(tls_key), "FILE", "PEM private key for tls-cert" },
        { "server", "default-image", "default-image", KEY_STRING, F(default_image), "IMAGE",
          "image installed on new hosts with none assigned" },
        { "server", "enroll-token", "enroll-token", KEY_STRING, F(enroll_token), "SECRET",
          "site-wide secret that lets an agent register without a PXE install" },
        { "server", "enroll-ttl", "enroll-ttl", KEY_UINT, F(enroll_ttl), "SEC",
          "lifetime of an install boot's enrollment secret (3600)" },
        { "server", "checkin-interval", "checkin-interval", KEY_UINT, F(checkin_interval), "SEC",
          "how often agents check in (30)" },
        { "server", "max-json", "max-json", KEY_SIZE, F(max_json), "SIZE", "cap on JSON request bodies (1M)" },
        { "server", "max-blob", "max-blob", KEY_SIZE, F(max_blob), "SIZE", "cap on an uploaded blob (16G)" },
        { "server", "threads", "threads", KEY_UINT, F(threads), "N", "HTTP worker threads (4)" },
        { "server", "log-level", "log-level", KEY_STRING, F(log_level), "LEVEL", "error, warning, info, debug (info)" },
        { "server", "log-json", "log-json", KEY_BOOL, F(log_json), "BOOL",
          "one JSON object per log line (yes)" },
        { "dhcp", "mode", "dhcp-mode", KEY_STRING, F(dhcp_mode), "MODE", "off, proxy or full (off)" },
        { "dhcp", "interface", "dhcp-interface", KEY_STRING, F(dhcp_interface), "IFACE",
          "interface dnsmasq answers on" },
        { "dhcp", "range", "dhcp-range", KEY_STRING, F(dhcp_range), "RANGE",
          "full: START,END[,MASK][,LEASE]; proxy: the subnet" },
        { "dhcp", "tftp-root", "tftp-root", KEY_STRING, F(tftp_root), "DIR",
          "holds ipxe.efi and undionly.kpxe (/usr/lib/ipxe)" },
        { "dhcp", "dnsmasq", "dnsmasq", KEY_STRING, F(dnsmasq), "PATH", "the dnsmasq binary (dnsmasq)" },
        { "ipxe", "install", "ipxe-install", KEY_STRING, F(ipxe_install), "FILE", "install script template" },
        { "ipxe", "local", "ipxe-local", KEY_STRING, F(ipxe_local), "FILE", "boot-from-disk script template" },
        { "ipxe", "live", "ipxe-live", KEY_STRING, F(ipxe_live), "FILE", "live boot script template" },
        { "ipxe", "wait", "ipxe-wait", KEY_STRING, F(ipxe_wait), "FILE", "script for hosts with no image" },
};

static int set_string(char **p, const char *v) {
        char *s = strdup(v);

        if (!s)
                return -ENOMEM;
        free(*p);
        *p = s;
        return 0;
}

int server_config_init(ServerConfig *c) {
        *c = (ServerConfig) {
                .enroll_ttl = 3600,
                .checkin_interval = 30,
                .max_json = 1024 * 1024,
                .max_blob = 16ULL << 30,
                .threads = 4,
                .log_json = true,
        };
        if (set_string(&c->listen, "0.0.0.0:8080") < 0 || set_string(&c->state_dir, "/var/lib/slipway") < 0 ||
            set_string(&c->trusted_keys, "/etc/slipway/keys") < 0 || set_string(&c->log_level, "info") < 0 ||
            set_string(&c->dhcp_mode, "off") < 0 || set_string(&c->tftp_root, "/usr/lib/ipxe") < 0 ||
            set_string(&c->dnsmasq, "dnsmasq") < 0)
                return -ENOMEM;
        return 0;
}

void server_config_release(ServerConfig *c) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i].type == KEY_STRING) {
                        char **p = (char **) ((char *) c + keys[i].offset);
                        free(*p);
                        *p = NULL;
                }
}

/* Stores value into the field of k. Returns -EINVAL with *ret_why set when
 * the value is malformed. */
static int key_set(ServerConfig *c, const ConfigKey *k, const char *value, const char **ret_why) {
        void *field = (char *) c + k->offset;
        int r;

        switch (k->type) {
        case KEY_STRING:
                if (isempty(value)) {
                        free(*(char **) field);
                        *(char **) field = NULL;
                        return 0;
                }
                return set_string(field, value);
        case KEY_SIZE:
                if (parse_size(value, field) < 0) {
                        *ret_why = "not a size (e.g. 512K, 16G)";
                        return -EINVAL;
                }
                return 0;
        case KEY_UINT:
                if (safe_atou64(value, field) < 0) {
                        *ret_why = "not a non-negative integer";
                        return -EINVAL;
                }
                return 0;
        case KEY_BOOL:
                r = parse_boolean(value);
                if (r < 0) {
                        *ret_why = "not a boolean (yes/no)";
                        return -EINVAL;
                }
                *(bool *) field = r;
                return 0;
        }
        return -EINVAL;
}

static int on_key(const char *file, unsigned line, const char *section, const char *key, const char *value,
                  void *userdata) {
        ServerConfig *c = userdata;
        bool section_known = false;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *why = NULL;
                int r;

                if (!streq(keys[i].section, section))
                        continue;
                section_known = true;
                if (!streq(keys[i].key, key))
                        continue;
                r = key_set(c, &keys[i], value, &why);
                if (r == -EINVAL)
                        return log_error_errno(r, "%s:%u: '%s': %s: \"%s\"", file, line, key, why, value);
                return r;
        }
        if (!section_known)
                return log_error_errno(-EINVAL, "%s:%u: unknown section '[%s]'", file, line, section);
        return log_error_errno(-EINVAL, "%s:%u: unknown key '%s' in [%s]", file, line, key, section);
}

int server_config_load(ServerConfig *c, const char *path, bool must_exist) {
        if (!must_exist && access(path, F_OK) < 0 && errno == ENOENT)
                return 0;
        return ini_parse_file(path, on_key, c);
}

int server_config_apply_flag(ServerConfig *c, const char *flag, const char *value) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const char *why = NULL;
                int r;

                if (!streq(keys[i].flag, flag))
                        continue;
                r = key_set(c, &keys[i], value, &why);
                if (r == -EINVAL)
                        return log_error_errno(r, "--%s: %s: \"%s\"", flag, why, value);
                return r < 0 ? r : 1;
        }
        return 0;
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
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_free_ char *left = strdup_printf("--%s %s", keys[i].flag, keys[i].arg);
                fprintf(f, "  %-28s %s\n", left ? left : keys[i].flag, keys[i].help);
        }
}
