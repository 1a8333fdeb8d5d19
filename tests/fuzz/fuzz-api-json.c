/* Fuzzes the validation of JSON request bodies (check-ins, labels), the
 * check-in and lease messages of common/checkin.h both ways, and the iPXE
 * template renderer with the input as template and as values. Invariants
 * abort: a message a parser accepts is written back, and what is written
 * reads back the same. */
#include <jansson.h>
#include <stdint.h>

#include "checkin.h"
#include "hosts.h"
#include "ipxe.h"
#include "json.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether a and b (either may be NULL) are the same JSON. */
static bool same(json_t *a, json_t *b) {
        return a && b ? json_equal(a, b) : a == b;
}

/* For each message: parse j; when it parses, write it, parse that and
 * write it again: both writes must work and agree. */
#define ROUND_TRIP(Type, from_json, to_json, release)                                          \
        do {                                                                                   \
                Type m1 = {}, m2 = {};                                                         \
                _cleanup_json_ json_t *w1 = NULL, *w2 = NULL;                                  \
                if (from_json(j, &m1, NULL) >= 0) {                                            \
                        if (to_json(&m1, &w1, NULL) < 0 || from_json(w1, &m2, NULL) < 0 ||     \
                            to_json(&m2, &w2, NULL) < 0 || !same(w1, w2))                      \
                                abort();                                                       \
                }                                                                              \
                release;                                                                       \
        } while (0)

static void messages(json_t *j) {
        /* The server's check and the common parser agree. */
        {
                CheckinRequest r = {};
                if ((checkin_request_from_json(j, &r, NULL) >= 0) && hosts_checkin_invalid(j))
                        abort();
                checkin_request_release(&r);
        }
        ROUND_TRIP(CheckinRequest, checkin_request_from_json, checkin_request_to_json,
                   (checkin_request_release(&m1), checkin_request_release(&m2)));
        ROUND_TRIP(CheckinReply, checkin_reply_from_json, checkin_reply_to_json,
                   (checkin_reply_release(&m1), checkin_reply_release(&m2)));
        ROUND_TRIP(LeaseRequest, lease_request_from_json, lease_request_to_json, (void) 0);
        ROUND_TRIP(LeaseRelease, lease_release_from_json, lease_release_to_json, (void) 0);
        ROUND_TRIP(LeaseReply, lease_reply_from_json, lease_reply_to_json,
                   (lease_reply_release(&m1), lease_reply_release(&m2)));
        ROUND_TRIP(LeaseReleaseReply, lease_release_reply_from_json, lease_release_reply_to_json, (void) 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL, *out = NULL, *bad = NULL;
        json_t *j;

        if (size > 65536)
                return 0;
        j = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (j) {
                const char *key;
                json_t *v;

                (void) hosts_checkin_invalid(j);
                messages(j);
                json_object_foreach(j, key, v)
                        (void) label_valid(json_string_value(v)), (void) label_valid(key);
                json_decref(j);
        }
        s = strndup((const char *) data, size);
        if (!s)
                return 0;
        IpxeVars v = { .server = s, .mac = s, .cmdline = s };
        if (ipxe_render(s, &v, &out, &bad) == 0) {
                if (!out)
                        abort();
        } else if (!bad)
                abort();
        return 0;
}
