#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "blobs.h"
#include "catalog.h"
#include "curleasy.h"
#include "log.h"
#include "peers.h"
#include "replicator.h"
#include "store-catalog.h"
#include "util.h"

/* How often the thread looks for images to copy and publish. */
#define REPLICATE_INTERVAL_SEC 2
/* How often it collects this instance's unreferenced copies. */
#define COLLECT_INTERVAL_SEC 60
/* A fetch from a peer ends after this long whatever its speed, and sooner
 * when the peer sends nothing for HTTP_LOW_SPEED_TIME_SEC. */
#define FETCH_TIMEOUT_SEC 3600L
/* Blobs in flight at once; a request past this waits for a slot. */
#define FETCHES_MAX 64

/* A request suspended until a fetch ends. */
typedef struct Waiter {
        Request *req;
        struct Waiter *next;
} Waiter;

/* A blob being fetched, and the requests that wait for it. */
typedef struct Slot {
        char hex[65]; /* empty: free */
        Waiter *waiters;
} Slot;

struct Replicator {
        pthread_mutex_t lock;
        pthread_cond_t changed; /* a fetch ended, or stop was set */
        Slot slots[FETCHES_MAX];
        unsigned running;       /* fetch threads of requests */
        bool shared;            /* the state has other instances: there are peers */
        bool stop;
        bool has_thread;
        pthread_t thread;
};

typedef struct Fetch {
        Replicator *rep;
        BlobWriter *w;
        int error;
} Fetch;

static size_t fetch_write(char *data, size_t size, size_t n, void *userdata) {
        Fetch *f = userdata;
        int r = blob_writer_write(f->w, data, size * n);

        if (r < 0) {
                f->error = r;
                return 0;
        }
        return size * n;
}

static int fetch_progress(void *userdata, curl_off_t dltotal _unused_, curl_off_t dlnow _unused_,
                          curl_off_t ultotal _unused_, curl_off_t ulnow _unused_) {
        Fetch *f = userdata;
        bool stop;

        pthread_mutex_lock(&f->rep->lock);
        stop = f->rep->stop;
        pthread_mutex_unlock(&f->rep->lock);
        return stop;
}

/* Fetches hex from the peer at base into site, verified by the writer;
 * errors as http_result(), -EBADMSG for bytes of another digest. */
static int fetch_from(Server *s, const BlobSite *site, const char *base, const char *hex, char *why, size_t why_size) {
        _cleanup_free_ char *url = strdup_printf("%s/blobs/sha256/%s", base, hex);
        const ServerConfig *c;
        HttpOptions opts = { .timeout_sec = FETCH_TIMEOUT_SEC };
        char errbuf[CURL_ERROR_SIZE];
        Fetch f = { .rep = s->replicator };
        HttpError e = {};
        bool created = false;
        uint64_t max_blob;
        CURLcode code;
        CURL *curl;
        bool ok = true;
        int r;

        if (!url)
                return -ENOMEM;
        c = config_get(s);
        max_blob = c->max_blob;
        config_put(s);
        r = blob_writer_new(site->state_dir, hex, &f.w);
        if (r < 0)
                return r;
        curl = http_easy_new(url, &opts, errbuf);
        if (!curl) {
                blob_writer_abort(f.w);
                return -ENOMEM;
        }
#define SET(opt, val) ok = ok && curl_easy_setopt(curl, opt, val) == CURLE_OK
        /* A peer serves the blob itself: no redirects, no other protocol. */
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) max_blob);
        SET(CURLOPT_WRITEFUNCTION, fetch_write);
        SET(CURLOPT_WRITEDATA, &f);
        SET(CURLOPT_XFERINFOFUNCTION, fetch_progress);
        SET(CURLOPT_XFERINFODATA, &f);
        SET(CURLOPT_NOPROGRESS, 0L);
#undef SET
        code = ok ? curl_easy_perform(curl) : CURLE_FAILED_INIT;
        r = http_result(curl, code, f.error, errbuf, &e);
        curl_easy_cleanup(curl);
        if (r < 0) {
                blob_writer_abort(f.w);
                snprintf(why, why_size, "%s", e.message);
                return r;
        }
        r = blob_writer_commit(s->store, f.w, site, NULL, (int64_t) time(NULL), &created);
        if (r == -EBADMSG)
                snprintf(why, why_size, "the bytes it sent do not hash to the digest");
        else if (r < 0)
                snprintf(why, why_size, "cannot keep the copy: %s", store_last_error() ?: strerror(-r));
        return r;
}

static int fetch_now(Server *s, const char *hex) {
        _cleanup_free_ char *name = NULL, *url = NULL;
        _cleanup_strv_free_ char **peers = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        char why[CURL_ERROR_SIZE + 64];
        int r;

        r = peers_self(s, &name, &url);
        if (r < 0)
                return r == -EAGAIN ? -ENOENT : r;
        r = store_tx_begin(s->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = peers_holding(tx, name, hex, &peers);
        store_tx_rollback(&tx);
        if (r < 0)
                return r;
        if (!peers)
                return -ENOENT;
        BlobSite site = { .state_dir = s->state_dir, .instance = name, .url = url };
        for (char **p = peers; *p; p++) {
                why[0] = 0;
                r = fetch_from(s, &site, *p, hex, why, sizeof why);
                if (r >= 0) {
                        log_info("blob %.12s: copied from '%s'", hex, *p);
                        return 0;
                }
                if (r == -ECANCELED) {
                        log_info("blob %.12s: the copy from '%s' is abandoned: stopping", hex, *p);
                        break;
                }
                log_warning("blob %.12s: peer '%s' skipped: %s", hex, *p, why[0] ? why : strerror(-r));
        }
        return -EHOSTUNREACH;
}

static bool blob_here(Server *s, const char *hex) {
        _cleanup_free_ char *path = blob_path(s->state_dir, hex);
        struct stat st;

        return path && stat(path, &st) == 0;
}

static ssize_t slot_of(Replicator *rep, const char *hex) {
        for (size_t i = 0; i < FETCHES_MAX; i++)
                if (streq(rep->slots[i].hex, hex))
                        return (ssize_t) i;
        return -1;
}

/* With rep->lock held: the fetch in slot ended with r; the requests that
 * wait for it go on. */
static void slot_finish(Replicator *rep, size_t slot, int r) {
        Waiter *w = rep->slots[slot].waiters, *next;

        for (; w; w = next) {
                next = w->next;
                w->req->fetch_done = true;
                w->req->fetch_result = r;
                MHD_resume_connection(w->req->conn);
                free(w);
        }
        rep->slots[slot] = (Slot) {};
        pthread_cond_broadcast(&rep->changed);
}

int replicator_fetch(Server *s, const char *hex) {
        Replicator *rep = s->replicator;
        ssize_t slot;
        int r;

        if (!rep || !rep->shared || !sha256_hex_valid(hex))
                return -ENOENT;
        pthread_mutex_lock(&rep->lock);
        /* One fetch per blob: the others wait for it and find the file. */
        for (;;) {
                if (rep->stop) {
                        pthread_mutex_unlock(&rep->lock);
                        return -ENOENT;
                }
                if (slot_of(rep, hex) < 0) {
                        if (blob_here(s, hex)) {
                                pthread_mutex_unlock(&rep->lock);
                                return 0;
                        }
                        slot = slot_of(rep, "");
                        if (slot >= 0)
                                break;
                }
                pthread_cond_wait(&rep->changed, &rep->lock);
        }
        memcpy(rep->slots[slot].hex, hex, 65);
        pthread_mutex_unlock(&rep->lock);

        r = fetch_now(s, hex);

        pthread_mutex_lock(&rep->lock);
        slot_finish(rep, (size_t) slot, r);
        pthread_mutex_unlock(&rep->lock);
        return r;
}

typedef struct Job {
        Server *s;
        size_t slot;
        char hex[65];
} Job;

static void *fetch_thread(void *userdata) {
        Job *j = userdata;
        Replicator *rep = j->s->replicator;
        int r = fetch_now(j->s, j->hex);

        pthread_mutex_lock(&rep->lock);
        slot_finish(rep, j->slot, r);
        rep->running--;
        pthread_cond_broadcast(&rep->changed);
        pthread_mutex_unlock(&rep->lock);
        free(j);
        return NULL;
}

int replicator_fetch_async(Server *s, const char *hex, Request *req) {
        Replicator *rep = s->replicator;
        pthread_attr_t attr;
        pthread_t thread;
        Waiter *w;
        ssize_t slot;
        Job *j = NULL;
        int r = 1;

        if (!rep || !rep->shared || !sha256_hex_valid(hex))
                return -ENOENT;
        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->req = req;
        pthread_mutex_lock(&rep->lock);
        slot = slot_of(rep, hex);
        if (rep->stop)
                r = -ENOENT;
        else if (slot < 0 && blob_here(s, hex))
                r = 0;
        else if (slot < 0) {
                /* A fetch of its own, in a thread: the HTTP threads serve
                 * others meanwhile. */
                slot = slot_of(rep, "");
                j = slot >= 0 ? calloc(1, sizeof *j) : NULL;
                if (!j)
                        r = -EBUSY;
                else {
                        *j = (Job) { .s = s, .slot = (size_t) slot };
                        memcpy(j->hex, hex, 65);
                        pthread_attr_init(&attr);
                        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                        /* Marked in flight before the thread can end it. */
                        memcpy(rep->slots[slot].hex, hex, 65);
                        if (pthread_create(&thread, &attr, fetch_thread, j) != 0) {
                                rep->slots[slot].hex[0] = 0;
                                free(j);
                                r = -EBUSY;
                        } else
                                rep->running++;
                        pthread_attr_destroy(&attr);
                }
        }
        if (r > 0) {
                /* Suspended under the lock: the fetch cannot resume it
                 * before. */
                w->next = rep->slots[slot].waiters;
                rep->slots[slot].waiters = w;
                MHD_suspend_connection(req->conn);
        } else
                free(w);
        pthread_mutex_unlock(&rep->lock);
        return r;
}

int replicator_replicas(Server *s, StoreTx *tx, uint64_t *ret) {
        const ServerConfig *c = config_get(s);
        uint64_t n = c->replicas;
        int r;

        config_put(s);
        if (n > 0) {
                *ret = n;
                return 0;
        }
        r = peers_count(tx, &n);
        if (r < 0)
                return r;
        *ret = n >= 2 ? 2 : 1;
        return 0;
}

/* The replicating images, and the blobs of theirs this instance lacks. */
static int survey(Server *s, char ***ret_images, char ***ret_lacking) {
        _cleanup_strv_free_ char **ids = NULL, **lacking = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int r;

        r = store_tx_begin(s->store, STORE_TX_READ, &tx);
        if (r >= 0)
                r = store_replicating_ids(tx, &ids);
        for (size_t i = 0; r >= 0 && ids && ids[i]; i++) {
                _cleanup_strv_free_ char **blobs = NULL;
                r = store_replicating_blobs(tx, ids[i], &blobs);
                for (size_t k = 0; r >= 0 && blobs && blobs[k]; k++)
                        if (!blob_here(s, blobs[k]) && !strv_contains(lacking, blobs[k]))
                                r = strv_extend(&lacking, blobs[k]);
        }
        store_tx_rollback(&tx);
        if (r < 0)
                return r;
        *ret_images = TAKE_PTR(ids);
        *ret_lacking = TAKE_PTR(lacking);
        return 0;
}

static int publish(Server *s, const char *id) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        uint64_t replicas = 1, copies = 0;
        int r, published = 0;

        r = store_tx_begin(s->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = replicator_replicas(s, tx, &replicas);
        if (r >= 0)
                r = published = catalog_replicating_publish(tx, id, replicas, (int64_t) time(NULL), &copies);
        if (r > 0)
                r = store_tx_commit(&tx);
        if (r == -ENOENT)
                return 0;
        if (r == -EEXIST) {
                log_warning("image %.12s: its name and version were published as another image; it stays replicating",
                            id);
                return 0;
        }
        if (r < 0)
                return r;
        if (published > 0)
                log_info("image %.12s: its blobs have %" PRIu64 " copies, published", id, copies);
        return 0;
}

static int collect(Server *s) {
        _cleanup_free_ char *name = NULL, *url = NULL;
        _cleanup_strv_free_ char **removed = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        int64_t now = (int64_t) time(NULL);
        int r;

        r = peers_self(s, &name, &url);
        if (r < 0)
                return r == -EAGAIN ? 0 : r;
        r = store_tx_begin(s->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = blobs_collect_garbage(tx, name, NULL, now - 24 * 3600, &removed);
        if (r >= 0)
                r = store_tx_commit(&tx);
        if (r < 0)
                return r;
        blobs_unlink(s->state_dir, removed);
        if (removed)
                log_info("removed %zu unreferenced blob(s)", strv_length(removed));
        return 0;
}

/* Records this instance as the holder of the catalog's blobs that are in
 * its state directory but not recorded as its own: a state moved here by
 * `slipwayd migrate` or a restore, whose holders were not copied. */
static int claim(Server *s) {
        _cleanup_free_ char *name = NULL, *url = NULL;
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        size_t claimed = 0;
        int r;

        r = peers_self(s, &name, &url);
        if (r >= 0)
                r = store_tx_begin(s->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = store_blob_holder_missing(tx, name, &missing);
        for (size_t i = 0; r >= 0 && missing && missing[i]; i++)
                if (blob_here(s, missing[i])) {
                        r = store_blob_holder_add(tx, missing[i], name, url, (int64_t) time(NULL));
                        claimed++;
                }
        if (r >= 0 && claimed > 0)
                r = store_tx_commit(&tx);
        if (r >= 0 && claimed > 0)
                log_info("replicator: %zu blobs of the state directory recorded as this instance's", claimed);
        return r;
}

static void replicate(Server *s, bool gc) {
        _cleanup_strv_free_ char **ids = NULL, **lacking = NULL;
        int r;

        r = survey(s, &ids, &lacking);
        for (size_t i = 0; r >= 0 && lacking && lacking[i]; i++)
                (void) replicator_fetch(s, lacking[i]);
        for (size_t i = 0; r >= 0 && ids && ids[i]; i++)
                r = publish(s, ids[i]);
        if (r >= 0 && gc)
                r = collect(s);
        if (r < 0)
                log_warning("replicator: %s", store_last_error() ?: strerror(-r));
}

static void *replicator_main(void *userdata) {
        Server *s = userdata;
        Replicator *rep = s->replicator;
        struct timespec now, until;
        time_t collected = 0;
        bool claimed = false;

        pthread_mutex_lock(&rep->lock);
        while (!rep->stop) {
                pthread_mutex_unlock(&rep->lock);
                if (!claimed) {
                        /* Tried again at the next round until done; -EAGAIN:
                         * the public URL is not known yet. */
                        int r = claim(s);
                        claimed = r >= 0;
                        if (r < 0 && r != -EAGAIN)
                                log_warning("replicator: cannot record the blobs of the state directory: %s",
                                            store_last_error() ?: strerror(-r));
                }
                clock_gettime(CLOCK_MONOTONIC, &now);
                replicate(s, now.tv_sec - collected >= COLLECT_INTERVAL_SEC);
                if (now.tv_sec - collected >= COLLECT_INTERVAL_SEC)
                        collected = now.tv_sec;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_sec += REPLICATE_INTERVAL_SEC;
                pthread_mutex_lock(&rep->lock);
                while (!rep->stop && pthread_cond_timedwait(&rep->changed, &rep->lock, &until) != ETIMEDOUT)
                        ;
        }
        pthread_mutex_unlock(&rep->lock);
        return NULL;
}

int replicator_start(Server *s, bool thread) {
        Replicator *rep = calloc(1, sizeof *rep);
        pthread_condattr_t attr;

        if (!rep)
                return -ENOMEM;
        pthread_mutex_init(&rep->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&rep->changed, &attr);
        pthread_condattr_destroy(&attr);
        rep->shared = thread;
        s->replicator = rep;
        if (thread && pthread_create(&rep->thread, NULL, replicator_main, s) != 0) {
                s->replicator = NULL;
                pthread_cond_destroy(&rep->changed);
                pthread_mutex_destroy(&rep->lock);
                free(rep);
                return -EAGAIN;
        }
        rep->has_thread = thread;
        return 0;
}

void replicator_stop(Server *s) {
        Replicator *rep = s->replicator;

        if (!rep)
                return;
        pthread_mutex_lock(&rep->lock);
        rep->stop = true;
        pthread_cond_broadcast(&rep->changed);
        /* The fetches see stop and end; their requests resume. */
        while (rep->running > 0)
                pthread_cond_wait(&rep->changed, &rep->lock);
        pthread_mutex_unlock(&rep->lock);
        if (rep->has_thread)
                pthread_join(rep->thread, NULL);
        rep->has_thread = false;
}

void replicator_free(Server *s) {
        Replicator *rep = s->replicator;

        if (!rep)
                return;
        replicator_stop(s);
        s->replicator = NULL;
        pthread_cond_destroy(&rep->changed);
        pthread_mutex_destroy(&rep->lock);
        free(rep);
}
