/* Copies of blobs between instances: a blob this instance lacks is fetched
 * from a peer that holds it (for a request, or for an image that is not yet
 * on enough instances), verified against its digest while it is written,
 * kept and recorded; the images whose blobs reach `replicas` holders are
 * published; this instance's unreferenced copies are collected. A thread
 * does the periodic part when the state is shared (PostgreSQL). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "server.h"

typedef struct Replicator Replicator;

/* Sets up s->replicator, and starts its thread when thread is true (the
 * state is in a database other instances may share). 0 or a negative
 * errno; s->replicator stays NULL on failure. */
int replicator_start(Server *s, bool thread);
/* Stops the thread and every fetch (a fetch in progress is abandoned, the
 * requests that wait for it resume and are answered 404), before the HTTP
 * server stops; later fetches find nothing. Nothing to do when
 * s->replicator is NULL. */
void replicator_stop(Server *s);
/* Stops (if not yet) and frees s->replicator, once no request runs. */
void replicator_free(Server *s);

/* Makes blob hex present here: fetches it from the peers that hold it, in
 * turn, unless another caller is fetching it already (then waits for that
 * one). 0 when the file is here now; -ENOENT when no peer holds it (or the
 * replicator is not running, or the state is not shared: no peers);
 * -EHOSTUNREACH when none delivered the right bytes in time (each failure
 * is logged). */
int replicator_fetch(Server *s, const char *hex);

/* For a request (GET or HEAD) of blob hex, which this instance lacks: 0 when
 * the blob is here after all; 1 when a fetch (its own, in a thread, or one
 * in progress) will resume req, suspended, with req->fetch_done and
 * req->fetch_result set as replicator_fetch() answers; -EBUSY when no fetch
 * can start now (the caller may fetch itself); -ENOENT when the replicator
 * is not running; -ENOMEM. */
int replicator_fetch_async(Server *s, const char *hex, Request *req);

/* The holders each blob of an image needs before it is visible, for the
 * transaction tx: [server] replicas, or when it is 0, 2 when two or more
 * instances hold blobs and 1 otherwise. */
int replicator_replicas(Server *s, StoreTx *tx, uint64_t *ret);
