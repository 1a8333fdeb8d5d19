/* The systemd-boot back end: one Boot Loader Spec entry per staged image,
 * with systemd-boot's boot counting in its name (bootentry.h). */
#include "agent.h"
#include "bootentry.h"
#include "util.h"

static const char *esp(Agent *a) {
        return a->backend->esp_dir(a);
}

/* The entry of slot first in menu order. */
static int find_entry(Agent *a, char slot, BootEntry *ret) {
        BootEntry *e = NULL;
        size_t n = 0;
        int r;

        r = bootentries_load(esp(a), &e, &n);
        if (r < 0)
                return r;
        bootentries_sort(e, n);
        r = -ENOENT;
        for (size_t i = 0; i < n; i++)
                if (e[i].slot == slot) {
                        r = bootentry_copy(&e[i], ret);
                        break;
                }
        bootentries_free(e, n);
        return r;
}

/* Every entry of slot goes. */
static int bls_drop(Agent *a, char slot) {
        BootEntry *e = NULL;
        size_t n = 0;
        int r;

        r = bootentries_load(esp(a), &e, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (e[i].slot == slot)
                        r = bootentry_remove(esp(a), &e[i]);
        bootentries_free(e, n);
        return r;
}

static int bls_kernels(Agent *a, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        BootEntry *e = NULL;
        size_t n = 0;
        int r;

        r = bootentries_load(esp(a), &e, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (e[i].kernel)
                        r = strv_extend(&l, e[i].kernel);
        bootentries_free(e, n);
        if (r < 0)
                return r;
        if (!l && !(l = calloc(1, sizeof(char *))))
                return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

/* The entry, last and disarmed ("+0": the firmware never picks it). */
static int bls_stage(Agent *a, char slot, const char *name, const char *version, const char *cmdline) {
        BootEntry *e = NULL;
        size_t n = 0;
        int r;

        r = bootentries_load(esp(a), &e, &n);
        if (r < 0)
                return r;
        a->state.target_gen = bootentries_next_gen(e, n);
        bootentries_free(e, n);
        return bootentry_write(esp(a), a->state.target_gen, name, version, slot, cmdline, 0, NULL);
}

/* From "+0" with none done to BOOTENTRY_TRIES. */
static int bls_arm(Agent *a, char slot) {
        BootEntry e = {};
        int r;

        r = find_entry(a, slot, &e);
        if (r < 0)
                return r;
        if (e.tries_left == 0 && e.tries_done == 0)
                r = bootentry_rename(esp(a), &e, BOOTENTRY_TRIES, 0);
        bootentry_release(&e);
        return r;
}

static int bls_offered(Agent *a, char slot) {
        BootEntry e = {};
        int r;

        r = find_entry(a, slot, &e);
        if (r < 0)
                return r;
        r = !(e.tries_left == 0 && e.tries_done == 0);
        bootentry_release(&e);
        return r;
}

static int bls_bless(Agent *a, char slot) {
        BootEntry e = {};
        int r;

        r = find_entry(a, slot, &e);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = bootentry_bless(esp(a), &e);
        bootentry_release(&e);
        return r;
}

static int bls_mark_bad(Agent *a, char slot) {
        BootEntry e = {};
        int r;

        r = find_entry(a, slot, &e);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (!bootentry_is_bad(&e))
                r = bootentry_mark_bad(esp(a), &e);
        bootentry_release(&e);
        return r;
}

static void bls_describe(Agent *a, FILE *f) {
        BootEntry *e = NULL;
        size_t n = 0;
        int r;

        r = bootentries_load(esp(a), &e, &n);
        if (r < 0) {
                fprintf(f, "entries:     cannot read '%s': %s\n", esp(a), strerror(-r));
                return;
        }
        bootentries_sort(e, n);
        fprintf(f, "entries:     (boot order)\n");
        for (size_t i = 0; i < n; i++) {
                fprintf(f, "  %-36s slot %c  ", e[i].file, e[i].slot ? e[i].slot : '?');
                if (e[i].tries_left < 0)
                        fprintf(f, "blessed\n");
                else if (e[i].tries_left == 0)
                        fprintf(f, "bad (no tries left)\n");
                else
                        fprintf(f, "%d tries left, %d done\n", e[i].tries_left, e[i].tries_done);
        }
        bootentries_free(e, n);
}

const BootLoader boot_bls = {
        .name = "systemd-boot",
        .drop = bls_drop,
        .kernels = bls_kernels,
        .stage = bls_stage,
        .arm = bls_arm,
        .offered = bls_offered,
        .bless = bls_bless,
        .mark_bad = bls_mark_bad,
        .describe = bls_describe,
};
