#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "audit.h"
#include "curleasy.h"
#include "leader.h"
#include "log.h"
#include "metrics-text.h"
#include "store-audit.h"
#include "store-instances.h"
#include "store-webhooks.h"
#include "util.h"
#include "webhook-config.h"
#include "webhooks.h"

/* How often the sender looks for new entries. */
#define POLL_MSEC 250
/* Entries read at once. */
#define BATCH 100
/* The longest wait between two attempts at one entry. */
#define BACKOFF_MAX_SEC 60
/* An id missing below one that is there is waited for this long: on
 * PostgreSQL a transaction may commit its entry after a later one's
 * (ids are taken when the row is written); after that it is taken to be
 * a transaction that rolled back. */
#define GAP_WAIT_USEC (5 * 1000000ULL)
/* The reply body kept, for messages. */
#define REPLY_MAX 200

/* One webhook's progress on this instance, by name. */
typedef struct Hook {
        char *name;
        bool loaded;        /* cursor read from the store since this instance leads */
        int64_t cursor;     /* the last audit id done with */
        int64_t stored;     /* the store's cursor as last written or read */
        uint64_t attempts;  /* failed attempts at the entry after cursor */
        uint64_t next_usec; /* no attempt before this */
        int64_t gap_id;     /* the entry after a gap, while the gap is waited for */
        uint64_t gap_since;
        atomic_ulong sent, retried, failed;
} Hook;

struct Webhooks {
        Server *server;
        pthread_t thread;
        pthread_mutex_t lock; /* hooks (the list; counters are atomic), stop */
        pthread_cond_t cond;
        atomic_bool stop;
        Hook **hooks;
        size_t n_hooks;
};

void webhook_sign(const char *secret, const char *timestamp, const char *body, size_t n, char ret[72]) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        _cleanup_free_ char *msg = NULL;
        size_t tl = strlen(timestamp);

        msg = malloc(tl + 1 + n);
        if (msg) {
                memcpy(msg, timestamp, tl);
                msg[tl] = '.';
                memcpy(msg + tl + 1, body, n);
        }
        if (!msg || !HMAC(EVP_sha256(), secret, (int) strlen(secret), (const uint8_t *) msg, tl + 1 + n, mac, &mac_len) ||
            mac_len != 32) {
                /* Nothing a receiver accepts. */
                snprintf(ret, 72, "sha256=");
                return;
        }
        memcpy(ret, "sha256=", 7);
        hex_encode(mac, 32, ret + 7);
}

static void targets_free(WebhookConfig *l, size_t n) {
        webhook_configs_free(l, n);
}

/* The webhooks of s's configuration, copied out from under its lock. */
static int targets_copy(Server *s, WebhookConfig **ret, size_t *ret_n) {
        const ServerConfig *c = config_get(s);
        WebhookConfig *l = NULL;
        size_t n = 0;
        int r = 0;

        if (c->n_webhooks > 0) {
                l = calloc(c->n_webhooks, sizeof *l);
                if (!l)
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < c->n_webhooks; i++) {
                const WebhookConfig *w = &c->webhooks[i];

                l[i] = (WebhookConfig) { .retries = w->retries, .timeout = w->timeout, .line = w->line };
                n++;
                l[i].name = strdup(w->name);
                l[i].url = strdup(w->url);
                l[i].secret = strdup(w->secret);
                for (size_t k = 0; w->events && w->events[k] && r >= 0; k++)
                        r = strv_extend(&l[i].events, w->events[k]);
                if (!l[i].name || !l[i].url || !l[i].secret)
                        r = -ENOMEM;
        }
        config_put(s);
        if (r < 0) {
                targets_free(l, n);
                return r;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

static Hook *hook_get(Webhooks *ws, const char *name) {
        Hook *h = NULL, **l;

        pthread_mutex_lock(&ws->lock);
        for (size_t i = 0; i < ws->n_hooks; i++)
                if (streq(ws->hooks[i]->name, name)) {
                        h = ws->hooks[i];
                        goto out;
                }
        l = reallocarray(ws->hooks, ws->n_hooks + 1, sizeof *l);
        if (!l)
                goto out;
        ws->hooks = l;
        h = calloc(1, sizeof *h);
        if (h && !(h->name = strdup(name))) {
                free(h);
                h = NULL;
        }
        if (h)
                ws->hooks[ws->n_hooks++] = h;
out:
        pthread_mutex_unlock(&ws->lock);
        return h;
}

/* Writes h's cursor (and the audit entry of an event given up, when
 * failed is not NULL) in one transaction that checks first that this
 * instance still leads: -ESTALE when it does not. */
static int hook_store(Webhooks *ws, Hook *h, const AuditEntry *failed, const char *why, uint64_t attempts) {
        Leader *lead = ws->server->leader;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(ws->server->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = store_leader_holds(tx, leader_holder(lead), (int64_t) leader_epoch(lead));
        if (r == 0)
                r = -ESTALE;
        if (r >= 0)
                r = store_webhook_cursor_set(tx, h->name, h->cursor);
        if (r >= 0 && failed) {
                json_t *d = json_pack("{s:I, s:s, s:I, s:s}", "id", (json_int_t) failed->id, "event", failed->action,
                                      "attempts", (json_int_t) attempts, "error", why);
                r = d ? audit_log_at(tx, (int64_t) time(NULL), "webhook", "webhook.failed", h->name, d) : -ENOMEM;
                json_decref(d);
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r >= 0)
                h->stored = h->cursor;
        return r;
}

/* The cursor of h from the store; a webhook the store has none for starts
 * after the newest entry (it is sent what happens from now on). */
static int hook_load(Webhooks *ws, Hook *h) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int64_t id = 0;
        int r;

        r = store_tx_begin(ws->server->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_webhook_cursor_get(tx, h->name, &id);
        if (r == 0) {
                r = store_audit_last_id(tx, &id);
                if (r >= 0)
                        r = 2;
        }
        store_tx_rollback(&tx);
        if (r < 0)
                return r;
        h->cursor = id;
        h->stored = r == 2 ? -1 : id;
        h->attempts = 0;
        h->next_usec = 0;
        h->gap_id = 0;
        if (r == 2) {
                r = hook_store(ws, h, NULL, NULL, 0);
                if (r < 0)
                        return r;
                log_info("webhook '%s': sending the events after audit entry %" PRIi64, h->name, id);
        }
        h->loaded = true;
        return 0;
}

static json_t *entry_json(const WebhookConfig *w, const AuditEntry *e) {
        json_t *detail = e->detail ? json_loads(e->detail, 0, NULL) : NULL;

        return json_pack("{s:I, s:s, s:I, s:s, s:s?, s:o, s:s}", "id", (json_int_t) e->id, "event", e->action, "time",
                         (json_int_t) e->time, "actor", e->actor, "target", e->target, "detail",
                         detail ? detail : json_null(), "webhook", w->name);
}

typedef struct Reply {
        char text[REPLY_MAX + 1];
        size_t n;
} Reply;

static size_t reply_write(char *p, size_t size, size_t nmemb, void *userdata) {
        Reply *r = userdata;
        size_t n = size * nmemb, k = MIN(n, REPLY_MAX - r->n);

        memcpy(r->text + r->n, p, k);
        r->n += k;
        r->text[r->n] = 0;
        return n;
}

static int on_progress(void *userdata, curl_off_t a _unused_, curl_off_t b _unused_, curl_off_t c _unused_,
                       curl_off_t d _unused_) {
        Webhooks *ws = userdata;

        return atomic_load(&ws->stop) ? 1 : 0;
}

/* POSTs entry e to w's URL. 0 on a 2xx answer; otherwise a negative errno
 * with why (caller frees) saying what went wrong. */
static int deliver(Webhooks *ws, const WebhookConfig *w, const AuditEntry *e, char **ret_why) {
        _cleanup_free_ char *body = NULL, *h_event = NULL, *h_id = NULL, *h_ts = NULL, *h_sig = NULL;
        HttpOptions o = { .timeout_sec = (long) w->timeout };
        char errbuf[CURL_ERROR_SIZE] = "", sig[72], ts[24];
        struct curl_slist *headers = NULL;
        json_t *j = entry_json(w, e);
        Reply reply = {};
        long status = 0;
        CURLcode code;
        CURL *c;

        body = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(j);
        if (!body)
                return -ENOMEM;
        snprintf(ts, sizeof ts, "%lld", (long long) time(NULL));
        webhook_sign(w->secret, ts, body, strlen(body), sig);
        h_event = strdup_printf("X-Slipway-Event: %s", e->action);
        h_id = strdup_printf("X-Slipway-Delivery: %" PRIi64, e->id);
        h_ts = strdup_printf("X-Slipway-Timestamp: %s", ts);
        h_sig = strdup_printf("X-Slipway-Signature: %s", sig);
        c = http_easy_new(w->url, &o, errbuf);
        if (!c || !h_event || !h_id || !h_ts || !h_sig) {
                if (c)
                        curl_easy_cleanup(c);
                return -ENOMEM;
        }
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, h_event);
        headers = curl_slist_append(headers, h_id);
        headers = curl_slist_append(headers, h_ts);
        headers = curl_slist_append(headers, h_sig);
        headers = curl_slist_append(headers, "Expect:");
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 0L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, reply_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, ws);
        code = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        curl_slist_free_all(headers);
        if (code != CURLE_OK) {
                *ret_why = strdup_printf("%s", errbuf[0] ? errbuf : curl_easy_strerror(code));
                return code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
        }
        if (status < 200 || status > 299) {
                for (size_t i = 0; i < reply.n; i++)
                        if ((unsigned char) reply.text[i] < 0x20 || (unsigned char) reply.text[i] >= 0x7f)
                                reply.text[i] = ' ';
                *ret_why = strdup_printf("HTTP %ld%s%s", status, reply.n ? ": " : "", reply.text);
                return -EPROTO;
        }
        return 0;
}

static uint64_t backoff_usec(uint64_t attempts) {
        uint64_t sec = attempts >= 7 ? BACKOFF_MAX_SEC : MIN((uint64_t) 1 << (attempts - 1), (uint64_t) BACKOFF_MAX_SEC);

        return sec * 1000000ULL;
}

/* One round for webhook w: the entries after its cursor, sent in order
 * until one fails (it is tried again after its back-off) or a gap is
 * waited for. */
static void hook_run(Webhooks *ws, const WebhookConfig *w, Hook *h) {
        AuditEntry *l = NULL;
        size_t n = 0;
        uint64_t now = now_usec();
        int r;

        if (now < h->next_usec)
                return;
        if (!h->loaded) {
                r = hook_load(ws, h);
                if (r < 0) {
                        log_warning("webhook '%s': cannot read its cursor: %s", w->name, strerror(-r));
                        h->next_usec = now + 1000000ULL;
                        return;
                }
        }
        {
                _cleanup_store_tx_ StoreTx *tx = NULL;
                AuditQuery q = { .since = (uint64_t) h->cursor, .limit = BATCH };

                r = store_tx_begin(ws->server->store, STORE_TX_READ, &tx);
                if (r >= 0)
                        r = store_audit_list(tx, &q, &l, &n);
        }
        if (r < 0) {
                h->next_usec = now + 1000000ULL;
                return;
        }
        for (size_t i = 0; i < n && !atomic_load(&ws->stop); i++) {
                const AuditEntry *e = &l[i];
                const AuditEntry *given_up = NULL;
                _cleanup_free_ char *why = NULL;

                if (e->id != h->cursor + 1) {
                        if (h->gap_id != e->id) {
                                h->gap_id = e->id;
                                h->gap_since = now;
                        }
                        if (now - h->gap_since < GAP_WAIT_USEC)
                                break;
                }
                h->gap_id = 0;
                if (!webhook_config_wants(w, e->action) || startswith(e->action, "webhook.")) {
                        h->cursor = e->id;
                        continue;
                }
                r = deliver(ws, w, e, &why);
                if (r < 0 && atomic_load(&ws->stop))
                        break; /* cut off: sent again at the next start */
                if (r < 0) {
                        h->attempts++;
                        if (h->attempts <= w->retries) {
                                atomic_fetch_add(&h->retried, 1);
                                h->next_usec = now_usec() + backoff_usec(h->attempts);
                                log_warning("webhook '%s': %s %" PRIi64 " not sent (attempt %" PRIu64 " of %" PRIu64
                                            "): %s; trying again in %" PRIu64 " s",
                                            w->name, e->action, e->id, h->attempts, w->retries + 1, strempty(why),
                                            (uint64_t) (backoff_usec(h->attempts) / 1000000));
                                break;
                        }
                        atomic_fetch_add(&h->failed, 1);
                        log_error("webhook '%s': %s %" PRIi64 " given up after %" PRIu64 " attempts: %s", w->name,
                                  e->action, e->id, h->attempts, strempty(why));
                        given_up = e;
                } else
                        atomic_fetch_add(&h->sent, 1);
                h->cursor = e->id;
                r = hook_store(ws, h, given_up, why ? why : "", h->attempts);
                h->attempts = 0;
                if (r < 0) {
                        /* Lost the lease, or the database: read again when
                         * leading. The entry may be sent twice then. */
                        log_warning("webhook '%s': cannot record audit entry %" PRIi64 " as done: %s", w->name, e->id,
                                    r == -ESTALE ? "this instance no longer leads" : strerror(-r));
                        h->loaded = false;
                        break;
                }
        }
        if (h->loaded && h->cursor != h->stored && hook_store(ws, h, NULL, NULL, 0) < 0)
                h->loaded = false;
        audit_entries_free(l, n);
}

static void *sender_main(void *userdata) {
        Webhooks *ws = userdata;

        while (!atomic_load(&ws->stop)) {
                WebhookConfig *l = NULL;
                size_t n = 0;
                struct timespec until;

                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += POLL_MSEC * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                pthread_mutex_lock(&ws->lock);
                if (!atomic_load(&ws->stop))
                        pthread_cond_timedwait(&ws->cond, &ws->lock, &until);
                pthread_mutex_unlock(&ws->lock);
                if (atomic_load(&ws->stop))
                        break;
                if (!ws->server->leader || !leader_leading(ws->server->leader)) {
                        /* Another instance sends; its cursors are read
                         * again when this one leads. */
                        pthread_mutex_lock(&ws->lock);
                        for (size_t i = 0; i < ws->n_hooks; i++)
                                ws->hooks[i]->loaded = false;
                        pthread_mutex_unlock(&ws->lock);
                        continue;
                }
                if (targets_copy(ws->server, &l, &n) < 0)
                        continue;
                for (size_t i = 0; i < n && !atomic_load(&ws->stop); i++) {
                        Hook *h = hook_get(ws, l[i].name);
                        if (h)
                                hook_run(ws, &l[i], h);
                }
                targets_free(l, n);
        }
        return NULL;
}

int webhooks_start(Server *s, Webhooks **ret) {
        Webhooks *ws = calloc(1, sizeof *ws);
        int r;

        if (!ws)
                return -ENOMEM;
        ws->server = s;
        pthread_mutex_init(&ws->lock, NULL);
        pthread_cond_init(&ws->cond, NULL);
        r = http_global_init();
        if (r >= 0)
                r = -pthread_create(&ws->thread, NULL, sender_main, ws);
        if (r < 0) {
                pthread_cond_destroy(&ws->cond);
                pthread_mutex_destroy(&ws->lock);
                free(ws);
                return r;
        }
        *ret = ws;
        return 0;
}

void webhooks_stop(Webhooks *ws) {
        if (!ws || atomic_load(&ws->stop))
                return;
        pthread_mutex_lock(&ws->lock);
        atomic_store(&ws->stop, true);
        pthread_cond_signal(&ws->cond);
        pthread_mutex_unlock(&ws->lock);
        pthread_join(ws->thread, NULL);
}

Webhooks *webhooks_free(Webhooks *ws) {
        if (!ws)
                return NULL;
        webhooks_stop(ws);
        for (size_t i = 0; i < ws->n_hooks; i++) {
                free(ws->hooks[i]->name);
                free(ws->hooks[i]);
        }
        free(ws->hooks);
        pthread_cond_destroy(&ws->cond);
        pthread_mutex_destroy(&ws->lock);
        free(ws);
        return NULL;
}

void webhooks_metrics_write(Webhooks *ws, FILE *f) {
        static const char *const outcomes[] = { "sent", "retried", "failed" };

        if (!ws)
                return;
        fputs("# HELP slipway_webhook_deliveries_total Webhook deliveries by this instance: sent, attempts that "
              "failed and were retried, events given up.\n"
              "# TYPE slipway_webhook_deliveries_total counter\n",
              f);
        pthread_mutex_lock(&ws->lock);
        for (size_t i = 0; i < ws->n_hooks; i++) {
                Hook *h = ws->hooks[i];
                unsigned long v[3] = { atomic_load(&h->sent), atomic_load(&h->retried), atomic_load(&h->failed) };

                for (size_t k = 0; k < ELEMENTSOF(outcomes); k++) {
                        fputs("slipway_webhook_deliveries_total{webhook=", f);
                        metrics_label_put(f, h->name);
                        fprintf(f, ",outcome=\"%s\"} %lu\n", outcomes[k], v[k]);
                }
        }
        pthread_mutex_unlock(&ws->lock);
}
