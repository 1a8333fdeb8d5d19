/* Table-driven configuration shared by the daemons: each key of an INI
 * section maps to a field of a struct and to a command-line flag, with its
 * help line. Unknown sections and keys are errors naming file:line. */
#pragma once

#include <stddef.h>
#include <stdio.h>

#include "macro.h"

typedef enum ConfType {
        CONF_STRING, /* char *, NULL when unset or empty */
        CONF_SIZE,   /* uint64_t, "16G" */
        CONF_UINT,   /* uint64_t */
        CONF_BOOL,   /* bool */
} ConfType;

typedef struct ConfKey {
        const char *section;
        const char *key;
        const char *flag; /* without the leading "--" */
        ConfType type;
        size_t offset;    /* of the field in the config struct */
        const char *arg;  /* placeholder in --help */
        const char *help;
} ConfKey;

/* Frees every string field of config named in keys and sets it to NULL. */
void conftab_release(const ConfKey *keys, size_t n, void *config);

/* Parses path into config. A missing file is fine unless must_exist. */
int conftab_load(const ConfKey *keys, size_t n, void *config, const char *path, bool must_exist);

/* Applies "--flag value". Returns 1 when flag is in keys, 0 when it is not,
 * negative on a bad value (logged). */
int conftab_apply_flag(const ConfKey *keys, size_t n, void *config, const char *flag, const char *value);

/* Writes one help line per key to f. */
void conftab_help(const ConfKey *keys, size_t n, FILE *f);

/* Sets a string field (copying value). */
int conftab_set_string(char **field, const char *value);
