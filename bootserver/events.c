/* The live stream of events: a ring of the audit log's newest entries, fed
 * by one thread that reads the store by id, and the streams reading it
 * (events.h). The thread reads when woken: by a transaction of this
 * instance that appended (store_db_watch_audit()'s call from the
 * committing thread), or by the store when another instance did (on
 * PostgreSQL, the listener that also carries released leases); and every
 * events-poll seconds whatever happened, so a missed notice costs time,
 * never an entry. A stream with nothing to send suspends its connection
 * from libmicrohttpd's content callback; the thread resumes the waiting
 * ones when entries come in, and every EVENTS_KEEPALIVE_SEC. The lock
 * orders our list before libmicrohttpd's own: a stream is put on the
 * waiting list and suspended under it, and resumed and taken off under it,
 * so no wake is lost between the two. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "leader.h"
#include "log.h"
#include "store-audit.h"
#include "util.h"

/* How often the thread looks for clients gone and keepalives due. */
#define TICK_MS 1000
#define BATCH 1000

typedef struct Stream {
        EventHub *hub;
        struct MHD_Connection *conn;
        int64_t cursor;        /* the last entry sent */
        uint64_t last_write_ms;
        bool hello_sent;
        int fd;                /* the connection's socket, to see the client leave; -1 when unknown */
        bool waiting;          /* on the waiting list, suspended */
        bool gone;             /* the client closed its end */
        char *pending;         /* what did not fit in the last buffer */
        size_t pending_len, pending_off;
        struct Stream *next;   /* on the waiting list */
} Stream;

typedef struct Slot {
        int64_t id;
        char *text; /* "id: N\nevent: audit\ndata: {...}\n\n" */
        size_t len;
} Slot;

struct EventHub {
        Server *server;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool running, stop;
        bool woken;          /* new entries announced since the last read */
        Slot ring[EVENTS_RING];
        size_t head;         /* where the next entry goes */
        size_t count;
        int64_t newest;      /* the newest entry read from the store */
        unsigned streams;
        Stream *waiting;
        uint64_t last_wake_ms;
};

static uint64_t mono_ms(void) {
        return now_usec() / 1000;
}

static char *entry_event(const AuditEntry *e, size_t *ret_len) {
        json_t *detail = e->detail ? json_loads(e->detail, 0, NULL) : NULL;
        json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s?, s:o}", "id", (json_int_t) e->id, "time",
                              (json_int_t) e->time, "actor", e->actor, "action", e->action, "target", e->target,
                              "detail", detail ? detail : json_null());
        _cleanup_free_ char *data = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        char *text;

        json_decref(o);
        if (!data)
                return NULL;
        /* json_dumps escapes newlines: data is one line, as SSE needs. */
        text = strdup_printf("id: %lld\nevent: audit\ndata: %s\n\n", (long long) e->id, data);
        if (text)
                *ret_len = strlen(text);
        return text;
}

/* Resumes every waiting stream (lock held). */
static void wake_all(EventHub *h) {
        while (h->waiting) {
                Stream *st = h->waiting;

                h->waiting = st->next;
                st->next = NULL;
                st->waiting = false;
                MHD_resume_connection(st->conn);
        }
        h->last_wake_ms = mono_ms();
}

/* Resumes the waiting streams whose client has closed its end (lock held):
 * a suspended connection is not watched by the server, and a stream's
 * client sends nothing after its request, so anything to read is its end.
 * Their next call ends them at once, not at a keepalive's failed write. */
static void wake_gone(EventHub *h) {
        for (Stream **p = &h->waiting; *p;) {
                Stream *st = *p;
                struct pollfd pfd = { .fd = st->fd, .events = POLLIN | POLLRDHUP };

                if (st->fd < 0 || poll(&pfd, 1, 0) <= 0) {
                        p = &st->next;
                        continue;
                }
                *p = st->next;
                st->next = NULL;
                st->waiting = false;
                st->gone = true;
                MHD_resume_connection(st->conn);
        }
}

/* Reads the entries after h->newest into the ring. Returns how many. */
static int hub_poll(EventHub *h) {
        int total = 0;

        for (;;) {
                _cleanup_store_tx_ StoreTx *tx = NULL;
                AuditQuery q = { .since = (uint64_t) h->newest, .limit = BATCH };
                AuditEntry *l = NULL;
                size_t n = 0;
                int r;

                r = store_tx_begin(h->server->store, STORE_TX_READ, &tx);
                if (r >= 0)
                        r = store_audit_list(tx, &q, &l, &n);
                store_tx_rollback(&tx);
                if (r < 0)
                        return r;
                pthread_mutex_lock(&h->lock);
                for (size_t i = 0; i < n; i++) {
                        Slot *sl = &h->ring[h->head];
                        size_t len = 0;
                        char *text = entry_event(&l[i], &len);

                        if (!text)
                                continue;
                        free(sl->text);
                        *sl = (Slot) { .id = l[i].id, .text = text, .len = len };
                        h->head = (h->head + 1) % EVENTS_RING;
                        if (h->count < EVENTS_RING)
                                h->count++;
                        h->newest = l[i].id;
                }
                pthread_mutex_unlock(&h->lock);
                audit_entries_free(l, n);
                total += (int) n;
                if (n < BATCH)
                        return total;
        }
}

/* store_db_watch_audit()'s call: from a committing thread, or the store's. */
static void hub_wake(void *userdata) {
        EventHub *h = userdata;

        pthread_mutex_lock(&h->lock);
        h->woken = true;
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->lock);
}

/* The fallback poll's interval (events-poll), in ms. */
static uint64_t poll_interval_ms(Server *s) {
        uint64_t sec;

        pthread_rwlock_rdlock(&s->config_lock);
        sec = s->config.events_poll;
        pthread_rwlock_unlock(&s->config_lock);
        return (sec ? sec : 1) * 1000;
}

static void *hub_main(void *userdata) {
        EventHub *h = userdata;
        bool failing = false, read = true;
        uint64_t last_read_ms = 0, interval_ms;

        for (;;) {
                struct timespec until;
                int r = 0;

                if (read) {
                        last_read_ms = mono_ms();
                        r = hub_poll(h);
                        if (r < 0 && !failing)
                                log_warning("event stream: cannot read the audit log: %s",
                                            store_last_error() ?: strerror(-r));
                        else if (r >= 0 && failing)
                                log_info("event stream: reading the audit log again");
                        failing = r < 0;
                }
                interval_ms = poll_interval_ms(h->server);
                pthread_mutex_lock(&h->lock);
                if (r > 0 || mono_ms() - h->last_wake_ms >= EVENTS_KEEPALIVE_SEC * 1000)
                        wake_all(h);
                else
                        wake_gone(h);
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_sec += TICK_MS / 1000;
                while (!h->stop && !h->woken && pthread_cond_timedwait(&h->cond, &h->lock, &until) != ETIMEDOUT)
                        ;
                if (h->stop) {
                        pthread_mutex_unlock(&h->lock);
                        return NULL;
                }
                /* Read when told, after a failure, and at the fallback poll. */
                read = h->woken || failing || mono_ms() - last_read_ms >= interval_ms;
                h->woken = false;
                pthread_mutex_unlock(&h->lock);
        }
}

int event_hub_start(Server *s) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        AuditQuery q = { .last = 1, .limit = 1 };
        AuditEntry *l = NULL;
        size_t n = 0;
        pthread_condattr_t attr;
        EventHub *h;
        int r;

        r = store_tx_begin(s->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_audit_list(tx, &q, &l, &n);
        store_tx_rollback(&tx);
        if (r < 0)
                return r;
        h = calloc(1, sizeof *h);
        if (!h) {
                audit_entries_free(l, n);
                return -ENOMEM;
        }
        h->server = s;
        h->newest = n > 0 ? l[n - 1].id : 0;
        audit_entries_free(l, n);
        h->last_wake_ms = mono_ms();
        pthread_mutex_init(&h->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&h->cond, &attr);
        pthread_condattr_destroy(&attr);
        /* Before the thread's first read, so that nothing falls between.
         * Without it, entries come at the fallback poll. */
        if (store_db_watch_audit(s->store, hub_wake, h) < 0)
                log_warning("event stream: other instances' entries come every %llu s only",
                            (unsigned long long) s->config.events_poll);
        if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
                (void) store_db_watch_audit(s->store, NULL, NULL);
                pthread_cond_destroy(&h->cond);
                pthread_mutex_destroy(&h->lock);
                free(h);
                return -EAGAIN;
        }
        h->running = true;
        s->events = h;
        return 0;
}

void event_hub_stop(Server *s) {
        EventHub *h = s->events;

        if (!h || !h->running)
                return;
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        /* Each stream's next call sees stop and ends it. */
        wake_all(h);
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
        h->running = false;
}

void event_hub_free(Server *s) {
        EventHub *h = s->events;

        if (!h)
                return;
        /* The server is stopped: nothing commits any more. */
        (void) store_db_watch_audit(s->store, NULL, NULL);
        event_hub_stop(s);
        for (size_t i = 0; i < EVENTS_RING; i++)
                free(h->ring[i].text);
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
        s->events = NULL;
}

/* Copies from the stream's pending text (lock held). */
static size_t take_pending(Stream *st, char *buf, size_t max) {
        size_t n = st->pending_len - st->pending_off;

        if (n > max)
                n = max;
        memcpy(buf, st->pending + st->pending_off, n);
        st->pending_off += n;
        if (st->pending_off == st->pending_len) {
                free(st->pending);
                st->pending = NULL;
                st->pending_len = st->pending_off = 0;
        }
        return n;
}

/* Sets text as the stream's pending output (lock held); takes it. */
static void set_pending(Stream *st, char *text, size_t len) {
        free(st->pending);
        st->pending = text;
        st->pending_len = len;
        st->pending_off = 0;
}

/* The stream's next output into st->pending (lock held): the entries after
 * its cursor, or a reset when it fell behind the ring. false when there is
 * nothing. */
static bool stream_next(EventHub *h, Stream *st) {
        size_t oldest = (h->head + EVENTS_RING - h->count) % EVENTS_RING, size = 0, len = 0;
        char *out = NULL;

        if (!st->hello_sent) {
                char *t = strdup_printf("retry: 2000\nevent: hello\ndata: {\"instance\": \"%s\", \"last\": %lld}\n\n",
                                        h->server->leader ? leader_name(h->server->leader) : "",
                                        (long long) h->newest);

                st->hello_sent = true;
                if (st->cursor < 0)
                        st->cursor = h->newest;
                if (!t)
                        return false;
                set_pending(st, t, strlen(t));
                return true;
        }
        if (st->cursor >= h->newest)
                return false;
        if (h->count > 0 && st->cursor < h->ring[oldest].id - 1) {
                /* Entries it has not seen are gone from the ring. */
                char *t = strdup_printf("event: reset\ndata: {\"last\": %lld}\n\n", (long long) h->newest);

                st->cursor = h->newest;
                if (!t)
                        return false;
                set_pending(st, t, strlen(t));
                return true;
        }
        for (size_t k = 0; k < h->count; k++) {
                Slot *sl = &h->ring[(oldest + k) % EVENTS_RING];
                char *grown;

                if (sl->id <= st->cursor)
                        continue;
                if (len + sl->len + 1 > size) {
                        size = (len + sl->len + 1) * 2;
                        grown = realloc(out, size);
                        if (!grown)
                                break;
                        out = grown;
                }
                memcpy(out + len, sl->text, sl->len);
                len += sl->len;
                st->cursor = sl->id;
                /* Bounded per call: the rest comes at the next one. */
                if (len >= 256 * 1024)
                        break;
        }
        if (!out)
                return false;
        set_pending(st, out, len);
        return true;
}

static ssize_t stream_read(void *cls, uint64_t pos _unused_, char *buf, size_t max) {
        Stream *st = cls;
        EventHub *h = st->hub;
        size_t n = 0;

        pthread_mutex_lock(&h->lock);
        if (h->stop) {
                pthread_mutex_unlock(&h->lock);
                return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (st->gone) {
                pthread_mutex_unlock(&h->lock);
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (st->pending || stream_next(h, st))
                n = take_pending(st, buf, max);
        else if (mono_ms() - st->last_write_ms >= EVENTS_KEEPALIVE_SEC * 1000) {
                static const char keepalive[] = ": keepalive\n\n";

                n = MIN(sizeof keepalive - 1, max);
                memcpy(buf, keepalive, n);
        } else {
                st->waiting = true;
                st->next = h->waiting;
                h->waiting = st;
                MHD_suspend_connection(st->conn);
        }
        if (n > 0)
                st->last_write_ms = mono_ms();
        pthread_mutex_unlock(&h->lock);
        return (ssize_t) n;
}

static void stream_free(void *cls) {
        Stream *st = cls;
        EventHub *h = st->hub;

        pthread_mutex_lock(&h->lock);
        if (st->waiting)
                for (Stream **p = &h->waiting; *p; p = &(*p)->next)
                        if (*p == st) {
                                *p = st->next;
                                break;
                        }
        h->streams--;
        pthread_mutex_unlock(&h->lock);
        free(st->pending);
        free(st);
}

enum MHD_Result event_stream_reply(Request *req, int64_t since) {
        EventHub *h = req->server->events;
        struct MHD_Response *resp;
        Stream *st;

        if (!h || !h->running)
                return reply_error(req, KIND_UNAVAILABLE, "the event stream is not running on this instance");
        st = calloc(1, sizeof *st);
        if (!st)
                return reply_error(req, KIND_INTERNAL, "out of memory");
        pthread_mutex_lock(&h->lock);
        if (h->stop || h->streams >= EVENTS_STREAMS_MAX) {
                pthread_mutex_unlock(&h->lock);
                free(st);
                return reply_error(req, KIND_UNAVAILABLE, "%u event streams are open on this instance, the most it serves",
                                   (unsigned) EVENTS_STREAMS_MAX);
        }
        h->streams++;
        pthread_mutex_unlock(&h->lock);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

        *st = (Stream) { .hub = h, .conn = req->conn, .fd = ci ? ci->connect_fd : -1, .cursor = since,
                         .last_write_ms = mono_ms() };
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
        if (!resp) {
                stream_free(st);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        return reply_response(req, 200, resp);
}
