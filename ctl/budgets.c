/* slipctl budget list|set|delete: how many hosts of a label group may be
 * unavailable at once (docs/api.md, Coordination). */
#include "ctl.h"
#include "log.h"
#include "table.h"
#include "util.h"

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

/* What a selector covers, for people: "each rack=... group" for a key,
 * "group service=web" for one group. Caller frees. */
static char *selector_scope(const char *selector) {
        if (!selector)
                return strdup("-");
        if (strchr(selector, '='))
                return strdup_printf("group %s", selector);
        return strdup_printf("each %s=... group", selector);
}

int ctl_budget_list(Ctl *ctl, char **args _unused_) {
        static const char *const headers[] = { "SELECTOR", "BUDGET", "APPLIES TO" };
        _cleanup_table_free_ Table *t = NULL;
        json_t *reply = NULL, *b;
        size_t i;
        int r = 0;

        r = ctl_call(ctl, "GET", "/v1/budgets", NULL, &reply, "cannot list budgets");
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t) {
                json_decref(reply);
                return log_oom();
        }
        json_array_foreach(json_object_get(reply, "budgets"), i, b) {
                _cleanup_free_ char *scope = selector_scope(str(b, "selector"));
                r = scope ? table_add_row(t, (const char *const[]) { str(b, "selector"), str(b, "budget"), scope })
                          : -ENOMEM;
                if (r < 0)
                        break;
        }
        json_decref(reply);
        return table_print_listing(t, r, "no budgets are set");
}

int ctl_budget_set(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_path("/v1/budgets/", args[0], NULL);
        _cleanup_free_ char *what = strdup_printf("cannot set the budget of '%s'", args[0]);
        _cleanup_free_ char *selector = NULL, *desc = NULL;
        json_t *body, *reply = NULL, *b;
        size_t i;
        int r;

        if (!path || !what)
                return log_oom();
        if (ctl->opt.max_unavailable && ctl->opt.min_available >= 0)
                return log_error_errno(-EINVAL, "--max-unavailable and --min-available cannot be used together");
        if (!ctl->opt.max_unavailable && ctl->opt.min_available < 0)
                return log_error_errno(-EINVAL, "budget set needs --max-unavailable or --min-available");
        if (ctl->opt.max_unavailable)
                body = json_pack("{s:O}", "max_unavailable", ctl->opt.max_unavailable);
        else
                body = json_pack("{s:I}", "min_available", (json_int_t) ctl->opt.min_available);
        if (!body)
                return log_oom();
        r = ctl_call(ctl, "PUT", path, body, &reply, what);
        json_decref(body);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        /* The reply is every budget; show the one just set. */
        json_array_foreach(json_object_get(reply, "budgets"), i, b)
                if (streq_ptr(str(b, "selector"), args[0]))
                        desc = text_safe(str(b, "budget"));
        selector = text_safe(args[0]);
        printf("budget %s: %s\n", selector ? selector : "?", desc ? desc : "?");
        json_decref(reply);
        return 0;
}

int ctl_budget_delete(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_path("/v1/budgets/", args[0], NULL);
        _cleanup_free_ char *what = strdup_printf("cannot delete the budget of '%s'", args[0]);
        _cleanup_free_ char *selector = NULL;
        json_t *reply = NULL;
        int r;

        if (!path || !what)
                return log_oom();
        r = ctl_call(ctl, "DELETE", path, NULL, &reply, what);
        if (r < 0)
                return r;
        if (ctl->json) {
                r = ctl_print_json(reply);
                json_decref(reply);
                return r;
        }
        selector = text_safe(args[0]);
        printf("deleted budget %s\n", selector ? selector : "?");
        json_decref(reply);
        return 0;
}

int ctl_budget_item(const char *s, char **ret_selector, json_t **ret_budget) {
        const char *colon = s ? strchr(s, ':') : NULL;
        _cleanup_free_ char *sel = NULL;
        const char *amount;
        uint64_t v;
        json_t *b;

        if (!colon || colon == s || !colon[1])
                return -EINVAL;
        amount = colon + 1;
        if (startswith(amount, "min=")) {
                if (safe_atou64(amount + 4, &v) < 0 || v > INT32_MAX)
                        return -EINVAL;
                b = json_pack("{s:I}", "min_available", (json_int_t) v);
        } else if (amount[strlen(amount) - 1] == '%')
                b = json_string(amount);
        else {
                if (safe_atou64(amount, &v) < 0 || v > INT32_MAX)
                        return -EINVAL;
                b = json_integer((json_int_t) v);
        }
        sel = strndup(s, (size_t) (colon - s));
        if (!b || !sel) {
                json_decref(b);
                return -ENOMEM;
        }
        *ret_selector = TAKE_PTR(sel);
        *ret_budget = b;
        return 0;
}

char *ctl_budgets_describe(json_t *budgets) {
        _cleanup_free_ char *s = NULL;
        const char *sel;
        json_t *v;

        json_object_foreach(budgets, sel, v) {
                json_t *mu = json_is_object(v) ? json_object_get(v, "max_unavailable") : v;
                json_t *ma = json_is_object(v) ? json_object_get(v, "min_available") : NULL;
                _cleanup_free_ char *item = NULL;
                char *n;

                if (ma)
                        item = strdup_printf("%s: min %" JSON_INTEGER_FORMAT " up", sel, json_integer_value(ma));
                else if (json_is_string(mu))
                        item = strdup_printf("%s: max %s down", sel, json_string_value(mu));
                else
                        item = strdup_printf("%s: max %" JSON_INTEGER_FORMAT " down", sel, json_integer_value(mu));
                n = item ? strdup_printf("%s%s%s", strempty(s), s ? ", " : "", item) : NULL;
                if (!n)
                        return NULL;
                free(s);
                s = n;
        }
        return TAKE_PTR(s);
}
