#include <ctype.h>

#include "audit.h"
#include "checkin.h"
#include "coordinator.h"
#include "enroll.h"
#include "hash.h"
#include "hoststate.h"
#include "hosts.h"
#include "log.h"
#include "tokens.h"
#include "util.h"
#include "store-hosts.h"

/* Checks s against pattern, where 'x' is a hex digit (lowercased into ret)
 * and any other character must appear as itself or as one of the
 * characters in alt (written as the pattern's). ret holds strlen(pattern)+1. */
static int normalize_hex(const char *s, const char *pattern, const char *alt, char *ret) {
        size_t n = strlen(pattern);
        char out[64];

        if (!s || strlen(s) != n || n >= sizeof out)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (pattern[i] == 'x') {
                        if (!isxdigit((unsigned char) s[i]))
                                return -EINVAL;
                        out[i] = (char) tolower((unsigned char) s[i]);
                } else {
                        if (s[i] != pattern[i] && !(alt && strchr(alt, s[i])))
                                return -EINVAL;
                        out[i] = pattern[i];
                }
        }
        out[n] = 0;
        memcpy(ret, out, n + 1);
        return 0;
}

int mac_normalize(const char *s, char ret[18]) {
        return normalize_hex(s, "xx:xx:xx:xx:xx:xx", "-", ret);
}

int uuid_normalize(const char *s, char ret[37]) {
        return normalize_hex(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", NULL, ret);
}

int hosts_find(StoreTx *tx, const char *ref, char ret_id[16]) {
        char mac[18] = "";

        (void) mac_normalize(ref, mac);
        return store_host_find(tx, ref, mac, ret_id);
}

static json_t *json_or_null(json_t *v) {
        return v ? json_incref(v) : json_null();
}

static json_t *time_or_null(uint64_t t) {
        return t ? json_integer((json_int_t) t) : json_null();
}

json_t *host_to_json(const Host *h) {
        json_t *labels = json_object(), *j;

        if (!labels)
                return NULL;
        for (size_t i = 0; i < h->n_labels; i++)
                json_object_set_new(labels, h->labels[i].key, json_string(h->labels[i].value));
        j = json_pack("{s:s, s:s?, s:s?, s:s?, s:o, s:s?, s:s, s:s, s:b, s:s?, s:s?, s:s?, s:o, s:o, s:o, s:s?, "
                      "s:I, s:o}",
                      "id", h->id, "mac", h->mac, "uuid", h->uuid, "hostname", h->hostname, "labels", labels, "image",
                      h->image, "boot", h->boot, "state", h->state, "installed", h->installed, "version", h->version,
                      "current_image", h->current_image, "booted_slot", h->booted_slot, "slots",
                      json_or_null(h->slots), "health", json_or_null(h->health), "facts", json_or_null(h->facts),
                      "message", h->message, "registered", (json_int_t) h->registered, "last_seen",
                      time_or_null(h->last_seen));
        if (j && h->has_lease)
                json_object_set_new(j, "lease", json_pack("{s:I, s:I}", "epoch", (json_int_t) h->lease_epoch,
                                                          "expires", (json_int_t) h->lease_expires));
        if (j) {
                json_object_set_new(j, "quarantined", json_boolean(h->quarantined));
                /* Its firmware's last script request: shown, never counted as reachable. */
                json_object_set_new(j, "pxe_seen", time_or_null(h->pxe_seen));
        }
        if (j && h->enroll_address)
                json_object_set_new(j, "enrollment", json_pack("{s:s, s:I}", "address", h->enroll_address, "expires",
                                                               (json_int_t) h->enroll_expires));
        return j;
}

json_t *hosts_to_json(StoreTx *tx, const char *id) {
        _cleanup_(host_release) Host h = {};

        if (store_host_get(tx, id, &h) < 0)
                return NULL;
        return host_to_json(&h);
}

int hosts_ensure(StoreTx *tx, const char *mac, const char *uuid, uint64_t now, const char *actor, char ret_id[16],
                 bool *ret_new) {
        char rnd[65], id[16];
        json_t *detail;
        int r;

        r = hosts_find(tx, mac, id);
        if (r >= 0) {
                if (uuid) {
                        r = store_host_set_uuid(tx, id, uuid);
                        if (r < 0)
                                return r;
                }
                memcpy(ret_id, id, 16);
                *ret_new = false;
                return 0;
        }
        if (r != -ENOENT)
                return r;
        r = token_random_hex(rnd);
        if (r < 0)
                return r;
        snprintf(id, sizeof id, "h-%.12s", rnd);
        r = store_host_insert(tx, id, mac, uuid, now);
        if (r < 0)
                return r;
        detail = json_pack("{s:s, s:s?}", "mac", mac, "uuid", uuid);
        r = audit_log_at(tx, (int64_t) now, actor, "host.register", id, detail);
        json_decref(detail);
        if (r < 0)
                return r;
        log_info("new host %s (%s)", id, mac);
        memcpy(ret_id, id, 16);
        *ret_new = true;
        return 0;
}

int hosts_set_token(StoreTx *tx, const char *id, const char *mac, bool is_new, const char *address,
                    const char *token_hash, const char *hostname, const char *facts, uint64_t now) {
        json_t *detail;
        int r;

        /* Used: a secret works once. */
        r = enroll_revoke(tx, id);
        if (r >= 0)
                r = store_host_set_token(tx, id, token_hash, hostname, facts, now);
        if (r < 0)
                return r;
        detail = json_pack("{s:s, s:b, s:s}", "mac", mac, "new", is_new, "address", address);
        r = audit_log_at(tx, (int64_t) now, "host:register", "host.token", id, detail);
        json_decref(detail);
        return r;
}

int hosts_set_labels(StoreTx *tx, const char *id, json_t *set, json_t *remove, uint64_t now, const char *actor,
                     json_t *detail) {
        const char *key;
        json_t *v;
        size_t i;
        int r;

        json_array_foreach(remove, i, v) {
                r = store_host_label_remove(tx, id, json_string_value(v));
                if (r < 0)
                        return r;
        }
        json_object_foreach(set, key, v) {
                r = store_host_label_set(tx, id, key, json_string_value(v));
                if (r < 0)
                        return r;
        }
        return audit_log_at(tx, (int64_t) now, actor, "host.labels", id, detail);
}

int hosts_assign(StoreTx *tx, const char *id, const char *image, const char *ref, const char *boot, bool reinstall,
                 uint64_t now, const char *actor) {
        json_t *detail;
        int r;

        r = store_host_assign(tx, id, image, boot, reinstall);
        /* An operator's assignment starts over: a secret issued for an
         * install (perhaps to the wrong client) is no longer good. */
        if (r >= 0)
                r = enroll_revoke(tx, id);
        if (r < 0)
                return r;
        detail = json_pack("{s:s?, s:s?, s:s?, s:b}", "image", image, "ref", ref, "boot", boot, "reinstall",
                           reinstall);
        r = audit_log_at(tx, (int64_t) now, actor, "host.assign", id, detail);
        json_decref(detail);
        return r;
}
/* In its own transaction (the registration's was rolled back): a refused
 * enrollment secret, for the operator to see. */
void hosts_audit_rejected(StoreDb *store, uint64_t now, const char *actor, const char *mac, const char *address,
                          const char *why) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *detail = json_pack("{s:s, s:s, s:s}", "mac", mac, "address", address, "reason", strempty(why));
        int r = store_tx_begin(store, STORE_TX_WRITE, &tx);

        if (r >= 0)
                r = audit_log_at(tx, (int64_t) now, actor, "enroll.reject", mac, detail);
        if (r >= 0)
                r = store_tx_commit(&tx);
        json_decref(detail);
        if (r < 0)
                log_warning("cannot audit the refused registration of %s: %s", mac, strerror(-r));
}

int hosts_checkin_unchanged(StoreTx *tx, SeenLog *seen, const char *ref, const CheckinRequest *c, uint64_t now,
                            DesiredImage *ret_desired) {
        char id[HOST_ID_MAX], mac[18] = "";
        uint64_t last_seen;
        int r;

        (void) mac_normalize(ref, mac);
        r = store_host_checkin_same(tx, ref, mac, c, host_state_is_installed(c->state), id, &last_seen);
        if (r <= 0)
                return r;
        /* Not noted, the check-in goes the write path. */
        if (last_seen != now && seen_log_note(seen, id, now) < 0)
                return 0;
        r = store_host_desired(tx, id, ret_desired);
        return r < 0 ? r : 1;
}

const char *hosts_checkin_invalid(json_t *body) {
        return checkin_request_check(body);
}

int hosts_checkin(StoreTx *tx, const char *ref, const CheckinRequest *c, uint64_t now, const char *actor,
                  DesiredImage *ret_desired) {
        _cleanup_free_ char *old_state = NULL;
        const char *state = host_state_to_string(c->state);
        char id[16], mac[18] = "";
        bool quarantined;
        int r;

        (void) mac_normalize(ref, mac);
        r = store_host_checkin_find(tx, ref, mac, id, &old_state, &quarantined);
        if (r < 0)
                return r;
        r = store_host_checkin(tx, id, c, host_state_is_installed(c->state), now);
        if (r < 0)
                return r;
        if (!streq_ptr(old_state, state)) {
                json_t *detail = json_pack("{s:s?, s:s, s:s?}", "from", old_state, "to", state, "message",
                                           c->message);
                r = audit_log_at(tx, (int64_t) now, actor, "host.state", id, detail);
                json_decref(detail);
                if (r < 0)
                        return r;
        }
        /* Only a quarantined host has anything for the coordinator to do. */
        if (quarantined) {
                r = coord_on_report(tx, id, state, now);
                if (r < 0)
                        return r;
        }
        return store_host_desired(tx, id, ret_desired);
}

json_t *desired_image_to_json(const DesiredImage *d) {
        if (!d->image)
                return json_null();
        return json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:b}", "image", d->image, "name", d->name, "version",
                         d->version, "manifest", d->manifest, "signature", d->signature, "rollback", d->rollback);
}

int hosts_checkin_apply(StoreTx *tx, const char *host, json_t *body, uint64_t now, const char *actor,
                        json_t **ret_desired) {
        _cleanup_(checkin_request_release) CheckinRequest c = {};
        _cleanup_(desired_image_release) DesiredImage desired = {};
        json_t *j;
        int r;

        r = checkin_request_from_json(body, &c, NULL);
        if (r < 0)
                return r;
        r = hosts_checkin(tx, host, &c, now, actor, &desired);
        if (r < 0)
                return r;
        if (!ret_desired)
                return 0;
        j = desired_image_to_json(&desired);
        if (!j)
                return -ENOMEM;
        *ret_desired = j;
        return 0;
}

int hosts_ensure_named(StoreTx *tx, const char *name, const char *group, uint64_t now, const char *actor,
                       char ret_id[16]) {
        char rnd[65], id[16];
        int r;

        r = token_random_hex(rnd);
        if (r < 0)
                return r;
        snprintf(id, sizeof id, "h-%.12s", rnd);
        r = store_host_insert_named(tx, id, name, group, now);
        if (r >= 0) {
                json_t *d = json_pack("{s:s, s:s}", "name", name, "fleetlock", group);
                r = audit_log_at(tx, (int64_t) now, actor, "host.register", id, d);
                json_decref(d);
        }
        if (r >= 0)
                memcpy(ret_id, id, 16);
        return r;
}

int hosts_find_named(StoreTx *tx, const char *name, char ret_id[16]) {
        return store_host_find_named(tx, name, ret_id);
}

int hosts_set_fleetlock_group(StoreTx *tx, const char *id, const char *group, uint64_t now, const char *actor,
                              char **ret_why) {
        _cleanup_free_ char *held = NULL;
        bool holds, quarantined;
        int r;

        r = store_host_fleetlock(tx, id, &held, &holds, &quarantined);
        if (r < 0)
                return r;
        if (streq_ptr(held, group))
                return 0;
        if (holds || quarantined) {
                /* Its place was counted in the old group's budget; moved, it
                 * would be down in a group whose budget never granted it. */
                *ret_why = strdup_printf("%s in group fleetlock=%s: it must report steady-state there before it "
                                         "asks in group fleetlock=%s",
                                         holds ? "the lock is held" : "the node is quarantined", held ? held : "(none)",
                                         group);
                return *ret_why ? -EBUSY : -ENOMEM;
        }
        r = store_host_label_set(tx, id, "fleetlock", group);
        if (r >= 0) {
                /* As an operator's label change is: the audit log tells which
                 * group each lease was counted in. */
                json_t *d = json_pack("{s:{s:s}}", "set", "fleetlock", group);
                r = audit_log_at(tx, (int64_t) now, actor, "host.labels", id, d);
                json_decref(d);
        }
        return r;
}
