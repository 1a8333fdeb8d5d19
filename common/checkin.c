/* The check-in and lease messages (checkin.h). The check-in request's rules
 * are slipwayd's: checkin_request_check() is what it runs on every
 * check-in. */
#include <stdint.h>

#include "checkin.h"
#include "json.h"
#include "manifest.h"
#include "util.h"

/* Refuses the first member of j not in allowed, as slipwayd's request
 * parser does ("body: unknown member \"x\""). */
static int refuse_unknown(const json_t *j, const char *const *allowed, Error *error) {
        const char *key;
        json_t *v;

        json_object_foreach((json_t *) j, key, v) {
                bool ok = false;

                for (size_t i = 0; allowed[i]; i++)
                        ok = ok || streq(allowed[i], key);
                if (!ok) {
                        _cleanup_free_ char *k = json_escape_string(key);
                        return error_set(error, -EINVAL, "body: unknown member %s", k ? k : "?");
                }
        }
        return 0;
}

static bool absent(const json_t *v) {
        return !v || json_is_null(v);
}

/* A string member, or NULL when absent or null; -EINVAL when it is
 * something else. *ret is a copy. */
static int get_string(const json_t *j, const char *key, char **ret) {
        const json_t *v = json_object_get(j, key);

        *ret = NULL;
        if (absent(v))
                return 0;
        if (!json_is_string(v))
                return -EINVAL;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

/* An integer member from 0 to max; absent is 0. */
static int get_uint(const json_t *j, const char *key, uint64_t max, uint64_t *ret) {
        const json_t *v = json_object_get(j, key);

        *ret = 0;
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max)
                return -EINVAL;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

/* A boolean member; absent is false. */
static int get_bool(const json_t *j, const char *key, bool *ret) {
        const json_t *v = json_object_get(j, key);

        *ret = false;
        if (!v)
                return 0;
        if (!json_is_boolean(v))
                return -EINVAL;
        *ret = json_is_true(v);
        return 0;
}

/* Sets a member to s, or to null when s is NULL. */
static int set_string(json_t *j, const char *key, const char *s) {
        return json_object_set_new(j, key, s ? json_string(s) : json_null()) < 0 ? -EINVAL : 0;
}

static int set_uint(json_t *j, const char *key, uint64_t v) {
        if (v > INT64_MAX)
                return -EINVAL;
        return json_object_set_new(j, key, json_integer((json_int_t) v)) < 0 ? -ENOMEM : 0;
}

/* ---- check-in ---- */

static const char *const checkin_members[] = {
        "state", "version", "image", "booted_slot", "slots", "health", "facts", "message", "failed_image", NULL,
};

static bool image_id_or_null(const json_t *v) {
        return absent(v) || (json_is_string(v) && sha256_hex_valid(json_string_value(v)));
}

static bool string_or_null(const json_t *v, size_t max) {
        return absent(v) || (json_is_string(v) && strlen(json_string_value(v)) <= max);
}

const char *checkin_request_check(const json_t *body) {
        const json_t *v;

        if (host_state_from_string(json_string_value(json_object_get(body, "state"))) < 0)
                return "'state': not a host state";
        if (!image_id_or_null(json_object_get(body, "image")))
                return "'image': expected an image ID or null";
        v = json_object_get(body, "booted_slot");
        if (!absent(v) &&
            !(json_is_string(v) && (streq(json_string_value(v), "a") || streq(json_string_value(v), "b"))))
                return "'booted_slot': expected \"a\" or \"b\"";
        if (!image_id_or_null(json_object_get(body, "failed_image")))
                return "'failed_image': expected an image ID or null";
        if (!string_or_null(json_object_get(body, "version"), CHECKIN_VERSION_MAX))
                return "'version': expected a string";
        if (!string_or_null(json_object_get(body, "message"), CHECKIN_MESSAGE_MAX))
                return "'message': expected a string of at most 4096 bytes";
        for (const char *const *k = (const char *const[]) { "slots", "health", "facts", NULL }; *k; k++) {
                v = json_object_get(body, *k);
                if (!absent(v) && !json_is_object(v))
                        return "'slots', 'health' and 'facts' must be objects";
        }
        return NULL;
}

/* The object member key of j (a new reference), NULL when absent or null. */
static json_t *get_object(const json_t *j, const char *key) {
        json_t *v = json_object_get(j, key);
        return absent(v) ? NULL : json_incref(v);
}

int checkin_request_from_json(const json_t *j, CheckinRequest *ret, Error *error) {
        _cleanup_(checkin_request_release) CheckinRequest c = {};
        const char *why;
        int r;

        if (!json_is_object(j))
                return error_set(error, -EINVAL, "body: not a JSON object");
        r = refuse_unknown(j, checkin_members, error);
        if (r < 0)
                return r;
        why = checkin_request_check(j);
        if (why)
                return error_set(error, -EINVAL, "%s", why);
        c.state = host_state_from_string(json_string_value(json_object_get(j, "state")));
        if (json_is_string(json_object_get(j, "booted_slot")))
                c.booted_slot = json_string_value(json_object_get(j, "booted_slot"))[0];
        c.slots = get_object(j, "slots");
        c.health = get_object(j, "health");
        c.facts = get_object(j, "facts");
        if (get_string(j, "version", &c.version) < 0 || get_string(j, "image", &c.image) < 0 ||
            get_string(j, "message", &c.message) < 0 || get_string(j, "failed_image", &c.failed_image) < 0)
                return error_set(error, -ENOMEM, "out of memory");
        *ret = c;
        c = (CheckinRequest) {};
        return 0;
}

/* The first bytes of s, at most max, ending on a whole UTF-8 character. */
static char *cut_utf8(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n > max) {
                n = max;
                /* Back over the continuation bytes of a character cut in two. */
                while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                        n--;
        }
        return strndup(s, n);
}

int checkin_request_to_json(const CheckinRequest *r, json_t **ret, Error *error) {
        _cleanup_json_ json_t *j = json_object();
        _cleanup_free_ char *message = NULL;
        char slot[2] = { r->booted_slot, 0 };
        const char *why;

        if (!j || (r->message && !(message = cut_utf8(r->message, CHECKIN_MESSAGE_MAX))))
                return error_set(error, -ENOMEM, "out of memory");
        if (json_object_set_new(j, "state", json_string(strempty(host_state_to_string(r->state)))) < 0 ||
            set_string(j, "version", r->version) < 0 || set_string(j, "image", r->image) < 0 ||
            set_string(j, "booted_slot", r->booted_slot ? slot : NULL) < 0 ||
            set_string(j, "message", message) < 0 || set_string(j, "failed_image", r->failed_image) < 0 ||
            (r->slots && json_object_set(j, "slots", r->slots) < 0) ||
            (r->health && json_object_set(j, "health", r->health) < 0) ||
            (r->facts && json_object_set(j, "facts", r->facts) < 0))
                /* json_string() refuses what is not UTF-8. */
                return error_set(error, -EINVAL, "a check-in member is not UTF-8");
        why = checkin_request_check(j);
        if (why)
                return error_set(error, -EINVAL, "%s", why);
        *ret = TAKE_PTR(j);
        return 0;
}

void checkin_request_release(CheckinRequest *r) {
        if (!r)
                return;
        free(r->version);
        free(r->image);
        free(r->message);
        free(r->failed_image);
        json_decref(r->slots);
        json_decref(r->health);
        json_decref(r->facts);
        *r = (CheckinRequest) {};
}

void desired_image_release(DesiredImage *d) {
        if (!d)
                return;
        free(d->image);
        free(d->name);
        free(d->version);
        free(d->manifest);
        free(d->signature);
        free(d->files);
        *d = (DesiredImage) {};
}

/* Whether member key of j is a string valid() takes. */
static bool member_is(const json_t *j, const char *key, bool (*valid)(const char *s)) {
        const char *v = json_string_value(json_object_get(j, key));
        return v && valid(v);
}

/* Checks a check-in reply; returns NULL or a static message. */
static const char *checkin_reply_check(const json_t *j) {
        const json_t *d = json_object_get(j, "desired");
        uint64_t u;

        if (!json_is_object(j))
                return "not a JSON object";
        if (get_uint(j, "checkin_interval", INT64_MAX, &u) < 0)
                return "'checkin_interval': expected seconds";
        if (absent(d))
                return NULL;
        if (!json_is_object(d))
                return "'desired': expected an object or null";
        if (!member_is(d, "image", sha256_hex_valid))
                return "'desired.image': expected an image ID";
        if (!member_is(d, "name", image_name_valid))
                return "'desired.name': expected an image name";
        if (!member_is(d, "version", image_version_valid))
                return "'desired.version': expected an image version";
        if (!member_is(d, "manifest", sha256_hex_valid))
                return "'desired.manifest': expected a sha256 digest";
        if (!member_is(d, "signature", sha256_hex_valid))
                return "'desired.signature': expected a sha256 digest";
        if (json_object_get(d, "rollback") && !json_is_boolean(json_object_get(d, "rollback")))
                return "'desired.rollback': expected a boolean";
        if (json_object_get(d, "files") && !member_is(d, "files", sha256_hex_valid))
                return "'desired.files': expected a sha256 digest";
        return NULL;
}

int checkin_reply_from_json(const json_t *j, CheckinReply *ret, Error *error) {
        _cleanup_(checkin_reply_release) CheckinReply c = {};
        const char *why = checkin_reply_check(j);
        const json_t *d;

        if (why)
                return error_set(error, -EBADMSG, "%s", why);
        (void) get_uint(j, "checkin_interval", INT64_MAX, &c.checkin_interval);
        d = json_object_get(j, "desired");
        if (!absent(d)) {
                (void) get_bool(d, "rollback", &c.desired.rollback);
                if (get_string(d, "image", &c.desired.image) < 0 || get_string(d, "name", &c.desired.name) < 0 ||
                    get_string(d, "version", &c.desired.version) < 0 ||
                    get_string(d, "manifest", &c.desired.manifest) < 0 ||
                    get_string(d, "signature", &c.desired.signature) < 0 ||
                    get_string(d, "files", &c.desired.files) < 0)
                        return error_set(error, -ENOMEM, "out of memory");
        }
        *ret = c;
        c = (CheckinReply) {};
        return 0;
}

int checkin_reply_to_json(const CheckinReply *r, json_t **ret, Error *error) {
        const DesiredImage *w = &r->desired;
        _cleanup_json_ json_t *j = NULL;
        const char *why;

        if (r->checkin_interval > INT64_MAX)
                return error_set(error, -EINVAL, "'checkin_interval': expected seconds");
        if (w->image)
                j = json_pack("{s:{s:s, s:s?, s:s?, s:s?, s:s?, s:b}, s:I}", "desired", "image", w->image, "name",
                              w->name, "version", w->version, "manifest", w->manifest, "signature", w->signature,
                              "rollback", w->rollback, "checkin_interval", (json_int_t) r->checkin_interval);
        else
                j = json_pack("{s:n, s:I}", "desired", "checkin_interval", (json_int_t) r->checkin_interval);
        if (!j)
                return error_set(error, -EINVAL, "the desired image is not UTF-8");
        if (w->image && w->files &&
            json_object_set_new(json_object_get(j, "desired"), "files", json_string(w->files)) < 0)
                return error_set(error, -EINVAL, "the desired files are not UTF-8");
        why = checkin_reply_check(j);
        if (why)
                return error_set(error, -EINVAL, "%s", why);
        *ret = TAKE_PTR(j);
        return 0;
}

void checkin_reply_release(CheckinReply *r) {
        if (!r)
                return;
        desired_image_release(&r->desired);
        *r = (CheckinReply) {};
}

/* ---- leases ---- */

/* The optional body {"NAME": N} of a lease call, N from 0 to max, and how
 * slipwayd says what it expected ("'wait': expected seconds, 0 to 60"). */
typedef struct LeaseBody {
        const char *name;
        uint64_t max;
        const char *expected;
} LeaseBody;

static const LeaseBody wait_body = { "wait", LEASE_WAIT_MAX_SEC, "seconds, 0 to 60" };
static const LeaseBody epoch_body = { "epoch", INT64_MAX, "a lease epoch" };

static int lease_body_from_json(const json_t *j, const LeaseBody *b, uint64_t *ret, Error *error) {
        const char *const allowed[] = { b->name, NULL };
        uint64_t v = 0;
        int r;

        if (j) {
                if (!json_is_object(j))
                        return error_set(error, -EINVAL, "body: not a JSON object");
                r = refuse_unknown(j, allowed, error);
                if (r < 0)
                        return r;
                if (get_uint(j, b->name, b->max, &v) < 0)
                        return error_set(error, -EINVAL, "'%s': expected %s", b->name, b->expected);
        }
        *ret = v;
        return 0;
}

static int lease_body_to_json(const LeaseBody *b, uint64_t v, json_t **ret, Error *error) {
        if (v > b->max)
                return error_set(error, -EINVAL, "'%s': expected %s", b->name, b->expected);
        *ret = json_pack("{s:I}", b->name, (json_int_t) v);
        return *ret ? 0 : error_set(error, -ENOMEM, "out of memory");
}

int lease_request_from_json(const json_t *j, LeaseRequest *ret, Error *error) {
        return lease_body_from_json(j, &wait_body, &ret->wait, error);
}

int lease_request_to_json(const LeaseRequest *r, json_t **ret, Error *error) {
        return lease_body_to_json(&wait_body, r->wait, ret, error);
}

int lease_release_from_json(const json_t *j, LeaseRelease *ret, Error *error) {
        return lease_body_from_json(j, &epoch_body, &ret->epoch, error);
}

int lease_release_to_json(const LeaseRelease *r, json_t **ret, Error *error) {
        return lease_body_to_json(&epoch_body, r->epoch, ret, error);
}

int lease_reply_from_json(const json_t *j, LeaseReply *ret, Error *error) {
        _cleanup_(lease_reply_release) LeaseReply l = {};
        int r;

        if (!json_is_object(j))
                return error_set(error, -EBADMSG, "not a JSON object");
        if (!json_is_boolean(json_object_get(j, "granted")))
                return error_set(error, -EBADMSG, "'granted': expected a boolean");
        l.granted = json_is_true(json_object_get(j, "granted"));
        if (get_uint(j, "epoch", INT64_MAX, &l.epoch) < 0 || (l.granted && l.epoch == 0))
                return error_set(error, -EBADMSG, "'epoch': expected a lease epoch");
        if (get_uint(j, "expires", INT64_MAX, &l.expires) < 0)
                return error_set(error, -EBADMSG, "'expires': expected Unix seconds");
        if (get_uint(j, "retry_after", INT64_MAX, &l.retry_after) < 0)
                return error_set(error, -EBADMSG, "'retry_after': expected seconds");
        if (get_uint(j, "waited", INT64_MAX, &l.waited) < 0)
                return error_set(error, -EBADMSG, "'waited': expected seconds");
        r = get_string(j, "reason", &l.reason);
        if (r == -EINVAL)
                return error_set(error, -EBADMSG, "'reason': expected a string or null");
        if (r >= 0)
                r = get_string(j, "group", &l.group);
        if (r == -EINVAL)
                return error_set(error, -EBADMSG, "'group': expected a string or null");
        if (r < 0)
                return error_set(error, r, "out of memory");
        *ret = l;
        l = (LeaseReply) {};
        return 0;
}

int lease_reply_to_json(const LeaseReply *r, json_t **ret, Error *error) {
        _cleanup_json_ json_t *j = json_object();
        int k;

        if (!j)
                return error_set(error, -ENOMEM, "out of memory");
        k = json_object_set_new(j, "granted", json_boolean(r->granted)) < 0 ? -ENOMEM : 0;
        if (k >= 0 && r->granted && r->epoch == 0)
                return error_set(error, -EINVAL, "'epoch': expected a lease epoch");
        if (k >= 0 && r->granted) {
                k = set_uint(j, "epoch", r->epoch);
                if (k >= 0)
                        k = set_uint(j, "expires", r->expires);
        } else if (k >= 0) {
                k = set_string(j, "reason", r->reason);
                if (k >= 0)
                        k = set_string(j, "group", r->group);
                if (k >= 0)
                        k = set_uint(j, "retry_after", r->retry_after);
        }
        if (k >= 0 && r->waited > 0)
                k = set_uint(j, "waited", r->waited);
        if (k < 0)
                return error_set(error, -EINVAL, "a lease reply member is out of range or not UTF-8");
        *ret = TAKE_PTR(j);
        return 0;
}

void lease_reply_release(LeaseReply *r) {
        if (!r)
                return;
        free(r->reason);
        free(r->group);
        *r = (LeaseReply) {};
}

int lease_release_reply_from_json(const json_t *j, LeaseReleaseReply *ret, Error *error) {
        if (!json_is_object(j))
                return error_set(error, -EBADMSG, "not a JSON object");
        if (!json_is_boolean(json_object_get(j, "released")))
                return error_set(error, -EBADMSG, "'released': expected a boolean");
        *ret = (LeaseReleaseReply) { .released = json_is_true(json_object_get(j, "released")) };
        return 0;
}

int lease_release_reply_to_json(const LeaseReleaseReply *r, json_t **ret, Error *error) {
        *ret = json_pack("{s:b}", "released", r->released);
        return *ret ? 0 : error_set(error, -ENOMEM, "out of memory");
}
