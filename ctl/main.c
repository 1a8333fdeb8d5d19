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
        fputs("Usage: slipctl [OPTIONS] COMMAND ...\n"
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
              "  budget list                 disruption budgets: how many hosts of a group may be down\n"
              "  budget set SELECTOR (--max-unavailable N|N% | --min-available N)\n"
              "                              set the budget of a label key's groups or of one group\n"
              "  budget delete SELECTOR      remove a budget\n"
              "  rollout plan [IMAGE] [ROLLOUT OPTIONS]\n"
              "                              the waves a rollout would take, with host counts and\n"
              "                              an estimate, without starting it\n"
              "  rollout start [IMAGE] [ROLLOUT OPTIONS]\n"
              "                              move the selected hosts to IMAGE, or a file set's\n"
              "                              version to the hosts it selects (--files), wave by wave\n"
              "  rollout list                rollouts, newest first\n"
              "  rollout status ID           one rollout: state, reason, waves and budgeted groups\n"
              "  rollout pause ID            stop assigning hosts; resume goes on\n"
              "  rollout resume ID           go on, accepting the failures so far\n"
              "  rollout abort ID            stop for good: hosts not yet assigned are skipped\n"
              "  rollout rollback ID         abort, and move the hosts it touched back to what\n"
              "                              they ran, in a new rollout\n"
              "  rollout watch ID            follow a rollout until it is done or aborted (exit 0)\n"
              "                              or paused (exit 3)\n"
              "  files list                  host file sets: name, newest and live version, rollout\n"
              "  files show NAME [VERSION]   a set's files and templates (the newest version)\n"
              "  files add NAME [--selector K=V]... PATH[:MODE[:UID:GID]]=LOCAL...\n"
              "                              a new set: each PATH on the selected hosts gets LOCAL's\n"
              "                              content, rendered per host\n"
              "  files set NAME [--selector K=V]... [PATH[:MODE[:UID:GID]]=LOCAL...]\n"
              "                              a new version: the files given replace the set's, the\n"
              "                              selector and files not given stay; live on every\n"
              "                              host at once, or with --hold only through a rollout\n"
              "  files delete NAME [--hold]  hosts stop getting the set (its history stays)\n"
              "  files history NAME          a set's versions: when, by whom\n"
              "  files diff NAME [FROM [TO]] what changed between two versions (default: the last)\n"
              "  files render HOST           the files HOST gets, rendered, with their digest\n"
              "  pipeline start FILE         take an image through the stages of a pipeline file\n"
              "                              (staging, then production), promoted when each passes\n"
              "  pipeline list               pipelines, newest first\n"
              "  pipeline status ID          one pipeline: its stages, where it is, why it stopped\n"
              "  pipeline approve ID         approve the promotion of the current stage\n"
              "  pipeline abort ID           stop a pipeline and its stage's rollout\n"
              "\n"
              "IMAGE is an image ID (or a prefix of 8+ digits), NAME:VERSION, or NAME (newest).\n"
              "HOST is a host ID (h-...) or a MAC address.\n"
              "SELECTOR is a label key (rack: each rack=... group) or one group (service=web).\n"
              "ID is a rollout number (rollout list), or a pipeline's (pipeline list).\n"
              "\n"
              "Options:\n"
              "  --server URL        the bootserver (env SLIPWAY_SERVER; default " SERVER_DEFAULT "); several\n"
              "                      URLs, separated by commas or blanks: the next when one does not answer\n"
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
              "  --max-unavailable N|N%\n"
              "                      budget set: at most N hosts (N percent) of each group down\n"
              "  --min-available N   budget set: at least N hosts of each group up\n"
              "\n"
              "Rollout options (rollout plan, rollout start):\n"
              "  --selector K=V      only hosts with this label (repeatable; default: every host);\n"
              "                      files add and files set take it too\n"
              "  --waves LIST        cumulative wave ends, counts or percentages of the hosts\n"
              "                      (default 100%, one wave), e.g. 1,10%,50%,100%\n"
              "  --bake SEC          wait this long after a wave is done before the next (default 0)\n"
              "  --max-failures N|N% failed hosts a wave tolerates (default 0)\n"
              "  --on-failure pause|rollback\n"
              "                      what a wave with more failures does (default pause)\n"
              "  --order KEY=V1,V2,...\n"
              "                      hosts labelled KEY=V1 first, then KEY=V2, ... within the waves\n"
              "  --window SELECTOR@HH:MM-HH:MM\n"
              "                      hosts of SELECTOR's groups (KEY or KEY=VALUE) reboot only then,\n"
              "                      UTC (repeatable), e.g. rack@22:00-04:00\n"
              "  --budget SELECTOR:N|N%|min=N\n"
              "                      the rollout's own budget for SELECTOR's groups (KEY or\n"
              "                      KEY=VALUE): at most N or N% of a group down, or at least N\n"
              "                      up; it tightens the site's, never loosens it (repeatable),\n"
              "                      e.g. rack:1\n"
              "  --files NAME[@VERSION]\n"
              "                      move file set NAME to VERSION (default: its newest) in the\n"
              "                      same waves, alone or with IMAGE\n"
              "  --hold              files add, set, delete: keep the new version back from the\n"
              "                      hosts until a rollout moves it (rollout start --files)\n"
              "\n"
              "Exit status: 0 done, 1 the server refused or a usage error, 2 no answer from any server,\n"
              "3 rollout watch: the rollout paused.\n"
              "See slipctl(1).\n",
              stdout);
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
        OPT_MAX_UNAVAILABLE,
        OPT_MIN_AVAILABLE,
        OPT_SELECTOR,
        OPT_WAVES,
        OPT_BAKE,
        OPT_MAX_FAILURES,
        OPT_ON_FAILURE,
        OPT_ORDER,
        OPT_WINDOW,
        OPT_FILES,
        OPT_HOLD,
        OPT_BUDGET,
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
        { "max-unavailable", required_argument, NULL, OPT_MAX_UNAVAILABLE },
        { "min-available", required_argument, NULL, OPT_MIN_AVAILABLE },
        { "selector", required_argument, NULL, OPT_SELECTOR },
        { "waves", required_argument, NULL, OPT_WAVES },
        { "bake", required_argument, NULL, OPT_BAKE },
        { "max-failures", required_argument, NULL, OPT_MAX_FAILURES },
        { "on-failure", required_argument, NULL, OPT_ON_FAILURE },
        { "order", required_argument, NULL, OPT_ORDER },
        { "window", required_argument, NULL, OPT_WINDOW },
        { "files", required_argument, NULL, OPT_FILES },
        { "hold", no_argument, NULL, OPT_HOLD },
        { "budget", required_argument, NULL, OPT_BUDGET },
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
        WITH_MAX_UNAVAILABLE = 1 << 7,
        WITH_MIN_AVAILABLE = 1 << 8,
        WITH_SELECTOR = 1 << 9,
        WITH_WAVES = 1 << 10,
        WITH_BAKE = 1 << 11,
        WITH_MAX_FAILURES = 1 << 12,
        WITH_ON_FAILURE = 1 << 13,
        WITH_ORDER = 1 << 14,
        WITH_WINDOW = 1 << 15,
        WITH_FILES = 1 << 16,
        WITH_HOLD = 1 << 17,
        WITH_BUDGET = 1 << 18,
        WITH_ROLLOUT_SPEC = WITH_SELECTOR | WITH_WAVES | WITH_BAKE | WITH_MAX_FAILURES | WITH_ON_FAILURE | WITH_ORDER |
                            WITH_WINDOW | WITH_FILES | WITH_BUDGET,
};

/* Indexed by the bit of WITH_*. */
static const char *const option_names[] = { "--label",         "--state",       "--boot",         "--since",
                                            "--limit",         "--action",      "--follow",       "--max-unavailable",
                                            "--min-available", "--selector",    "--waves",        "--bake",
                                            "--max-failures",  "--on-failure",  "--order",        "--window",
                                            "--files",         "--hold",        "--budget" };

#define ROLLOUT_USAGE                                                                                 \
        "[--selector K=V]... [--waves 1,10%,50%,100%] [--bake SEC] [--max-failures N|N%] [--on-failure " \
        "pause|rollback] [--order KEY=V1,V2,...] [--window SELECTOR@HH:MM-HH:MM]... [--budget SELECTOR:N|N%|min=N]... " \
        "[--files NAME[@VERSION]]"

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
        { "budget", "list", "budget list", 0, 0, 0, ctl_budget_list },
        { "budget", "set", "budget set SELECTOR (--max-unavailable N|N% | --min-available N)", 1, 1,
          WITH_MAX_UNAVAILABLE | WITH_MIN_AVAILABLE, ctl_budget_set },
        { "budget", "delete", "budget delete SELECTOR", 1, 1, 0, ctl_budget_delete },
        { "rollout", "plan", "rollout plan [IMAGE] " ROLLOUT_USAGE, 0, 1, WITH_ROLLOUT_SPEC, ctl_rollout_plan },
        { "rollout", "start", "rollout start [IMAGE] " ROLLOUT_USAGE, 0, 1, WITH_ROLLOUT_SPEC, ctl_rollout_start },
        { "rollout", "list", "rollout list", 0, 0, 0, ctl_rollout_list },
        { "rollout", "status", "rollout status ID", 1, 1, 0, ctl_rollout_status },
        { "rollout", "pause", "rollout pause ID", 1, 1, 0, ctl_rollout_pause },
        { "rollout", "resume", "rollout resume ID", 1, 1, 0, ctl_rollout_resume },
        { "rollout", "abort", "rollout abort ID", 1, 1, 0, ctl_rollout_abort },
        { "rollout", "rollback", "rollout rollback ID", 1, 1, 0, ctl_rollout_rollback },
        { "rollout", "watch", "rollout watch ID", 1, 1, 0, ctl_rollout_watch },
        { "files", "list", "files list", 0, 0, 0, ctl_files_list },
        { "files", "show", "files show NAME [VERSION]", 1, 2, 0, ctl_files_show },
        { "files", "add", "files add NAME [--selector K=V]... [--hold] PATH[:MODE[:UID:GID]]=LOCAL...", 2, SIZE_MAX,
          WITH_SELECTOR | WITH_HOLD, ctl_files_add },
        { "files", "set", "files set NAME [--selector K=V]... [--hold] [PATH[:MODE[:UID:GID]]=LOCAL...]", 1,
          SIZE_MAX, WITH_SELECTOR | WITH_HOLD, ctl_files_set },
        { "files", "delete", "files delete NAME [--hold]", 1, 1, WITH_HOLD, ctl_files_delete },
        { "files", "history", "files history NAME", 1, 1, 0, ctl_files_history },
        { "files", "diff", "files diff NAME [FROM [TO]]", 1, 3, 0, ctl_files_diff },
        { "files", "render", "files render HOST", 1, 1, 0, ctl_files_render },
        { "pipeline", "start", "pipeline start FILE", 1, 1, 0, ctl_pipeline_start },
        { "pipeline", "list", "pipeline list", 0, 0, 0, ctl_pipeline_list },
        { "pipeline", "status", "pipeline status ID", 1, 1, 0, ctl_pipeline_status },
        { "pipeline", "approve", "pipeline approve ID", 1, 1, 0, ctl_pipeline_approve },
        { "pipeline", "abort", "pipeline abort ID", 1, 1, 0, ctl_pipeline_abort },
};

/* A count ("3", sent as 3) or a percentage ("10%", 0 to 100, sent as the
 * string). -EINVAL when s is neither. */
static int parse_amount(const char *s, json_t **ret) {
        _cleanup_free_ char *num = NULL;
        size_t n = strlen(s);
        bool pct = n > 0 && s[n - 1] == '%';
        uint64_t v;
        json_t *j;

        num = strndup(s, pct ? n - 1 : n);
        if (!num)
                return -ENOMEM;
        if (safe_atou64(num, &v) < 0 || v > (pct ? 100 : INT32_MAX))
                return -EINVAL;
        j = pct ? json_string(s) : json_integer((json_int_t) v);
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* Splits "a,b,c" into its items; an empty item is -EINVAL. */
static int split_list(const char *s, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;

        for (const char *p = s;;) {
                const char *e = strchrnul(p, ',');
                if (e == p)
                        return -EINVAL;
                char *item = strndup(p, (size_t) (e - p));
                if (!item || strv_consume(&l, item) < 0)
                        return -ENOMEM;
                if (!*e)
                        break;
                p = e + 1;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* --waves 1,10%,50%,100% as [1, "10%", "50%", "100%"]. */
static int parse_waves(const char *s, json_t **ret) {
        _cleanup_strv_free_ char **items = NULL;
        json_t *a;
        int r;

        r = split_list(s, &items);
        if (r < 0)
                return r;
        a = json_array();
        if (!a)
                return -ENOMEM;
        for (char **p = items; *p; p++) {
                json_t *v;
                r = parse_amount(*p, &v);
                if (r >= 0 && json_array_append_new(a, v) < 0)
                        r = -ENOMEM;
                if (r < 0) {
                        json_decref(a);
                        return r;
                }
        }
        *ret = a;
        return 0;
}

/* --order KEY=V1,V2 as {"key": KEY, "values": [V1, V2]}. */
static int parse_order(const char *s, json_t **ret) {
        _cleanup_strv_free_ char **values = NULL;
        _cleanup_free_ char *key = NULL;
        const char *eq = strchr(s, '=');
        json_t *a, *o;
        int r;

        if (!eq || eq == s)
                return -EINVAL;
        key = strndup(s, (size_t) (eq - s));
        if (!key)
                return -ENOMEM;
        r = split_list(eq + 1, &values);
        if (r < 0)
                return r;
        a = json_array();
        for (char **p = values; a && *p; p++)
                if (json_array_append_new(a, json_string(*p)) < 0) {
                        json_decref(a);
                        a = NULL;
                }
        o = a ? json_pack("{s:s, s:o}", "key", key, "values", a) : NULL;
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* --selector K=V, added to the object *selector (made on first use). */
static int add_selector(json_t **selector, const char *s) {
        const char *eq = strchr(s, '=');
        _cleanup_free_ char *key = NULL;
        const char *old;

        if (!eq || eq == s || !eq[1])
                return log_error_errno(-EINVAL, "--selector: expected KEY=VALUE, got '%s'", s);
        key = strndup(s, (size_t) (eq - s));
        if (!key || (!*selector && !(*selector = json_object())))
                return log_oom();
        old = json_string_value(json_object_get(*selector, key));
        if (old && !streq(old, eq + 1))
                return log_error_errno(-EINVAL, "--selector: label '%s' given twice, as '%s' and '%s'", key, old,
                                       eq + 1);
        if (json_object_set_new(*selector, key, json_string(eq + 1)) < 0)
                return log_oom();
        return 0;
}

static void options_release(CtlOptions *o) {
        strv_free(o->labels);
        json_decref(o->max_unavailable);
        json_decref(o->selector);
        json_decref(o->waves);
        json_decref(o->max_failures);
        json_decref(o->order);
        json_decref(o->windows);
        json_decref(o->budgets);
        *o = (CtlOptions) {};
}

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
        uint64_t v;
        int c, r;

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
                case OPT_MAX_UNAVAILABLE:
                        json_decref(ctl->opt.max_unavailable);
                        ctl->opt.max_unavailable = NULL;
                        r = parse_amount(optarg, &ctl->opt.max_unavailable);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0)
                                return log_error_errno(r, "--max-unavailable: expected a count or a percentage "
                                                          "(10%%), got '%s'", optarg);
                        a->given |= WITH_MAX_UNAVAILABLE;
                        break;
                case OPT_MIN_AVAILABLE:
                        if (safe_atou64(optarg, &v) < 0 || v > INT32_MAX)
                                return log_error_errno(-EINVAL, "--min-available: expected a count, got '%s'", optarg);
                        ctl->opt.min_available = (int64_t) v;
                        a->given |= WITH_MIN_AVAILABLE;
                        break;
                case OPT_SELECTOR:
                        r = add_selector(&ctl->opt.selector, optarg);
                        if (r < 0)
                                return r;
                        a->given |= WITH_SELECTOR;
                        break;
                case OPT_WAVES:
                        json_decref(ctl->opt.waves);
                        ctl->opt.waves = NULL;
                        r = parse_waves(optarg, &ctl->opt.waves);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0)
                                return log_error_errno(r, "--waves: expected counts or percentages separated by "
                                                          "commas (1,10%%,50%%,100%%), got '%s'", optarg);
                        a->given |= WITH_WAVES;
                        break;
                case OPT_BAKE:
                        if (safe_atou64(optarg, &v) < 0 || v > INT32_MAX)
                                return log_error_errno(-EINVAL, "--bake: expected seconds, got '%s'", optarg);
                        ctl->opt.bake = (int64_t) v;
                        a->given |= WITH_BAKE;
                        break;
                case OPT_MAX_FAILURES:
                        json_decref(ctl->opt.max_failures);
                        ctl->opt.max_failures = NULL;
                        r = parse_amount(optarg, &ctl->opt.max_failures);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0)
                                return log_error_errno(r, "--max-failures: expected a count or a percentage (10%%), "
                                                          "got '%s'", optarg);
                        a->given |= WITH_MAX_FAILURES;
                        break;
                case OPT_ON_FAILURE:
                        if (!streq(optarg, "pause") && !streq(optarg, "rollback"))
                                return log_error_errno(-EINVAL, "--on-failure: expected pause or rollback, got '%s'",
                                                       optarg);
                        ctl->opt.on_failure = optarg;
                        a->given |= WITH_ON_FAILURE;
                        break;
                case OPT_ORDER:
                        json_decref(ctl->opt.order);
                        ctl->opt.order = NULL;
                        r = parse_order(optarg, &ctl->opt.order);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0)
                                return log_error_errno(r, "--order: expected KEY=VALUE,VALUE,..., got '%s'", optarg);
                        a->given |= WITH_ORDER;
                        break;
                case OPT_WINDOW: {
                        const char *at = strchr(optarg, '@');
                        _cleanup_free_ char *sel = at ? strndup(optarg, (size_t) (at - optarg)) : NULL;
                        /* The server checks the selector and the times. */
                        if (!at || !sel || !*sel || !at[1])
                                return log_error_errno(-EINVAL, "--window: expected SELECTOR@HH:MM-HH:MM, got '%s'",
                                                       optarg);
                        if (!ctl->opt.windows)
                                ctl->opt.windows = json_object();
                        if (!ctl->opt.windows || json_object_set_new(ctl->opt.windows, sel, json_string(at + 1)) < 0)
                                return log_oom();
                        a->given |= WITH_WINDOW;
                        break;
                }
                case OPT_FILES:
                        /* The server checks the name and the version. */
                        ctl->opt.files = optarg;
                        a->given |= WITH_FILES;
                        break;
                case OPT_HOLD:
                        ctl->opt.hold = true;
                        a->given |= WITH_HOLD;
                        break;
                case OPT_BUDGET: {
                        _cleanup_free_ char *sel = NULL;
                        json_t *b = NULL;

                        r = ctl_budget_item(optarg, &sel, &b);
                        if (r == -ENOMEM)
                                return log_oom();
                        if (r < 0)
                                return log_error_errno(r, "--budget: expected SELECTOR:N, SELECTOR:N%% or "
                                                          "SELECTOR:min=N, got '%s'",
                                                       optarg);
                        if (!ctl->opt.budgets)
                                ctl->opt.budgets = json_object();
                        if (!ctl->opt.budgets || json_object_set_new(ctl->opt.budgets, sel, b) < 0)
                                return log_oom();
                        a->given |= WITH_BUDGET;
                        break;
                }
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
        /* A rollout moves an image, a file set, or both: not nothing. */
        if ((c->options & WITH_FILES) && n == 0 && !(given & WITH_FILES))
                return log_error_errno(-EINVAL, "usage: slipctl %s", c->usage);
        return 0;
}

/* Sets up the API client from the options and the environment. */
static int client_setup(const Args *a, Ctl *ctl) {
        _cleanup_free_ char *file_token = NULL;
        _cleanup_error_ Error e = {};
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

        r = api_client_new(server, &ctl->api, &e);
        if (r == -EINVAL)
                return log_error_errno(r, "server URL %s", strempty(e.message));
        if (r < 0)
                return log_error_errno(r, "cannot set up the API client: %s", strempty(e.message));
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
        ctl.opt.min_available = -1;
        ctl.opt.bake = -1;
        r = parse_args(argc, argv, &a, &ctl);
        if (r <= 0) {
                options_release(&ctl.opt);
                return r < 0 ? CTL_EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (optind >= argc) {
                help();
                options_release(&ctl.opt);
                return CTL_EXIT_FAILURE;
        }
        if (streq(argv[optind], "help")) {
                help();
                options_release(&ctl.opt);
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
        else if (r < 0)
                r = CTL_EXIT_FAILURE;
        api_client_free(ctl.api);
        options_release(&ctl.opt);
        return r;
}
