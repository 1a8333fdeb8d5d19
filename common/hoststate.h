/* The states of a host: what its agent reports in a check-in and what the
 * server records and filters on (docs/api.md, "States"). Both sides take
 * them from here. */
#pragma once

#include "macro.h"

typedef enum HostState {
        HOST_REGISTERED,  /* known, nothing reported yet */
        HOST_INSTALLING,  /* bring-up: writing the image to the disk */
        HOST_INSTALLED,   /* bring-up done, rebooting into slot a */
        HOST_STAGING,     /* writing the desired image into the other slot */
        HOST_STAGED,      /* slot and entry complete, waiting for a lease */
        HOST_REBOOTING,   /* lease granted, switching, or judging the new slot */
        HOST_HEALTHY,
        HOST_UNHEALTHY,
        HOST_ROLLED_BACK, /* a switch failed: back on the previous slot */
        HOST_FAILED,      /* an install or a staging failed */
        _HOST_STATE_MAX,
        _HOST_STATE_INVALID = -EINVAL,
} HostState;

/* "registered", "installing", ..., "rolled-back", "failed"; NULL for
 * anything else. */
const char *host_state_to_string(HostState s);

/* The state named s, or _HOST_STATE_INVALID (also for NULL). */
HostState host_state_from_string(const char *s);

/* Whether a host in state s has an installed image on its disk: every state
 * but registered, installing and failed (and false for an invalid one). */
bool host_state_is_installed(HostState s);
