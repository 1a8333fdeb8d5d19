/* Webhooks: the audit entries each [webhook NAME] asks for (rollout.*,
 * pipeline.*, ...), POSTed to its URL as JSON signed with HMAC-SHA256, one
 * at a time in the order of the audit log, by the instance that leads
 * (leader.h). Each webhook's cursor, the id of the last entry it is done
 * with, is in the store (store-webhooks.h) and moves on in a transaction
 * that checks the lease first: an entry is sent again only when the
 * instance stopped or lost the lease between its sending and that commit
 * (receivers drop a second X-Slipway-Delivery they have seen). A failed
 * attempt is tried again after 1, 2, 4 ... seconds (at most 60), retries
 * times, then given up: logged, audited as webhook.failed, counted.
 * docs/operations.md, "Webhooks", has the format and how to verify it. */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "server.h"

typedef struct Webhooks Webhooks;

/* Starts the sender's thread for s; it reads s's configuration (which may
 * change on reload) and sends while s->leader leads. Returns 0 or a
 * negative errno (nothing started). */
int webhooks_start(Server *s, Webhooks **ret);
/* Stops the thread (an attempt under way is cut off and counted as not
 * sent); the counters stay readable. NULL is fine. */
void webhooks_stop(Webhooks *w);
/* Stops the thread when it runs, and frees w once nothing reads its
 * counters (the HTTP server is stopped); NULL is fine. Returns NULL. */
Webhooks *webhooks_free(Webhooks *w);

/* Writes the delivery counters in Prometheus' text format:
 * slipway_webhook_deliveries_total{webhook, outcome="sent|retried|failed"}. */
void webhooks_metrics_write(Webhooks *w, FILE *f);

/* The signature of a delivery: "sha256=" and the hex HMAC-SHA256 under
 * secret of timestamp, ".", and body. ret gets 7 + 64 + 1 bytes. */
void webhook_sign(const char *secret, const char *timestamp, const char *body, size_t n, char ret[72]);
