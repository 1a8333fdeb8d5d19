/* slipctl rollout watch: a rollout's progress until it is done, aborted or
 * paused. On a terminal the status is redrawn every second; in a pipe one
 * line is printed per change, so a log or a script reads a short history. */
#include <time.h>

#include "ctl.h"
#include "log.h"
#include "table.h"
#include "util.h"

#define WATCH_INTERVAL_MSEC 1000
/* Home the cursor, clear the screen. */
#define ANSI_HOME_CLEAR "\033[H\033[2J"

static const char *clock_now(char *buf, size_t size) {
        time_t t = time(NULL);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, size, "%H:%M:%S", &tm) == 0)
                snprintf(buf, size, "%lld", (long long) t);
        return buf;
}

/* Prints ro if it differs from *last (the previous line or JSON), which
 * is replaced. On a terminal, redraws it whatever it is. */
static int show(Ctl *ctl, json_t *ro, bool tty, char **last) {
        _cleanup_free_ char *line = NULL, *safe = NULL;
        char now[32];

        if (tty) {
                printf(ANSI_HOME_CLEAR);
                ctl_rollout_print(ro, (int64_t) time(NULL));
                printf("\nupdated %s, every second; Ctrl-C stops watching, not the rollout\n",
                       clock_now(now, sizeof(now)));
                return 0;
        }
        line = ctl->json ? json_dumps(ro, JSON_COMPACT | JSON_SORT_KEYS) : ctl_rollout_summary(ro);
        if (!line)
                return log_oom();
        if (streq_ptr(line, *last))
                return 0;
        if (ctl->json)
                printf("%s\n", line);
        else {
                safe = text_safe(line);
                printf("%s %s\n", clock_now(now, sizeof(now)), safe ? safe : "?");
        }
        free(*last);
        *last = TAKE_PTR(line);
        return 0;
}

int ctl_rollout_watch(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_rollout_path(args[0], NULL);
        _cleanup_free_ char *what = strdup_printf("cannot watch rollout %s", args[0]);
        _cleanup_free_ char *last = NULL;
        bool tty = !ctl->json && isatty(STDOUT_FILENO), warned = false;
        int r;

        if (!path)
                return -EINVAL;
        if (!what)
                return log_oom();
        for (;; ctl_sleep_msec(WATCH_INTERVAL_MSEC)) {
                _cleanup_free_ char *reason = NULL, *state = NULL;
                json_t *ro = NULL;

                r = api_request(ctl->api, "GET", path, NULL, NULL, &ro);
                if (r < 0 && api_client_unreachable(ctl->api)) {
                        /* A server restarting is waited for; one that refuses ends it. */
                        if (!warned)
                                log_warning("%s: %s; trying again every second", what, api_client_error(ctl->api));
                        warned = true;
                        continue;
                }
                if (r < 0)
                        return ctl_log_error(ctl, r, what);
                if (warned)
                        log_info("the server at %s answers again", api_client_url(ctl->api));
                warned = false;
                r = show(ctl, ro, tty, &last);
                fflush(stdout);
                state = text_safe(json_string_value(json_object_get(ro, "state")));
                if (json_string_value(json_object_get(ro, "reason")))
                        reason = text_safe(json_string_value(json_object_get(ro, "reason")));
                json_decref(ro);
                if (r < 0)
                        return r;
                if (!state)
                        return log_oom();
                if (streq_ptr(state, "done") || streq_ptr(state, "aborted") || streq_ptr(state, "paused")) {
                        bool paused = streq(state, "paused");
                        if (!ctl->json)
                                printf("rollout %s is %s%s%s\n", args[0], state, reason ? ": " : "", strempty(reason));
                        fflush(stdout);
                        return paused ? CTL_EXIT_PAUSED : 0;
                }
        }
}
