#include "log.h"
#include "process.h"
#include "tool.h"

/* Logs the tool's output, one line each, ahead of the error. */
static void log_tool_output(const char *tool, const char *out) {
        const char *p = out;

        while (p && *p) {
                const char *e = strchrnul(p, '\n');
                if (e > p)
                        log_error("%s: %.*s", tool, (int) (e - p), p);
                p = *e ? e + 1 : e;
        }
}

int tool_run(char *const *argv, char *const *env_unset, char *const *env_set, const char *context) {
        _cleanup_free_ char *err = NULL;
        int k;

        k = spawn_capture(argv, env_unset, env_set, &err);
        if (k == 0)
                return 0;
        log_tool_output(argv[0], err);
        if (k < 0 && k != -ECHILD)
                return log_error_errno(k, "failed to run %s%s%s%s: %m", argv[0], context ? " for '" : "",
                                       strempty(context), context ? "'" : "");
        if (k == -ECHILD)
                return log_error_errno(-EIO, "%s was killed%s%s%s", argv[0], context ? " while working on '" : "",
                                       strempty(context), context ? "'" : "");
        return log_error_errno(-EIO, "%s failed%s%s%s with exit status %d", argv[0], context ? " for '" : "",
                               strempty(context), context ? "'" : "", k);
}
