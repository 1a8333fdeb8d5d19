/* The hosts' and labels' store (store-hosts.h). Every statement is a cached
 * one (store_stmt()): the check-in runs them on every agent's every
 * interval. */
#include "store-hosts.h"
#include "store-db.h"
#include "util.h"

void host_release(Host *h) {
        if (!h)
                return;
        free(h->mac);
        free(h->uuid);
        free(h->hostname);
        free(h->image);
        free(h->boot);
        free(h->state);
        free(h->version);
        free(h->current_image);
        free(h->booted_slot);
        json_decref(h->slots);
        json_decref(h->health);
        json_decref(h->facts);
        free(h->message);
        free(h->enroll_address);
        for (size_t i = 0; i < h->n_labels; i++) {
                free(h->labels[i].key);
                free(h->labels[i].value);
        }
        free(h->labels);
        *h = (Host) {};
}

void host_enrollment_release(HostEnrollment *e) {
        if (!e)
                return;
        free(e->nonce);
        free(e->address);
        *e = (HostEnrollment) {};
}

void boot_image_release(BootImage *b) {
        if (!b)
                return;
        free(b->name);
        free(b->version);
        free(b->signature);
        free(b->manifest);
        free(b->kernel);
        free(b->initrd);
        free(b->rootfs);
        *b = (BootImage) {};
}

static int step_done(DbStmt *st) {
        int r = db_step(st);
        return r < 0 ? r : 0;
}

static int copy_id(DbStmt *st, int col, char ret_id[HOST_ID_MAX]) {
        const char *id = db_column_text(st, col);

        if (!id || strlen(id) >= HOST_ID_MAX)
                return -EIO;
        memcpy(ret_id, id, strlen(id) + 1);
        return 0;
}

/* A column of JSON text as an object, NULL when NULL or not JSON. */
static json_t *column_json(DbStmt *st, int col) {
        const char *t = db_column_text(st, col);
        return t ? json_loads(t, 0, NULL) : NULL;
}

static uint64_t column_time(DbStmt *st, int col) {
        return db_column_is_null(st, col) ? 0 : (uint64_t) db_column_int64(st, col);
}

int store_host_find(StoreTx *tx, const char *id, const char *mac, char ret_id[HOST_ID_MAX]) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM hosts WHERE id = ?1 OR mac = ?2", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        db_bind_text(st, 2, mac);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        return copy_id(st, 0, ret_id);
}

int store_host_find_named(StoreTx *tx, const char *name, char ret_id[HOST_ID_MAX]) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id FROM hosts WHERE mac IS NULL AND hostname = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, name);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        return copy_id(st, 0, ret_id);
}

static int host_labels(StoreTx *tx, Host *h) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        size_t cap = 0;
        int r;

        r = store_stmt(tx, "SELECT key, value FROM host_labels WHERE host_id = ? ORDER BY key", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, h->id);
        while ((r = db_step(st)) > 0) {
                HostLabel *l = ARRAY_PUSH(h->labels, h->n_labels, cap);
                if (!l)
                        return -ENOMEM;
                *l = (HostLabel) { db_column_strdup(st, 0), db_column_strdup(st, 1) };
                if (!l->key || !l->value)
                        return -ENOMEM;
        }
        return r;
}

int store_host_get(StoreTx *tx, const char *id, Host *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_(host_release) Host h = {};
        int r;

        r = store_stmt(tx,
                       "SELECT id, mac, uuid, hostname, image, boot, state, installed, version, current_image, "
                       "booted_slot, slots, health, facts, message, registered, last_seen, lease_epoch, lease_expires, "
                       "quarantined, pxe_seen, enroll_address, enroll_expires FROM hosts WHERE id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        r = copy_id(st, 0, h.id);
        if (r < 0)
                return r;
        h.mac = db_column_strdup(st, 1);
        h.uuid = db_column_strdup(st, 2);
        h.hostname = db_column_strdup(st, 3);
        h.image = db_column_strdup(st, 4);
        h.boot = db_column_strdup(st, 5);
        h.state = db_column_strdup(st, 6);
        h.installed = db_column_bool(st, 7);
        h.version = db_column_strdup(st, 8);
        h.current_image = db_column_strdup(st, 9);
        h.booted_slot = db_column_strdup(st, 10);
        h.slots = column_json(st, 11);
        h.health = column_json(st, 12);
        h.facts = column_json(st, 13);
        h.message = db_column_strdup(st, 14);
        h.registered = column_time(st, 15);
        h.last_seen = column_time(st, 16);
        h.has_lease = !db_column_is_null(st, 17);
        h.lease_epoch = column_time(st, 17);
        h.lease_expires = column_time(st, 18);
        h.quarantined = db_column_bool(st, 19);
        h.pxe_seen = column_time(st, 20);
        h.enroll_address = db_column_strdup(st, 21);
        h.enroll_expires = column_time(st, 22);
        db_reset(st);
        r = host_labels(tx, &h);
        if (r < 0)
                return r;
        *ret = h;
        h = (Host) {};
        return 0;
}

int store_host_list(StoreTx *tx, const char *key, const char *value, const char *state, char ***ret_ids) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_strv_free_ char **ids = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT id FROM hosts h WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM host_labels l WHERE "
                       "l.host_id = h.id AND l.key = ?1 AND l.value = ?2)) AND (?3 IS NULL OR state = ?3) ORDER BY id",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, key);
        db_bind_text(st, 2, value);
        db_bind_text(st, 3, state);
        while ((r = db_step(st)) > 0) {
                r = strv_extend(&ids, db_column_text(st, 0));
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!ids) {
                ids = calloc(1, sizeof *ids);
                if (!ids)
                        return -ENOMEM;
        }
        *ret_ids = TAKE_PTR(ids);
        return 0;
}

int store_host_insert(StoreTx *tx, const char *id, const char *mac, const char *uuid, uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "INSERT INTO hosts (id, mac, uuid, registered) VALUES (?, ?, ?, ?)", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        db_bind_text(st, 2, mac);
        db_bind_text(st, 3, uuid);
        db_bind_int64(st, 4, now);
        return step_done(st);
}

int store_host_insert_named(StoreTx *tx, const char *id, const char *name, const char *group, uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "INSERT INTO hosts (id, hostname, state, registered, last_seen) VALUES (?, ?, 'healthy', ?3, ?3)",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        db_bind_text(st, 2, name);
        db_bind_int64(st, 3, now);
        r = step_done(st);
        if (r < 0)
                return r;
        return store_host_label_set(tx, id, "fleetlock", group);
}

int store_host_set_uuid(StoreTx *tx, const char *id, const char *uuid) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE hosts SET uuid = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, uuid);
        db_bind_text(st, 2, id);
        return step_done(st);
}

int store_host_set_token(StoreTx *tx, const char *id, const char *token_hash, const char *hostname,
                         const char *facts, uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "UPDATE hosts SET token_hash = ?, hostname = coalesce(?, hostname), facts = coalesce(?, facts), "
                       "last_seen = ? WHERE id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, token_hash);
        db_bind_text(st, 2, hostname);
        db_bind_text(st, 3, facts);
        db_bind_int64(st, 4, now);
        db_bind_text(st, 5, id);
        return step_done(st);
}

int store_host_label_set(StoreTx *tx, const char *id, const char *key, const char *value) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        /* Portable as an upsert on the (host_id, key) key. */
        r = store_stmt(tx,
                       "INSERT INTO host_labels (host_id, key, value) VALUES (?1, ?2, ?3) "
                       "ON CONFLICT (host_id, key) DO UPDATE SET value = excluded.value",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        db_bind_text(st, 2, key);
        db_bind_text(st, 3, value);
        return step_done(st);
}

int store_host_label_remove(StoreTx *tx, const char *id, const char *key) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "DELETE FROM host_labels WHERE host_id = ? AND key = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        db_bind_text(st, 2, key);
        return step_done(st);
}

int store_host_assign(StoreTx *tx, const char *id, const char *image, const char *boot, bool reinstall) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "UPDATE hosts SET image = ?1, boot = coalesce(?2, boot), "
                       "installed = CASE WHEN ?4 <> 0 THEN 0 ELSE installed END WHERE id = ?3",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, image);
        db_bind_text(st, 2, boot);
        db_bind_text(st, 3, id);
        db_bind_bool(st, 4, reinstall);
        return step_done(st);
}

int store_host_pxe_seen(StoreTx *tx, const char *id, uint64_t now) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE hosts SET pxe_seen = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_int64(st, 1, now);
        db_bind_text(st, 2, id);
        return step_done(st);
}

int store_host_checkin_find(StoreTx *tx, const char *ref, const char *mac, char ret_id[HOST_ID_MAX],
                            char **ret_state, bool *ret_quarantined) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        char *state;
        int r;

        r = store_stmt(tx, "SELECT id, state, quarantined FROM hosts WHERE id = ?1 OR mac = ?2", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, ref);
        db_bind_text(st, 2, mac);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        state = db_column_strdup(st, 1);
        if (!state && !db_column_is_null(st, 1))
                return -ENOMEM;
        r = copy_id(st, 0, ret_id);
        if (r < 0) {
                free(state);
                return r;
        }
        *ret_state = state;
        *ret_quarantined = db_column_bool(st, 2);
        return 0;
}

static char *dump_or_null(json_t *v) {
        return v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

/* Whether a check-in (bound as ?1-?10 and ?12 by checkin_bind()) reports
 * something other than the host's row holds, last_seen aside. */
#define CHECKIN_DIFFERS                                                                                     \
        "(state IS DISTINCT FROM ?1 OR version IS DISTINCT FROM ?2 OR current_image IS DISTINCT FROM ?3 OR " \
        "booted_slot IS DISTINCT FROM ?4 OR slots IS DISTINCT FROM ?5 OR "                                  \
        "(?6 IS NOT NULL AND health IS DISTINCT FROM ?6) OR (?7 IS NOT NULL AND facts IS DISTINCT FROM ?7) " \
        "OR message IS DISTINCT FROM ?8 OR (?10 <> 0 AND installed <> 1) OR failed_image IS DISTINCT FROM ?12)"

/* A check-in's values as text, for binding. */
typedef struct CheckinText {
        char *slots, *health, *facts;
        char slot[2];
} CheckinText;

static void checkin_text_release(CheckinText *t) {
        free(t->slots);
        free(t->health);
        free(t->facts);
}

/* Binds c at now as ?1-?10 and ?12; t keeps the text until the statement
 * is reset. */
static int checkin_bind(DbStmt *st, const CheckinRequest *c, bool installed, uint64_t now, CheckinText *t) {
        t->slots = dump_or_null(c->slots);
        t->health = dump_or_null(c->health);
        t->facts = dump_or_null(c->facts);
        if ((c->slots && !t->slots) || (c->health && !t->health) || (c->facts && !t->facts))
                return -ENOMEM;
        t->slot[0] = c->booted_slot;
        db_bind_text(st, 1, host_state_to_string(c->state));
        db_bind_text(st, 2, c->version);
        db_bind_text(st, 3, c->image);
        db_bind_text(st, 4, c->booted_slot ? t->slot : NULL);
        db_bind_text(st, 5, t->slots);
        db_bind_text(st, 6, t->health);
        db_bind_text(st, 7, t->facts);
        db_bind_text(st, 8, c->message);
        db_bind_int64(st, 9, now);
        db_bind_bool(st, 10, installed);
        db_bind_text(st, 12, c->failed_image);
        return 0;
}

int store_host_checkin_same(StoreTx *tx, const char *ref, const char *mac, const CheckinRequest *c, bool installed,
                            char ret_id[HOST_ID_MAX], uint64_t *ret_last_seen) {
        _cleanup_(checkin_text_release) CheckinText t = {};
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "SELECT id, coalesce(last_seen, 0) FROM hosts WHERE (id = ?11 OR mac = ?13) AND quarantined = 0 "
                       "AND NOT " CHECKIN_DIFFERS,
                       &st);
        if (r < 0)
                return r;
        r = checkin_bind(st, c, installed, 0, &t);
        if (r < 0)
                return r;
        db_bind_text(st, 11, ref);
        db_bind_text(st, 13, mac);
        r = db_step(st);
        if (r <= 0)
                return r;
        r = copy_id(st, 0, ret_id);
        if (r < 0)
                return r;
        *ret_last_seen = (uint64_t) db_column_int64(st, 1);
        return 1;
}

int store_host_seen(StoreTx *tx, const char *id, uint64_t at) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE hosts SET last_seen = ?2 WHERE id = ?1 AND coalesce(last_seen, 0) < ?2", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        db_bind_int64(st, 2, at);
        return step_done(st);
}

int store_host_checkin(StoreTx *tx, const char *id, const CheckinRequest *c, bool installed, uint64_t now) {
        _cleanup_(checkin_text_release) CheckinText t = {};
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx,
                       "UPDATE hosts SET state = ?1, version = ?2, current_image = ?3, booted_slot = ?4, slots = ?5, "
                       "health = coalesce(?6, health), facts = coalesce(?7, facts), message = ?8, last_seen = ?9, "
                       "installed = CASE WHEN ?10 <> 0 THEN 1 ELSE installed END, "
                       "state_since = CASE WHEN state = ?1 THEN state_since ELSE ?9 END, failed_image = ?12 "
                       "WHERE id = ?11 AND (" CHECKIN_DIFFERS " OR last_seen IS DISTINCT FROM ?9)",
                       &st);
        if (r < 0)
                return r;
        r = checkin_bind(st, c, installed, now, &t);
        if (r < 0)
                return r;
        db_bind_text(st, 11, id);
        return step_done(st);
}

int store_host_desired(StoreTx *tx, const char *id, DesiredImage *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        DesiredImage d = {};
        int r;

        r = store_stmt(tx,
                       "SELECT i.id, i.name, i.version, i.manifest, i.signature, h.rollback FROM hosts h JOIN "
                       "images i ON i.id = h.image WHERE h.id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        r = db_step(st);
        if (r < 0)
                return r;
        if (r > 0) {
                d.image = db_column_strdup(st, 0);
                d.name = db_column_strdup(st, 1);
                d.version = db_column_strdup(st, 2);
                d.manifest = db_column_strdup(st, 3);
                d.signature = db_column_strdup(st, 4);
                d.rollback = db_column_bool(st, 5);
                if (!d.image || !d.name || !d.version || !d.manifest || !d.signature) {
                        desired_image_release(&d);
                        return -ENOMEM;
                }
        }
        *ret = d;
        return 0;
}

int store_host_fleetlock(StoreTx *tx, const char *id, char **ret_group, bool *ret_holds, bool *ret_quarantined) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        char *group;
        int r;

        r = store_stmt(tx,
                       "SELECT l.value, h.lease_epoch IS NOT NULL, h.quarantined FROM hosts h LEFT JOIN host_labels l "
                       "ON l.host_id = h.id AND l.key = 'fleetlock' WHERE h.id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        group = db_column_strdup(st, 0);
        if (!group && !db_column_is_null(st, 0))
                return -ENOMEM;
        *ret_group = group;
        *ret_holds = db_column_bool(st, 1);
        *ret_quarantined = db_column_bool(st, 2);
        return 0;
}

static int read_enrollment(DbStmt *st, HostEnrollment *ret) {
        HostEnrollment e = {};
        int r;

        r = copy_id(st, 0, e.id);
        if (r < 0)
                return r;
        /* A secret is outstanding only with both its nonce and address. */
        if (!db_column_is_null(st, 1) && !db_column_is_null(st, 2)) {
                e.nonce = db_column_strdup(st, 1);
                e.address = db_column_strdup(st, 2);
                e.expires = column_time(st, 3);
                if (!e.nonce || !e.address) {
                        host_enrollment_release(&e);
                        return -ENOMEM;
                }
        }
        *ret = e;
        return 0;
}

int store_host_enrollment(StoreTx *tx, const char *id, HostEnrollment *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id, enroll_nonce, enroll_address, enroll_expires FROM hosts WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        return read_enrollment(st, ret);
}

int store_host_enrollment_by_mac(StoreTx *tx, const char *mac, HostEnrollment *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "SELECT id, enroll_nonce, enroll_address, enroll_expires FROM hosts WHERE mac = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, mac);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        return read_enrollment(st, ret);
}

int store_host_set_enrollment(StoreTx *tx, const char *id, const char *nonce, const char *address,
                              uint64_t expires) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        int r;

        r = store_stmt(tx, "UPDATE hosts SET enroll_nonce = ?, enroll_address = ?, enroll_expires = ? WHERE id = ?",
                       &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, nonce);
        db_bind_text(st, 2, address);
        if (nonce)
                db_bind_int64(st, 3, expires);
        db_bind_text(st, 4, id);
        return step_done(st);
}

int store_boot_image(StoreTx *tx, const char *image, BootImage *ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL, *ar = NULL;
        _cleanup_(boot_image_release) BootImage b = {};
        int r;

        r = store_stmt(tx, "SELECT name, version, signature, manifest FROM images WHERE id = ?", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, image);
        r = db_step(st);
        if (r <= 0)
                return r < 0 ? r : -ENOENT;
        b.name = db_column_strdup(st, 0);
        b.version = db_column_strdup(st, 1);
        b.signature = db_column_strdup(st, 2);
        b.manifest = db_column_strdup(st, 3);
        r = store_stmt(tx, "SELECT type, sha256 FROM artifacts WHERE image_id = ?", &ar);
        if (r < 0)
                return r;
        db_bind_text(ar, 1, image);
        while ((r = db_step(ar)) > 0) {
                const char *type = db_column_text(ar, 0);
                char **slot = streq_ptr(type, "kernel") ? &b.kernel
                            : streq_ptr(type, "initrd") ? &b.initrd
                            : streq_ptr(type, "rootfs") ? &b.rootfs
                                                        : NULL;
                if (slot) {
                        free(*slot);
                        *slot = db_column_strdup(ar, 1);
                }
        }
        if (r < 0)
                return r;
        *ret = b;
        b = (BootImage) {};
        return 0;
}

static int host_groups(StoreTx *tx, const char *id, char ***ret) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        r = store_stmt(tx, "SELECT key || '=' || value FROM host_labels WHERE host_id = ? ORDER BY key", &st);
        if (r < 0)
                return r;
        db_bind_text(st, 1, id);
        while ((r = db_step(st)) > 0) {
                r = strv_extend(&l, db_column_text(st, 0));
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

int store_host_groups(StoreTx *tx, const char *id, char ***ret) {
        _cleanup_store_tx_ StoreTx *part = NULL;
        int r;

        /* sqlite undoes only a statement that fails; PostgreSQL would lose
         * the whole transaction, and with it the change the caller made
         * before asking (a lease's release): there the read is a savepoint
         * of its own. */
        if (!store_tx_postgresql(tx))
                return host_groups(tx, id, ret);
        r = store_tx_nest(tx, &part);
        if (r < 0)
                return r;
        r = host_groups(part, id, ret);
        if (r < 0)
                return r;
        r = store_tx_commit(&part);
        if (r < 0) {
                strv_free(*ret);
                *ret = NULL;
        }
        return r;
}
