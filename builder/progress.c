#include <stdarg.h>

#include "progress.h"
#include "util.h"

/* Plain output repeats the counters at most this often. */
#define PLAIN_INTERVAL_USEC (5 * 1000000ULL)
#define TTY_INTERVAL_USEC (100 * 1000ULL)

struct Progress {
        FILE *f;
        bool tty;
        bool quiet;
        bool line_open;
        char phase[64];
        char detail[256];
        uint64_t phase_start;
        uint64_t last_print;
        uint64_t last_items, last_bytes;
};

Progress *progress_new(FILE *f, int quiet) {
        Progress *p = calloc(1, sizeof(*p));
        const char *term = getenv("TERM");
        if (!p)
                return NULL;
        p->f = f;
        p->quiet = quiet;
        p->tty = isatty(fileno(f)) && !(term && streq(term, "dumb"));
        return p;
}

Progress *progress_free(Progress *p) {
        if (p)
                progress_end(p);
        free(p);
        return NULL;
}

void progress_end(Progress *p) {
        if (p && p->line_open) {
                fputc('\n', p->f);
                p->line_open = false;
                fflush(p->f);
        }
}

void progress_phase(Progress *p, const char *phase, const char *detail_format, ...) {
        va_list ap;

        if (!p || p->quiet)
                return;
        progress_end(p);
        snprintf(p->phase, sizeof(p->phase), "%s", phase);
        p->detail[0] = 0;
        if (detail_format) {
                va_start(ap, detail_format);
                vsnprintf(p->detail, sizeof(p->detail), detail_format, ap);
                va_end(ap);
        }
        p->phase_start = p->last_print = now_usec();
        p->last_items = p->last_bytes = UINT64_MAX;
        fprintf(p->f, "==> %-9s %s\n", p->phase, p->detail);
        fflush(p->f);
}

void progress_update(Progress *p, uint64_t items, uint64_t items_total, uint64_t bytes, uint64_t bytes_total) {
        char b1[32], b2[32], line[256];
        uint64_t now;
        size_t n = 0;
        bool finished;

        if (!p || p->quiet)
                return;
        now = now_usec();
        finished = (items_total && items == items_total) || (bytes_total && bytes == bytes_total);
        /* A finished state is shown once, right away; the rest at most every
         * interval. */
        if (items == p->last_items && bytes == p->last_bytes && p->last_print != p->phase_start)
                return;
        if (!finished && now - p->last_print < (p->tty ? TTY_INTERVAL_USEC : PLAIN_INTERVAL_USEC))
                return;
        p->last_print = now;
        p->last_items = items;
        p->last_bytes = bytes;

        n += (size_t) snprintf(line + n, sizeof(line) - n, "    %s:", p->phase);
        if (items_total)
                n += (size_t) snprintf(line + n, sizeof(line) - n, " %llu/%llu", (unsigned long long) items,
                                       (unsigned long long) items_total);
        if (bytes_total)
                snprintf(line + n, sizeof(line) - n, " %s / %s", format_bytes(b1, sizeof(b1), bytes),
                         format_bytes(b2, sizeof(b2), bytes_total));
        else if (bytes)
                snprintf(line + n, sizeof(line) - n, " %s", format_bytes(b1, sizeof(b1), bytes));

        if (p->tty) {
                fprintf(p->f, "\r\033[K%s", line);
                p->line_open = true;
        } else
                fprintf(p->f, "%s\n", line);
        fflush(p->f);
}
