/* Health checks, run once after a boot into a new slot:
 *  - every executable in the health directory, in name order, each with a
 *    time limit; a name ending in ".wanted" is reported but does not
 *    decide, every other one is required and must exit 0;
 *  - under systemd (agent/units.c): units that must be active, no failed
 *    units, boot-complete.target reached, all by a deadline after boot;
 *  - greenboot's check directories: "*.sh" in required.d (must pass) and
 *    wanted.d (reported only) below each root, run with bash.
 * The checks find the slot, version and image ID they judge in
 * $SLIPWAY_SLOT, $SLIPWAY_VERSION and $SLIPWAY_IMAGE. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one check's output keeps at most, in the report. */
#define HEALTH_OUTPUT_MAX 2048
/* What the outputs of one report add up to at most; past it an entry keeps
 * its verdict and says "truncated". */
#define HEALTH_REPORT_MAX (64 * 1024)
/* The most journal lines one failed unit shows. */
#define HEALTH_LOG_LINES_MAX 100

typedef struct HealthConfig {
        const char *dir;              /* health.d; NULL: none */
        uint64_t timeout_sec;         /* time limit of one script or systemctl call */
        char **greenboot_dirs;        /* greenboot check roots (each with required.d, wanted.d); NULL: none */
        const char *greenboot_conf;   /* greenboot.conf, for DISABLED_HEALTHCHECKS; NULL: none */
        char **required_units;        /* units that must be active by the deadline; NULL: none */
        bool no_failed_units;         /* no unit may be in state failed */
        bool boot_complete;           /* boot-complete.target must be reached */
        uint64_t units_deadline;      /* now_usec() value by which the units must be up */
        uint64_t poll_usec;           /* how often unit states are read while waiting (0: 500 ms) */
        unsigned log_lines;           /* journal lines shown for a failed unit (0: 10) */
} HealthConfig;

/* Runs argv (looked up in PATH) in its own process group for at most
 * timeout_usec; what it started is killed with it. ret_output gets up to
 * cap bytes of its stdout and stderr, NUL-terminated (the first cap bytes,
 * or with tail the last ones, starting at a line), caller frees. Returns the
 * exit status, -ETIMEDOUT, -ECHILD (a signal), or a negative errno when it
 * could not start (ret_output is then ""). */
int health_command(char *const *argv, uint64_t timeout_usec, size_t cap, bool tail, char **ret_output);

/* Runs every check c asks for: the units first (the scripts may need the
 * services up), then health.d, then greenboot's. Returns 1 when every
 * required check passed, 0 when one failed (ret_failed gets the first
 * failure's name and output, caller frees), negative on errors. ret_report
 * (may be NULL) gets {"NAME": {"required": bool, "ok": bool, ...,
 * "output": "..."}} with "exit" for scripts and "state" for units; a
 * greenboot script's NAME is its path. */
int health_judge(const HealthConfig *c, json_t **ret_report, char **ret_failed);

/* The script names greenboot.conf's DISABLED_HEALTHCHECKS=( ... ) lists,
 * as bash would read the array (quoted or bare words, over several lines,
 * "#" comments). A missing file lists none. Caller frees. */
int greenboot_disabled(const char *conf, char ***ret);

/* health_judge() with only a health directory. */
int health_run(const char *dir, uint64_t timeout_sec, json_t **ret_report, char **ret_failed);

/* Adds an entry to report, its output cut to what the report still has
 * room for (HEALTH_REPORT_MAX in all). *used counts the output bytes so
 * far. Takes entry. */
void health_report_add(json_t *report, size_t *used, const char *name, json_t *entry, const char *output);
