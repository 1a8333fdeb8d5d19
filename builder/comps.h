/* Comps: the groups and environments a repository lists in its "group"
 * metadata (comps.xml), and what an "@GROUP" or "@^ENVIRONMENT" request
 * in [packages] install expands to, the way dnf expands it. */
#pragma once

#include "definition.h"
#include "macro.h"

typedef struct Comps Comps;

Comps *comps_new(void);
Comps *comps_free(Comps *c);
static inline void comps_freep(Comps **c) {
        comps_free(*c);
}
#define _cleanup_comps_free_ _cleanup_(comps_freep)

/* Adds the groups and environments of a comps file (plain or compressed).
 * A group or environment already known by its id gets what the file adds
 * to it, as dnf merges the comps of several repositories.
 * -EBADMSG when the file is not comps XML (logged with repo_id). */
int comps_add_file(Comps *c, const char *path, const char *repo_id);

/* What one request expanded to. */
typedef struct CompsExpansion {
        char **groups;   /* ids of the groups and environments it matched */
        char **packages; /* package names, and "(NAME if REQUIRED)" for conditional ones; sorted */
} CompsExpansion;

void comps_expansion_release(CompsExpansion *e);

/* Expands spec, the request without its "@": "ID-OR-NAME" matches groups
 * and environments, "^ID-OR-NAME" environments only; an exact id or name
 * first, else a case-insensitive glob over ids and names. An environment
 * brings its mandatory groups (not its optional ones, as dnf 4). types:
 * GroupPackageType bits. -ENOENT when nothing matches (not logged). */
int comps_expand(const Comps *c, const char *spec, unsigned types, CompsExpansion *ret);

/* Reads a whole metadata file, decompressed as its suffix says (.gz, .xz,
 * .zst, .bz2), into memory, NUL-terminated; at most max bytes, else -EFBIG.
 * Caller frees *ret. */
int read_decompressed(const char *path, size_t max, char **ret, size_t *ret_size);
