#include <stdarg.h>
#include <time.h>

#include "log.h"
#include "util.h"

static const char *program = "slipway";
static LogLevel max_level = LOG_LEVEL_INFO;
static bool json_output;

#define LOG_FIELDS_MAX 8
typedef struct LogField {
        const char *key;
        char value[128];
} LogField;

/* The process's fields change at start-up, before threads log. */
static LogField global_fields[LOG_FIELDS_MAX];
static _Thread_local LogField context_fields[LOG_FIELDS_MAX];

static const char *const level_names[_LOG_LEVEL_MAX] = {
        [LOG_LEVEL_ERROR] = "error",
        [LOG_LEVEL_WARNING] = "warning",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

void log_set_program(const char *name) {
        program = name;
}

void log_set_level(LogLevel level) {
        max_level = level;
}

LogLevel log_get_level(void) {
        return max_level;
}

void log_set_json(bool json) {
        json_output = json;
}

bool log_get_json(void) {
        return json_output;
}

static void fields_set(LogField *l, const char *key, const char *value) {
        LogField *free_slot = NULL;

        for (size_t k = 0; k < LOG_FIELDS_MAX; k++) {
                if (l[k].key && streq(l[k].key, key)) {
                        free_slot = &l[k];
                        break;
                }
                if (!l[k].key && !free_slot)
                        free_slot = &l[k];
        }
        if (!free_slot)
                return;
        if (isempty(value)) {
                free_slot->key = NULL;
                return;
        }
        free_slot->key = key;
        snprintf(free_slot->value, sizeof free_slot->value, "%s", value);
}

void log_set_field(const char *key, const char *value) {
        fields_set(global_fields, key, value);
}

void log_context_set(const char *key, const char *value) {
        fields_set(context_fields, key, value);
}

void log_context_clear(void) {
        memset(context_fields, 0, sizeof context_fields);
}

static void fields_put(FILE *f, const LogField *l) {
        for (size_t k = 0; k < LOG_FIELDS_MAX; k++) {
                if (!l[k].key)
                        continue;
                _cleanup_free_ char *v = json_escape_string(l[k].value);
                fprintf(f, ",\"%s\":%s", l[k].key, v ? v : "\"\"");
        }
}

/* One JSON object on a line: ts (RFC 3339, UTC, milliseconds), level,
 * prog, msg, the error's text when there is one, then the fields. Written
 * with one call, so that lines of threads do not mix. */
static void log_json_line(LogLevel level, int error, const char *msg) {
        _cleanup_free_ char *escaped = json_escape_string(msg), *line = NULL;
        struct timespec ts;
        struct tm tm;
        char when[32];
        size_t size = 0;
        FILE *f;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        f = open_memstream(&line, &size);
        if (!f)
                return;
        fprintf(f, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"prog\":\"%s\",\"msg\":%s", when,
                ts.tv_nsec / 1000000, level_names[level], program, escaped ? escaped : "\"\"");
        if (error != 0) {
                _cleanup_free_ char *e = json_escape_string(strerror(error < 0 ? -error : error));
                fprintf(f, ",\"error\":%s", e ? e : "\"\"");
        }
        fields_put(f, global_fields);
        fields_put(f, context_fields);
        fputs("}\n", f);
        if (fclose(f) != 0)
                return;
        fputs(line, stderr);
}

LogLevel log_level_from_string(const char *s) {
        for (int i = 0; i < _LOG_LEVEL_MAX; i++)
                if (streq(s, level_names[i]))
                        return i;
        return _LOG_LEVEL_INVALID;
}

void log_format_message(char *buf, size_t size, int error, const char *format, va_list ap) {
        char fmt[1024];
        size_t j = 0;

        for (const char *p = format; *p && j + 1 < sizeof(fmt); p++) {
                if (p[0] == '%' && p[1] == 'm') {
                        const char *e = strerror(error < 0 ? -error : error);
                        for (; *e && j + 2 < sizeof(fmt); e++) {
                                if (*e == '%')
                                        fmt[j++] = '%';
                                fmt[j++] = *e;
                        }
                        p++;
                        continue;
                }
                if (p[0] == '%' && p[1] == '%' && j + 2 < sizeof(fmt)) {
                        fmt[j++] = *p++;
                }
                fmt[j++] = *p;
        }
        fmt[j] = 0;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        vsnprintf(buf, size, fmt, ap);
#pragma GCC diagnostic pop
}

int log_full(LogLevel level, int error, const char *format, ...) {
        char msg[4096];
        va_list ap;
        int saved = errno;

        if (level > max_level)
                return error;

        va_start(ap, format);
        log_format_message(msg, sizeof(msg), error, format, ap);
        va_end(ap);

        if (json_output)
                log_json_line(level, error, msg);
        else if (level <= LOG_LEVEL_WARNING)
                fprintf(stderr, "%s: %s%s\n", program, level == LOG_LEVEL_WARNING ? "warning: " : "", msg);
        else
                fprintf(stderr, "%s\n", msg);

        errno = saved;
        return error;
}
