/* The agent: one host's view of the fleet. Shared by the cycle, the
 * backends, staging and bring-up. */
#pragma once

#include <stdint.h>
#include <stdio.h>

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

/* How the host's boot loader is told which slot to boot: systemd-boot's
 * Boot Loader Spec entries with their boot counters (boot-bls.c), or
 * GRUB's grubenv with the grub.cfg Slipway generates (boot-grub.c). Every
 * write is crash-safe; docs/agent.md has what each keeps. slot is 'a' or
 * 'b'; all return 0 or a negative errno and log at most at debug level. */
typedef struct BootLoader {
        const char *name;
        /* Nothing may boot slot any more: it is about to be written. */
        int (*drop)(Agent *a, char slot);
        /* The kernel paths (from the ESP root, "/slipway/<version>/vmlinuz")
         * that something bootable names; *ret NULL-terminated, caller frees. */
        int (*kernels)(Agent *a, char ***ret);
        /* The slot holds name:version, complete: bootable, but not offered
         * until arm(). Sets a->state.target_gen where generations count. */
        int (*stage)(Agent *a, char slot, const char *name, const char *version, const char *cmdline);
        /* Offers the staged slot for the next boots (a no-op when it is). */
        int (*arm)(Agent *a, char slot);
        /* 1 when slot was offered (armed, tried), 0 when staged and never
         * offered, -ENOENT when nothing boots it. */
        int (*offered)(Agent *a, char slot);
        /* The slot boots for good from now on. */
        int (*bless)(Agent *a, char slot);
        /* The slot is given up: the other boots (a no-op when it is). */
        int (*mark_bad)(Agent *a, char slot);
        /* For status: what boots next and why, what each slot's state is. */
        void (*describe)(Agent *a, FILE *f);
} BootLoader;

extern const BootLoader boot_bls;
extern const BootLoader boot_grub;

struct Agent {
        AgentConfig config;
        const Backend *backend;
        const BootLoader *boot;
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
