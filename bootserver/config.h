/* slipwayd's configuration: an INI file (/etc/slipway/slipwayd.conf) and a
 * flag for every key. Defaults, then the file, then the flags. */
#pragma once

#include <netdb.h>
#include <stdint.h>

#include "conftab.h"
#include "dnsmasq.h"
#include "macro.h"
#include "webhook-config.h"

#define SERVER_CONFIG_DEFAULT_PATH "/etc/slipway/slipwayd.conf"
/* The largest TLS certificate or key file slipwayd reads. */
#define SERVER_TLS_FILE_MAX (1 << 20)

typedef struct ServerConfig {
        /* [server] */
        char *listen;          /* "ADDR:PORT" */
        char *public_url;      /* how hosts reach us; default derived from listen */
        char *state_dir;
        char *trusted_keys;    /* directory of *.pub */
        char *tls_cert;
        char *tls_key;
        char *default_image;   /* image ref installed on hosts with none assigned */
        char *enroll_token;    /* site-wide registration secret (optional) */
        uint64_t enroll_ttl;   /* seconds an install boot's enrollment secret stays valid */
        uint64_t checkin_interval;
        uint64_t lease_ttl;         /* seconds a reboot lease lasts unless renewed */
        uint64_t heartbeat_timeout; /* seconds without a check-in: unreachable (0: 3 check-ins) */
        uint64_t max_json;     /* bytes */
        uint64_t max_blob;     /* bytes */
        uint64_t threads;
        char *instance;        /* name among the instances; NULL = HOST:PORT */
        uint64_t leader_ttl;   /* seconds the coordinator's leader lease lasts */
        uint64_t events_poll;  /* seconds between the event stream's reads when nothing is announced */
        uint64_t replicas;     /* copies of a pushed image's blobs before it is visible; 0 = automatic */
        char *log_level;
        bool log_json;
        char *log_format; /* "json", "text", or NULL: as log_json says */
        /* [state] */
        char *database;        /* PostgreSQL connection string; NULL = sqlite in state_dir */
        /* [pipelines] */
        char *pipeline_prometheus; /* a pipeline's Prometheus when its spec names none */
        /* [dhcp] */
        char *dhcp_mode;       /* off | proxy | full */
        char *dhcp_interface;
        char *dhcp_range;
        char *tftp_root;
        char *dnsmasq;
        bool dhcp_authoritative; /* full: the only DHCP server of the network */
        /* [ipxe] template files; NULL = built-in */
        char *ipxe_install;
        char *ipxe_local;
        char *ipxe_live;
        char *ipxe_wait;
        /* [webhook NAME] sections, in the order of the file */
        WebhookConfig *webhooks;
        size_t n_webhooks;
        ConfOrigin origin;     /* where each key was set, for messages */
} ServerConfig;

/* Sets every field to its default. */
int server_config_init(ServerConfig *c);
void server_config_release(ServerConfig *c);

/* Reads path into c. A missing file is fine when !must_exist. Unknown
 * sections and keys, and bad values, are errors naming file:line. */
/* Whether slipwayd logs JSON lines: log-format when set, else log-json. */
bool server_config_log_json(const ServerConfig *c);

int server_config_load(ServerConfig *c, const char *path, bool must_exist);

/* Applies one "--flag=value" to c. Returns 1 when flag is a config flag,
 * 0 when it is not, negative on a bad value (logged). */
int server_config_apply_flag(ServerConfig *c, const char *flag, const char *value);

/* Checks what the keys cannot check alone, from the configuration alone:
 * the listen address (a numeric address and a port), TLS files in pairs,
 * public-url, log-level, threads, intervals of at least a second, the DHCP
 * mode. Logs one message naming the file and line (or the flag) of the key at
 * fault, and returns -EINVAL. */
int server_config_check(const ServerConfig *c);

/* Everything slipwayd needs of a configuration before it serves: what
 * server_config_check() checks, then the state directory (a directory, or one
 * that can be made), trusted-keys (a readable directory, when set), the TLS
 * certificate and key (PEM that GnuTLS loads as a pair, as libmicrohttpd
 * does), the iPXE templates (readable, at most IPXE_TEMPLATE_MAX bytes,
 * "#!ipxe", known placeholders) and the DHCP settings (dhcp_config_validate()).
 * The daemon runs it at start, for --check-config and on SIGHUP. Logs one
 * message naming the file and line (or the flag) of the key at fault, and
 * returns -EINVAL (-ENOMEM on allocation failure). */
int server_config_validate(const ServerConfig *c);

/* Writes the options' help lines ("  --listen ADDR:PORT  ...") to f. */
void server_config_help(FILE *f);

/* Splits c->listen into host and port. ret_host is caller-owned. */
int server_config_listen(const ServerConfig *c, char **ret_host, uint16_t *ret_port);

/* The address to listen on, resolved as slipwayd binds it (numeric only,
 * "[v6]" brackets allowed), and the port. The caller frees *ret_ai with
 * freeaddrinfo(). -EINVAL when listen is not ADDR:PORT with a numeric ADDR. */
int server_config_listen_address(const ServerConfig *c, struct addrinfo **ret_ai, uint16_t *ret_port);

/* The URL hosts reach the server at: public-url without trailing slashes,
 * else http(s)://HOST:PORT from listen (the host name for a wildcard
 * address) with port. Caller frees; NULL on allocation failure. */
char *server_config_public_url(const ServerConfig *c, uint16_t port);

/* The DHCP settings of c, for a server at public_url (boot URL
 * public_url/boot/ipxe, run directory STATE-DIR/dnsmasq). The mode is
 * _DHCP_MODE_INVALID when c's is unknown. Released with
 * dhcp_config_release(). Returns 0 or -ENOMEM. */
int server_config_dhcp(const ServerConfig *c, const char *public_url, DhcpConfig *ret);
