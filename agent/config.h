/* slipway-agent's configuration: /etc/slipway/agent.conf and a flag for
 * every key. */
#pragma once

#include <stdint.h>

#include "conftab.h"
#include "macro.h"

#define AGENT_CONFIG_DEFAULT_PATH "/etc/slipway/agent.conf"

typedef struct AgentConfig {
        /* [agent] */
        char *server;          /* slipwayd URL */
        char *ca_file;
        char *state_dir;       /* /var/lib/slipway */
        char *keys_dir;        /* trusted *.pub */
        char *health_dir;      /* /etc/slipway/health.d */
        uint64_t health_timeout; /* seconds per check */
        char *required_units;  /* units that must be active after boot (words) */
        bool no_failed_units;  /* no unit may have failed */
        bool boot_complete;    /* boot-complete.target must be reached */
        uint64_t units_deadline; /* seconds after boot by which the units must be up */
        uint64_t health_log_lines; /* journal lines reported for a failed unit */
        char *greenboot_dirs;  /* greenboot check roots (words); NULL: none */
        uint64_t checkin_interval; /* 0: what the server says */
        char *enroll_token;    /* site-wide secret to register without PXE */
        char *arch;            /* default: uname machine */
        char *log_level;
        char *log_format; /* "text", "json"; NULL: text */
        char *live_dir;        /* live mode: the rootfs in memory (/run/slipway-live) */
        char *files_root;      /* where host files are applied (/) */
        char *etc_upper;       /* the /etc overlay's upper layer; NULL: STATE-DIR/etc/upper */
        char *etc_image;       /* the image's own /etc, read-only (/run/slipway/etc-image) */
        /* [backend] */
        char *backend;         /* disk | sim */
        char *boot;            /* systemd-boot | grub: how the slot to boot is chosen */
        char *disk;            /* disk backend: the whole disk (install), e.g. /dev/vda */
        char *esp_dir;         /* disk backend: where the ESP is mounted (/efi) */
        char *sim_dir;         /* sim backend: slot files, ESP directory, "firmware" state */
        uint64_t sim_slot_size; /* sim backend: bytes per slot file */
        uint64_t sim_reboot_time; /* sim backend: seconds a reboot keeps the host down */
        char *reboot_command;  /* disk backend: run instead of reboot(2) (tests) */
        ConfOrigin origin;     /* where each key was set, for messages */
} AgentConfig;

int agent_config_init(AgentConfig *c);
void agent_config_release(AgentConfig *c);
int agent_config_load(AgentConfig *c, const char *path, bool must_exist);
int agent_config_apply_flag(AgentConfig *c, const char *flag, const char *value);
/* Checks what keys cannot check alone, and what the agent would refuse when
 * it starts (the server URL as the API client parses it, a readable CA file).
 * Logs one message naming the file and line (or flag) of the key at fault,
 * and returns -EINVAL. */
int agent_config_check(const AgentConfig *c);
void agent_config_help(FILE *f);
