/* What the fuzz targets that need files share. */
#pragma once

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
