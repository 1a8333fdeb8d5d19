/* The agent: one host's view of the fleet. Shared by the cycle, the
 * backends, staging and bring-up. */
#pragma once

#include <stdint.h>

#include "apiclient.h"
#include "config.h"
#include "state.h"

typedef struct Agent Agent;

/* What differs between a real host and a simulated one: where the slots
 * and the ESP are, which slot booted, and the reboot. Everything above
 * these calls is the same code. */
typedef struct Backend {
        const char *name;
        int (*init)(Agent *a);
        /* The slot ('a' or 'b') that is running, the boot entry file (in
         * ESP/loader/entries, may be NULL) that started it, and an ID of
         * this boot that changes with every boot (ret_boot_id, 33 bytes). */
        int (*booted)(Agent *a, char *ret_slot, char **ret_entry_file, char *ret_boot_id);
        /* Opens slot for reading or writing (O_RDONLY / O_RDWR); ret_size
         * is its capacity. Writing the booted slot is refused (-EBUSY). */
        int (*slot_open)(Agent *a, char slot, int flags, int *ret_fd, uint64_t *ret_size);
        /* The ESP's root directory. */
        const char *(*esp_dir)(Agent *a);
        /* Marks slot as the root that tools which discover partitions by
         * type may use, and the other slot as one they skip (the GPT no-auto
         * attribute). Returns 1 when it changed something, 0 when it was so
         * already. */
        int (*mark_active)(Agent *a, char slot);
        /* Restarts the host into whatever the firmware picks. Returns a
         * negative errno on failure, or 0 when a reboot command accepted
         * the request (the host goes down on its own). */
        int (*reboot)(Agent *a);
} Backend;

extern const Backend backend_disk;
extern const Backend backend_sim;

struct Agent {
        AgentConfig config;
        const Backend *backend;
        ApiClient *api;        /* NULL until a server is configured */
        AgentState state;
        char *state_path;
        char **argv;           /* for the sim backend's reboot */
        char booted_slot;
        char *booted_entry;
        char boot_id[33];
        uint64_t checkin_interval;
        void *backend_data;    /* the backend's own, heap-allocated (freed at exit) */
};

/* The slot that is not booted. */
static inline char other_slot(char s) {
        return s == 'a' ? 'b' : 'a';
}
