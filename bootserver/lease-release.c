/* Giving a reboot lease back, with the groups it frees a place in. */
#include "coordinator.h"
#include "lease-release.h"
#include "store-hosts.h"

int lease_release_groups(StoreTx *tx, const char *host, uint64_t epoch, const char *actor, char ***ret_groups) {
        int released;

        released = coord_lease_release(tx, host, epoch, actor);
        if (released <= 0)
                return released;
        /* Only wakes waiters: a failure here costs them a round, not the release. */
        (void) store_host_groups(tx, host, ret_groups);
        return released;
}
