/* The live stream of events (GET /v1/events, text/event-stream): the audit
 * log as it grows, whichever instance wrote it. One thread per instance
 * reads the store's new entries by their id when told of them (an entry
 * written here, or on another instance sharing PostgreSQL) and every
 * events-poll seconds besides, keeps the last EVENTS_RING of them and
 * wakes the streams; a stream waits suspended, so it holds no thread of
 * the server while nothing happens. */
#pragma once

#include <microhttpd.h>
#include <stdint.h>

#include "server.h"

/* Entries kept for streams that fall behind or reconnect with
 * Last-Event-ID; one further behind gets a "reset" event. */
#define EVENTS_RING 4096
/* Streams open at once on an instance; one more is 503 unavailable. */
#define EVENTS_STREAMS_MAX 64
/* A comment line goes to an idle stream this often, so proxies and
 * clients see it alive and a closed one is noticed. */
#define EVENTS_KEEPALIVE_SEC 15

typedef struct EventHub EventHub;

/* Starts the hub's thread, from the store's newest entry on, and sets
 * s->events. Negative errno when it cannot. */
int event_hub_start(Server *s);

/* Ends every stream and the thread; s->events stays for the responses the
 * server still holds. Call before server_stop(). */
void event_hub_stop(Server *s);

/* Frees the hub after server_stop(); NULL is fine. */
void event_hub_free(Server *s);

/* Answers req with a stream from the entry after since (-1: from now on).
 * 503 when the hub is not running or EVENTS_STREAMS_MAX are open. */
enum MHD_Result event_stream_reply(Request *req, int64_t since);
