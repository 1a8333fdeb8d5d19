/* What the builder's librpm users share: reading the rpm configuration once,
 * and cleanup helpers for librpm's handles. */
#pragma once

#include <rpm/header.h>
#include <rpm/rpmio.h>
#include <rpm/rpmps.h>
#include <rpm/rpmts.h>

#include "macro.h"

/* Reads the rpm configuration (rpmReadConfigFiles()), once per process, from
 * any thread. Returns 0, or -EIO when it cannot be read. */
int librpm_init(void);

static inline void rpmts_freep(rpmts *ts) {
        if (*ts)
                rpmtsFree(*ts);
}

static inline void rpmps_freep(rpmps *ps) {
        if (*ps)
                rpmpsFree(*ps);
}

static inline void header_freep(Header *h) {
        if (*h)
                headerFree(*h);
}

static inline void rpm_fclosep(FD_t *fd) {
        if (*fd)
                Fclose(*fd);
}
