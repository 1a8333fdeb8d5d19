#include <stdarg.h>
#include <time.h>

#include "log.h"
#include "util.h"

static const char *program = "slipway";
static LogLevel max_level = LOG_LEVEL_INFO;
static bool json_output;

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

        if (json_output) {
                _cleanup_free_ char *escaped = json_escape_string(msg);
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                fprintf(stderr, "{\"ts\":%lld.%03ld,\"level\":\"%s\",\"prog\":\"%s\",\"msg\":%s}\n",
                        (long long) ts.tv_sec, ts.tv_nsec / 1000000, level_names[level], program,
                        escaped ? escaped : "\"\"");
        } else if (level <= LOG_LEVEL_WARNING)
                fprintf(stderr, "%s: %s%s\n", program, level == LOG_LEVEL_WARNING ? "warning: " : "", msg);
        else
                fprintf(stderr, "%s\n", msg);

        errno = saved;
        return error;
}
