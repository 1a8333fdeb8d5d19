/* This instance and its peers, as the blob copies see them: the name this
 * instance goes by among the holders of blobs, the URL its peers fetch its
 * copies at, the peers that hold a blob, and how many instances there are.
 * For now an instance is named by its public URL (on sqlite, where it is
 * alone, by PEERS_LOCAL) and the peers are the holders the catalog
 * records; an instance registry can take their place here alone. */
#pragma once

#include <stdint.h>

#include "server.h"
#include "store.h"

/* The name of the one instance of a state kept in sqlite. */
#define PEERS_LOCAL "local"

/* This instance's name and URL (caller frees both): -EAGAIN before the
 * server knows its public URL, -ENOMEM. The name is the URL on a shared
 * database, PEERS_LOCAL on sqlite. */
int peers_self(Server *s, char **ret_name, char **ret_url);

/* The URLs of the peers (instances other than self) that hold blob hex,
 * the likeliest to deliver first; caller frees with strv_free (NULL when
 * none does). */
int peers_holding(StoreTx *tx, const char *self, const char *hex, char ***ret_urls);

/* How many instances serve this fleet: those that hold some blob. */
int peers_count(StoreTx *tx, uint64_t *ret);
