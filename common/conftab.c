#include <stdarg.h>
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

void conftab_release(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin) {
        for (size_t i = 0; i < n; i++)
                if (keys[i].type == CONF_STRING) {
                        char **p = (char **) ((char *) config + keys[i].offset);
                        free(*p);
                        *p = NULL;
                }
        if (origin) {
                free(origin->file);
                free(origin->line);
                *origin = (ConfOrigin) {};
        }
}

/* Records that key i got its value at line (or CONF_LINE_FLAG). */
static int origin_set(ConfOrigin *origin, size_t n, size_t i, unsigned line) {
        if (!origin)
                return 0;
        if (!origin->line) {
                origin->line = calloc(n, sizeof(unsigned));
                if (!origin->line)
                        return -ENOMEM;
        }
        origin->line[i] = line;
        return 0;
}

static unsigned origin_line(const ConfKey *keys, size_t n, const ConfOrigin *origin, size_t offset, size_t *ret_i) {
        for (size_t i = 0; i < n; i++)
                if (keys[i].offset == offset) {
                        *ret_i = i;
                        return origin && origin->line ? origin->line[i] : 0;
                }
        *ret_i = n;
        return 0;
}

bool conftab_is_set(const ConfKey *keys, size_t n, const ConfOrigin *origin, size_t offset) {
        size_t i;

        return origin_line(keys, n, origin, offset, &i) > 0;
}

int conftab_error(const ConfKey *keys, size_t n, const ConfOrigin *origin, size_t offset, const char *format, ...) {
        _cleanup_error_ Error e = {};
        _cleanup_free_ char *msg = NULL;
        unsigned line;
        va_list ap;
        size_t i;
        int k;

        va_start(ap, format);
        k = vasprintf(&msg, format, ap);
        va_end(ap);
        if (k < 0)
                return log_oom();
        line = origin_line(keys, n, origin, offset, &i);
        if (line == CONF_LINE_FLAG)
                error_set(&e, -EINVAL, "--%s: %s", keys[i].flag, msg);
        else if (line > 0 && origin->file)
                error_set_at(&e, -EINVAL, origin->file, line, "%s", msg);
        else if (i < n)
                error_set(&e, -EINVAL, "%s (the default of %s in [%s])", msg, keys[i].key, keys[i].section);
        else
                error_set(&e, -EINVAL, "%s", msg);
        return error_log(&e);
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
        ConfOrigin *origin;
        IniHandler other; /* the sections keys does not name; NULL: none */
        void *other_data;
} LoadContext;

static int on_key(const char *file, unsigned line, const char *section, const char *key, const char *value,
                  void *userdata, Error *error) {
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
                        return error_set_at(error, r, file, line, "'%s': %s: \"%s\"", key, why, value);
                if (r >= 0)
                        r = origin_set(ctx->origin, ctx->n, i, line);
                return r;
        }
        if (!section_known && ctx->other)
                return ctx->other(file, line, section, key, value, ctx->other_data, error);
        if (!section_known)
                return error_set_at(error, -EINVAL, file, line, "unknown section '[%s]'", section);
        return error_set_at(error, -EINVAL, file, line, "unknown key '%s' in [%s]", key, section);
}

int conftab_load(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin, const char *path,
                 bool must_exist) {
        return conftab_load_with(keys, n, config, origin, path, must_exist, NULL, NULL);
}

int conftab_load_with(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin, const char *path,
                      bool must_exist, IniHandler other, void *other_data) {
        LoadContext ctx = { keys, n, config, origin, other, other_data };
        _cleanup_error_ Error e = {};
        int r;

        if (!must_exist && access(path, F_OK) < 0 && errno == ENOENT)
                return 0;
        if (origin) {
                char *copy = strdup(path);
                if (!copy)
                        return log_oom();
                free(origin->file);
                origin->file = copy;
        }
        /* The daemons' configuration ends here: its one error is logged. */
        r = ini_parse_file(path, on_key, &ctx, &e);
        return r < 0 ? error_log(&e) : r;
}

int conftab_apply_flag(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin, const char *flag,
                       const char *value) {
        for (size_t i = 0; i < n; i++) {
                const char *why = NULL;
                int r;

                if (!streq(keys[i].flag, flag))
                        continue;
                r = key_set(config, &keys[i], value, &why);
                if (r == -EINVAL)
                        return log_error_errno(r, "--%s: %s: \"%s\"", flag, why, value);
                if (r >= 0)
                        r = origin_set(origin, n, i, CONF_LINE_FLAG);
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
