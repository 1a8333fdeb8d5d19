/* slipway-agent: runs on every host. Checks in with slipwayd, stages the
 * desired image into the inactive slot, reboots into it under a lease,
 * blesses it when healthy or falls back. */
#include <sys/stat.h>
#include <time.h>

#include "bootentry.h"
#include "conftab.h"
#include "cycle.h"
#include "etcdiff.h"
#include "fileio.h"
#include "files.h"
#include "install.h"
#include "live.h"
#include "grubcfg.h"
#include "json.h"
#include "log.h"
#include "util.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

int sim_firmware_boot(Agent *a);

static void help(void) {
        printf("Usage: slipway-agent [OPTIONS] [COMMAND]\n"
               "\n"
               "Moves this host between its two root slots as slipwayd asks: stage, reboot under\n"
               "a lease, health-check, bless or fall back.\n"
               "\n"
               "Commands:\n"
               "  run                  check in and act until SIGTERM (default)\n"
               "  once                 one check-in round, then exit\n"
               "  status               slots, versions, boot entries and counters, last report\n"
               "  register MAC         register with the site-wide enroll-token (no PXE install)\n"
               "  install              bring-up: register, write the image to the disk, reboot\n"
               "                       (what slipway.mode=install in the initramfs runs)\n"
               "  live                 live boot: fetch the image's rootfs into memory and verify it\n"
               "                       (what slipway.mode=live in the initramfs runs)\n"
               "  power-on             sim backend: run the firmware emulator, then `run`\n"
               "  apply-files          put the booted slot's host files in place under files-root\n"
               "                       (early at boot; `run` does it too)\n"
               "  etc-diff [--all] [--json]\n"
               "                       what this host changed in /etc against the image's copy:\n"
               "                       changed, new, deleted (--all: also files the same;\n"
               "                       --json: a JSON array of {path, change, note})\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE            config file (default " AGENT_CONFIG_DEFAULT_PATH ")\n"
               "  --check-config               validate the configuration and exit\n"
               "  --mode=install|live          the install or live command, as the initramfs runs it\n"
               "  -h, --help                   this help\n"
               "  --version                    print the version\n"
               "\n"
               "Every config key has a flag:\n");
        agent_config_help(stdout);
        printf("\nSee slipway-agent(8) and docs/agent.md.\n");
}

static char *etc_upper_path(const AgentConfig *c) {
        return c->etc_upper ? strdup(c->etc_upper) : path_join(c->state_dir, "etc/upper");
}

typedef struct EtcDiffJson {
        json_t *changes;
        bool all;
} EtcDiffJson;

static int etc_diff_json_add(const char *path, EtcChange change, const char *note, void *userdata) {
        EtcDiffJson *d = userdata;
        json_t *o;

        if (change == ETC_SAME && !d->all)
                return 0;
        o = json_pack("{s:s, s:s}", "path", path, "change", etc_change_to_string(change));
        if (!o || (note && json_object_set_new(o, "note", json_string(note)) < 0) ||
            json_array_append_new(d->changes, o) < 0)
                return -ENOMEM;
        return 0;
}

/* etc-diff: the /etc overlay's upper layer against the image's /etc. */
static int print_etc_diff(const AgentConfig *c, char **args) {
        _cleanup_free_ char *upper = etc_upper_path(c);
        _cleanup_json_ json_t *changes = NULL;
        bool all = false, json = false;
        int r;

        if (!upper)
                return log_oom();
        for (char **a = args; a && *a; a++) {
                if (streq(*a, "--all"))
                        all = true;
                else if (streq(*a, "--json"))
                        json = true;
                else
                        return log_error_errno(-EINVAL, "etc-diff: unexpected argument '%s'", *a);
        }
        if (access(c->etc_image, F_OK) < 0)
                log_warning("the image's /etc is not at '%s': every file of the host's shows as new", c->etc_image);
        if (json) {
                EtcDiffJson d = { .changes = changes = json_array(), .all = all };

                r = changes ? etc_diff(upper, c->etc_image, etc_diff_json_add, &d) : -ENOMEM;
                if (r >= 0) {
                        r = json_dumpf(changes, stdout, JSON_INDENT(2)) < 0 ? -EIO : (int) json_array_size(changes);
                        putchar('\n');
                }
        } else
                r = etc_diff_print(upper, c->etc_image, all, stdout);
        if (r == -ENOENT)
                return log_error_errno(r, "no /etc overlay on this host ('%s' does not exist)", upper);
        if (r < 0)
                return log_error_errno(r, "cannot read '%s': %m", upper);
        if (r == 0 && !json)
                printf("/etc is as the image ships it\n");
        return 0;
}

static int etc_count(const char *path _unused_, EtcChange change, const char *note _unused_, void *userdata) {
        unsigned *n = userdata;

        n[change]++;
        return 0;
}

/* The /etc line of status: whether the host has an overlay, and how much
 * of /etc it changed. */
static void print_etc_status(const AgentConfig *c) {
        _cleanup_free_ char *upper = etc_upper_path(c);
        unsigned n[_ETC_CHANGE_MAX] = {};
        int r;

        if (!upper)
                return;
        r = etc_diff(upper, c->etc_image, etc_count, n);
        if (r == -ENOENT)
                printf("etc:         no overlay (the image's /etc)\n");
        else if (r < 0)
                printf("etc:         cannot read '%s': %s\n", upper, strerror(-r));
        else if (n[ETC_CHANGED] + n[ETC_NEW] + n[ETC_DELETED] == 0)
                printf("etc:         overlay, as the image ships it\n");
        else
                printf("etc:         overlay, %u changed, %u new, %u deleted (slipway-agent etc-diff)\n",
                       n[ETC_CHANGED], n[ETC_NEW], n[ETC_DELETED]);
}

static int print_status(Agent *a) {
        printf("host:        %s\n", a->state.host_id ? a->state.host_id : "(not registered)");
        printf("server:      %s\n", a->api ? api_client_urls(a->api) : "(none)");
        if (a->api && api_client_n_urls(a->api) > 1)
                printf("talking to:  %s\n", a->state.server_in_use ? a->state.server_in_use : "(none yet)");
        printf("backend:     %s\n", a->backend->name);
        printf("boot:        %s\n", a->boot->name);
        printf("booted:      slot %c (%s)\n", a->booted_slot, a->booted_entry ? a->booted_entry : "no entry");
        for (int i = 0; i < 2; i++) {
                SlotInfo *s = &a->state.slots[i];
                char files[65];
                printf("slot %c:      %s%s%s\n", i == 0 ? 'a' : 'b', s->version ? s->version : "(empty)",
                       s->complete ? "" : s->version ? " (incomplete)" : "",
                       a->booted_slot == (i == 0 ? 'a' : 'b') ? "  <- running" : "");
                if (s->complete && files_slot_digest(a, i == 0 ? 'a' : 'b', files) >= 0)
                        printf("             host files %.12s\n", files);
        }
        printf("phase:       %s", phase_to_string(a->state.phase));
        if (a->state.phase != PHASE_IDLE)
                printf(" %s into slot %c", strempty(a->state.target_version), a->state.target_slot ?: '?');
        printf("\nreported:    %s%s%s\n", a->state.reported ? a->state.reported : "(nothing yet)",
               a->state.message ? ": " : "", strempty(a->state.message));
        if (a->state.failed_image)
                printf("failed:      %.12s: %s\n", a->state.failed_image, strempty(a->state.failed_reason));
        print_etc_status(&a->config);
        fflush(stdout);
        a->boot->describe(a, stdout);
        return 0;
}

typedef struct Args {
        const char *config_path;
        bool config_explicit;
        bool check_config;
        const char *mode;
        char **flags;
        char **command;
} Args;

static int parse_args(int argc, char **argv, Args *a) {
        AgentConfig probe;
        int r = agent_config_init(&probe);

        if (r < 0)
                return log_oom();
        for (int i = 1; r >= 0 && i < argc; i++) {
                const char *arg = argv[i], *name, *eq, *value;
                _cleanup_free_ char *key = NULL;

                if (streq(arg, "-h") || streq(arg, "--help")) {
                        help();
                        exit(EXIT_SUCCESS);
                }
                if (streq(arg, "--version")) {
                        printf("slipway-agent %s\n", SLIPWAY_VERSION);
                        exit(EXIT_SUCCESS);
                }
                if (streq(arg, "--check-config")) {
                        a->check_config = true;
                        continue;
                }
                if (startswith(arg, "--mode=")) {
                        a->mode = arg + 7;
                        continue;
                }
                if (streq(arg, "-c") || streq(arg, "--config") || startswith(arg, "--config=")) {
                        if (startswith(arg, "--config="))
                                a->config_path = arg + 9;
                        else if (i + 1 < argc)
                                a->config_path = argv[++i];
                        else
                                r = log_error_errno(-EINVAL, "%s needs a file", arg);
                        a->config_explicit = true;
                        continue;
                }
                name = startswith(arg, "--");
                if (!name) {
                        a->command = argv + i;
                        break;
                }
                eq = strchr(name, '=');
                key = eq ? strndup(name, (size_t) (eq - name)) : strdup(name);
                if (!key) {
                        r = log_oom();
                        break;
                }
                if (eq)
                        value = eq + 1;
                else if (i + 1 < argc)
                        value = argv[++i];
                else {
                        r = log_error_errno(-EINVAL, "--%s needs a value", key);
                        break;
                }
                r = agent_config_apply_flag(&probe, key, value);
                if (r == 0)
                        r = log_error_errno(-EINVAL, "unknown option '--%s' (see --help)", key);
                if (r > 0 && (strv_extend(&a->flags, key) < 0 || strv_extend(&a->flags, value) < 0))
                        r = log_oom();
        }
        agent_config_release(&probe);
        /* Options after the command would otherwise be taken as its
         * arguments, or silently ignored. */
        for (char **c = a->command ? a->command + 1 : NULL; r >= 0 && c && *c; c++)
                if (startswith(*c, "-") &&
                    !(streq(a->command[0], "etc-diff") && (streq(*c, "--all") || streq(*c, "--json"))))
                        r = log_error_errno(-EINVAL, "option '%s' after the command '%s': options go before it", *c,
                                            a->command[0]);
        return r < 0 ? r : 0;
}

static int open_api(Agent *a) {
        _cleanup_error_ Error e = {};
        int r = api_client_new(a->config.server, &a->api, &e);

        if (r < 0)
                return log_error_errno(r, "server: %s", strempty(e.message));
        if (a->config.ca_file && api_client_set_ca_file(a->api, a->config.ca_file) < 0)
                return log_oom();
        api_client_set_timeout(a->api, 30);
        return 0;
}

static int config_build(const Args *args, AgentConfig *ret) {
        int r = agent_config_init(ret);

        if (r >= 0)
                r = agent_config_load(ret, args->config_path, args->config_explicit);
        for (size_t i = 0; r >= 0 && args->flags && args->flags[i]; i += 2)
                r = agent_config_apply_flag(ret, args->flags[i], args->flags[i + 1]);
        if (r >= 0)
                r = agent_config_check(ret);
        return r;
}

static int agent_main(Agent *a, Args *args, int argc, char **argv);

int main(int argc, char **argv) {
        Agent a = { .argv = argv, .checkin_interval = 30 };
        Args args = { .config_path = AGENT_CONFIG_DEFAULT_PATH };
        int rc;

        log_set_program("slipway-agent");
        rc = agent_main(&a, &args, argc, argv);
        /* Every command ends here, so that nothing is left for a leak check. */
        api_client_free(a.api);
        agent_state_release(&a.state);
        agent_config_release(&a.config);
        free(a.state_path);
        free(a.booted_entry);
        free(a.backend_data); /* the sim backend's ESP path; the disk backend keeps none */
        strv_free(args.flags);
        return rc;
}

static int agent_main(Agent *a, Args *args, int argc, char **argv) {
        const char *cmd;
        int r;

        if (parse_args(argc, argv, args) < 0 || config_build(args, &a->config) < 0)
                return EXIT_FAILURE;
        if (args->check_config) {
                printf("slipway-agent: configuration is valid\n");
                return EXIT_SUCCESS;
        }
        log_set_level(log_level_from_string(a->config.log_level));
        log_set_json(streq_ptr(a->config.log_format, "json"));
        if (a->config.checkin_interval > 0)
                a->checkin_interval = a->config.checkin_interval;
        if (args->mode && !streq(args->mode, "install") && !streq(args->mode, "live")) {
                log_error("--mode=%s: expected install or live", args->mode);
                return EXIT_FAILURE;
        }
        cmd = args->command ? args->command[0] : args->mode ? args->mode : "run";
        a->backend = streq(a->config.backend, "sim") ? &backend_sim : &backend_disk;
        a->boot = streq(a->config.boot, "grub") ? &boot_grub : &boot_bls;
        if (streq(a->config.boot, "auto")) {
                /* A disk slipway-build made for GRUB carries its grubenv. */
                _cleanup_free_ char *env = path_join(a->backend->esp_dir(a), GRUBCFG_ENV_PATH);
                if (env && access(env, F_OK) == 0)
                        a->boot = &boot_grub;
                log_debug("boot back end: %s (auto)", a->boot == &boot_grub ? "grub" : "systemd-boot");
        }
        a->state_path = path_join(a->config.state_dir, "agent.json");
        if (!a->state_path || mkdir_p(a->config.state_dir, 0700) < 0) {
                log_error("cannot create the state directory '%s'", a->config.state_dir);
                return EXIT_FAILURE;
        }

        /* Without a configured server, the one the host registered with
         * (a PXE install remembers it in the state), before agent_start()
         * judges a fresh boot and reports it. */
        if (!a->config.server && !streq(cmd, "install") && !streq(cmd, "live")) {
                AgentState saved = {};
                r = 0;
                if (agent_state_load(a->state_path, &saved) >= 0 && saved.server)
                        r = conftab_set_string(&a->config.server, saved.server);
                agent_state_release(&saved);
                if (r < 0)
                        return EXIT_FAILURE;
        }
        if (a->config.server && open_api(a) < 0)
                return EXIT_FAILURE;
        if (streq(cmd, "install")) {
                r = agent_install(a);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (streq(cmd, "etc-diff"))
                return print_etc_diff(&a->config, args->command + 1) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (streq(cmd, "live"))
                return agent_live(a) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (streq(cmd, "power-on")) {
                if (a->backend != &backend_sim) {
                        log_error("power-on is for the sim backend");
                        return EXIT_FAILURE;
                }
                r = a->backend->init(a);
                if (r >= 0)
                        r = sim_firmware_boot(a);
                if (r < 0) {
                        log_error_errno(r, "sim firmware: %m");
                        return EXIT_FAILURE;
                }
                cmd = "run";
        }
        /* status, register and apply-files only look; run judges a fresh
         * boot. */
        r = streq(cmd, "status") || streq(cmd, "register") || streq(cmd, "apply-files") ? agent_load(a)
                                                                                        : agent_start(a);
        if (r < 0)
                return EXIT_FAILURE;
        if (streq(cmd, "apply-files"))
                return agent_apply_files(a) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (streq(cmd, "status"))
                return print_status(a) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (streq(cmd, "register")) {
                if (!args->command[1] || !a->config.enroll_token || !a->api) {
                        log_error("usage: slipway-agent --server URL --enroll-token SECRET register MAC");
                        return EXIT_FAILURE;
                }
                return agent_register(a, args->command[1], a->config.enroll_token) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (!streq(cmd, "run") && !streq(cmd, "once")) {
                log_error("unknown command '%s' (see --help)", cmd);
                return EXIT_FAILURE;
        }
        if (!a->api) {
                log_error("no server is configured (server = URL in [agent], or --server)");
                return EXIT_FAILURE;
        }
        if (!a->state.host_id) {
                log_error("this host is not registered (install it over PXE, or `slipway-agent register MAC`)");
                return EXIT_FAILURE;
        }
        r = agent_loop(a, streq(cmd, "once"));
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
