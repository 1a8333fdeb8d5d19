/* Progress for long work: on a terminal one line that updates in place
 * (phase, items, bytes); in a pipe, plain lines at phase changes and every
 * few seconds. */
#pragma once

#include <stdint.h>
#include <stdio.h>

typedef struct Progress Progress;

/* f is usually stderr; quiet suppresses everything but errors. */
Progress *progress_new(FILE *f, int quiet);
Progress *progress_free(Progress *p);

/* Starts a phase ("resolve", "fetch", "install", "rootfs", ...). */
void progress_phase(Progress *p, const char *phase, const char *detail_format, ...)
        __attribute__((format(printf, 3, 4)));
/* Reports items done out of total (0 = unknown) and bytes done / total. May be
 * called from one thread only. p may be NULL. */
void progress_update(Progress *p, uint64_t items, uint64_t items_total, uint64_t bytes, uint64_t bytes_total);
/* Ends the current line on a terminal. */
void progress_end(Progress *p);

static inline void progress_freep(Progress **p) {
        progress_free(*p);
}
#define _cleanup_progress_free_ __attribute__((cleanup(progress_freep)))
