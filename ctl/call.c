/* Talking to the server: one request with its error logged, paths, JSON
 * output, the pause between polls. */
#include <time.h>

#include "ctl.h"
#include "json.h"
#include "log.h"
#include "util.h"

int ctl_log_error(Ctl *ctl, int error, const char *what) {
        if (error == -EACCES && !ctl->has_token)
                return log_error_errno(error, "%s: %s; pass --token, --token-file or set SLIPWAY_TOKEN", what,
                                       api_client_error(ctl->api));
        return log_error_errno(error, "%s: %s", what, api_client_error(ctl->api));
}

int ctl_call(Ctl *ctl, const char *method, const char *path, json_t *body, json_t **ret_reply, const char *what) {
        int r;

        r = api_request(ctl->api, method, path, body, NULL, ret_reply);
        if (r < 0)
                return ctl_log_error(ctl, r, what);
        return 0;
}

char *ctl_path(const char *prefix, const char *arg, const char *suffix) {
        _cleanup_free_ char *e = api_escape(arg);

        if (!e)
                return NULL;
        return strdup_printf("%s%s%s", prefix, e, strempty(suffix));
}

int ctl_print_json(json_t *j) {
        if (json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) < 0 || putchar('\n') == EOF)
                return log_error_errno(-EIO, "cannot write to standard output");
        return 0;
}

int ctl_object_call(Ctl *ctl, const char *method, const char *path, const char *noun, const char *id,
                    const char *verb, CtlObjectPrint print) {
        _cleanup_free_ char *what = NULL;
        _cleanup_json_ json_t *o = NULL;
        int r;

        if (!path)
                return -EINVAL;
        what = strdup_printf("cannot %s %s %s", verb, noun, id);
        if (!what)
                return log_oom();
        r = ctl_call(ctl, method, path, NULL, &o, what);
        if (r < 0)
                return r;
        if (ctl->json)
                return ctl_print_json(o);
        print(o, id, verb);
        return 0;
}

void ctl_sleep_msec(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}
