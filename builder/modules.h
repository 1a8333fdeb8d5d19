/* Modules: the module streams a repository lists in its "modules"
 * metadata (modules.yaml), which streams are active for a resolution, and
 * the modular filtering dnf applies with them. */
#pragma once

#include "macro.h"

typedef struct Modules Modules;

Modules *modules_new(void);
Modules *modules_free(Modules *m);
static inline void modules_freep(Modules **m) {
        modules_free(*m);
}
#define _cleanup_modules_free_ _cleanup_(modules_freep)

/* Adds the module streams and defaults of a modules.yaml file (plain or
 * compressed). -EBADMSG when it does not parse (logged with repo_id). */
int modules_add_file(Modules *m, const char *path, const char *repo_id);

/* Decides the active streams: each of enable ("NAME:STREAM" or
 * "NAME:STREAM/PROFILE", definition.h) and the streams they require
 * (modulemd's runtime "requires"), then the default stream of every other
 * module that has one and is not in disable, and what those require.
 * Logs and returns -ENOENT when an enabled or disabled module, stream or
 * profile, or a required module, does not exist, -EINVAL on conflicting
 * defaults or requirements. Call once, after every modules_add_file(). */
int modules_activate(Modules *m, char **enable, char **disable);

/* Whether modular filtering hides a package, by its name and its NEVRA as
 * "NAME-EPOCH:VERSION-RELEASE.ARCH": a package of a stream that is not
 * active, or a package outside the active streams whose name one of them
 * ships. Returns the "NAME:STREAM" responsible (owned by m), or NULL. */
const char *modules_hides(const Modules *m, const char *name, const char *nevra);

/* One active stream. */
typedef struct ModuleChoice {
        char *name;
        char *stream;
        char *profile; /* NULL unless enabled with one */
        bool is_default; /* active as its module's default stream, not enabled */
        char *required_by; /* "NAME:STREAM" of the active stream that needed it, or NULL */
        char **packages; /* the profile's packages, sorted; NULL without a profile */
} ModuleChoice;

/* The active streams, sorted by name; valid until modules_free(). */
const ModuleChoice *modules_active(const Modules *m, size_t *ret_n);
