/* Which slipwayd runs the coordinator. Every instance that shares the
 * state records itself in the store's registry and, every second, tries to
 * take the coordinator's leader lease or renew it (store-instances.h); the
 * one that holds it ticks, and each tick transaction checks first that it
 * still holds it with its epoch (coordinator.h, coord_ticker_fence()).
 * docs/coordinator.md, "Several instances", says why this is safe.
 *
 * A Leader is one process's side of it: its name, its incarnation (a
 * random token, so that a second process under the same name is not taken
 * for the first) and what it last knew. leader_beat() and leader_resign()
 * are called from one thread; the getters from any. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* How long the lease lasts unless renewed (the default of leader-ttl). */
#define LEADER_TTL_DEFAULT_SEC 3
/* An instance that did not beat for this long is stale. */
#define INSTANCE_STALE_MS 5000
/* The leader forgets an instance that did not beat for a day. */
#define INSTANCE_FORGET_MS (24 * 3600 * 1000LL)

typedef struct Leader Leader;

/* A Leader for the instance called name (copied) running version. Returns
 * 0, -ENOMEM, or the error of getrandom(). */
int leader_new(const char *name, const char *version, Leader **ret);
Leader *leader_free(Leader *l);

/* Whether name is a valid instance name: 1 to 64 letters, digits and
 * ".-_:". */
bool instance_name_valid(const char *name);

/* One beat, in one transaction: records the instance alive at url, takes
 * or renews the lease (it lasts ttl_ms), and, on the leader, forgets the
 * instances gone for a day. Returns 1 when this instance leads (then
 * leader_epoch() is its epoch), 0 when it does not, a negative errno when
 * the database failed (it does not lead then: nothing is decided on an
 * error). A change of leadership is logged once: took, lost. */
int leader_beat(Leader *l, StoreDb *store, const char *url, uint64_t ttl_ms);
/* At stop: gives the lease up when this instance holds it, so that
 * another takes it at its next beat instead of after the expiry, and takes
 * the instance out of the registry, so that a process that starts under
 * its name at once is not kept out as a second one. Returns 1 when it gave
 * the lease up, 0 when it did not lead, a negative errno on failure (the
 * lease then expires by itself). */
int leader_resign(Leader *l, StoreDb *store);

bool leader_leading(const Leader *l);
/* The epoch this instance leads with (0 when it does not lead). */
uint64_t leader_epoch(const Leader *l);
/* How many times this instance took or lost the lease since it started. */
uint64_t leader_changes(const Leader *l);
const char *leader_name(const Leader *l);
/* The incarnation: what the lease row names as its holder. */
const char *leader_holder(const Leader *l);
