/* slipwayd's configuration: an INI file (/etc/slipway/slipwayd.conf) and a
 * flag for every key. Defaults, then the file, then the flags. */
#pragma once

#include <stdint.h>

#include "macro.h"

#define SERVER_CONFIG_DEFAULT_PATH "/etc/slipway/slipwayd.conf"

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
        char *log_level;
        bool log_json;
        /* [dhcp] */
        char *dhcp_mode;       /* off | proxy | full */
        char *dhcp_interface;
        char *dhcp_range;
        char *tftp_root;
        char *dnsmasq;
        /* [ipxe] template files; NULL = built-in */
        char *ipxe_install;
        char *ipxe_local;
        char *ipxe_live;
        char *ipxe_wait;
} ServerConfig;

/* Sets every field to its default. */
int server_config_init(ServerConfig *c);
void server_config_release(ServerConfig *c);

/* Reads path into c. A missing file is fine when !must_exist. Unknown
 * sections and keys, and bad values, are errors naming file:line. */
int server_config_load(ServerConfig *c, const char *path, bool must_exist);

/* Applies one "--flag=value" to c. Returns 1 when flag is a config flag,
 * 0 when it is not, negative on a bad value (logged). */
int server_config_apply_flag(ServerConfig *c, const char *flag, const char *value);

/* Checks what the keys cannot check alone (TLS files in pairs, listen
 * address form, readable templates). Logs one message and returns -EINVAL. */
int server_config_check(const ServerConfig *c);

/* Writes the options' help lines ("  --listen ADDR:PORT  ...") to f. */
void server_config_help(FILE *f);

/* Splits c->listen into host and port. ret_host is caller-owned. */
int server_config_listen(const ServerConfig *c, char **ret_host, uint16_t *ret_port);
