#include "conftab.h"
#include "log.h"
#include "util.h"
#include "webhook-config.h"

/* The longest webhook name, URL and secret taken. */
#define WEBHOOK_NAME_MAX 64
#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_SECRET_MAX 1024

static bool name_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > WEBHOOK_NAME_MAX)
                return false;
        for (const char *p = name; *p; p++)
                if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
                    !strchr("._-", *p))
                        return false;
        return true;
}

/* The webhook called name in the list, added (with its defaults) when it
 * is not there yet. */
static int find_or_add(WebhookConfig **list, size_t *n, const char *name, const char *file, unsigned line,
                       WebhookConfig **ret) {
        WebhookConfig *l, *w;

        for (size_t i = 0; i < *n; i++)
                if (streq((*list)[i].name, name)) {
                        *ret = &(*list)[i];
                        return 0;
                }
        if (*n >= WEBHOOKS_MAX)
                return -E2BIG;
        l = reallocarray(*list, *n + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        *list = l;
        w = &l[*n];
        *w = (WebhookConfig) { .retries = 5, .timeout = 10, .line = line };
        w->name = strdup(name);
        w->file = strdup(file);
        if (!w->name || !w->file || strv_extend(&w->events, "rollout.*") < 0 ||
            strv_extend(&w->events, "pipeline.*") < 0) {
                free(w->name);
                free(w->file);
                strv_free(w->events);
                return -ENOMEM;
        }
        (*n)++;
        *ret = w;
        return 0;
}

/* "rollout.*", "rollout.done", "*": a dotted action, or a family. */
static bool event_valid(const char *e) {
        size_t n = strlen(e);

        if (streq(e, "*"))
                return true;
        if (n == 0 || n > 64 || e[0] == '.' || e[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = e[i];
                if (c == '*' && !(i == n - 1 && i > 0 && e[i - 1] == '.'))
                        return false;
                if (c != '*' && !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && !strchr(".-_", c))
                        return false;
        }
        return true;
}

static int parse_events(const char *value, char ***ret) {
        _cleanup_free_ char *copy = strdup(value);
        _cleanup_strv_free_ char **l = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *p = copy; *p; p++)
                if (*p == ',')
                        *p = ' ';
        l = strv_split_words(copy);
        if (!l)
                return -ENOMEM;
        if (!l[0])
                return -EINVAL;
        for (size_t i = 0; l[i]; i++)
                if (!event_valid(l[i]))
                        return -EINVAL;
        *ret = TAKE_PTR(l);
        return 0;
}

int webhook_config_key(WebhookConfig **list, size_t *n, const char *file, unsigned line, const char *name,
                       const char *key, const char *value, Error *error) {
        WebhookConfig *w;
        uint64_t u;
        int r;

        if (!name_valid(name))
                return error_set_at(error, -EINVAL, file, line,
                                    "[webhook %s]: a name of 1 to %d letters, digits and ._- expected", name,
                                    WEBHOOK_NAME_MAX);
        r = find_or_add(list, n, name, file, line, &w);
        if (r == -E2BIG)
                return error_set_at(error, -EINVAL, file, line, "[webhook %s]: more than %d webhooks", name,
                                    WEBHOOKS_MAX);
        if (r < 0)
                return error_set_at(error, r, file, line, "out of memory");
        if (streq(key, "url")) {
                if ((!startswith(value, "http://") && !startswith(value, "https://")) || strlen(value) > WEBHOOK_URL_MAX)
                        return error_set_at(error, -EINVAL, file, line, "[webhook %s]: 'url': not an http(s) URL: \"%s\"",
                                            name, value);
                r = conftab_set_string(&w->url, value);
        } else if (streq(key, "secret")) {
                if (strlen(value) > WEBHOOK_SECRET_MAX)
                        return error_set_at(error, -EINVAL, file, line, "[webhook %s]: 'secret': over %d bytes", name,
                                            WEBHOOK_SECRET_MAX);
                r = conftab_set_string(&w->secret, value);
        } else if (streq(key, "events")) {
                char **l = NULL;

                r = parse_events(value, &l);
                if (r == -EINVAL)
                        return error_set_at(error, r, file, line,
                                            "[webhook %s]: 'events': expected actions (rollout.done), families "
                                            "(rollout.*) or *, separated by commas: \"%s\"",
                                            name, value);
                if (r >= 0) {
                        strv_free(w->events);
                        w->events = l;
                }
        } else if (streq(key, "retries") || streq(key, "timeout")) {
                bool retries = streq(key, "retries");

                if (safe_atou64(value, &u) < 0 || (retries ? u > 20 : u < 1 || u > 300))
                        return error_set_at(error, -EINVAL, file, line, "[webhook %s]: '%s': expected %s: \"%s\"", name,
                                            key, retries ? "0..20" : "1..300 seconds", value);
                if (retries)
                        w->retries = u;
                else
                        w->timeout = u;
                r = 0;
        } else
                return error_set_at(error, -EINVAL, file, line, "unknown key '%s' in [webhook %s]", key, name);
        return r < 0 ? error_set_at(error, r, file, line, "out of memory") : 0;
}

int webhook_configs_check(const WebhookConfig *list, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const WebhookConfig *w = &list[i];

                if (!w->url)
                        return log_error_errno(-EINVAL, "%s:%u: [webhook %s]: 'url' is not set", w->file, w->line,
                                               w->name);
                if (!w->secret)
                        return log_error_errno(-EINVAL, "%s:%u: [webhook %s]: 'secret' is not set (receivers check "
                                               "the signature made with it)",
                                               w->file, w->line, w->name);
        }
        return 0;
}

void webhook_configs_free(WebhookConfig *list, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(list[i].name);
                free(list[i].url);
                free(list[i].secret);
                strv_free(list[i].events);
                free(list[i].file);
        }
        free(list);
}

bool webhook_config_wants(const WebhookConfig *w, const char *action) {
        for (size_t i = 0; w->events && w->events[i]; i++) {
                const char *e = w->events[i];
                size_t n = strlen(e);

                if (streq(e, "*") || streq(e, action))
                        return true;
                if (n >= 2 && e[n - 1] == '*' && strncmp(action, e, n - 1) == 0)
                        return true;
        }
        return false;
}
