/* Table-driven configuration shared by the daemons: each key of an INI
 * section maps to a field of a struct and to a command-line flag, with its
 * help line. Unknown sections and keys are errors naming file:line. */
#pragma once

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include "ini.h"
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

/* Where each key of a configuration got its value, so that a check made
 * after loading can name the place to fix. A configuration struct embeds one;
 * conftab_release() frees it. */
typedef struct ConfOrigin {
        char *file;     /* the file conftab_load() read; NULL when none was */
        unsigned *line; /* per key, in table order: its line in file, 0 for the
                         * default, CONF_LINE_FLAG for a flag; NULL: all 0 */
} ConfOrigin;

#define CONF_LINE_FLAG UINT_MAX

/* Frees every string field of config named in keys and sets it to NULL, and
 * empties origin (which may be NULL). */
void conftab_release(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin);

/* Parses path into config, recording each key's line in origin (may be
 * NULL). A missing file is fine unless must_exist. */
int conftab_load(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin, const char *path,
                 bool must_exist);

/* conftab_load(), with the keys of the sections that keys does not name
 * handed to other (e.g. "[webhook NAME]" sections, several of a kind),
 * which fails on those it does not take either. */
int conftab_load_with(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin, const char *path,
                      bool must_exist, IniHandler other, void *other_data);

/* Applies "--flag value", recording it in origin (may be NULL). Returns 1
 * when flag is in keys, 0 when it is not, negative on a bad value (logged). */
int conftab_apply_flag(const ConfKey *keys, size_t n, void *config, ConfOrigin *origin, const char *flag,
                       const char *value);

/* true when the key whose field is at offset was set by the file or a flag. */
bool conftab_is_set(const ConfKey *keys, size_t n, const ConfOrigin *origin, size_t offset);

/* Logs one error about the key whose field is at offset, saying where its
 * value came from: "FILE:LINE: MESSAGE", "--FLAG: MESSAGE", or "MESSAGE (the
 * default of KEY in [SECTION])". Returns -EINVAL. */
int conftab_error(const ConfKey *keys, size_t n, const ConfOrigin *origin, size_t offset, const char *format, ...)
        _printf_(5, 6);

/* Writes one help line per key to f. */
void conftab_help(const ConfKey *keys, size_t n, FILE *f);

/* Sets a string field (copying value). */
int conftab_set_string(char **field, const char *value);
