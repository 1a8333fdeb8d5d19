#include <errno.h>

#include "leader.h"
#include "peers.h"
#include "store-catalog.h"
#include "store-instances.h"
#include "util.h"

int peers_self(Server *s, char **ret_name, char **ret_url) {
        char *name = NULL, *url = NULL;

        pthread_rwlock_rdlock(&s->config_lock);
        /* A state in sqlite has one instance (the state directory's lock
         * sees to it): one name whatever its URL becomes. On a shared
         * database, the name it has in the instance registry. */
        if (s->public_url) {
                name = strdup(!s->config.database ? PEERS_LOCAL : s->leader ? leader_name(s->leader) : s->public_url);
                url = strdup(s->public_url);
        }
        pthread_rwlock_unlock(&s->config_lock);
        if (!name || !url) {
                bool known = name || url;
                free(name);
                free(url);
                return known ? -ENOMEM : -EAGAIN;
        }
        *ret_name = name;
        *ret_url = url;
        return 0;
}

int peers_holding(StoreTx *tx, const char *self, const char *hex, char ***ret_urls) {
        return store_blob_holder_urls(tx, hex, self, ret_urls);
}

int peers_count(StoreTx *tx, uint64_t *ret) {
        Instance *l = NULL;
        uint64_t live = 0;
        size_t n = 0;
        int r;

        r = store_instance_list(tx, &l, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (l[i].heartbeat_age <= INSTANCE_STALE_MS)
                        live++;
        instance_list_free(l, n);
        if (r < 0)
                return r;
        *ret = live;
        return 0;
}
