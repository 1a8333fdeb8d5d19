#include <assert.h>
#include <stdarg.h>

#include "error.h"
#include "log.h"
#include "util.h"

/* What a message may hold; the longest one sent anywhere (a check-in's
 * "message") is capped at 4096 bytes too. */
#define ERROR_MESSAGE_MAX 4096

int error_set_at(Error *e, int code, const char *file, unsigned line, const char *format, ...) {
        char buf[ERROR_MESSAGE_MAX];
        char *message, *where;
        va_list ap;

        assert(code < 0);
        if (!e)
                return code;
        /* Made before the old error goes: the arguments may be parts of it
         * ("%s", e->message puts context in front). */
        va_start(ap, format);
        log_format_message(buf, sizeof buf, code, format, ap);
        va_end(ap);
        message = strdup(buf);
        where = file ? strdup(file) : NULL;
        error_clear(e);
        *e = (Error) { .code = code, .message = message, .file = where, .line = line };
        return code;
}

char *error_format(const Error *e) {
        const char *m = e->message ? e->message : strerror(e->code < 0 ? -e->code : EIO);

        if (e->file && e->line > 0)
                return strdup_printf("%s:%u: %s", e->file, e->line, m);
        if (e->file)
                return strdup_printf("%s: %s", e->file, m);
        return strdup(m);
}

int error_log(const Error *e) {
        _cleanup_free_ char *text = error_format(e);
        int code = e->code < 0 ? e->code : -EIO;

        if (!text)
                return log_oom();
        return log_error_errno(code, "%s", text);
}

void error_clear(Error *e) {
        if (!e)
                return;
        free(e->message);
        free(e->file);
        *e = (Error) {};
}
