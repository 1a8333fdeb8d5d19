/* The agent's persistent state (STATE_DIR/agent.json): who the host is,
 * what each slot holds, and where an update stands, so that a restart or a
 * reboot continues where the last run stopped. Written atomically (temp,
 * fsync, rename, fsync the directory) at every step. */
#pragma once

#include <stdint.h>

#include "macro.h"

typedef enum Phase {
        PHASE_IDLE,      /* running what it should, or nothing to do */
        PHASE_STAGING,   /* writing the target into the inactive slot */
        PHASE_STAGED,    /* slot and entry complete, waiting for a lease */
        PHASE_REBOOTING, /* lease granted, rebooting into the target */
        _PHASE_MAX,
        _PHASE_INVALID = -EINVAL,
} Phase;

const char *phase_to_string(Phase p);
Phase phase_from_string(const char *s);

typedef struct SlotInfo {
        char *image;    /* image ID or NULL */
        char *version;
        bool complete;  /* written and verified */
} SlotInfo;

typedef struct AgentState {
        char *host_id;
        char *token;
        char *server;            /* the slipwayd the host registered with (one URL or several) */
        char *server_in_use;     /* of several, the one that answered last */
        SlotInfo slots[2];       /* a, b */
        Phase phase;
        /* the update in progress */
        char *target_image;
        char *target_version;
        char *target_manifest;
        char *target_signature;
        char *target_files;      /* the digest of the host files staged with it, or NULL */
        char target_slot;
        unsigned target_gen;
        bool target_rollback;
        uint64_t written;        /* bytes of the rootfs in the slot so far */
        uint64_t lease_epoch;
        char *reboot_from;       /* the boot ID when the reboot into the target was asked for */
        /* what the host reported last, for status: a host_state_to_string()
         * name, NULL before the first report */
        char *reported;
        char *message;
        /* an image that failed here: not retried until the server wants another */
        char *failed_image;
        char *failed_reason;
        /* with failed_image: the host files that failed with it (a change
         * of files alone fails with the image that runs); NULL: any */
        char *failed_files;
} AgentState;

int agent_state_load(const char *path, AgentState *ret);   /* missing file: empty state */
int agent_state_save(const char *path, const AgentState *s);
void agent_state_release(AgentState *s);
void agent_state_clear_target(AgentState *s);
/* Sets *field to a copy of value (NULL allowed). */
int state_set(char **field, const char *value);
static inline SlotInfo *state_slot(AgentState *s, char slot) {
        return &s->slots[slot == 'b'];
}
