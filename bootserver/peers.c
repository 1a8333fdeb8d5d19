#include <errno.h>

#include "peers.h"
#include "store-catalog.h"
#include "util.h"

int peers_self(Server *s, char **ret_name, char **ret_url) {
        char *name = NULL, *url = NULL;

        pthread_rwlock_rdlock(&s->config_lock);
        /* A state in sqlite has one instance (the state directory's lock
         * sees to it): one name whatever its URL becomes. */
        if (s->public_url) {
                name = strdup(s->config.database ? s->public_url : PEERS_LOCAL);
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
        return store_blob_holder_instances(tx, ret);
}
