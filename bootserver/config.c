#include <dirent.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "conftab.h"
#include "fileio.h"
#include "ipxe-template.h"
#include "leader.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define F(field) offsetof(ServerConfig, field)

static const ConfKey keys[] = {
        { "server", "listen", "listen", CONF_STRING, F(listen), "ADDR:PORT", "address to serve on (0.0.0.0:8080)" },
        { "server", "public-url", "public-url", CONF_STRING, F(public_url), "URL",
          "how hosts reach this server (default from listen)" },
        { "server", "state-dir", "state-dir", CONF_STRING, F(state_dir), "DIR",
          "catalog, blobs and dnsmasq files (/var/lib/slipway)" },
        { "server", "instance", "instance", CONF_STRING, F(instance), "NAME",
          "this instance's name among those that share the database (HOST:PORT)" },
        { "server", "leader-ttl", "leader-ttl", CONF_UINT, F(leader_ttl), "SEC",
          "the coordinator's leader lease lasts this long unless renewed (3)" },
        { "state", "database", "database", CONF_STRING, F(database), "CONNINFO",
          "PostgreSQL connection string (postgresql://... or key=value); unset: sqlite in state-dir" },
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
        { "server", "events-poll", "events-poll", CONF_UINT, F(events_poll), "SEC",
          "the event stream reads the audit log this often besides when told of new entries (5)" },
        { "server", "max-json", "max-json", CONF_SIZE, F(max_json), "SIZE", "cap on JSON request bodies (1M)" },
        { "server", "max-blob", "max-blob", CONF_SIZE, F(max_blob), "SIZE", "cap on an uploaded blob (16G)" },
        { "server", "threads", "threads", CONF_UINT, F(threads), "N", "HTTP worker threads (one per CPU, at least 2)" },
        { "server", "replicas", "replicas", CONF_UINT, F(replicas), "N",
          "instances that must hold an image's blobs before it is visible (0: 2 with several instances, else 1)" },
        { "server", "log-level", "log-level", CONF_STRING, F(log_level), "LEVEL", "error, warning, info, debug (info)" },
        { "server", "log-json", "log-json", CONF_BOOL, F(log_json), "BOOL",
          "one JSON object per log line (yes); log-format wins when set" },
        { "server", "log-format", "log-format", CONF_STRING, F(log_format), "FORMAT",
          "json (one JSON object per line) or text (plain lines); unset: as log-json says" },
        { "pipelines", "prometheus", "pipeline-prometheus", CONF_STRING, F(pipeline_prometheus), "URL",
          "the site's Prometheus, for the gates of a pipeline whose file names none" },
        { "dhcp", "mode", "dhcp-mode", CONF_STRING, F(dhcp_mode), "MODE", "off, proxy or full (off)" },
        { "dhcp", "interface", "dhcp-interface", CONF_STRING, F(dhcp_interface), "IFACE",
          "interface dnsmasq answers on" },
        { "dhcp", "range", "dhcp-range", CONF_STRING, F(dhcp_range), "RANGE",
          "full: START,END[,MASK][,LEASE]; proxy: the subnet" },
        { "dhcp", "tftp-root", "tftp-root", CONF_STRING, F(tftp_root), "DIR",
          "holds ipxe.efi and undionly.kpxe (/usr/lib/ipxe)" },
        { "dhcp", "dnsmasq", "dnsmasq", CONF_STRING, F(dnsmasq), "PATH", "the dnsmasq binary (dnsmasq)" },
        { "dhcp", "authoritative", "dhcp-authoritative", CONF_BOOL, F(dhcp_authoritative), "BOOL",
          "full: the only DHCP server of the network; no beside another server's part of it (yes)" },
        { "ipxe", "install", "ipxe-install", CONF_STRING, F(ipxe_install), "FILE", "install script template" },
        { "ipxe", "local", "ipxe-local", CONF_STRING, F(ipxe_local), "FILE", "boot-from-disk script template" },
        { "ipxe", "live", "ipxe-live", CONF_STRING, F(ipxe_live), "FILE", "live boot script template" },
        { "ipxe", "wait", "ipxe-wait", CONF_STRING, F(ipxe_wait), "FILE", "script for hosts with no image" },
};

/* One HTTP thread per CPU, as nginx's "worker_processes auto": more
 * threads than CPUs only take turns (check-ins' p99 rose by half with 4 on
 * 2 CPUs; docs/coordinator.md), and at least 2, so that one waiting for a
 * disk sync leaves another serving. */
static uint64_t default_threads(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        return n < 2 ? 2 : n > 256 ? 256 : (uint64_t) n;
}

int server_config_init(ServerConfig *c) {
        *c = (ServerConfig) {
                .enroll_ttl = 3600,
                .checkin_interval = 30,
                .lease_ttl = 900,
                .leader_ttl = LEADER_TTL_DEFAULT_SEC,
                .events_poll = 5,
                .max_json = 1024 * 1024,
                .max_blob = 16ULL << 30,
                .threads = default_threads(),
                .log_json = true,
                .dhcp_authoritative = true,
        };
        if (conftab_set_string(&c->listen, "0.0.0.0:8080") < 0 || conftab_set_string(&c->state_dir, "/var/lib/slipway") < 0 ||
            conftab_set_string(&c->trusted_keys, "/etc/slipway/keys") < 0 || conftab_set_string(&c->log_level, "info") < 0 ||
            conftab_set_string(&c->dhcp_mode, "off") < 0 || conftab_set_string(&c->tftp_root, "/usr/lib/ipxe") < 0 ||
            conftab_set_string(&c->dnsmasq, "dnsmasq") < 0)
                return -ENOMEM;
        return 0;
}

void server_config_release(ServerConfig *c) {
        conftab_release(keys, ELEMENTSOF(keys), c, &c->origin);
        webhook_configs_free(c->webhooks, c->n_webhooks);
        c->webhooks = NULL;
        c->n_webhooks = 0;
}

/* The keys of the sections the table does not name: [webhook NAME]. */
static int on_other_key(const char *file, unsigned line, const char *section, const char *key, const char *value,
                        void *userdata, Error *error) {
        ServerConfig *c = userdata;

        if (startswith(section, "webhook "))
                return webhook_config_key(&c->webhooks, &c->n_webhooks, file, line, section + strlen("webhook "),
                                          key, value, error);
        return error_set_at(error, -EINVAL, file, line, "unknown section '[%s]'", section);
}

bool server_config_log_json(const ServerConfig *c) {
        return c->log_format ? streq(c->log_format, "json") : c->log_json;
}

int server_config_load(ServerConfig *c, const char *path, bool must_exist) {
        return conftab_load_with(keys, ELEMENTSOF(keys), c, &c->origin, path, must_exist, on_other_key, c);
}

int server_config_apply_flag(ServerConfig *c, const char *flag, const char *value) {
        return conftab_apply_flag(keys, ELEMENTSOF(keys), c, &c->origin, flag, value);
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

int server_config_listen_address(const ServerConfig *c, struct addrinfo **ret_ai, uint16_t *ret_port) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
        _cleanup_free_ char *host = NULL;
        char portstr[8];
        uint16_t port;
        size_t n;
        int r;

        r = server_config_listen(c, &host, &port);
        if (r < 0)
                return r;
        n = strlen(host);
        if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
                memmove(host, host + 1, n - 2);
                host[n - 2] = 0;
        }
        snprintf(portstr, sizeof portstr, "%u", port);
        r = getaddrinfo(host, portstr, &hints, ret_ai);
        if (r == EAI_MEMORY)
                return -ENOMEM;
        if (r != 0)
                return -EINVAL;
        *ret_port = port;
        return 0;
}

char *server_config_public_url(const ServerConfig *c, uint16_t port) {
        _cleanup_free_ char *host = NULL;
        char name[256];
        uint16_t p;

        if (c->public_url) {
                size_t n = strlen(c->public_url);
                while (n > 0 && c->public_url[n - 1] == '/')
                        n--;
                return strndup(c->public_url, n);
        }
        if (server_config_listen(c, &host, &p) < 0)
                return NULL;
        if (streq(host, "0.0.0.0") || streq(host, "[::]") || streq(host, "::")) {
                free(host);
                if (gethostname(name, sizeof name) < 0)
                        snprintf(name, sizeof name, "localhost");
                host = strdup(name);
                if (!host)
                        return NULL;
        }
        return strdup_printf("%s://%s:%u", c->tls_cert ? "https" : "http", host, port);
}

int server_config_dhcp(const ServerConfig *c, const char *public_url, DhcpConfig *ret) {
        DhcpConfig d = {
                .mode = dhcp_mode_from_string(c->dhcp_mode),
                .interface = c->dhcp_interface ? strdup(c->dhcp_interface) : NULL,
                .range = c->dhcp_range ? strdup(c->dhcp_range) : NULL,
                .tftp_root = c->tftp_root ? strdup(c->tftp_root) : NULL,
                .dnsmasq_path = c->dnsmasq ? strdup(c->dnsmasq) : NULL,
                .boot_url = public_url ? strdup_printf("%s/boot/ipxe", public_url) : NULL,
                .run_dir = c->state_dir ? path_join(c->state_dir, "dnsmasq") : NULL,
                .other_servers = !c->dhcp_authoritative,
        };

        if ((c->dhcp_interface && !d.interface) || (c->dhcp_range && !d.range) || (c->tftp_root && !d.tftp_root) ||
            (c->dnsmasq && !d.dnsmasq_path) || (public_url && !d.boot_url) || (c->state_dir && !d.run_dir)) {
                dhcp_config_release(&d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

/* Logs a message about the key whose field is at offset (or named field),
 * naming where it was set, and returns -EINVAL. */
#define fail_at(c, offset, ...) conftab_error(keys, ELEMENTSOF(keys), &(c)->origin, offset, __VA_ARGS__)
#define fail(c, field, ...) fail_at(c, F(field), __VA_ARGS__)

/* The connection string goes through libpq's own parser. It may hold a
 * password, so no message repeats it. */
static int check_database(const ServerConfig *c) {
        _cleanup_free_ char *why = NULL;
        int r;

        if (!c->database)
                return 0;
        if (!c->database[0])
                return fail(c, database, "database: empty; leave it unset to keep the state in state-dir");
        if (!store_db_is_postgresql(c->database))
                return fail(c, database, "database: expected a PostgreSQL connection string (postgresql://HOST/DB "
                            "or key=value pairs)");
        r = store_db_check(c->database, &why);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return fail(c, database, "database: not a PostgreSQL connection string: %s", strempty(why));
        return 0;
}

int server_config_check(const ServerConfig *c) {
        struct addrinfo *ai = NULL;
        uint16_t port;
        int r;

        r = server_config_listen_address(c, &ai, &port);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return fail(c, listen, "listen: expected ADDR:PORT with a numeric address (0.0.0.0:8080, "
                            "[::1]:8080), got \"%s\"", strempty(c->listen));
        freeaddrinfo(ai);
        if (c->tls_cert && !c->tls_key)
                return fail(c, tls_cert, "tls-cert '%s' needs tls-key", c->tls_cert);
        if (c->tls_key && !c->tls_cert)
                return fail(c, tls_key, "tls-key '%s' needs tls-cert", c->tls_key);
        if (!c->state_dir)
                return fail(c, state_dir, "state-dir is not set");
        r = check_database(c);
        if (r < 0)
                return r;
        if (c->public_url && !startswith(c->public_url, "http://") && !startswith(c->public_url, "https://"))
                return fail(c, public_url, "public-url: not an http(s) URL: \"%s\"", c->public_url);
        if (log_level_from_string(c->log_level) < 0)
                return fail(c, log_level, "log-level: unknown level \"%s\"", strempty(c->log_level));
        if (c->log_format && !streq(c->log_format, "json") && !streq(c->log_format, "text"))
                return fail(c, log_format, "log-format: \"%s\" is neither json nor text", c->log_format);
        if (c->threads == 0 || c->threads > 256)
                return fail(c, threads, "threads: %llu is outside 1..256", (unsigned long long) c->threads);
        if (c->checkin_interval == 0)
                return fail(c, checkin_interval, "checkin-interval: at least 1 second");
        if (c->lease_ttl == 0)
                return fail(c, lease_ttl, "lease-ttl: at least 1 second");
        if (c->enroll_ttl == 0)
                return fail(c, enroll_ttl, "enroll-ttl: at least 1 second");
        if (c->instance && !instance_name_valid(c->instance))
                return fail(c, instance, "instance: 1 to 64 letters, digits and .-_: expected, got \"%s\"", c->instance);
        if (c->leader_ttl < 2 || c->leader_ttl > 3600)
                return fail(c, leader_ttl, "leader-ttl: %llu is outside 2..3600 seconds (renewed every second)",
                            (unsigned long long) c->leader_ttl);
        if (c->pipeline_prometheus && !startswith(c->pipeline_prometheus, "http://") &&
            !startswith(c->pipeline_prometheus, "https://"))
                return fail(c, pipeline_prometheus, "prometheus: not an http(s) URL: \"%s\"", c->pipeline_prometheus);
        if (c->events_poll < 1 || c->events_poll > 3600)
                return fail(c, events_poll, "events-poll: %llu is outside 1..3600 seconds",
                            (unsigned long long) c->events_poll);
        if (dhcp_mode_from_string(c->dhcp_mode) < 0)
                return fail(c, dhcp_mode, "dhcp mode: expected off, proxy or full, got \"%s\"",
                            strempty(c->dhcp_mode));
        return webhook_configs_check(c->webhooks, c->n_webhooks);
}

/* The state directory is made at start (with its parents): it must be a
 * directory, or the nearest existing parent one we can write to. */
static int check_state_dir(const ServerConfig *c) {
        _cleanup_free_ char *dir = strdup(c->state_dir);
        struct stat st;

        if (!dir)
                return log_oom();
        for (;;) {
                char *slash;

                if (stat(dir, &st) == 0) {
                        if (!S_ISDIR(st.st_mode))
                                return fail(c, state_dir, "state-dir '%s': '%s' is not a directory", c->state_dir,
                                            dir);
                        if (access(dir, W_OK | X_OK) < 0)
                                return fail(c, state_dir, "state-dir '%s': cannot write to '%s': %s", c->state_dir,
                                            dir, strerror(errno));
                        return 0;
                }
                /* ENOTDIR: a parent is a file, which the loop reaches next. */
                if (errno != ENOENT && errno != ENOTDIR)
                        return fail(c, state_dir, "state-dir '%s': '%s': %s", c->state_dir, dir, strerror(errno));
                slash = strrchr(dir, '/');
                if (!slash)
                        return 0; /* relative, and nothing of it exists: made in the working directory */
                if (slash == dir)
                        slash[1] = 0; /* the root */
                else
                        *slash = 0;
        }
}

/* Read at every push, so keys can be added while the server runs; the
 * directory itself must be there. */
static int check_trusted_keys(const ServerConfig *c) {
        DIR *d;

        if (!c->trusted_keys)
                return 0; /* no keys: every push is refused */
        d = opendir(c->trusted_keys);
        if (!d)
                return fail(c, trusted_keys, "trusted-keys '%s' (the *.pub keys pushed images are signed with): %s",
                            c->trusted_keys, strerror(errno));
        closedir(d);
        return 0;
}

/* Loads the certificate and key as libmicrohttpd will (GnuTLS, PEM, no
 * password), each alone first so that the message names the file at fault. */
static int check_tls(const ServerConfig *c) {
        _cleanup_free_ char *cert = NULL, *key = NULL;
        gnutls_certificate_credentials_t cred = NULL;
        gnutls_x509_crt_t *crts = NULL;
        gnutls_x509_privkey_t pk = NULL;
        gnutls_datum_t cd, kd;
        unsigned n_crts = 0;
        int r, g;

        if (!c->tls_cert)
                return 0;
        r = read_full_file(c->tls_cert, SERVER_TLS_FILE_MAX, &cert, NULL);
        if (r < 0)
                return fail(c, tls_cert, "tls-cert '%s': %s", c->tls_cert, strerror(-r));
        r = read_full_file(c->tls_key, SERVER_TLS_FILE_MAX, &key, NULL);
        if (r < 0)
                return fail(c, tls_key, "tls-key '%s': %s", c->tls_key, strerror(-r));
        /* libmicrohttpd hands GnuTLS the text up to its first NUL. */
        cd = (gnutls_datum_t) { (unsigned char *) cert, (unsigned) strlen(cert) };
        kd = (gnutls_datum_t) { (unsigned char *) key, (unsigned) strlen(key) };

        g = gnutls_x509_crt_list_import2(&crts, &n_crts, &cd, GNUTLS_X509_FMT_PEM, 0);
        if (g >= 0) {
                for (unsigned i = 0; i < n_crts; i++)
                        gnutls_x509_crt_deinit(crts[i]);
                gnutls_free(crts);
        }
        if (g < 0 || n_crts == 0)
                return fail(c, tls_cert, "tls-cert '%s': not a PEM certificate (%s)", c->tls_cert,
                            g < 0 ? gnutls_strerror(g) : "none found");
        g = gnutls_x509_privkey_init(&pk);
        if (g >= 0)
                g = gnutls_x509_privkey_import2(pk, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
        gnutls_x509_privkey_deinit(pk);
        if (g == GNUTLS_E_MEMORY_ERROR)
                return log_oom();
        if (g < 0)
                return fail(c, tls_key, "tls-key '%s': not an unencrypted PEM private key (%s)", c->tls_key,
                            gnutls_strerror(g));
        g = gnutls_certificate_allocate_credentials(&cred);
        if (g >= 0)
                g = gnutls_certificate_set_x509_key_mem(cred, &cd, &kd, GNUTLS_X509_FMT_PEM);
        if (cred)
                gnutls_certificate_free_credentials(cred);
        if (g == GNUTLS_E_MEMORY_ERROR)
                return log_oom();
        if (g < 0)
                return fail(c, tls_key, "tls-key '%s' does not go with tls-cert '%s' (%s)", c->tls_key, c->tls_cert,
                            gnutls_strerror(g));
        return 0;
}

static int check_template(const ServerConfig *c, size_t field, const char *name) {
        const char *path = *(char *const *) ((const char *) c + field);
        _cleanup_free_ char *text = NULL, *why = NULL;
        unsigned line;
        int r;

        if (!path)
                return 0;
        r = read_full_file(path, IPXE_TEMPLATE_MAX, &text, NULL);
        if (r == -EFBIG)
                return fail_at(c, field, "ipxe %s template '%s' is larger than %d KiB", name, path,
                               IPXE_TEMPLATE_MAX / 1024);
        if (r < 0)
                return fail_at(c, field, "ipxe %s template '%s': %s", name, path, strerror(-r));
        r = ipxe_template_check(text, &line, &why);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return fail_at(c, field, "ipxe %s template %s:%u: %s", name, path, line, why);
        return 0;
}

/* Where a DHCP setting comes from in slipwayd's configuration. */
static size_t dhcp_setting_field(const ServerConfig *c, DhcpSetting s) {
        switch (s) {
        case DHCP_SETTING_INTERFACE:
                return F(dhcp_interface);
        case DHCP_SETTING_RANGE:
                return F(dhcp_range);
        case DHCP_SETTING_BOOT_URL:
                return c->public_url ? F(public_url) : F(listen);
        case DHCP_SETTING_TFTP_ROOT:
                return F(tftp_root);
        case DHCP_SETTING_RUN_DIR:
                return F(state_dir);
        case DHCP_SETTING_DNSMASQ_PATH:
                return F(dnsmasq);
        default:
                return F(dhcp_mode);
        }
}

static int check_dhcp(const ServerConfig *c) {
        _cleanup_free_ char *host = NULL, *url = NULL, *why = NULL;
        DhcpSetting at = DHCP_SETTING_MODE;
        DhcpConfig d;
        size_t field;
        uint16_t port;
        int r;

        if (streq_ptr(c->dhcp_mode, "off"))
                return 0;
        /* The port slipwayd binds is known only then; listen's stands in. */
        r = server_config_listen(c, &host, &port);
        if (r < 0)
                return r;
        url = server_config_public_url(c, port);
        if (!url)
                return log_oom();
        r = server_config_dhcp(c, url, &d);
        if (r < 0)
                return log_oom();
        r = dhcp_config_validate(&d, &at, &why);
        dhcp_config_release(&d);
        if (r == -ENOMEM)
                return log_oom();
        if (r >= 0)
                return 0;
        /* A setting that is required but missing: the mode asked for it. */
        field = dhcp_setting_field(c, at);
        if (!conftab_is_set(keys, ELEMENTSOF(keys), &c->origin, field))
                field = F(dhcp_mode);
        return fail_at(c, field, "dhcp: %s", strempty(why));
}

int server_config_validate(const ServerConfig *c) {
        int r;

        r = server_config_check(c);
        if (r >= 0)
                r = check_state_dir(c);
        if (r >= 0)
                r = check_trusted_keys(c);
        if (r >= 0)
                r = check_tls(c);
        if (r >= 0)
                r = check_template(c, F(ipxe_install), "install");
        if (r >= 0)
                r = check_template(c, F(ipxe_local), "local");
        if (r >= 0)
                r = check_template(c, F(ipxe_live), "live");
        if (r >= 0)
                r = check_template(c, F(ipxe_wait), "wait");
        if (r >= 0)
                r = check_dhcp(c);
        return r;
}

void server_config_help(FILE *f) {
        conftab_help(keys, ELEMENTSOF(keys), f);
}
