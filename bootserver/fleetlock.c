/* FleetLock's nodes as hosts, and their locks as the coordinator's reboot
 * leases. */
#include "audit.h"
#include "fleetlock.h"
#include "hosts.h"
#include "util.h"

/* The node called cid: its host, made on first sight as name in group.
 * -EPERM, with that host in ret_other, when cid is the ID or MAC of a host
 * Slipway knows. */
static int fleetlock_host(StoreTx *tx, const char *cid, const char *name, const char *group, uint64_t now,
                          const char *actor, char ret_id[HOST_ID_MAX], char ret_other[HOST_ID_MAX]) {
        int r = hosts_find(tx, cid, ret_other);

        if (r >= 0)
                return -EPERM;
        if (r != -ENOENT)
                return r;
        r = hosts_find_named(tx, name, ret_id);
        if (r == -ENOENT)
                r = hosts_ensure_named(tx, name, group, now, actor, ret_id);
        return r;
}

/* Opens a write transaction on db for node cid of group: *ret_name is the
 * name its host has and acts as ("fleetlock:ID"), ret_id that host (made on
 * first sight, at time now). -EPERM as fleetlock_host(). */
static int fleetlock_begin(StoreDb *db, const char *cid, const char *group, uint64_t now, StoreTx **ret_tx,
                           char **ret_name, char ret_id[HOST_ID_MAX], char ret_other[HOST_ID_MAX]) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *name = NULL;
        int r;

        name = strdup_printf("fleetlock:%s", cid);
        if (!name)
                return -ENOMEM;
        r = store_tx_begin(db, STORE_TX_WRITE, &tx);
        if (r < 0)
                return r;
        r = fleetlock_host(tx, cid, name, group, now, name, ret_id, ret_other);
        if (r < 0)
                return r;
        *ret_tx = TAKE_PTR(tx);
        *ret_name = TAKE_PTR(name);
        return 0;
}

int fleetlock_lock(StoreDb *db, const CoordConfig *c, const char *cid, const char *group, uint64_t now,
                   LeaseDecision *ret, char ret_other[HOST_ID_MAX]) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *name = NULL, *why = NULL;
        LeaseDecision d = {};
        char id[HOST_ID_MAX];
        int r;

        r = fleetlock_begin(db, cid, group, now, &tx, &name, id, ret_other);
        if (r < 0)
                return r;
        r = hosts_set_fleetlock_group(tx, id, group, now, name, &why);
        if (r >= 0)
                r = coord_lease_acquire(tx, c, id, now, name, &d);
        else if (r == -EBUSY) {
                json_t *detail = json_pack("{s:s}", "reason", why);
                r = audit_log_at(tx, (int64_t) now, name, "lease.refuse", id, detail);
                json_decref(detail);
                d.refusal = LEASE_REFUSAL_GROUP_MOVE;
                d.reason = TAKE_PTR(why);
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0) {
                lease_decision_release(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int fleetlock_unlock(StoreDb *db, const char *cid, const char *group, uint64_t now, char ***ret_groups,
                     char ret_other[HOST_ID_MAX]) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_free_ char *name = NULL, *why = NULL;
        _cleanup_strv_free_ char **groups = NULL;
        char id[HOST_ID_MAX];
        int r;

        r = fleetlock_begin(db, cid, group, now, &tx, &name, id, ret_other);
        if (r < 0)
                return r;
        r = coord_lease_release(tx, id, 0, now, name, &groups);
        if (r >= 0)
                r = coord_on_report(tx, id, "healthy", now);
        /* Released and up, the node may move. */
        if (r >= 0)
                r = hosts_set_fleetlock_group(tx, id, group, now, name, &why);
        if (r == -EBUSY)
                r = 0;
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                return r;
        *ret_groups = TAKE_PTR(groups);
        return 0;
}
