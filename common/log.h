/* Logging to stderr: plain "prog: message" lines for tools, or one JSON object
 * per line for daemons (journald-friendly). */
#pragma once

#include <stdarg.h>

#include "macro.h"

typedef enum LogLevel {
        LOG_LEVEL_ERROR,
        LOG_LEVEL_WARNING,
        LOG_LEVEL_INFO,
        LOG_LEVEL_DEBUG,
        _LOG_LEVEL_MAX,
        _LOG_LEVEL_INVALID = -EINVAL,
} LogLevel;

/* Sets the program name shown in front of plain messages. */
void log_set_program(const char *name);
void log_set_level(LogLevel level);
LogLevel log_get_level(void);
void log_set_json(bool json);
bool log_get_json(void);

/* Fields added to each JSON line beside ts, level, prog and msg (text
 * lines are unchanged). key must be a literal; value is copied (cut at 127
 * bytes); NULL or "" removes the field. log_set_field() sets one for every
 * thread (the instance); log_context_set() one for the calling thread only
 * (the request, host, rollout it works on), until log_context_clear().
 * At most 8 of each; more are dropped. */
void log_set_field(const char *key, const char *value);
void log_context_set(const char *key, const char *value);
void log_context_clear(void);
LogLevel log_level_from_string(const char *s);

/* Writes one message. Returns error (a negative errno, or 0) so callers can
 * `return log_error_errno(r, ...)`. "%m" in format expands to strerror(-error). */
int log_full(LogLevel level, int error, const char *format, ...) _printf_(3, 4);

/* Formats a message as log_full() does (vsnprintf into buf, truncated to
 * size), "%m" expanding to strerror(-error) rather than errno's. */
void log_format_message(char *buf, size_t size, int error, const char *format, va_list ap);

#define log_error(...) log_full(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...) log_full(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_info(...) log_full(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_full(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_full(LOG_LEVEL_DEBUG, (e), __VA_ARGS__)
#define log_oom() log_full(LOG_LEVEL_ERROR, -ENOMEM, "out of memory")
