/* This instance and its peers, as the blob copies see them: the name this
 * instance goes by among the holders of blobs, the URL its peers fetch its
 * copies at, the peers that hold a blob, and how many instances there are.
 * An instance is named as in the instance registry (store-instances.h; on
 * sqlite, where it is alone, PEERS_LOCAL), and the peers that hold a blob
 * are the holders the catalog records, with the URL each recorded. */
#pragma once

#include <stdint.h>

#include "server.h"
#include "store.h"

/* The name of the one instance of a state kept in sqlite. */
#define PEERS_LOCAL "local"

/* This instance's name and URL (caller frees both): -EAGAIN before the
 * server knows its public URL, -ENOMEM. The name is the registry's on a
 * shared database, PEERS_LOCAL on sqlite. */
int peers_self(Server *s, char **ret_name, char **ret_url);

/* The URLs of the peers (instances other than self) that hold blob hex,
 * the likeliest to deliver first; caller frees with strv_free (NULL when
 * none does). */
int peers_holding(StoreTx *tx, const char *self, const char *hex, char ***ret_urls);

/* How many instances serve this fleet now: those of the registry that beat
 * in the last INSTANCE_STALE_MS. Not the holders of blobs: names of
 * instances long gone stay there. */
int peers_count(StoreTx *tx, uint64_t *ret);
