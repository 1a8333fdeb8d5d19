/* common/checkin.h: the check-in and lease messages, both ways, and each
 * refusal with the message slipwayd sends for it. */
#include "tests.h"

#include "checkin.h"
#include "hosts.h"
#include "json.h"
#include "util.h"

#define ID1 "3b1c0000000000000000000000000000000000000000000000000000000000aa"
#define ID2 "9d0e0000000000000000000000000000000000000000000000000000000000bb"
#define ID3 "51f00000000000000000000000000000000000000000000000000000000000cc"

static json_t *parse(const char *text) {
        json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

        assert_non_null(j);
        return j;
}

static void assert_json_equal(json_t *j, const char *want) {
        _cleanup_free_ char *got = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

        assert_non_null(got);
        assert_string_equal(got, want);
}

static void test_request_round_trip(void **state) {
        _cleanup_json_ json_t *slots = parse("{\"a\": {\"image\": \"" ID1 "\", \"version\": \"1.0\"}}");
        _cleanup_json_ json_t *health = parse("{\"required\": \"pass\"}");
        _cleanup_json_ json_t *j = NULL, *again = NULL;
        _cleanup_(checkin_request_release) CheckinRequest back = {};
        CheckinRequest r = {
                .state = HOST_ROLLED_BACK,
                .version = (char *) "1.0",
                .image = (char *) ID1,
                .booted_slot = 'b',
                .slots = slots,
                .health = health,
                .message = (char *) "required health check failed on 2.0: web",
                .failed_image = (char *) ID2,
        };
        (void) state;

        assert_int_equal(checkin_request_to_json(&r, &j, NULL), 0);
        assert_json_equal(j, "{\"booted_slot\":\"b\",\"failed_image\":\"" ID2 "\",\"health\":{\"required\":\"pass\"},"
                             "\"image\":\"" ID1 "\",\"message\":\"required health check failed on 2.0: web\","
                             "\"slots\":{\"a\":{\"image\":\"" ID1 "\",\"version\":\"1.0\"}},\"state\":\"rolled-back\","
                             "\"version\":\"1.0\"}");
        /* What the agent sends, the server takes. */
        assert_null(hosts_checkin_invalid(j));
        assert_int_equal(checkin_request_from_json(j, &back, NULL), 0);
        assert_int_equal(back.state, HOST_ROLLED_BACK);
        assert_string_equal(back.version, "1.0");
        assert_string_equal(back.image, ID1);
        assert_int_equal(back.booted_slot, 'b');
        assert_true(json_equal(back.slots, slots));
        assert_true(json_equal(back.health, health));
        assert_null(back.facts);
        assert_string_equal(back.message, r.message);
        assert_string_equal(back.failed_image, ID2);
        assert_int_equal(checkin_request_to_json(&back, &again, NULL), 0);
        assert_true(json_equal(again, j));
}

/* The least a check-in says: the unknown members are null, the objects
 * left out. */
static void test_request_least(void **state) {
        _cleanup_(checkin_request_release) CheckinRequest back = {};
        _cleanup_json_ json_t *j = NULL, *bare = parse("{\"state\": \"registered\"}");
        (void) state;

        assert_int_equal(checkin_request_to_json(&(CheckinRequest) { .state = HOST_INSTALLING }, &j, NULL), 0);
        assert_json_equal(j, "{\"booted_slot\":null,\"failed_image\":null,\"image\":null,\"message\":null,"
                             "\"state\":\"installing\",\"version\":null}");
        assert_int_equal(checkin_request_from_json(bare, &back, NULL), 0);
        assert_int_equal(back.state, HOST_REGISTERED);
        assert_null(back.version);
        assert_int_equal(back.booted_slot, 0);
}

/* Every refusal of the server, with its message: the common parser and
 * the server's check are one. */
static void test_request_refusals(void **state) {
        static const struct {
                const char *body, *message;
        } cases[] = {
                { "{}", "'state': not a host state" },
                { "{\"state\": \"sleeping\"}", "'state': not a host state" },
                { "{\"state\": 1}", "'state': not a host state" },
                { "{\"state\": \"healthy\", \"image\": \"3b1c\"}", "'image': expected an image ID or null" },
                { "{\"state\": \"healthy\", \"image\": \"" ID1 "X\"}", "'image': expected an image ID or null" },
                { "{\"state\": \"healthy\", \"image\": 5}", "'image': expected an image ID or null" },
                { "{\"state\": \"healthy\", \"booted_slot\": \"c\"}", "'booted_slot': expected \"a\" or \"b\"" },
                { "{\"state\": \"healthy\", \"booted_slot\": \"ab\"}", "'booted_slot': expected \"a\" or \"b\"" },
                { "{\"state\": \"healthy\", \"failed_image\": \"x\"}", "'failed_image': expected an image ID or null" },
                { "{\"state\": \"healthy\", \"version\": 1}", "'version': expected a string" },
                { "{\"state\": \"healthy\", \"version\": "
                  "\"12345678901234567890123456789012345678901234567890123456789012345\"}",
                  "'version': expected a string" },
                { "{\"state\": \"healthy\", \"message\": true}", "'message': expected a string of at most 4096 bytes" },
                { "{\"state\": \"healthy\", \"slots\": []}", "'slots', 'health' and 'facts' must be objects" },
                { "{\"state\": \"healthy\", \"health\": \"pass\"}", "'slots', 'health' and 'facts' must be objects" },
                { "{\"state\": \"healthy\", \"facts\": 1}", "'slots', 'health' and 'facts' must be objects" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(checkin_request_release) CheckinRequest r = {};
                _cleanup_json_ json_t *j = parse(cases[i].body);
                _cleanup_error_ Error e = {};

                print_message("%s\n", cases[i].body);
                assert_int_equal(checkin_request_from_json(j, &r, &e), -EINVAL);
                assert_int_equal(e.code, -EINVAL);
                assert_string_equal(e.message, cases[i].message);
                assert_string_equal(hosts_checkin_invalid(j), cases[i].message);
        }
}

/* What the server's request parser refuses before the members are looked
 * at, the common parser refuses with the same words. */
static void test_request_unknown_member(void **state) {
        _cleanup_json_ json_t *j = parse("{\"state\": \"healthy\", \"colour\": \"blue\"}"), *a = parse("[]");
        _cleanup_(checkin_request_release) CheckinRequest r = {};
        _cleanup_error_ Error e = {};
        (void) state;

        assert_int_equal(checkin_request_from_json(j, &r, &e), -EINVAL);
        assert_string_equal(e.message, "body: unknown member \"colour\"");
        assert_int_equal(checkin_request_from_json(a, &r, &e), -EINVAL);
        assert_string_equal(e.message, "body: not a JSON object");
}

/* The agent could report a message longer than the server takes (a long
 * list of failed health checks), and then every check-in of the host was
 * refused: the host looked silent, so down. The message is cut to the cap,
 * on a character boundary. */
static void test_request_long_message(void **state) {
        _cleanup_free_ char *m = malloc(CHECKIN_MESSAGE_MAX + 100);
        _cleanup_json_ json_t *j = NULL, *k = NULL;
        (void) state;

        assert_non_null(m);
        memset(m, 'x', CHECKIN_MESSAGE_MAX + 99);
        m[CHECKIN_MESSAGE_MAX + 99] = 0;
        CheckinRequest r = { .state = HOST_FAILED, .message = m };
        assert_int_equal(checkin_request_to_json(&r, &j, NULL), 0);
        assert_null(hosts_checkin_invalid(j));
        assert_int_equal(strlen(json_string_value(json_object_get(j, "message"))), CHECKIN_MESSAGE_MAX);

        /* "é" (two bytes) across the cap goes whole. */
        m[CHECKIN_MESSAGE_MAX - 1] = (char) 0xc3;
        m[CHECKIN_MESSAGE_MAX] = (char) 0xa9;
        assert_int_equal(checkin_request_to_json(&r, &k, NULL), 0);
        assert_null(hosts_checkin_invalid(k));
        assert_int_equal(strlen(json_string_value(json_object_get(k, "message"))), CHECKIN_MESSAGE_MAX - 1);
}

/* What the server would refuse is not sent. */
static void test_request_to_json_refusals(void **state) {
        static const char long_version[] = "12345678901234567890123456789012345678901234567890123456789012345";
        const struct {
                CheckinRequest r;
                const char *message;
        } cases[] = {
                { { .state = _HOST_STATE_INVALID }, "'state': not a host state" },
                { { .state = HOST_HEALTHY, .image = (char *) "3b1c" }, "'image': expected an image ID or null" },
                { { .state = HOST_HEALTHY, .booted_slot = 'c' }, "'booted_slot': expected \"a\" or \"b\"" },
                { { .state = HOST_HEALTHY, .version = (char *) long_version }, "'version': expected a string" },
                { { .state = HOST_HEALTHY, .failed_image = (char *) "" },
                  "'failed_image': expected an image ID or null" },
                { { .state = HOST_HEALTHY, .message = (char *) "\xff" }, "a check-in member is not UTF-8" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_error_ Error e = {};
                json_t *j = NULL;

                assert_int_equal(checkin_request_to_json(&cases[i].r, &j, &e), -EINVAL);
                assert_null(j);
                assert_string_equal(e.message, cases[i].message);
        }
}

static void test_reply_round_trip(void **state) {
        _cleanup_(checkin_reply_release) CheckinReply back = {}, none = {};
        _cleanup_json_ json_t *j = NULL, *n = NULL, *again = NULL;
        CheckinReply r = {
                .desired = { .image = (char *) ID2, .name = (char *) "tiny", .version = (char *) "2.0",
                             .manifest = (char *) ID2, .signature = (char *) ID3, .rollback = true },
                .checkin_interval = 30,
        };
        (void) state;

        assert_int_equal(checkin_reply_to_json(&r, &j, NULL), 0);
        assert_json_equal(j, "{\"checkin_interval\":30,\"desired\":{\"image\":\"" ID2 "\",\"manifest\":\"" ID2
                             "\",\"name\":\"tiny\",\"rollback\":true,\"signature\":\"" ID3 "\",\"version\":\"2.0\"}}");
        assert_int_equal(checkin_reply_from_json(j, &back, NULL), 0);
        assert_string_equal(back.desired.image, ID2);
        assert_string_equal(back.desired.name, "tiny");
        assert_string_equal(back.desired.version, "2.0");
        assert_string_equal(back.desired.manifest, ID2);
        assert_string_equal(back.desired.signature, ID3);
        assert_true(back.desired.rollback);
        assert_int_equal(back.checkin_interval, 30);
        assert_int_equal(checkin_reply_to_json(&back, &again, NULL), 0);
        assert_true(json_equal(again, j));

        /* Nothing assigned. */
        assert_int_equal(checkin_reply_to_json(&(CheckinReply) { .checkin_interval = 5 }, &n, NULL), 0);
        assert_json_equal(n, "{\"checkin_interval\":5,\"desired\":null}");
        assert_int_equal(checkin_reply_from_json(n, &none, NULL), 0);
        assert_null(none.desired.image);
        assert_int_equal(none.checkin_interval, 5);

        /* With the digest of the host's files (docs/host-files.md). */
        _cleanup_(checkin_reply_release) CheckinReply withfiles = {};
        _cleanup_json_ json_t *f = NULL;
        r.desired.files = (char *) ID1;
        assert_int_equal(checkin_reply_to_json(&r, &f, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(json_object_get(f, "desired"), "files")), ID1);
        assert_int_equal(checkin_reply_from_json(f, &withfiles, NULL), 0);
        assert_string_equal(withfiles.desired.files, ID1);
        /* A reply without it, from a server that has no host files. */
        assert_null(back.desired.files);
}

static void test_reply_refusals(void **state) {
        static const struct {
                const char *body, *message;
        } cases[] = {
                { "[]", "not a JSON object" },
                { "{\"desired\": null, \"checkin_interval\": -1}", "'checkin_interval': expected seconds" },
                { "{\"desired\": null, \"checkin_interval\": \"30\"}", "'checkin_interval': expected seconds" },
                { "{\"desired\": 5}", "'desired': expected an object or null" },
                { "{\"desired\": {\"image\": \"x\"}}", "'desired.image': expected an image ID" },
                { "{\"desired\": {\"image\": \"" ID1 "\", \"name\": \"-x\"}}",
                  "'desired.name': expected an image name" },
                { "{\"desired\": {\"image\": \"" ID1 "\", \"name\": \"tiny\", \"version\": \"1.0+1\"}}",
                  "'desired.version': expected an image version" },
                { "{\"desired\": {\"image\": \"" ID1 "\", \"name\": \"tiny\", \"version\": \"1.0\"}}",
                  "'desired.manifest': expected a sha256 digest" },
                { "{\"desired\": {\"image\": \"" ID1 "\", \"name\": \"tiny\", \"version\": \"1.0\", "
                  "\"manifest\": \"" ID1 "\", \"signature\": null}}",
                  "'desired.signature': expected a sha256 digest" },
                { "{\"desired\": {\"image\": \"" ID1 "\", \"name\": \"tiny\", \"version\": \"1.0\", "
                  "\"manifest\": \"" ID1 "\", \"signature\": \"" ID2 "\", \"rollback\": 1}}",
                  "'desired.rollback': expected a boolean" },
                { "{\"desired\": {\"image\": \"" ID1 "\", \"name\": \"tiny\", \"version\": \"1.0\", "
                  "\"manifest\": \"" ID1 "\", \"signature\": \"" ID2 "\", \"files\": \"x\"}}",
                  "'desired.files': expected a sha256 digest" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(checkin_reply_release) CheckinReply r = {};
                _cleanup_json_ json_t *j = parse(cases[i].body);
                _cleanup_error_ Error e = {};

                print_message("%s\n", cases[i].body);
                assert_int_equal(checkin_reply_from_json(j, &r, &e), -EBADMSG);
                assert_string_equal(e.message, cases[i].message);
        }
}

static void test_lease_request(void **state) {
        _cleanup_json_ json_t *j = NULL, *k = NULL;
        LeaseRequest back = { .wait = 99 };
        LeaseRelease rel = { .epoch = 99 };
        (void) state;

        assert_int_equal(lease_request_to_json(&(LeaseRequest) { .wait = 20 }, &j, NULL), 0);
        assert_json_equal(j, "{\"wait\":20}");
        assert_int_equal(lease_request_from_json(j, &back, NULL), 0);
        assert_int_equal(back.wait, 20);
        /* An empty body (and {}) waits for nothing. */
        assert_int_equal(lease_request_from_json(NULL, &back, NULL), 0);
        assert_int_equal(back.wait, 0);

        assert_int_equal(lease_release_to_json(&(LeaseRelease) { .epoch = 42 }, &k, NULL), 0);
        assert_json_equal(k, "{\"epoch\":42}");
        assert_int_equal(lease_release_from_json(k, &rel, NULL), 0);
        assert_int_equal(rel.epoch, 42);
        assert_int_equal(lease_release_from_json(NULL, &rel, NULL), 0);
        assert_int_equal(rel.epoch, 0);
}

/* As the server's lease calls refuse their bodies. */
static void test_lease_request_refusals(void **state) {
        static const struct {
                bool release;
                const char *body, *message;
        } cases[] = {
                { false, "{\"wait\": 61}", "'wait': expected seconds, 0 to 60" },
                { false, "{\"wait\": -1}", "'wait': expected seconds, 0 to 60" },
                { false, "{\"wait\": \"5\"}", "'wait': expected seconds, 0 to 60" },
                { false, "{\"wait\": 5, \"epoch\": 1}", "body: unknown member \"epoch\"" },
                { false, "[1]", "body: not a JSON object" },
                { true, "{\"epoch\": -1}", "'epoch': expected a lease epoch" },
                { true, "{\"epoch\": 1.5}", "'epoch': expected a lease epoch" },
                { true, "{\"wait\": 1}", "body: unknown member \"wait\"" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_json_ json_t *j = parse(cases[i].body);
                _cleanup_error_ Error e = {};
                LeaseRequest q;
                LeaseRelease l;

                print_message("%s\n", cases[i].body);
                if (cases[i].release)
                        assert_int_equal(lease_release_from_json(j, &l, &e), -EINVAL);
                else
                        assert_int_equal(lease_request_from_json(j, &q, &e), -EINVAL);
                assert_string_equal(e.message, cases[i].message);
        }
        assert_int_equal(lease_request_to_json(&(LeaseRequest) { .wait = LEASE_WAIT_MAX_SEC + 1 }, &(json_t *) { NULL },
                                               NULL),
                         -EINVAL);
}

static void test_lease_reply(void **state) {
        _cleanup_json_ json_t *g = NULL, *f = NULL, *w = NULL, *rr = NULL;
        _cleanup_(lease_reply_release) LeaseReply granted = {}, refused = {}, waited = {};
        LeaseReleaseReply released = {};
        (void) state;

        assert_int_equal(lease_reply_to_json(&(LeaseReply) { .granted = true, .epoch = 42, .expires = 1764000900 }, &g,
                                             NULL),
                         0);
        assert_json_equal(g, "{\"epoch\":42,\"expires\":1764000900,\"granted\":true}");
        assert_int_equal(lease_reply_from_json(g, &granted, NULL), 0);
        assert_true(granted.granted);
        assert_int_equal(granted.epoch, 42);
        assert_int_equal(granted.expires, 1764000900);

        LeaseReply no = { .reason = (char *) "group rack=r1: 1 of 4 hosts are down", .group = (char *) "rack=r1",
                          .retry_after = 10 };
        assert_int_equal(lease_reply_to_json(&no, &f, NULL), 0);
        assert_json_equal(f, "{\"granted\":false,\"group\":\"rack=r1\",\"reason\":\"group rack=r1: 1 of 4 hosts are "
                             "down\",\"retry_after\":10}");
        assert_int_equal(lease_reply_from_json(f, &refused, NULL), 0);
        assert_false(refused.granted);
        assert_string_equal(refused.reason, no.reason);
        assert_string_equal(refused.group, "rack=r1");
        assert_int_equal(refused.retry_after, 10);
        assert_int_equal(refused.waited, 0);

        /* A quarantined host: no group; and a request that waited. */
        assert_int_equal(lease_reply_to_json(&(LeaseReply) { .retry_after = 10, .waited = 20 }, &w, NULL), 0);
        assert_json_equal(w, "{\"granted\":false,\"group\":null,\"reason\":null,\"retry_after\":10,\"waited\":20}");
        assert_int_equal(lease_reply_from_json(w, &waited, NULL), 0);
        assert_null(waited.group);
        assert_int_equal(waited.waited, 20);

        assert_int_equal(lease_release_reply_to_json(&(LeaseReleaseReply) { .released = true }, &rr, NULL), 0);
        assert_json_equal(rr, "{\"released\":true}");
        assert_int_equal(lease_release_reply_from_json(rr, &released, NULL), 0);
        assert_true(released.released);
}

static void test_lease_reply_refusals(void **state) {
        static const struct {
                const char *body, *message;
        } cases[] = {
                { "{}", "'granted': expected a boolean" },
                { "{\"granted\": 1}", "'granted': expected a boolean" },
                { "{\"granted\": true, \"expires\": 5}", "'epoch': expected a lease epoch" },
                { "{\"granted\": true, \"epoch\": -3}", "'epoch': expected a lease epoch" },
                { "{\"granted\": true, \"epoch\": 3, \"expires\": \"soon\"}", "'expires': expected Unix seconds" },
                { "{\"granted\": false, \"retry_after\": -1}", "'retry_after': expected seconds" },
                { "{\"granted\": false, \"waited\": true}", "'waited': expected seconds" },
                { "{\"granted\": false, \"reason\": 5}", "'reason': expected a string or null" },
                { "{\"granted\": false, \"group\": []}", "'group': expected a string or null" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(lease_reply_release) LeaseReply r = {};
                _cleanup_json_ json_t *j = parse(cases[i].body);
                _cleanup_error_ Error e = {};

                print_message("%s\n", cases[i].body);
                assert_int_equal(lease_reply_from_json(j, &r, &e), -EBADMSG);
                assert_string_equal(e.message, cases[i].message);
        }

        _cleanup_json_ json_t *rr = parse("{\"released\": \"yes\"}");
        _cleanup_error_ Error e = {};
        LeaseReleaseReply released;
        assert_int_equal(lease_release_reply_from_json(rr, &released, &e), -EBADMSG);
        assert_string_equal(e.message, "'released': expected a boolean");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_round_trip),
                cmocka_unit_test(test_request_least),
                cmocka_unit_test(test_request_refusals),
                cmocka_unit_test(test_request_unknown_member),
                cmocka_unit_test(test_request_long_message),
                cmocka_unit_test(test_request_to_json_refusals),
                cmocka_unit_test(test_reply_round_trip),
                cmocka_unit_test(test_reply_refusals),
                cmocka_unit_test(test_lease_request),
                cmocka_unit_test(test_lease_request_refusals),
                cmocka_unit_test(test_lease_reply),
                cmocka_unit_test(test_lease_reply_refusals),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
