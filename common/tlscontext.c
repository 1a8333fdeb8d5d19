/* The TLS client contexts of httpc.c; see tlscontext.h. */
#include <errno.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "tlscontext.h"

#define TLS_CONTEXTS 4

/* The contexts, one per CA file (NULL: the system's store). One whose
 * file changed is made again, so a CA rotated in place is taken. Threads
 * share them (OpenSSL makes connections from one context safely); the
 * table, and a load, are under the lock. With more CA files in use than
 * places, the places are taken over in turn. */
typedef struct TlsContext {
        char *ca_file;
        struct stat st; /* of the file loaded, zero when there was none to see */
        SSL_CTX *ctx;
} TlsContext;

static TlsContext tls_contexts[TLS_CONTEXTS];
static unsigned tls_contexts_next; /* the place taken over next */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_file(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void tls_context_clear(TlsContext *t) {
        free(t->ca_file);
        SSL_CTX_free(t->ctx);
        *t = (TlsContext) {};
}

static int tls_context_load(const char *ca_file, SSL_CTX **ret) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        int k;

        if (!ctx)
                return -ENOMEM;
        (void) SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        /* A server that closes without close_notify ends a body that runs
         * to the close; one cut short is still caught by its length. */
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        k = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
        if (k != 1) {
                SSL_CTX_free(ctx);
                return -EPROTO;
        }
        *ret = ctx;
        return 0;
}

int tls_context_get(const char *ca_file, SSL_CTX **ret) {
        const char *path = ca_file ? ca_file : getenv(X509_get_default_cert_file_env());
        struct stat st = {};
        TlsContext *t = NULL;
        SSL_CTX *ctx = NULL;
        int r = 0;

        if (!path)
                path = X509_get_default_cert_file();
        if (stat(path, &st) < 0)
                st = (struct stat) {};
        pthread_mutex_lock(&tls_lock);
        for (size_t i = 0; i < TLS_CONTEXTS && !t; i++)
                if (tls_contexts[i].ctx && streq_ptr(tls_contexts[i].ca_file, ca_file))
                        t = &tls_contexts[i];
        if (t && !same_file(&t->st, &st))
                tls_context_clear(t);
        for (size_t i = 0; i < TLS_CONTEXTS && !t; i++)
                if (!tls_contexts[i].ctx)
                        t = &tls_contexts[i];
        if (!t) {
                t = &tls_contexts[tls_contexts_next++ % TLS_CONTEXTS];
                tls_context_clear(t);
        }
        if (!t->ctx) {
                char *dup = ca_file ? strdup(ca_file) : NULL;

                r = ca_file && !dup ? -ENOMEM : tls_context_load(ca_file, &ctx);
                if (r >= 0)
                        *t = (TlsContext) { .ca_file = TAKE_PTR(dup), .st = st, .ctx = ctx };
                free(dup);
        }
        if (r >= 0 && SSL_CTX_up_ref(t->ctx) == 1)
                *ret = t->ctx;
        else if (r >= 0)
                r = -ENOMEM;
        pthread_mutex_unlock(&tls_lock);
        return r;
}
