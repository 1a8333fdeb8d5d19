/* Webhooks: the signature a receiver checks (against a value computed
 * elsewhere), the [webhook NAME] sections read key by key, and which
 * events a webhook wants. */
#include "tests.h"

#include "util.h"
#include "webhook-config.h"
#include "webhooks.h"

static void test_sign(void **state) {
        static const char body[] = "{\"event\":\"rollout.done\"}";
        char sig[72];
        (void) state;

        /* Python: hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256) */
        webhook_sign("k3y", "1700000000", body, strlen(body), sig);
        assert_string_equal(sig, "sha256=4cc65eb8c697a3c35b18598779c180759e056bf2b631dbeba3100ebf468560a1");
        webhook_sign("k3y", "1700000001", body, strlen(body), sig);
        assert_string_not_equal(sig, "sha256=4cc65eb8c697a3c35b18598779c180759e056bf2b631dbeba3100ebf468560a1");
}

typedef struct Hooks {
        WebhookConfig *l;
        size_t n;
} Hooks;

static int on_key(const char *file, unsigned line, const char *section, const char *key, const char *value,
                  void *userdata, Error *error) {
        Hooks *h = userdata;

        assert_non_null(startswith(section, "webhook "));
        return webhook_config_key(&h->l, &h->n, file, line, section + strlen("webhook "), key, value, error);
}

static int parse(const char *text, Hooks *ret, char **ret_message) {
        _cleanup_error_ Error e = {};
        int r = ini_parse_string("t.conf", text, on_key, ret, &e);

        if (r < 0 && ret_message)
                *ret_message = strdup(e.message);
        return r;
}

static void test_config(void **state) {
        Hooks h = {};
        char *msg = NULL;
        (void) state;

        assert_int_equal(parse("[webhook ops]\nurl = https://hooks.example/x\nsecret = s\n"
                               "events = rollout.*, pipeline.done\n[webhook b]\nurl = http://b/\n"
                               "[webhook ops]\nretries = 2\ntimeout = 5\n",
                               &h, NULL),
                         0);
        assert_int_equal(h.n, 2);
        assert_string_equal(h.l[0].name, "ops");
        assert_string_equal(h.l[0].url, "https://hooks.example/x");
        assert_int_equal(h.l[0].retries, 2);
        assert_int_equal(h.l[0].timeout, 5);
        assert_int_equal(strv_length(h.l[0].events), 2);
        assert_true(webhook_config_wants(&h.l[0], "rollout.start"));
        assert_true(webhook_config_wants(&h.l[0], "pipeline.done"));
        assert_false(webhook_config_wants(&h.l[0], "pipeline.start"));
        assert_false(webhook_config_wants(&h.l[0], "rollouts.start"));
        assert_false(webhook_config_wants(&h.l[0], "host.assign"));
        /* The defaults: rollout.* and pipeline.*, 5 retries, 10 s. */
        assert_true(webhook_config_wants(&h.l[1], "pipeline.start"));
        assert_int_equal(h.l[1].retries, 5);
        assert_int_equal(h.l[1].timeout, 10);
        /* b has no secret. */
        assert_int_equal(webhook_configs_check(h.l, h.n), -EINVAL);
        webhook_configs_free(h.l, h.n);

        static const char *const bad[] = {
                "[webhook a]\nurl = ftp://x\n",       "[webhook a]\nevents = rollout*\n",
                "[webhook a]\nevents = ,\n",          "[webhook a]\nretries = 21\n",
                "[webhook a]\ntimeout = 0\n",         "[webhook a]\ncolour = red\n",
                "[webhook a b]\nurl = http://x/\n",   "[webhook a]\nevents = Rollout.*\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                h = (Hooks) {};
                msg = NULL;
                assert_int_equal(parse(bad[i], &h, &msg), -EINVAL);
                assert_non_null(strstr(msg, "[webhook a"));
                free(msg);
                webhook_configs_free(h.l, h.n);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sign),
                cmocka_unit_test(test_config),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
