/* Health under systemd, through systemctl and journalctl: units that must
 * be active by a deadline after boot, no failed units (as
 * systemd-boot-check-no-failures.service checks), and boot-complete.target
 * reached (as systemd-bless-boot.service requires it). A failed unit is
 * reported with its last journal lines. */
#pragma once

#include <jansson.h>

#include "health.h"

/* The most units required-units may name. */
#define UNITS_MAX 64
/* The most failed units one report names. */
#define UNITS_FAILED_REPORTED 16

/* Whether name can be a unit name (or a name systemctl completes with
 * ".service"): ASCII letters, digits and ":-_.\@", 1 to 255 of them, not
 * starting with "-". */
bool unit_name_valid(const char *name);

/* Judges the units c asks for, adding an entry per unit to report (*used
 * counts its output bytes). Returns 1 when all is well, 0 when a required
 * unit is not active by c->units_deadline, boot-complete.target is not
 * reached, or (with c->no_failed_units) a unit failed: ret_failed gets the
 * first one's name, state and log lines (caller frees); negative on
 * allocation failure. systemctl missing or failing is a failure, not an
 * error. */
int units_judge(const HealthConfig *c, json_t *report, size_t *used, char **ret_failed);
