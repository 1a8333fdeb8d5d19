/* The A/B grub.cfg (grubcfg.h has the rule it carries out). */
#include <stdio.h>
#include <string.h>

#include "grubcfg.h"
#include "grubenv.h"
#include "manifest.h"
#include "util.h"

#define VARS "slipway_order slipway_a slipway_a_tries slipway_a_version slipway_b slipway_b_tries slipway_b_version"

/* Text GRUB would read as it stands inside double quotes. */
static bool plain(const char *s) {
        return !s || !strpbrk(s, "\"'$\\\n`");
}

/* The block that boots slot s when the state allows it. */
static void try_slot(FILE *f, char s) {
        fprintf(f,
                "if [ -z \"$slipway_boot\" ]; then\n"
                "  if [ \"$slipway_%c\" = \"good\" ]; then\n"
                "    set slipway_boot=%c\n"
                "  elif [ \"$slipway_%c\" = \"trial\" ]; then\n"
                "    set slipway_want=\n",
                s, s, s);
        for (int n = GRUBCFG_TRIES_MAX; n >= 1; n--)
                fprintf(f,
                        "    %s [ \"$slipway_%c_tries\" = \"%d\" ]; then\n"
                        "      set slipway_%c_tries=%d\n"
                        "      set slipway_want=%d\n",
                        n == GRUBCFG_TRIES_MAX ? "if" : "elif", s, n, s, n - 1, n - 1);
        fprintf(f,
                "    fi\n"
                "    if [ -n \"$slipway_want\" ]; then\n"
                "      save_env --file $slipway_env slipway_%c_tries\n"
                "      set slipway_%c_tries=\n"
                "      load_env --file $slipway_env slipway_%c_tries\n"
                "      if [ \"$slipway_%c_tries\" = \"$slipway_want\" ]; then\n"
                "        set slipway_boot=%c\n"
                "      fi\n"
                "    fi\n"
                "  fi\n"
                "fi\n",
                s, s, s, s, s);
}

static void menuentry(FILE *f, const GrubCfgOptions *o, char s) {
        fprintf(f,
                "menuentry \"%s, slot %c ($slipway_%c_version)\" --id slipway-%c {\n"
                "  linux ($slipway_esp)/slipway/$slipway_%c_version/vmlinuz %s%sslipway.slot=%c\n"
                "  initrd ($slipway_esp)/slipway/$slipway_%c_version/initrd\n"
                "}\n",
                o->name, s, s, s, s, o->cmdline ? o->cmdline : "", o->cmdline && *o->cmdline ? " " : "", s, s);
}

int grubcfg_initial_env(const char *version, char *ret, size_t size) {
        static const char *const names[] = { "slipway_order", "slipway_a", "slipway_a_tries", "slipway_a_version",
                                             "slipway_b", "slipway_b_tries", "slipway_b_version" };
        const char *values[] = { "a b", "good", "0", version, "empty", "0", "" };
        GrubEnv env = {};
        int r = 0;

        if (!image_version_valid(version) || size < GRUBENV_SIZE)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && r >= 0; i++)
                r = grubenv_set(&env, names[i], values[i]);
        if (r >= 0)
                r = grubenv_format(&env, ret, NULL);
        grubenv_release(&env);
        return r;
}

int grubcfg_generate(const GrubCfgOptions *o, char **ret) {
        char *text = NULL;
        size_t n = 0;
        FILE *f;

        if (!plain(o->esp_label) || (o->esp_label && !*o->esp_label) || !plain(o->cmdline) ||
            !image_name_valid(o->name))
                return -EINVAL;
        f = open_memstream(&text, &n);
        if (!f)
                return -ENOMEM;
        fputs("# Slipway: boots root slot a or b by the state in " GRUBCFG_ENV_PATH ".\n"
              "# slipway_order: the slot tried first. slipway_a, slipway_b: empty (being\n"
              "# written), staged (complete, not offered yet), trial (offered:\n"
              "# slipway_X_tries boots left, counted down here before each), good\n"
              "# (blessed by the agent), bad (given up). Generated: do not edit.\n",
              f);
        if (o->esp_label)
                fprintf(f, "search --no-floppy --set=slipway_esp --label \"%s\"\n", o->esp_label);
        else
                fputs("search --no-floppy --set=slipway_esp --file " GRUBCFG_ENV_PATH "\n", f);
        fputs("set slipway_env=($slipway_esp)" GRUBCFG_ENV_PATH "\n"
              "load_env --file $slipway_env " VARS "\n"
              "set slipway_boot=\n"
              "if [ \"$slipway_order\" = \"b a\" ]; then\n",
              f);
        try_slot(f, 'b');
        try_slot(f, 'a');
        fputs("else\n", f);
        try_slot(f, 'a');
        try_slot(f, 'b');
        fputs("fi\n"
              "if [ -z \"$slipway_boot\" ]; then\n"
              "  if [ \"$slipway_a\" != \"empty\" ]; then\n"
              "    set slipway_boot=a\n"
              "  else\n"
              "    set slipway_boot=b\n"
              "  fi\n"
              "fi\n"
              "set default=slipway-$slipway_boot\n",
              f);
        fprintf(f, "set timeout=%u\n", o->timeout);
        menuentry(f, o, 'a');
        menuentry(f, o, 'b');
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        return 0;
}
