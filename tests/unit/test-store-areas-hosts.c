/* The store areas of hosts, tokens, the audit log, the fleet counts and
 * the image catalog (store-hosts.c, store-tokens.c, store-audit.c,
 * store-stats.c, store-catalog.c) on both drivers: each case runs the same
 * calls with the same inputs on sqlite and on PostgreSQL (a server of the
 * test's own) and expects the same answers. */
#include <errno.h>
#include <string.h>

#include "tests.h"

#include "pgserver.h"
#include "coordinator.h"
#include "store-audit.h"
#include "store-catalog.h"
#include "store-db.h"
#include "json.h"
#include "store-hosts.h"
#include "store-pg.h"
#include "store-stats.h"
#include "store-tokens.h"
#include "util.h"

static StoreTx *begin(StoreDb *db, StoreTxMode kind) {
        StoreTx *tx = NULL;

        assert_int_equal(store_tx_begin(db, kind, &tx), 0);
        return tx;
}

/* A 64-digit hex id: c repeated. */
static void hex_id(char c, char ret[65]) {
        memset(ret, c, 64);
        ret[64] = 0;
}

static void add_image(StoreTx *tx, char c, const char *name, const char *version, int64_t created) {
        char kernel[65], rootfs[65];
        ImageArtifact a[2] = {
                { .type = (char *) "rootfs", .size = 5000000000ull, .fstype = (char *) "ext4" },
                { .type = (char *) "kernel", .size = 12 },
        };
        Image i = {
                .name = (char *) name,
                .version = (char *) version,
                .arch = (char *) "x86_64",
                .created = created,
                .artifacts = a,
                .n_artifacts = ELEMENTSOF(a),
        };

        hex_id(c, i.id);
        memcpy(i.manifest, i.id, sizeof i.manifest);
        hex_id(c + 1, i.signature);
        hex_id(c + 2, kernel);
        hex_id(c + 3, rootfs);
        memcpy(a[0].sha256, rootfs, sizeof rootfs);
        memcpy(a[1].sha256, kernel, sizeof kernel);
        assert_int_equal(store_image_insert(tx, &i), 0);
}

typedef struct TokenSeen {
        char names[4][16];
        char roles[4][16];
        long long created[4];
        size_t n;
} TokenSeen;

static int token_cb(const char *name, const char *role, long long created, void *userdata) {
        TokenSeen *s = userdata;

        assert_true(s->n < ELEMENTSOF(s->names));
        snprintf(s->names[s->n], sizeof s->names[s->n], "%s", name);
        snprintf(s->roles[s->n], sizeof s->roles[s->n], "%s", role);
        s->created[s->n++] = created;
        return 0;
}

static void test_tokens(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *name = NULL, *role = NULL, *actor = NULL, *other = NULL, *host = NULL;
        TokenSeen seen = {};
        (void) state;

        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_token_insert(tx, "ops", "hash-ops", "operator", 20), 0);
        assert_int_equal(store_token_insert(tx, "ci", "hash-ci", "admin", 10), 0);
        assert_int_equal(store_host_insert(tx, "h-000000000001", "52:54:00:ab:cd:01", NULL, 1), 0);
        assert_int_equal(store_host_set_token(tx, "h-000000000001", "hash-host", NULL, NULL, 2), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_token_list(tx, token_cb, &seen), 0);
        assert_int_equal(seen.n, 2);
        assert_string_equal(seen.names[0], "ci");
        assert_string_equal(seen.roles[0], "admin");
        assert_int_equal(seen.created[0], 10);
        assert_string_equal(seen.roles[1], "operator");
        assert_string_equal(seen.names[1], "ops");
        assert_int_equal(store_token_admin(tx, "hash-ops", &name, &role), 1);
        assert_string_equal(name, "ops");
        assert_string_equal(role, "operator");
        assert_int_equal(store_token_admin(tx, "hash-host", NULL, NULL), 0);
        /* A host's token, by its ID or its MAC in any case. */
        assert_int_equal(store_token_host(tx, "hash-host", "h-000000000001", &actor), 1);
        assert_string_equal(actor, "host:h-000000000001");
        assert_int_equal(store_token_host(tx, "hash-host", "52:54:00:AB:CD:01", &other), 1);
        assert_string_equal(other, "host:h-000000000001");
        free(other);
        other = NULL;
        assert_int_equal(store_token_host(tx, "hash-host", "52:54:00:ab:cd:02", &other), 0);
        assert_null(other);
        assert_int_equal(store_token_host(tx, "hash-ops", "h-000000000001", NULL), 0);
        assert_int_equal(store_token_is_host(tx, "hash-host", &host), 1);
        assert_string_equal(host, "host:h-000000000001");
        assert_int_equal(store_token_is_host(tx, "hash-ops", NULL), 0);
        (void) store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_token_delete(tx, "ops"), 0);
        assert_int_equal(store_token_delete(tx, "ops"), -ENOENT);
        assert_int_equal(store_tx_commit(&tx), 0);
        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_token_admin(tx, "hash-ops", NULL, NULL), 0);
        (void) store_tx_rollback(&tx);

        /* A name taken: refused (the transaction is not to go on). */
        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_token_insert(tx, "ci", "hash-other", "admin", 30), -EEXIST);
}

static void test_audit(void **state) {
        static const char *const actions[] = { "host.add", "host", "hostx.add", "image.push", "host.label.set",
                                               "Host.add", "host_add" };
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        AuditEntry *l = NULL;
        size_t n = 0;
        (void) state;

        tx = begin(db, STORE_TX_WRITE);
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                assert_int_equal(store_audit_append(tx, 100 + (int64_t) i, "admin:ops", actions[i],
                                                    i % 2 ? NULL : "h-000000000001",
                                                    i % 3 ? NULL : "{\"a\":1}"),
                                 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .limit = 100 }, &l, &n), 0);
        assert_int_equal(n, ELEMENTSOF(actions));
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(l[i].id, l[0].id + (int64_t) i);
                assert_int_equal(l[i].time, 100 + (int64_t) i);
                assert_string_equal(l[i].actor, "admin:ops");
                assert_string_equal(l[i].action, actions[i]);
                if (i % 2)
                        assert_null(l[i].target);
                else
                        assert_string_equal(l[i].target, "h-000000000001");
                if (i % 3)
                        assert_null(l[i].detail);
                else
                        assert_string_equal(l[i].detail, "{\"a\":1}");
        }
        int64_t first = l[0].id;
        audit_entries_free(l, n);

        /* An action and its sub-actions, exactly: not hostx, Host or host_. */
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .limit = 100, .action = "host" }, &l, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(l[0].action, "host.add");
        assert_string_equal(l[1].action, "host");
        assert_string_equal(l[2].action, "host.label.set");
        audit_entries_free(l, n);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .limit = 100, .action = "host.label" }, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].action, "host.label.set");
        audit_entries_free(l, n);

        /* The oldest after since, at most limit; or the newest last ones,
         * oldest first. */
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .since = (uint64_t) first, .limit = 2 }, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(l[0].id, first + 1);
        assert_int_equal(l[1].id, first + 2);
        audit_entries_free(l, n);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .limit = 1, .last = 3 }, &l, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(l[0].action, "host.label.set");
        assert_string_equal(l[2].action, "host_add");
        audit_entries_free(l, n);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .last = 2, .action = "host" }, &l, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(l[0].action, "host");
        assert_string_equal(l[1].action, "host.label.set");
        audit_entries_free(l, n);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .since = (uint64_t) first + 100, .limit = 5 }, &l, &n),
                         0);
        assert_int_equal(n, 0);
        audit_entries_free(l, n);
}

static void test_catalog(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_strv_free_ char **ids = NULL, **blobs = NULL, **orphans = NULL;
        char id[65], a[65], b[65], c[65], x[65];
        Image i = {};
        (void) state;

        hex_id('a', a);
        hex_id('b', b);
        hex_id('c', c);
        tx = begin(db, STORE_TX_WRITE);
        /* b and c came in the same second: c, added last, is the newer. */
        add_image(tx, 'a', "base", "1", 10);
        add_image(tx, 'c', "base", "2", 20);
        add_image(tx, 'b', "base", "3", 20);
        assert_int_equal(store_host_insert(tx, "h-000000000001", NULL, NULL, 1), 0);
        assert_int_equal(store_host_assign(tx, "h-000000000001", a, NULL, false), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_image_find(tx, "base", "2", id), 0);
        assert_string_equal(id, c);
        assert_int_equal(store_image_find(tx, "base", "4", id), -ENOENT);
        assert_int_equal(store_image_find_latest(tx, "base", id), 0);
        assert_string_equal(id, b);
        assert_int_equal(store_image_find_latest(tx, "other", id), -ENOENT);
        assert_int_equal(store_image_find_prefix(tx, "aaaa", id), 0);
        assert_string_equal(id, a);
        assert_int_equal(store_image_find_prefix(tx, "", id), -ENOTUNIQ);
        assert_int_equal(store_image_find_prefix(tx, "ab", id), -ENOENT);
        assert_int_equal(store_image_ids(tx, &ids), 0);
        assert_int_equal(strv_length(ids), 3);
        assert_string_equal(ids[0], b);
        assert_string_equal(ids[1], c);
        assert_string_equal(ids[2], a);

        assert_int_equal(store_image_get(tx, a, &i), 0);
        assert_string_equal(i.id, a);
        assert_string_equal(i.name, "base");
        assert_string_equal(i.version, "1");
        assert_string_equal(i.arch, "x86_64");
        assert_null(i.kernel_version);
        assert_null(i.signed_by);
        assert_string_equal(i.manifest, a);
        hex_id('b', x);
        assert_string_equal(i.signature, x);
        assert_int_equal(i.created, 10);
        assert_int_equal(i.hosts, 1);
        assert_int_equal(i.n_artifacts, 2);
        assert_string_equal(i.artifacts[0].type, "kernel");
        assert_int_equal(i.artifacts[0].size, 12);
        assert_null(i.artifacts[0].fstype);
        hex_id('c', x);
        assert_string_equal(i.artifacts[0].sha256, x);
        assert_string_equal(i.artifacts[1].type, "rootfs");
        assert_true(i.artifacts[1].size == 5000000000ull);
        assert_string_equal(i.artifacts[1].fstype, "ext4");
        catalog_image_release(&i);
        hex_id('f', x);
        assert_int_equal(store_image_get(tx, x, &i), -ENOENT);

        /* Its blobs, sorted: the manifest (a), the signature (b), the
         * kernel (c) and the rootfs (d). */
        assert_int_equal(store_image_blobs(tx, a, &blobs), 0);
        assert_int_equal(strv_length(blobs), 4);
        for (size_t k = 0; k < 4; k++) {
                hex_id((char) ('a' + k), x);
                assert_string_equal(blobs[k], x);
        }
        (void) store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        for (char k = 'a'; k <= 'g'; k++) {
                hex_id(k, x);
                assert_int_equal(store_blob_insert(tx, x, 100 + (uint64_t) k, k == 'g' ? 50 : 5), 1);
        }
        assert_int_equal(store_blob_insert(tx, a, 1, 5), 0);
        /* c's blobs are c to f; a's and b's keep a to e. */
        hex_id('g', x);
        assert_int_equal(store_image_delete(tx, c), 0);
        assert_int_equal(store_blobs_unreferenced(tx, (char *[]) { x, a, NULL }, 10, &orphans), 0);
        /* f is old and unreferenced; g is young, but a candidate. */
        assert_int_equal(strv_length(orphans), 2);
        hex_id('f', x);
        assert_string_equal(orphans[0], x);
        hex_id('g', x);
        assert_string_equal(orphans[1], x);
        assert_int_equal(store_blob_delete(tx, x), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        strv_free(ids);
        assert_int_equal(store_image_ids(tx, &ids), 0);
        assert_int_equal(strv_length(ids), 2);
        assert_string_equal(ids[0], b);
        assert_string_equal(ids[1], a);
        strv_free(orphans);
        assert_int_equal(store_blobs_unreferenced(tx, NULL, 100, &orphans), 0);
        assert_int_equal(strv_length(orphans), 1);
        hex_id('f', x);
        assert_string_equal(orphans[0], x);
        (void) store_tx_rollback(&tx);

        /* An image's name and version are taken. */
        tx = begin(db, STORE_TX_WRITE);
        Image dup = { .name = (char *) "base", .version = (char *) "1", .arch = (char *) "x86_64" };
        hex_id('e', dup.id);
        memcpy(dup.manifest, dup.id, sizeof dup.manifest);
        memcpy(dup.signature, dup.id, sizeof dup.signature);
        assert_int_equal(store_image_insert(tx, &dup), -EEXIST);
}

static void test_stats(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        FleetStats s = {};
        char x[65];
        (void) state;

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_stats_read(tx, true, &s), 0);
        assert_int_equal(s.hosts, 0);
        assert_int_equal(s.images, 0);
        assert_int_equal(s.blob_bytes, 0);
        assert_int_equal(s.n_by_state, 0);
        assert_int_equal(s.n_by_version, 0);
        fleet_stats_release(&s);
        (void) store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        add_image(tx, 'a', "base", "1", 10);
        hex_id('a', x);
        assert_int_equal(store_blob_insert(tx, x, 6000000000ull, 1), 1);
        hex_id('b', x);
        assert_int_equal(store_blob_insert(tx, x, 7, 1), 1);
        assert_int_equal(store_host_insert(tx, "h-000000000001", NULL, NULL, 1), 0);
        assert_int_equal(store_host_insert(tx, "h-000000000002", NULL, NULL, 1), 0);
        assert_int_equal(store_host_insert_named(tx, "h-000000000003", "db-1", "db", 1), 0);
        CheckinRequest c = { .state = HOST_HEALTHY, .version = (char *) "1" };
        assert_int_equal(store_host_checkin(tx, "h-000000000001", &c, true, 5), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_stats_read(tx, false, &s), 0);
        assert_int_equal(s.hosts, 3);
        assert_int_equal(s.images, 1);
        assert_int_equal(s.blob_bytes, 0);
        assert_null(s.by_state);
        fleet_stats_release(&s);
        assert_int_equal(store_stats_read(tx, true, &s), 0);
        assert_true(s.blob_bytes == 6000000007ll);
        assert_int_equal(s.n_by_state, 2);
        assert_string_equal(s.by_state[0].key, "healthy");
        assert_int_equal(s.by_state[0].n, 2);
        assert_string_equal(s.by_state[1].key, "registered");
        assert_int_equal(s.by_state[1].n, 1);
        assert_int_equal(s.n_by_version, 2);
        assert_string_equal(s.by_version[0].key, "");
        assert_int_equal(s.by_version[0].n, 2);
        assert_string_equal(s.by_version[1].key, "1");
        assert_int_equal(s.by_version[1].n, 1);
        /* From the same pass: no lease, quarantine or failure; no host
         * with a MAC has checked in. */
        assert_int_equal(s.leases, 0);
        assert_int_equal(s.quarantined, 0);
        assert_int_equal(s.last_seen, 0);
        assert_int_equal(s.n_health_failed, 0);
        fleet_stats_release(&s);
}

static void test_hosts_inventory(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_strv_free_ char **ids = NULL, **groups = NULL;
        _cleanup_(host_release) Host h = {};
        char id[HOST_ID_MAX];
        (void) state;

        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_host_insert(tx, "h-000000000001", "52:54:00:00:00:01", NULL, 100), 0);
        assert_int_equal(store_host_insert(tx, "h-000000000002", "52:54:00:00:00:02", "uuid-2", 101), 0);
        assert_int_equal(store_host_insert_named(tx, "h-000000000003", "db-1", "db", 102), 0);
        assert_int_equal(store_host_set_uuid(tx, "h-000000000001", "uuid-1"), 0);
        assert_int_equal(store_host_set_token(tx, "h-000000000001", "th", "web-1", "{\"cpus\":4}", 110), 0);
        /* NULL keeps the hostname and the facts. */
        assert_int_equal(store_host_set_token(tx, "h-000000000001", "th2", NULL, NULL, 111), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000001", "role", "web"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000001", "fleetlock", "web"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000001", "role", "web2"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000002", "role", "web2"), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000002", "zone", "b"), 0);
        assert_int_equal(store_host_label_remove(tx, "h-000000000002", "zone"), 0);
        assert_int_equal(store_host_label_remove(tx, "h-000000000002", "none"), 0);
        assert_int_equal(store_host_pxe_seen(tx, "h-000000000002", 120), 0);
        /* Writes to a missing host do nothing. */
        assert_int_equal(store_host_pxe_seen(tx, "h-00000000000f", 120), 0);
        assert_int_equal(store_host_set_uuid(tx, "h-00000000000f", "u"), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_find(tx, "h-000000000002", NULL, id), 0);
        assert_string_equal(id, "h-000000000002");
        assert_int_equal(store_host_find(tx, NULL, "52:54:00:00:00:01", id), 0);
        assert_string_equal(id, "h-000000000001");
        assert_int_equal(store_host_find(tx, "h-00000000000f", "52:54:00:00:00:0f", id), -ENOENT);
        assert_int_equal(store_host_find_named(tx, "db-1", id), 0);
        assert_string_equal(id, "h-000000000003");
        /* Only a host without a MAC is found by its name. */
        assert_int_equal(store_host_find_named(tx, "web-1", id), -ENOENT);

        assert_int_equal(store_host_get(tx, "h-000000000001", &h), 0);
        assert_string_equal(h.id, "h-000000000001");
        assert_string_equal(h.mac, "52:54:00:00:00:01");
        assert_string_equal(h.uuid, "uuid-1");
        assert_string_equal(h.hostname, "web-1");
        assert_null(h.image);
        assert_string_equal(h.boot, "disk");
        assert_string_equal(h.state, "registered");
        assert_false(h.installed);
        assert_null(h.version);
        assert_null(h.slots);
        assert_null(h.health);
        assert_non_null(h.facts);
        assert_int_equal(json_integer_value(json_object_get(h.facts, "cpus")), 4);
        assert_int_equal(h.registered, 100);
        assert_int_equal(h.last_seen, 111);
        assert_int_equal(h.pxe_seen, 0);
        assert_false(h.has_lease);
        assert_false(h.quarantined);
        assert_null(h.enroll_address);
        assert_int_equal(h.n_labels, 2);
        assert_string_equal(h.labels[0].key, "fleetlock");
        assert_string_equal(h.labels[1].key, "role");
        assert_string_equal(h.labels[1].value, "web2");
        host_release(&h);
        assert_int_equal(store_host_get(tx, "h-000000000003", &h), 0);
        assert_null(h.mac);
        assert_string_equal(h.hostname, "db-1");
        assert_string_equal(h.state, "healthy");
        assert_int_equal(h.last_seen, 102);
        assert_int_equal(h.n_labels, 1);
        assert_string_equal(h.labels[0].value, "db");
        host_release(&h);
        assert_int_equal(store_host_get(tx, "h-000000000002", &h), 0);
        assert_int_equal(h.pxe_seen, 120);
        assert_int_equal(h.last_seen, 0);
        assert_int_equal(h.n_labels, 1);
        host_release(&h);
        assert_int_equal(store_host_get(tx, "h-00000000000f", &h), -ENOENT);

        assert_int_equal(store_host_list(tx, NULL, NULL, NULL, &ids), 0);
        assert_int_equal(strv_length(ids), 3);
        assert_string_equal(ids[0], "h-000000000001");
        assert_string_equal(ids[2], "h-000000000003");
        strv_free(ids);
        assert_int_equal(store_host_list(tx, "role", "web2", NULL, &ids), 0);
        assert_int_equal(strv_length(ids), 2);
        strv_free(ids);
        assert_int_equal(store_host_list(tx, "role", "web2", "registered", &ids), 0);
        assert_int_equal(strv_length(ids), 2);
        strv_free(ids);
        assert_int_equal(store_host_list(tx, NULL, NULL, "healthy", &ids), 0);
        assert_int_equal(strv_length(ids), 1);
        assert_string_equal(ids[0], "h-000000000003");
        strv_free(ids);
        assert_int_equal(store_host_list(tx, "role", "web", NULL, &ids), 0);
        assert_non_null(ids);
        assert_int_equal(strv_length(ids), 0);

        assert_int_equal(store_host_groups(tx, "h-000000000001", &groups), 0);
        assert_int_equal(strv_length(groups), 2);
        assert_string_equal(groups[0], "fleetlock=web");
        assert_string_equal(groups[1], "role=web2");
        strv_free(groups);
        assert_int_equal(store_host_groups(tx, "h-00000000000f", &groups), 0);
        assert_null(groups);
        (void) store_tx_rollback(&tx);

        /* A MAC or an ID taken. */
        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_host_insert(tx, "h-000000000004", "52:54:00:00:00:01", NULL, 1), -EEXIST);
}

static void test_hosts_checkin(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_(host_release) Host h = {};
        _cleanup_json_ json_t *slots = json_pack("{s{ss}}", "a", "image", "x");
        _cleanup_json_ json_t *health = json_pack("{sb}", "ok", 1);
        CheckinRequest c = {
                .state = HOST_HEALTHY,
                .version = (char *) "1",
                .booted_slot = 'a',
                .slots = slots,
                .health = health,
                .message = (char *) "fine",
        };
        char id[HOST_ID_MAX], a[65];
        uint64_t last_seen = 0;
        char *st = NULL;
        bool quarantined = true;
        (void) state;

        hex_id('a', a);
        c.image = a;
        tx = begin(db, STORE_TX_WRITE);
        add_image(tx, 'a', "base", "1", 10);
        assert_int_equal(store_host_insert(tx, "h-000000000001", "52:54:00:00:00:01", NULL, 100), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_checkin_find(tx, "h-000000000001", NULL, id, &st, &quarantined), 0);
        assert_string_equal(id, "h-000000000001");
        assert_string_equal(st, "registered");
        free(st);
        assert_false(quarantined);
        assert_int_equal(store_host_checkin_find(tx, "x", "52:54:00:00:00:01", id, &st, &quarantined), 0);
        free(st);
        assert_int_equal(store_host_checkin_find(tx, "x", "y", id, &st, &quarantined), -ENOENT);
        /* A first report differs. */
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &c, true, id, &last_seen), 0);
        (void) store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_host_checkin(tx, "h-000000000001", &c, true, 200), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_get(tx, "h-000000000001", &h), 0);
        assert_string_equal(h.state, "healthy");
        assert_true(h.installed);
        assert_string_equal(h.version, "1");
        assert_string_equal(h.current_image, a);
        assert_string_equal(h.booted_slot, "a");
        assert_string_equal(json_string_value(json_object_get(json_object_get(h.slots, "a"), "image")), "x");
        assert_true(json_is_true(json_object_get(h.health, "ok")));
        assert_string_equal(h.message, "fine");
        assert_int_equal(h.last_seen, 200);
        host_release(&h);
        /* The same report, by ID or MAC: same, with its last_seen. */
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &c, true, id, &last_seen), 1);
        assert_string_equal(id, "h-000000000001");
        assert_int_equal(last_seen, 200);
        assert_int_equal(store_host_checkin_same(tx, "x", "52:54:00:00:00:01", &c, false, id, &last_seen), 1);
        /* No health or facts sent: the ones kept stand. */
        CheckinRequest d = c;
        d.health = NULL;
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &d, true, id, &last_seen), 1);
        d.message = NULL;
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &d, true, id, &last_seen), 0);
        d = c;
        d.booted_slot = 0;
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &d, true, id, &last_seen), 0);
        d = c;
        d.failed_image = a;
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &d, true, id, &last_seen), 0);
        d = c;
        d.state = HOST_STAGING;
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &d, true, id, &last_seen), 0);
        assert_int_equal(store_host_checkin_same(tx, "h-00000000000f", NULL, &c, true, id, &last_seen), 0);
        (void) store_tx_rollback(&tx);

        /* Not installed, then installed reported: it differs. */
        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_host_assign(tx, "h-000000000001", a, "live", true), 0);
        assert_int_equal(store_host_seen(tx, "h-000000000001", 150), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_get(tx, "h-000000000001", &h), 0);
        assert_false(h.installed);
        assert_string_equal(h.image, a);
        assert_string_equal(h.boot, "live");
        assert_int_equal(h.last_seen, 200);
        host_release(&h);
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &c, true, id, &last_seen), 0);
        assert_int_equal(store_host_checkin_same(tx, "h-000000000001", NULL, &c, false, id, &last_seen), 1);
        (void) store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        /* A changed state moves state_since; NULL image and boot: kept. */
        assert_int_equal(store_host_assign(tx, "h-000000000001", a, NULL, false), 0);
        assert_int_equal(store_host_seen(tx, "h-000000000001", 250), 0);
        d = c;
        d.state = HOST_STAGING;
        d.health = NULL;
        assert_int_equal(store_host_checkin(tx, "h-000000000001", &d, false, 260), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_get(tx, "h-000000000001", &h), 0);
        assert_string_equal(h.state, "staging");
        assert_string_equal(h.boot, "live");
        assert_false(h.installed);
        assert_int_equal(h.last_seen, 260);
        assert_non_null(h.health);
        host_release(&h);
        (void) store_tx_rollback(&tx);
}

static void test_hosts_boot(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_(desired_image_release) DesiredImage d = {};
        _cleanup_(boot_image_release) BootImage b = {};
        HostEnrollment e = {};
        _cleanup_free_ char *group = NULL;
        bool holds = true, quarantined = true;
        char a[65], x[65];
        (void) state;

        hex_id('a', a);
        tx = begin(db, STORE_TX_WRITE);
        add_image(tx, 'a', "base", "1", 10);
        assert_int_equal(store_host_insert(tx, "h-000000000001", "52:54:00:00:00:01", NULL, 100), 0);
        assert_int_equal(store_host_insert_named(tx, "h-000000000002", "db-1", "db", 100), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_desired(tx, "h-000000000001", &d), 0);
        assert_null(d.image);
        assert_int_equal(store_host_fleetlock(tx, "h-000000000001", &group, &holds, &quarantined), 0);
        assert_null(group);
        assert_false(holds);
        assert_false(quarantined);
        assert_int_equal(store_host_fleetlock(tx, "h-000000000002", &group, &holds, &quarantined), 0);
        assert_string_equal(group, "db");
        assert_int_equal(store_host_fleetlock(tx, "h-00000000000f", &group, &holds, &quarantined), -ENOENT);
        assert_int_equal(store_host_enrollment(tx, "h-000000000001", &e), 0);
        assert_string_equal(e.id, "h-000000000001");
        assert_null(e.nonce);
        assert_null(e.address);
        host_enrollment_release(&e);
        assert_int_equal(store_boot_image(tx, a, &b), 0);
        assert_string_equal(b.name, "base");
        assert_string_equal(b.version, "1");
        assert_string_equal(b.manifest, a);
        hex_id('b', x);
        assert_string_equal(b.signature, x);
        hex_id('c', x);
        assert_string_equal(b.kernel, x);
        assert_null(b.initrd);
        hex_id('d', x);
        assert_string_equal(b.rootfs, x);
        boot_image_release(&b);
        hex_id('f', x);
        assert_int_equal(store_boot_image(tx, x, &b), -ENOENT);
        (void) store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_host_assign(tx, "h-000000000001", a, NULL, false), 0);
        assert_int_equal(store_host_set_enrollment(tx, "h-000000000001", "nonce", "10.0.0.5", 500), 0);
        assert_int_equal(store_tx_commit(&tx), 0);

        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_desired(tx, "h-000000000001", &d), 0);
        assert_string_equal(d.image, a);
        assert_string_equal(d.name, "base");
        assert_string_equal(d.version, "1");
        assert_string_equal(d.manifest, a);
        hex_id('b', x);
        assert_string_equal(d.signature, x);
        assert_false(d.rollback);
        assert_int_equal(store_host_enrollment_by_mac(tx, "52:54:00:00:00:01", &e), 0);
        assert_string_equal(e.id, "h-000000000001");
        assert_string_equal(e.nonce, "nonce");
        assert_string_equal(e.address, "10.0.0.5");
        assert_int_equal(e.expires, 500);
        host_enrollment_release(&e);
        assert_int_equal(store_host_enrollment_by_mac(tx, "52:54:00:00:00:0f", &e), -ENOENT);
        assert_int_equal(store_host_enrollment(tx, "h-00000000000f", &e), -ENOENT);
        (void) store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_host_set_enrollment(tx, "h-000000000001", NULL, NULL, 0), 0);
        assert_int_equal(store_tx_commit(&tx), 0);
        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_host_enrollment(tx, "h-000000000001", &e), 0);
        assert_null(e.nonce);
        host_enrollment_release(&e);
        _cleanup_(host_release) Host h = {};
        assert_int_equal(store_host_get(tx, "h-000000000001", &h), 0);
        assert_null(h.enroll_address);
        assert_int_equal(h.enroll_expires, 0);
}

static void exec_sql(StoreTx *tx, const char *sql) {
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, sql, &st), 0);
        assert_true(db_step(st) >= 0);
}

static int64_t lease_epoch_of(StoreDb *db, const char *id) {
        _cleanup_store_tx_ StoreTx *tx = begin(db, STORE_TX_READ);
        _cleanup_stmt_reset_ DbStmt *st = NULL;

        assert_int_equal(store_stmt(tx, "SELECT coalesce(lease_epoch, 0) FROM hosts WHERE id = ?", &st), 0);
        db_bind_text(st, 1, id);
        assert_int_equal(db_step(st), 1);
        return db_column_int64(st, 0);
}

/* A lease given back while its host's groups cannot be read: the release
 * and its audit entry are committed, only the groups (which wake waiting
 * requests sooner) are missing. On PostgreSQL the failed read would end
 * the whole transaction but for its savepoint. */
static void test_release_groups_fail(void **state) {
        _cleanup_store_db_free_ StoreDb *db = test_store_open();
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_strv_free_ char **groups = NULL;
        char **missing = NULL;
        (void) state;

        tx = begin(db, STORE_TX_WRITE);
        assert_int_equal(store_host_insert(tx, "h-000000000001", "52:54:00:00:00:01", NULL, 100), 0);
        assert_int_equal(store_host_label_set(tx, "h-000000000001", "rack", "r1"), 0);
        /* Quarantined too: the release leaves the host held, so the
         * group counts' triggers, which read its labels, do not run. */
        exec_sql(tx, "UPDATE hosts SET lease_epoch = 7, lease_expires = 1000, quarantined = 1 "
                     "WHERE id = 'h-000000000001'");
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(lease_epoch_of(db, "h-000000000001"), 7);

        /* The labels' table is away for this transaction only. */
        tx = begin(db, STORE_TX_WRITE);
        exec_sql(tx, "ALTER TABLE host_labels RENAME TO host_labels_away");
        assert_true(store_host_groups(tx, "h-000000000001", &missing) < 0);
        assert_null(missing);
        store_tx_rollback(&tx);

        tx = begin(db, STORE_TX_WRITE);
        exec_sql(tx, "ALTER TABLE host_labels RENAME TO host_labels_away");
        assert_int_equal(coord_lease_release(tx, "h-000000000001", 7, 200, "test", &missing), 1);
        assert_null(missing);
        exec_sql(tx, "ALTER TABLE host_labels_away RENAME TO host_labels");
        assert_int_equal(store_tx_commit(&tx), 0);
        assert_int_equal(lease_epoch_of(db, "h-000000000001"), 0);

        AuditEntry *l = NULL;
        size_t n = 0;
        tx = begin(db, STORE_TX_READ);
        assert_int_equal(store_audit_list(tx, &(AuditQuery) { .limit = 10 }, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(l[0].action, "lease.release");
        audit_entries_free(l, n);
        assert_int_equal(store_host_groups(tx, "h-000000000001", &groups), 0);
        assert_int_equal(strv_length(groups), 1);
        assert_string_equal(groups[0], "rack=r1");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_tokens),          test_in_dir(test_audit),           test_in_dir(test_catalog),
                test_in_dir(test_stats),           test_in_dir(test_hosts_inventory), test_in_dir(test_hosts_checkin),
                test_in_dir(test_hosts_boot),      test_in_dir(test_release_groups_fail),
        };
        const struct CMUnitTest pg[] = {
                cmocka_unit_test(test_tokens),          cmocka_unit_test(test_audit),
                cmocka_unit_test(test_catalog),         cmocka_unit_test(test_stats),
                cmocka_unit_test(test_hosts_inventory), cmocka_unit_test(test_hosts_checkin),
                cmocka_unit_test(test_hosts_boot),      cmocka_unit_test(test_release_groups_fail),
        };
        int r = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
        return r + cmocka_run_group_tests_name("postgresql", pg, test_pg_group_setup, test_pg_group_teardown);
}
