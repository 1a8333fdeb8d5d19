/* Health checks: every executable in the health directory runs once after
 * a boot, in name order, each with a time limit. A check whose name ends in
 * ".wanted" is reported but does not decide; every other one is required
 * and must exit 0. The checks find the slot, version and image ID they
 * judge in $SLIPWAY_SLOT, $SLIPWAY_VERSION and $SLIPWAY_IMAGE. */
#pragma once

#include <jansson.h>
#include <stdint.h>

/* Runs the checks in dir (a missing directory means no checks). Returns 1
 * when every required check passed, 0 when one failed (ret_failed gets its
 * name and output, caller frees), negative on errors. ret_report (may be
 * NULL) gets {"NAME": {"required": bool, "ok": bool, "exit": N, "output":
 * "..."}}. */
int health_run(const char *dir, uint64_t timeout_sec, json_t **ret_report, char **ret_failed);
