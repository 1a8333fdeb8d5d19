#include <stdarg.h>
#include <time.h>

#include "log.h"
#include "table.h"
#include "util.h"

/* The key column of field_print(). */
#define FIELD_KEY_WIDTH 14
/* Enough for every table slipctl prints. */
#define TABLE_COLUMNS_MAX 16

struct Table {
        size_t n_columns;
        char **headers;
        char **cells; /* n_rows * n_columns */
        size_t n_rows;
        size_t alloc_rows;
};

char *text_safe(const char *s) {
        char *out;

        if (isempty(s))
                return strdup("-");
        out = strdup(s);
        if (!out)
                return NULL;
        for (char *p = out; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        return out;
}

/* Columns a string takes on a terminal: UTF-8 continuation bytes take none. */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        w++;
        return w;
}

Table *table_new(size_t n_columns, const char *const *headers) {
        Table *t;

        if (n_columns == 0 || n_columns > TABLE_COLUMNS_MAX)
                return NULL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        t->headers = calloc(n_columns, sizeof(char *));
        if (!t->headers)
                return table_free(t);
        for (size_t i = 0; i < n_columns; i++) {
                t->headers[i] = strdup(headers[i]);
                if (!t->headers[i])
                        return table_free(t);
        }
        return t;
}

static void table_clear(Table *t) {
        for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
                free(t->cells[i]);
        t->n_rows = 0;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        table_clear(t);
        free(t->cells);
        for (size_t i = 0; t->headers && i < t->n_columns; i++)
                free(t->headers[i]);
        free(t->headers);
        free(t);
        return NULL;
}

size_t table_rows(const Table *t) {
        return t->n_rows;
}

int table_add_row(Table *t, const char *const *cells) {
        if (t->n_rows == t->alloc_rows) {
                size_t na = MAX(t->alloc_rows * 2, (size_t) 16);
                char **nc = reallocarray(t->cells, na * t->n_columns, sizeof(char *));
                if (!nc)
                        return -ENOMEM;
                t->cells = nc;
                t->alloc_rows = na;
        }
        for (size_t i = 0; i < t->n_columns; i++) {
                char *c = text_safe(cells[i]);
                if (!c) {
                        for (size_t j = 0; j < i; j++)
                                free(t->cells[t->n_rows * t->n_columns + j]);
                        return -ENOMEM;
                }
                t->cells[t->n_rows * t->n_columns + i] = c;
        }
        t->n_rows++;
        return 0;
}

static void print_row(FILE *f, char *const *cells, size_t n, const size_t *widths) {
        for (size_t i = 0; i < n; i++) {
                if (i + 1 < n)
                        fprintf(f, "%s%*s  ", cells[i], (int) (widths[i] - text_width(cells[i])), "");
                else
                        fprintf(f, "%s\n", cells[i]);
        }
}

void table_print(Table *t, FILE *f, bool header, const size_t *min_widths) {
        size_t widths[TABLE_COLUMNS_MAX];

        for (size_t i = 0; i < t->n_columns; i++) {
                widths[i] = MAX(header ? text_width(t->headers[i]) : 0, min_widths ? min_widths[i] : 0);
                for (size_t r = 0; r < t->n_rows; r++)
                        widths[i] = MAX(widths[i], text_width(t->cells[r * t->n_columns + i]));
        }
        if (header)
                print_row(f, t->headers, t->n_columns, widths);
        for (size_t r = 0; r < t->n_rows; r++)
                print_row(f, t->cells + r * t->n_columns, t->n_columns, widths);
        table_clear(t);
}

/* The text of format and ap, made safe to print; NULL when out of memory. */
static char *safe_vprintf(const char *format, va_list ap) {
        _cleanup_free_ char *value = NULL;

        if (vasprintf(&value, format, ap) < 0)
                return NULL;
        return text_safe(value);
}

void field_print(const char *key, const char *format, ...) {
        _cleanup_free_ char *safe = NULL;
        va_list ap;

        va_start(ap, format);
        safe = safe_vprintf(format, ap);
        va_end(ap);
        printf("%s:%*s%s\n", key, (int) (FIELD_KEY_WIDTH - MIN(strlen(key) + 1, (size_t) FIELD_KEY_WIDTH)), "",
               safe ? safe : "?");
}

void field_continue(unsigned indent, const char *format, ...) {
        _cleanup_free_ char *safe = NULL;
        va_list ap;

        va_start(ap, format);
        safe = safe_vprintf(format, ap);
        va_end(ap);
        printf("%*s%s\n", (int) (FIELD_KEY_WIDTH + MIN(indent, 64u)), "", safe ? safe : "?");
}

const char *format_ago(char *buf, size_t size, int64_t when, int64_t now) {
        int64_t d = now - when;

        if (when <= 0)
                snprintf(buf, size, "never");
        else if (d < 0)
                snprintf(buf, size, "just now"); /* clocks disagree a little */
        else if (d < 60)
                snprintf(buf, size, "%lld s ago", (long long) d);
        else if (d < 3600)
                snprintf(buf, size, "%lld min ago", (long long) (d / 60));
        else if (d < 48 * 3600)
                snprintf(buf, size, "%lld h ago", (long long) (d / 3600));
        else if (d < 60 * 86400)
                snprintf(buf, size, "%lld days ago", (long long) (d / 86400));
        else {
                time_t t = (time_t) when;
                struct tm tm;
                if (localtime_r(&t, &tm))
                        strftime(buf, size, "%Y-%m-%d", &tm);
                else
                        snprintf(buf, size, "%lld", (long long) when);
        }
        return buf;
}

const char *format_time(char *buf, size_t size, int64_t when) {
        time_t t = (time_t) when;
        struct tm tm;

        if (when <= 0)
                snprintf(buf, size, "-");
        else if (!localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, size, "%lld", (long long) when);
        return buf;
}

const char *format_duration(char *buf, size_t size, uint64_t s) {
        unsigned long long v = s;

        if (v < 60)
                snprintf(buf, size, "%llu s", v);
        else if (v < 3600)
                snprintf(buf, size, "%llu min", v / 60);
        else if (v < 86400)
                snprintf(buf, size, "%llu h %llu min", v / 3600, v % 3600 / 60);
        else
                snprintf(buf, size, "%llu days %llu h", v / 86400, v % 86400 / 3600);
        return buf;
}

char *json_inline(json_t *v) {
        char *out = NULL;
        size_t size = 0;
        const char *key;
        json_t *item;
        bool first = true;
        FILE *f;

        if (!v || json_is_null(v))
                return strdup("-");
        if (json_is_string(v))
                return strdup(json_string_value(v));
        if (!json_is_object(v))
                return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (json_object_size(v) == 0)
                return strdup("-");
        f = open_memstream(&out, &size);
        if (!f)
                return NULL;
        json_object_foreach(v, key, item) {
                _cleanup_free_ char *s = json_is_string(item) ? strdup(json_string_value(item))
                                                              : json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY);
                fprintf(f, "%s%s=%s", first ? "" : ", ", key, s ? s : "?");
                first = false;
        }
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

int table_print_listing(Table *t, int r, const char *empty) {
        if (r < 0)
                return log_oom();
        if (table_rows(t) == 0)
                printf("%s\n", empty);
        else
                table_print(t, stdout, true, NULL);
        return 0;
}
