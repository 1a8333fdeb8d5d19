#include <stdint.h>

#include "conftab.h"
#include "ini.h"
#include "log.h"
#include "util.h"

int conftab_set_string(char **field, const char *value) {
        char *s = NULL;

        if (!isempty(value)) {
                s = strdup(value);
                if (!s)
                        return -ENOMEM;
        }
        free(*field);
        *field = s;
        return 0;
}

void conftab_release(const ConfKey *keys, size_t n, void *config) {
        for (size_t i = 0; i < n; i++)
                if (keys[i].type == CONF_STRING) {
                        char **p = (char **) ((char *) config + keys[i].offset);
                        free(*p);
                        *p = NULL;
                }
}

/* Stores value into the field of k; -EINVAL with *ret_why when malformed. */
static int key_set(void *config, const ConfKey *k, const char *value, const char **ret_why) {
        void *field = (char *) config + k->offset;
        int r;

        switch (k->type) {
        case CONF_STRING:
                return conftab_set_string(field, value);
        case CONF_SIZE:
                if (parse_size(value, field) < 0) {
                        *ret_why = "not a size (e.g. 512K, 16G)";
                        return -EINVAL;
                }
                return 0;
        case CONF_UINT:
                if (safe_atou64(value, field) < 0) {
                        *ret_why = "not a non-negative integer";
                        return -EINVAL;
                }
                return 0;
        case CONF_BOOL:
                r = parse_boolean(value);
                if (r < 0) {
                        *ret_why = "not a boolean (yes/no)";
                        return -EINVAL;
                }
                *(bool *) field = r;
                return 0;
        }
        return -EINVAL;
}

typedef struct LoadContext {
        const ConfKey *keys;
        size_t n;
        void *config;
} LoadContext;

static int on_key(const char *file, unsigned line, const char *section, const char *key, const char *value,
                  void *userdata) {
        LoadContext *ctx = userdata;
        bool section_known = false;

        for (size_t i = 0; i < ctx->n; i++) {
                const ConfKey *k = &ctx->keys[i];
                const char *why = NULL;
                int r;

                if (!streq(k->section, section))
                        continue;
                section_known = true;
                if (!streq(k->key, key))
                        continue;
                r = key_set(ctx->config, k, value, &why);
                if (r == -EINVAL)
                        return log_error_errno(r, "%s:%u: '%s': %s: \"%s\"", file, line, key, why, value);
                return r;
        }
        if (!section_known)
                return log_error_errno(-EINVAL, "%s:%u: unknown section '[%s]'", file, line, section);
        return log_error_errno(-EINVAL, "%s:%u: unknown key '%s' in [%s]", file, line, key, section);
}

int conftab_load(const ConfKey *keys, size_t n, void *config, const char *path, bool must_exist) {
        LoadContext ctx = { keys, n, config };

        if (!must_exist && access(path, F_OK) < 0 && errno == ENOENT)
                return 0;
        return ini_parse_file(path, on_key, &ctx);
}

int conftab_apply_flag(const ConfKey *keys, size_t n, void *config, const char *flag, const char *value) {
        for (size_t i = 0; i < n; i++) {
                const char *why = NULL;
                int r;

                if (!streq(keys[i].flag, flag))
                        continue;
                r = key_set(config, &keys[i], value, &why);
                if (r == -EINVAL)
                        return log_error_errno(r, "--%s: %s: \"%s\"", flag, why, value);
                return r < 0 ? r : 1;
        }
        return 0;
}

void conftab_help(const ConfKey *keys, size_t n, FILE *f) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *left = strdup_printf("--%s %s", keys[i].flag, keys[i].arg);
                fprintf(f, "  %-28s %s\n", left ? left : keys[i].flag, keys[i].help);
        }
}
