/* Which slipwayd runs the coordinator (leader.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include "leader.h"
#include "log.h"
#include "store-instances.h"
#include "util.h"

struct Leader {
        char *name;
        char *version;
        char incarnation[33];
        atomic_bool leading;
        atomic_uint_least64_t epoch;
        atomic_uint_least64_t changes;
        bool failing;    /* the last beat failed (logged) */
        bool name_taken; /* another process runs under the name (logged) */
};

bool instance_name_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_' || c == ':'))
                        return false;
        }
        return true;
}

int leader_new(const char *name, const char *version, Leader **ret) {
        uint8_t token[16];
        Leader *l;

        if (getrandom(token, sizeof token, 0) != (ssize_t) sizeof token)
                return -errno ?: -EIO;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->name = strdup(name);
        l->version = strdup(version);
        if (!l->name || !l->version)
                return leader_free(l), -ENOMEM;
        hex_encode(token, sizeof token, l->incarnation);
        *ret = l;
        return 0;
}

Leader *leader_free(Leader *l) {
        if (!l)
                return NULL;
        free(l->name);
        free(l->version);
        free(l);
        return NULL;
}

bool leader_leading(const Leader *l) {
        return atomic_load(&l->leading);
}

uint64_t leader_epoch(const Leader *l) {
        return atomic_load(&l->leading) ? atomic_load(&l->epoch) : 0;
}

uint64_t leader_changes(const Leader *l) {
        return atomic_load(&l->changes);
}

const char *leader_name(const Leader *l) {
        return l->name;
}

const char *leader_holder(const Leader *l) {
        return l->incarnation;
}

/* The lease is no longer this instance's: says so once, with who has it
 * when that can be read. */
static void lost(Leader *l, StoreDb *store, const char *why) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        LeaderRow row = {};

        if (!atomic_load(&l->leading))
                return;
        atomic_store(&l->leading, false);
        atomic_fetch_add(&l->changes, 1);
        if (!why && store_tx_begin(store, STORE_TX_READ, &tx) >= 0 && store_leader_get(tx, &row) >= 0 && row.holder)
                log_warning("coordinator: lost the lease (epoch %" PRIu64 "): '%s' holds it (epoch %" PRIi64 ")",
                            atomic_load(&l->epoch), row.instance, row.epoch);
        else
                log_warning("coordinator: lost the lease (epoch %" PRIu64 "): %s", atomic_load(&l->epoch),
                            why ?: "another instance holds it");
        leader_row_release(&row);
}

/* The beat's writes: heartbeat, lease, and on the leader the pruning.
 * Returns 1 when it leads (*ret_epoch), 0 when not, -EADDRINUSE when the
 * name is another process's. */
static int beat(Leader *l, StoreTx *tx, const char *url, uint64_t ttl_ms, int64_t *ret_epoch) {
        Instance self = {
                .name = l->name,
                .incarnation = l->incarnation,
                .url = (char *) url,
                .version = l->version,
                .pid = (int64_t) getpid(),
        };
        int r;

        r = store_instance_heartbeat(tx, &self, INSTANCE_STALE_MS);
        if (r == 0)
                return -EADDRINUSE;
        if (r > 0)
                r = store_leader_acquire(tx, l->name, l->incarnation, (int64_t) ttl_ms, ret_epoch);
        if (r > 0) {
                int n = store_instance_prune(tx, INSTANCE_FORGET_MS);
                if (n < 0)
                        return n;
                if (n > 0)
                        log_info("coordinator: forgot %d instance(s) gone for a day", n);
        }
        return r;
}

int leader_beat(Leader *l, StoreDb *store, const char *url, uint64_t ttl_ms) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int64_t epoch = 0;
        int r;

        store_clear_error();
        /* Relaxed: a beat lost in a crash is made again a second later, and
         * no tick trusts one without checking the row. */
        r = store_tx_begin(store, STORE_TX_RELAXED, &tx);
        if (r >= 0)
                r = beat(l, tx, url, ttl_ms, &epoch);
        if (r >= 0) {
                int c = store_tx_commit(&tx);
                r = c < 0 ? c : r;
        }
        if (r == -EADDRINUSE) {
                if (!l->name_taken)
                        log_error("coordinator: another slipwayd runs as instance '%s', or one under that name died "
                                  "less than %d s ago: this one does not coordinate while it is taken (set [server] "
                                  "instance)",
                                  l->name, INSTANCE_STALE_MS / 1000);
                l->name_taken = true;
                lost(l, store, "another slipwayd runs under this instance's name");
                return 0;
        }
        l->name_taken = false;
        if (r < 0) {
                _cleanup_free_ char *why = strdup_printf("cannot renew it: %s", store_last_error() ?: strerror(-r));

                if (!l->failing)
                        log_warning("coordinator: cannot record this instance or its lease: %s",
                                    store_last_error() ?: strerror(-r));
                l->failing = true;
                lost(l, store, why ?: "cannot renew it");
                return r;
        }
        if (l->failing)
                log_info("coordinator: recording this instance again");
        l->failing = false;
        if (r == 0) {
                lost(l, store, NULL);
                return 0;
        }
        if (atomic_load(&l->leading) && atomic_load(&l->epoch) != (uint64_t) epoch) {
                /* Its own lease had expired and was taken again: an epoch of
                 * its own between is over. */
                log_warning("coordinator: the lease of epoch %" PRIu64 " expired before it was renewed",
                            atomic_load(&l->epoch));
                atomic_store(&l->leading, false);
                atomic_fetch_add(&l->changes, 1);
        }
        if (!atomic_load(&l->leading)) {
                atomic_store(&l->epoch, (uint64_t) epoch);
                atomic_store(&l->leading, true);
                atomic_fetch_add(&l->changes, 1);
                log_info("coordinator: took the lease (epoch %" PRIi64 "): instance '%s' coordinates", epoch, l->name);
        }
        return 1;
}

int leader_resign(Leader *l, StoreDb *store) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        bool leading = atomic_load(&l->leading);
        uint64_t epoch = atomic_load(&l->epoch);
        int r, gave = 0;

        if (leading) {
                atomic_store(&l->leading, false);
                atomic_fetch_add(&l->changes, 1);
        }
        store_clear_error();
        r = store_tx_begin(store, STORE_TX_WRITE, &tx);
        if (r >= 0 && leading)
                r = gave = store_leader_release(tx, l->incarnation, (int64_t) epoch);
        if (r >= 0)
                r = store_instance_remove(tx, l->name, l->incarnation);
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                return log_warning_errno(r, "coordinator: cannot give up the lease or leave the registry; the lease "
                                            "expires by itself: %s",
                                         store_last_error() ?: strerror(-r));
        if (gave > 0)
                log_info("coordinator: gave up the lease (epoch %" PRIu64 ")", epoch);
        return gave;
}
