/* slipctl: the operator's command line over the slipwayd HTTP API. */
#include <getopt.h>
#include <inttypes.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

#define SERVER_DEFAULT "http://127.0.0.1:8080"

static void help(void) {
        printf("Usage: slipctl [OPTIONS] COMMAND ...\n"
               "\n"
               "The operator's command line for a Slipway bootserver (slipwayd).\n"
               "\n"
               "Commands:\n"
               "  status                      the server's version, counts and uptime; checks the token\n"
               "  image list                  published images, newest first\n"
               "  image show IMAGE            one image: ID, artifacts, signer, how many hosts use it\n"
               "  image delete IMAGE          remove an image no host uses, with the blobs only it used\n"
               "  host list [--label K=V] [--state S]\n"
               "                              hosts, optionally only those with a label or in a state\n"
               "  host show HOST              one host: labels, image, state, slots, health, facts\n"
               "  host label HOST K=V... K-...\n"
               "                              set labels (K=V) and remove them (K-)\n"
               "  host assign HOST IMAGE [--boot disk|live]\n"
               "                              the image HOST is to run, installed on disk or booted live\n"
               "  host unassign HOST          take the assigned image away\n"
               "  audit [--since ID] [--limit N] [--action A] [--follow]\n"
               "                              who changed what and when, oldest first\n"
               "\n"
               "IMAGE is an image ID (or a prefix of 8+ digits), NAME:VERSION, or NAME (newest).\n"
               "HOST is a host ID (h-...) or a MAC address.\n"
               "\n"
               "Options:\n"
               "  --server URL        the bootserver (env SLIPWAY_SERVER; default " SERVER_DEFAULT ")\n"
               "  --token TOKEN       admin token (env SLIPWAY_TOKEN)\n"
               "  --token-file FILE   read the admin token from the first line of FILE\n"
               "  --ca-file FILE      PEM certificates to verify an https server (env SLIPWAY_CA_FILE)\n"
               "  --json              print the server's JSON instead of tables, for scripts\n"
               "  -h, --help          this help\n"
               "  --version           print the version\n"
               "\n"
               "Command options:\n"
               "  --label K=V         host list: only hosts with this label (repeatable)\n"
               "  --state S           host list: only hosts in this state (registered, healthy, ...)\n"
               "  --boot disk|live    host assign: install on disk (the default) or boot live\n"
               "  --since ID          audit: only entries after entry ID\n"
               "  --limit N           audit: at most N entries; with --follow, the N latest before\n"
               "                      following (default 10)\n"
               "  --action A          audit: only action A (host.assign) or family A (host)\n"
               "  --follow            audit: then print new entries as they come (every second)\n"
               "                      until interrupted\n"
               "\n"
               "Exit status: 0 done, 1 the server refused or a usage error, 2 no answer from the server.\n"
               "See slipctl(1).\n");
}

enum {
        OPT_SERVER = 0x100,
        OPT_TOKEN,
        OPT_TOKEN_FILE,
        OPT_CA_FILE,
        OPT_JSON,
        OPT_VERSION,
        OPT_LABEL,
        OPT_STATE,
        OPT_BOOT,
        OPT_SINCE,
        OPT_LIMIT,
        OPT_ACTION,
        OPT_FOLLOW,
};

static const struct option options[] = {
        { "server", required_argument, NULL, OPT_SERVER },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
        { "ca-file", required_argument, NULL, OPT_CA_FILE },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "label", required_argument, NULL, OPT_LABEL },
        { "state", required_argument, NULL, OPT_STATE },
        { "boot", required_argument, NULL, OPT_BOOT },
        { "since", required_argument, NULL, OPT_SINCE },
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "action", required_argument, NULL, OPT_ACTION },
        { "follow", no_argument, NULL, OPT_FOLLOW },
        {}
};

/* Command options, as bits, to check that each is used with its command. */
enum {
        WITH_LABEL = 1 << 0,
        WITH_STATE = 1 << 1,
        WITH_BOOT = 1 << 2,
        WITH_SINCE = 1 << 3,
        WITH_LIMIT = 1 << 4,
        WITH_ACTION = 1 << 5,
        WITH_FOLLOW = 1 << 6,
};

static const char *const option_names[] = { "--label", "--state", "--boot", "--since",
                                            "--limit", "--action", "--follow" };

typedef struct Command {
        const char *group;
        const char *verb; /* NULL: the group is the command */
        const char *usage;
        size_t min_args, max_args;
        unsigned options;
        int (*run)(Ctl *ctl, char **args);
} Command;

static const Command commands[] = {
        { "status", NULL, "status", 0, 0, 0, ctl_status },
        { "image", "list", "image list", 0, 0, 0, ctl_image_list },
        { "image", "show", "image show IMAGE", 1, 1, 0, ctl_image_show },
        { "image", "delete", "image delete IMAGE", 1, 1, 0, ctl_image_delete },
        { "host", "list", "host list [--label K=V] [--state S]", 0, 0, WITH_LABEL | WITH_STATE, ctl_host_list },
        { "host", "show", "host show HOST", 1, 1, 0, ctl_host_show },
        { "host", "label", "host label HOST K=V... K-...", 2, SIZE_MAX, 0, ctl_host_label },
        { "host", "assign", "host assign HOST IMAGE [--boot disk|live]", 2, 2, WITH_BOOT, ctl_host_assign },
        { "host", "unassign", "host unassign HOST", 1, 1, 0, ctl_host_unassign },
        { "audit", NULL, "audit [--since ID] [--limit N] [--action A] [--follow]", 0, 0,
          WITH_SINCE | WITH_LIMIT | WITH_ACTION | WITH_FOLLOW, ctl_audit },
};

typedef struct Args {
        const char *server;
        const char *token;
        const char *token_file;
        const char *ca_file;
        unsigned given; /* WITH_* */
} Args;

/* Parses the options into a and ctl->opt. Returns 1 to go on, 0 when done
 * (help, version), a negative errno on a usage error (logged). */
static int parse_args(int argc, char **argv, Args *a, Ctl *ctl) {
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case OPT_SERVER:
                        a->server = optarg;
                        break;
                case OPT_TOKEN:
                        a->token = optarg;
                        break;
                case OPT_TOKEN_FILE:
                        a->token_file = optarg;
                        break;
                case OPT_CA_FILE:
                        a->ca_file = optarg;
                        break;
                case OPT_JSON:
                        ctl->json = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case OPT_VERSION:
                        printf("slipctl %s\n", SLIPWAY_VERSION);
                        return 0;
                case OPT_LABEL:
                        if (!strchr(optarg, '=') || optarg[0] == '=')
                                return log_error_errno(-EINVAL, "--label: expected KEY=VALUE, got '%s'", optarg);
                        if (strv_extend(&ctl->opt.labels, optarg) < 0)
                                return log_oom();
                        a->given |= WITH_LABEL;
                        break;
                case OPT_STATE:
                        ctl->opt.state = optarg;
                        a->given |= WITH_STATE;
                        break;
                case OPT_BOOT:
                        if (!streq(optarg, "disk") && !streq(optarg, "live"))
                                return log_error_errno(-EINVAL, "--boot: expected disk or live, got '%s'", optarg);
                        ctl->opt.boot = optarg;
                        a->given |= WITH_BOOT;
                        break;
                case OPT_SINCE:
                        if (safe_atou64(optarg, &ctl->opt.since) < 0 || ctl->opt.since > INT64_MAX)
                                return log_error_errno(-EINVAL, "--since: expected an audit entry ID, got '%s'",
                                                       optarg);
                        ctl->opt.since_set = true;
                        a->given |= WITH_SINCE;
                        break;
                case OPT_LIMIT:
                        if (safe_atou64(optarg, &ctl->opt.limit) < 0 || ctl->opt.limit == 0 ||
                            ctl->opt.limit > INT32_MAX)
                                return log_error_errno(-EINVAL, "--limit: expected a positive number, got '%s'",
                                                       optarg);
                        a->given |= WITH_LIMIT;
                        break;
                case OPT_ACTION:
                        if (isempty(optarg))
                                return log_error_errno(-EINVAL, "--action: expected an action such as host.assign");
                        ctl->opt.action = optarg;
                        a->given |= WITH_ACTION;
                        break;
                case OPT_FOLLOW:
                        ctl->opt.follow = true;
                        a->given |= WITH_FOLLOW;
                        break;
                default:
                        return -EINVAL; /* getopt said why */
                }
        }
        return 1;
}

/* Finds the command named by words; logs and returns NULL when there is
 * none. ret_args gets the words after the command's name. */
static const Command *command_find(char **words, char ***ret_args) {
        bool group_known = false;

        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                const Command *c = &commands[i];
                if (!streq(words[0], c->group))
                        continue;
                group_known = true;
                if (!c->verb) {
                        *ret_args = words + 1;
                        return c;
                }
                if (words[1] && streq(words[1], c->verb)) {
                        *ret_args = words + 2;
                        return c;
                }
        }
        if (!group_known)
                log_error("unknown command '%s' (see --help)", words[0]);
        else if (!words[1])
                log_error("'%s' needs a subcommand (see --help)", words[0]);
        else
                log_error("unknown command '%s %s' (see --help)", words[0], words[1]);
        return NULL;
}

/* Checks the arguments and options given against what c takes. */
static int command_check(const Command *c, char **args, unsigned given) {
        size_t n = strv_length(args);

        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if ((given & (1u << i)) && !(c->options & (1u << i)))
                        return log_error_errno(-EINVAL, "%s is not an option of '%s%s%s' (see --help)",
                                               option_names[i], c->group, c->verb ? " " : "", strempty(c->verb));
        if (n < c->min_args || n > c->max_args)
                return log_error_errno(-EINVAL, "usage: slipctl %s", c->usage);
        return 0;
}

/* Sets up the API client from the options and the environment. */
static int client_setup(const Args *a, Ctl *ctl) {
        _cleanup_free_ char *file_token = NULL;
        const char *server = a->server, *token = a->token, *ca = a->ca_file;
        int r;

        if (!server)
                server = getenv("SLIPWAY_SERVER");
        if (isempty(server))
                server = SERVER_DEFAULT;
        if (a->token && a->token_file)
                return log_error_errno(-EINVAL, "--token and --token-file cannot be used together");
        if (a->token_file) {
                r = api_read_token_file(a->token_file, &file_token);
                if (r == -EINVAL)
                        return log_error_errno(r, "token file '%s' is empty", a->token_file);
                if (r == -EFBIG)
                        return log_error_errno(r, "token file '%s' is too large to hold a token", a->token_file);
                if (r < 0)
                        return log_error_errno(r, "cannot read the token file '%s': %m", a->token_file);
                token = file_token;
        }
        if (!token && !isempty(getenv("SLIPWAY_TOKEN")))
                token = getenv("SLIPWAY_TOKEN");
        if (!ca && !isempty(getenv("SLIPWAY_CA_FILE")))
                ca = getenv("SLIPWAY_CA_FILE");

        r = api_client_new(server, &ctl->api);
        if (r == -EINVAL)
                return log_error_errno(r, "server URL '%s' is not an http:// or https:// URL", server);
        if (r < 0)
                return log_error_errno(r, "cannot set up the API client: %m");
        if (token) {
                r = api_client_set_token(ctl->api, token);
                if (r == -EINVAL)
                        return log_error_errno(r, "the token holds spaces or control characters, or is too long");
                if (r < 0)
                        return log_oom();
                ctl->has_token = true;
        }
        if (ca) {
                if (access(ca, R_OK) < 0)
                        return log_error_errno(negative_errno(), "cannot read the CA file '%s': %m", ca);
                if (api_client_set_ca_file(ctl->api, ca) < 0)
                        return log_oom();
        }
        return 0;
}

int main(int argc, char *argv[]) {
        const Command *c;
        Args a = {};
        Ctl ctl = {};
        char **args = NULL;
        int r;

        log_set_program("slipctl");
        r = parse_args(argc, argv, &a, &ctl);
        if (r <= 0) {
                strv_free(ctl.opt.labels);
                return r < 0 ? CTL_EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (optind >= argc) {
                help();
                strv_free(ctl.opt.labels);
                return CTL_EXIT_FAILURE;
        }
        if (streq(argv[optind], "help")) {
                help();
                strv_free(ctl.opt.labels);
                return EXIT_SUCCESS;
        }
        c = command_find(argv + optind, &args);
        r = c ? command_check(c, args, a.given) : -EINVAL;
        if (r >= 0)
                r = client_setup(&a, &ctl);
        if (r >= 0)
                r = c->run(&ctl, args);
        if (r < 0 && ctl.api && api_client_unreachable(ctl.api))
                r = CTL_EXIT_UNREACHABLE;
        else
                r = r < 0 ? CTL_EXIT_FAILURE : EXIT_SUCCESS;
        api_client_free(ctl.api);
        strv_free(ctl.opt.labels);
        return r;
}
