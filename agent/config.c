#include <sys/utsname.h>

#include "apiclient.h"
#include "config.h"
#include "conftab.h"
#include "log.h"
#include "units.h"
#include "util.h"

#define F(field) offsetof(AgentConfig, field)

static const ConfKey keys[] = {
        { "agent", "server", "server", CONF_STRING, F(server), "URL", "the slipwayd to check in with" },
        { "agent", "ca-file", "ca-file", CONF_STRING, F(ca_file), "FILE", "CA bundle to verify an https server" },
        { "agent", "state-dir", "state-dir", CONF_STRING, F(state_dir), "DIR",
          "the agent's state (/var/lib/slipway)" },
        { "agent", "keys-dir", "keys-dir", CONF_STRING, F(keys_dir), "DIR",
          "trusted *.pub image signing keys (/etc/slipway/keys)" },
        { "agent", "health-dir", "health-dir", CONF_STRING, F(health_dir), "DIR",
          "health checks (/etc/slipway/health.d)" },
        { "agent", "health-timeout", "health-timeout", CONF_UINT, F(health_timeout), "SEC",
          "time limit of one health check (60)" },
        { "agent", "required-units", "required-units", CONF_STRING, F(required_units), "UNITS",
          "systemd units that must be active by units-deadline" },
        { "agent", "no-failed-units", "no-failed-units", CONF_BOOL, F(no_failed_units), "BOOL",
          "a failed systemd unit fails the boot (no)" },
        { "agent", "boot-complete", "boot-complete", CONF_BOOL, F(boot_complete), "BOOL",
          "boot-complete.target must be reached (no)" },
        { "agent", "units-deadline", "units-deadline", CONF_UINT, F(units_deadline), "SEC",
          "seconds after boot by which the units must be up (300)" },
        { "agent", "health-log-lines", "health-log-lines", CONF_UINT, F(health_log_lines), "N",
          "journal lines reported for a failed unit (10)" },
        { "agent", "greenboot-dirs", "greenboot-dirs", CONF_STRING, F(greenboot_dirs), "DIRS",
          "greenboot check roots (/usr/lib/greenboot/check /etc/greenboot/check)" },
        { "agent", "checkin-interval", "checkin-interval", CONF_UINT, F(checkin_interval), "SEC",
          "override the server's check-in interval (0: the server's)" },
        { "agent", "enroll-token", "enroll-token", CONF_STRING, F(enroll_token), "SECRET",
          "site-wide secret to register without a PXE install" },
        { "agent", "arch", "arch", CONF_STRING, F(arch), "ARCH", "architecture images must have (uname -m)" },
        { "agent", "log-level", "log-level", CONF_STRING, F(log_level), "LEVEL", "error, warning, info, debug" },
        { "agent", "log-format", "log-format", CONF_STRING, F(log_format), "FORMAT",
          "text (plain lines) or json (one JSON object per line) (text)" },
        { "agent", "live-dir", "live-dir", CONF_STRING, F(live_dir), "DIR",
          "live mode: where the rootfs is kept, a tmpfs (/run/slipway-live)" },
        { "agent", "files-root", "files-root", CONF_STRING, F(files_root), "DIR",
          "where the host files of the booted slot are applied (/)" },
        { "agent", "etc-upper", "etc-upper", CONF_STRING, F(etc_upper), "DIR",
          "etc-diff: the host's changes to /etc, the overlay's upper layer (STATE-DIR/etc/upper)" },
        { "agent", "etc-image", "etc-image", CONF_STRING, F(etc_image), "DIR",
          "etc-diff: the image's own /etc (/run/slipway/etc-image)" },
        { "backend", "type", "backend", CONF_STRING, F(backend), "TYPE", "disk or sim (disk)" },
        { "backend", "boot", "boot", CONF_STRING, F(boot), "LOADER",
          "systemd-boot, grub or auto (grub where the ESP has its grubenv) (systemd-boot)" },
        { "backend", "disk", "disk", CONF_STRING, F(disk), "DEV", "the host's disk for bring-up (first disk)" },
        { "backend", "esp-dir", "esp-dir", CONF_STRING, F(esp_dir), "DIR", "where the ESP is mounted (/efi)" },
        { "backend", "sim-dir", "sim-dir", CONF_STRING, F(sim_dir), "DIR",
          "sim backend: slot files, ESP directory, firmware state" },
        { "backend", "sim-slot-size", "sim-slot-size", CONF_SIZE, F(sim_slot_size), "SIZE",
          "sim backend: bytes per slot (128M)" },
        { "backend", "sim-reboot-time", "sim-reboot-time", CONF_UINT, F(sim_reboot_time), "SEC",
          "sim backend: how long a reboot keeps the host down (0)" },
        { "backend", "reboot-command", "reboot-command", CONF_STRING, F(reboot_command), "CMD",
          "disk backend: run this instead of rebooting" },
};

int agent_config_init(AgentConfig *c) {
        struct utsname u;

        *c = (AgentConfig) { .health_timeout = 60, .units_deadline = 300, .health_log_lines = 10,
                             .sim_slot_size = 128ULL << 20 };
        if (uname(&u) < 0)
                return negative_errno();
        if (conftab_set_string(&c->state_dir, "/var/lib/slipway") < 0 ||
            conftab_set_string(&c->keys_dir, "/etc/slipway/keys") < 0 ||
            conftab_set_string(&c->health_dir, "/etc/slipway/health.d") < 0 ||
            conftab_set_string(&c->log_level, "info") < 0 || conftab_set_string(&c->backend, "disk") < 0 ||
            conftab_set_string(&c->boot, "systemd-boot") < 0 ||
            conftab_set_string(&c->esp_dir, "/efi") < 0 || conftab_set_string(&c->arch, u.machine) < 0 ||
            conftab_set_string(&c->live_dir, "/run/slipway-live") < 0 ||
            conftab_set_string(&c->files_root, "/") < 0 ||
            conftab_set_string(&c->etc_image, "/run/slipway/etc-image") < 0 ||
            conftab_set_string(&c->greenboot_dirs, "/usr/lib/greenboot/check /etc/greenboot/check") < 0)
                return -ENOMEM;
        return 0;
}

void agent_config_release(AgentConfig *c) {
        conftab_release(keys, ELEMENTSOF(keys), c, &c->origin);
}

int agent_config_load(AgentConfig *c, const char *path, bool must_exist) {
        return conftab_load(keys, ELEMENTSOF(keys), c, &c->origin, path, must_exist);
}

int agent_config_apply_flag(AgentConfig *c, const char *flag, const char *value) {
        return conftab_apply_flag(keys, ELEMENTSOF(keys), c, &c->origin, flag, value);
}

/* Logs a message about the key of field, naming where it was set. */
#define fail(c, field, ...) conftab_error(keys, ELEMENTSOF(keys), &(c)->origin, F(field), __VA_ARGS__)

int agent_config_check(const AgentConfig *c) {
        _cleanup_api_client_free_ ApiClient *api = NULL;
        int r;

        if (!streq_ptr(c->backend, "disk") && !streq_ptr(c->backend, "sim"))
                return fail(c, backend, "backend: expected disk or sim, got \"%s\"", strempty(c->backend));
        if (!streq_ptr(c->boot, "systemd-boot") && !streq_ptr(c->boot, "grub") && !streq_ptr(c->boot, "auto"))
                return fail(c, boot, "boot: expected systemd-boot, grub or auto, got \"%s\"", strempty(c->boot));
        if (streq(c->backend, "sim") && !c->sim_dir)
                return fail(c, backend, "the sim backend needs sim-dir");
        if (c->server) {
                _cleanup_error_ Error e = {};

                /* What the agent does first with it, so that a URL it cannot
                 * use fails here rather than at start. */
                r = api_client_new(c->server, &api, &e);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return fail(c, server, "server: %s", strempty(e.message));
        }
        if (c->ca_file && access(c->ca_file, R_OK) < 0)
                return fail(c, ca_file, "ca-file '%s': %s", c->ca_file, strerror(errno));
        if (log_level_from_string(c->log_level) < 0)
                return fail(c, log_level, "log-level: unknown level \"%s\"", strempty(c->log_level));
        if (c->log_format && !streq(c->log_format, "text") && !streq(c->log_format, "json"))
                return fail(c, log_format, "log-format: \"%s\" is neither text nor json", c->log_format);
        if (!c->state_dir)
                return fail(c, state_dir, "state-dir is not set");
        if (c->health_timeout == 0)
                return fail(c, health_timeout, "health-timeout: at least 1 second");
        if (c->required_units) {
                _cleanup_strv_free_ char **units = strv_split_words(c->required_units);

                if (!units)
                        return log_oom();
                if (strv_length(units) > UNITS_MAX)
                        return fail(c, required_units, "required-units: at most %d units, got %zu", UNITS_MAX,
                                    strv_length(units));
                for (size_t i = 0; units[i]; i++)
                        if (!unit_name_valid(units[i]))
                                return fail(c, required_units, "required-units: \"%s\" is not a unit name", units[i]);
        }
        if (c->health_log_lines == 0 || c->health_log_lines > HEALTH_LOG_LINES_MAX)
                return fail(c, health_log_lines, "health-log-lines: from 1 to %d", HEALTH_LOG_LINES_MAX);
        if (c->greenboot_dirs) {
                _cleanup_strv_free_ char **dirs = strv_split_words(c->greenboot_dirs);

                if (!dirs)
                        return log_oom();
                for (size_t i = 0; dirs[i]; i++)
                        if (dirs[i][0] != '/')
                                return fail(c, greenboot_dirs, "greenboot-dirs: \"%s\" is not an absolute path",
                                            dirs[i]);
        }
        if (c->sim_slot_size < 4096)
                return fail(c, sim_slot_size, "sim-slot-size: at least 4K");
        return 0;
}

void agent_config_help(FILE *f) {
        conftab_help(keys, ELEMENTSOF(keys), f);
}
