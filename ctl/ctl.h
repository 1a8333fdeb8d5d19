/* slipctl: what the commands share. main.c parses the arguments into a Ctl
 * and calls one command; each command file (status.c, images.c, hosts.c,
 * audit.c, budgets.c, rollouts.c, watch.c, files.c) talks to the server through
 * ctl_call() and prints with table.h. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "apiclient.h"
#include "macro.h"

/* Exit statuses (also in slipctl(1)). */
#define CTL_EXIT_FAILURE 1     /* the server refused, or a usage error */
#define CTL_EXIT_UNREACHABLE 2 /* no answer from the server */
#define CTL_EXIT_PAUSED 3      /* rollout watch: the rollout paused */

/* Options that belong to one command; main.c checks which were given. */
typedef struct CtlOptions {
        char **labels;      /* host list --label K=V (repeatable) */
        const char *state;  /* host list --state */
        const char *boot;   /* host assign --boot */
        uint64_t since;     /* audit --since */
        bool since_set;
        uint64_t limit;     /* audit --limit, 0 = not given */
        const char *action; /* audit --action */
        bool follow;        /* audit --follow */
        json_t *max_unavailable; /* budget set: a count or "N%" */
        int64_t min_available;   /* budget set, -1 = not given */
        json_t *selector;        /* rollout: {"K": "V", ...} from --selector */
        json_t *waves;           /* rollout --waves: [1, "10%", ...] */
        int64_t bake;            /* rollout --bake, -1 = not given */
        json_t *max_failures;    /* rollout: a count or "N%" */
        const char *on_failure;  /* rollout: "pause" or "rollback" */
        json_t *order;           /* rollout: {"key": K, "values": [...]} */
        json_t *windows;         /* rollout: {"SELECTOR": "HH:MM-HH:MM"} */
        json_t *budgets;         /* rollout: {"SELECTOR": BUDGET} from --budget */
        const char *files;       /* rollout --files NAME[@VERSION] */
        bool hold;               /* files add|set|delete --hold */
} CtlOptions;

typedef struct Ctl {
        ApiClient *api;
        bool json;          /* print the server's JSON */
        bool has_token;
        CtlOptions opt;
} Ctl;

/* Sends one request (see api_request()). On failure logs one line,
 * "<what>: <the client's message>", and returns the negative errno. what
 * names the action ("cannot list images"). ret_reply (may be NULL) gets a
 * new reference on success. */
int ctl_call(Ctl *ctl, const char *method, const char *path, json_t *body, json_t **ret_reply, const char *what);

/* Logs the client's last failure as ctl_call() does; returns error. */
int ctl_log_error(Ctl *ctl, int error, const char *what);

/* Returns prefix + the escaped arg + suffix (suffix may be NULL), e.g.
 * ctl_path("/v1/hosts/", id, "/labels"). Caller frees; NULL when out of
 * memory. */
char *ctl_path(const char *prefix, const char *arg, const char *suffix);

/* Prints j on stdout, indented, for scripts. Returns 0 or -EIO. */
int ctl_print_json(json_t *j);

/* How a command prints, for people, the object the server answered with;
 * id and verb as given to ctl_object_call(). */
typedef void (*CtlObjectPrint)(json_t *o, const char *id, const char *verb);

/* Sends method to path, which shows object noun id ("rollout", "7") or
 * acts on it (verb "show", "abort"), and prints the object the server
 * answers with: its JSON with --json, print's lines otherwise. path NULL
 * is -EINVAL (its maker logged why). Fails as ctl_call() does, what being
 * "cannot <verb> <noun> <id>". */
int ctl_object_call(Ctl *ctl, const char *method, const char *path, const char *noun, const char *id,
                    const char *verb, CtlObjectPrint print);

/* Sleeps ms milliseconds, through signals that do not end the program
 * (audit --follow, rollout watch poll with it). */
void ctl_sleep_msec(unsigned ms);

/* The commands. args are the words after the command's name; each returns
 * 0, a positive exit status other than those of main() (rollout watch:
 * CTL_EXIT_PAUSED), or a negative errno, having logged why. */
int ctl_status(Ctl *ctl, char **args);
int ctl_image_list(Ctl *ctl, char **args);
int ctl_image_show(Ctl *ctl, char **args);
int ctl_image_delete(Ctl *ctl, char **args);
int ctl_host_list(Ctl *ctl, char **args);
int ctl_host_show(Ctl *ctl, char **args);
int ctl_host_label(Ctl *ctl, char **args);
int ctl_host_assign(Ctl *ctl, char **args);
int ctl_host_unassign(Ctl *ctl, char **args);
int ctl_audit(Ctl *ctl, char **args);
int ctl_budget_list(Ctl *ctl, char **args);
int ctl_budget_set(Ctl *ctl, char **args);
int ctl_budget_delete(Ctl *ctl, char **args);
/* A rollout's budget as --budget and a pipeline stage's budget key give
 * it, "SELECTOR:N", "SELECTOR:N%" or "SELECTOR:min=N", into its selector
 * (*ret_selector, caller frees) and its spec value (*ret_budget, the
 * caller's: N, "N%" or {"min_available": N}). -EINVAL when it is not of
 * that form; the server checks the selector and the numbers. */
int ctl_budget_item(const char *s, char **ret_selector, json_t **ret_budget);
/* A rollout's budgets from a spec, for people: "rack: max 1 down,
 * service=db: min 2 up"; NULL when there are none (caller frees). */
char *ctl_budgets_describe(json_t *budgets);
int ctl_rollout_plan(Ctl *ctl, char **args);
int ctl_rollout_start(Ctl *ctl, char **args);
int ctl_rollout_list(Ctl *ctl, char **args);
int ctl_rollout_status(Ctl *ctl, char **args);
int ctl_rollout_pause(Ctl *ctl, char **args);
int ctl_rollout_resume(Ctl *ctl, char **args);
int ctl_rollout_abort(Ctl *ctl, char **args);
int ctl_rollout_rollback(Ctl *ctl, char **args);
int ctl_rollout_watch(Ctl *ctl, char **args);
int ctl_files_list(Ctl *ctl, char **args);
int ctl_files_show(Ctl *ctl, char **args);
int ctl_files_add(Ctl *ctl, char **args);
int ctl_files_set(Ctl *ctl, char **args);
int ctl_files_delete(Ctl *ctl, char **args);
int ctl_files_history(Ctl *ctl, char **args);
int ctl_files_diff(Ctl *ctl, char **args);
int ctl_files_render(Ctl *ctl, char **args);
int ctl_pipeline_start(Ctl *ctl, char **args);
int ctl_pipeline_list(Ctl *ctl, char **args);
int ctl_pipeline_status(Ctl *ctl, char **args);
int ctl_pipeline_approve(Ctl *ctl, char **args);
int ctl_pipeline_abort(Ctl *ctl, char **args);

/* Reads a pipeline file (docs/operations.md, "Pipelines") into the JSON
 * spec the server takes (*ret, a new reference). A key or section not
 * known is -EINVAL with error naming file:line. */
struct Error;
int ctl_pipeline_file(const char *path, json_t **ret, struct Error *error);

/* "/v1/rollouts/ID" plus suffix (may be NULL) for a rollout number given on
 * the command line; logs a usage error and returns NULL when id is not
 * one (or memory ran out). Caller frees. */
char *ctl_rollout_path(const char *id, const char *suffix);

/* Prints a rollout (GET /v1/rollouts/ID) for people: state, reason, spec,
 * the waves table and the budgeted groups table. now is for "ago". */
void ctl_rollout_print(json_t *ro, int64_t now);
/* One line about a rollout: state, wave and host counts (no time, no
 * newline), for rollout watch in a pipe. Caller frees; NULL when out of
 * memory. */
char *ctl_rollout_summary(json_t *ro);

/* "name:version" of the image with this ID, from the server (NULL when it
 * cannot be found; then nothing is logged). Caller frees. */
char *ctl_image_label(Ctl *ctl, const char *id);
