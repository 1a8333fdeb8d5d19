/* What the fuzz targets share: a directory for the ones that need files,
 * and the first steps of the spec targets (a rollout's, a pipeline's). */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "util.h"

/* Makes a new directory for one input, on tmpfs when there is one (the
 * readers and writers fsync), and returns its path; caller removes it and
 * frees the path. Aborts on failure: a target that cannot run must not
 * pass. */
static inline char *fuzz_mkdtemp(const char *name) {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : getenv("TMPDIR") ?: "/tmp";
        char *dir = strdup_printf("%s/fuzz-%s-XXXXXX", base, name);

        if (!dir || !mkdtemp(dir))
                abort();
        return dir;
}

/* data as the JSON a spec target parses (a new reference); NULL when it is
 * not JSON or is larger than a request body may be. */
static inline json_t *fuzz_spec_json(const uint8_t *data, size_t size) {
        if (size > 65536)
                return NULL;
        return json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
}

/* Whether a spec parser that returned r with error accepted the spec.
 * Aborts when a refusal names nothing that is wrong, or an acceptance
 * names something. */
static inline bool fuzz_spec_accepted(int r, const char *error) {
        if (r >= 0) {
                if (error)
                        abort();
                return true;
        }
        if (r != -ENOMEM && (r != -EINVAL || !error || !*error))
                abort();
        return false;
}

/* Spec j as a start stores it and a tick reads it back (a new reference;
 * NULL when out of memory). Aborts when the stored text is not JSON. */
static inline json_t *fuzz_spec_stored(json_t *j) {
        _cleanup_free_ char *stored = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *k = stored ? json_loads(stored, JSON_REJECT_DUPLICATES, NULL) : NULL;

        if (stored && !k)
                abort();
        return k;
}
