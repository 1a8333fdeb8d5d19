/* The GRUB back end: the slots' state in grubenv on the ESP, read by the
 * grub.cfg of common/grubcfg.c (bootgrub.h has the steps). */
#include "agent.h"
#include "bootgrub.h"
#include "grubcfg.h"
#include "loaderentry.h"
#include "util.h"

static char *env_path(Agent *a) {
        return path_join(a->backend->esp_dir(a), GRUBCFG_ENV_PATH + 1);
}

static int grub_drop(Agent *a, char slot) {
        _cleanup_free_ char *p = env_path(a);

        return p ? bootgrub_drop(p, slot) : -ENOMEM;
}

static int grub_kernels(Agent *a, char ***ret) {
        _cleanup_free_ char *p = env_path(a);
        _cleanup_(strv_freep) char **l = NULL;
        GrubState s = {};
        int r;

        if (!p)
                return -ENOMEM;
        r = grub_state_load(p, &s);
        if (r < 0)
                return r;
        for (int i = 0; i < 2 && r >= 0; i++)
                if (s.version[i] && s.state[i] != GRUB_SLOT_EMPTY) {
                        char *k = loader_kernel_path(s.version[i]);
                        r = k ? strv_consume(&l, k) : -ENOMEM;
                }
        grub_state_release(&s);
        if (r < 0)
                return r;
        if (!l && !(l = calloc(1, sizeof(char *))))
                return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

static int grub_stage(Agent *a, char slot, const char *name _unused_, const char *version,
                      const char *cmdline _unused_) {
        _cleanup_free_ char *p = env_path(a);

        /* The kernel's arguments are grub.cfg's, which the builder wrote. */
        return p ? bootgrub_staged(p, slot, version) : -ENOMEM;
}

static int load(Agent *a, GrubState *ret) {
        _cleanup_free_ char *p = env_path(a);

        return p ? grub_state_load(p, ret) : -ENOMEM;
}

static int grub_offered(Agent *a, char slot) {
        GrubState s = {};
        int r;

        r = load(a, &s);
        if (r < 0)
                return r;
        r = s.state[slot == 'b'] == GRUB_SLOT_STAGED ? 0 : s.state[slot == 'b'] == GRUB_SLOT_TRIAL ? 1 : -ENOENT;
        grub_state_release(&s);
        return r;
}

static int grub_arm(Agent *a, char slot) {
        _cleanup_free_ char *p = env_path(a);
        int r;

        if (!p)
                return -ENOMEM;
        r = grub_offered(a, slot);
        if (r < 0)
                return r;
        return r == 0 ? bootgrub_arm(p, slot, GRUB_TRIES) : 0;
}

static int grub_bless(Agent *a, char slot) {
        _cleanup_free_ char *p = env_path(a);

        return p ? bootgrub_bless(p, slot) : -ENOMEM;
}

static int grub_mark_bad(Agent *a, char slot) {
        _cleanup_free_ char *p = env_path(a);

        /* Again when it is so: grubenv_save() writes no sector then. */
        return p ? bootgrub_mark_bad(p, slot) : -ENOMEM;
}

static void grub_describe(Agent *a, FILE *f) {
        _cleanup_free_ char *p = env_path(a);
        GrubState s = {};
        int r;

        r = p ? grub_state_load(p, &s) : -ENOMEM;
        if (r < 0) {
                fprintf(f, "grubenv:     cannot read '%s': %s\n", strempty(p), strerror(-r));
                return;
        }
        grub_state_describe(&s, f);
        grub_state_release(&s);
}

const BootLoader boot_grub = {
        .name = "grub",
        .drop = grub_drop,
        .kernels = grub_kernels,
        .stage = grub_stage,
        .arm = grub_arm,
        .offered = grub_offered,
        .bless = grub_bless,
        .mark_bad = grub_mark_bad,
        .describe = grub_describe,
};
