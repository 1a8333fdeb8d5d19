/* The own back end of http.h: HTTP/1.1 on sockets and OpenSSL, for
 * slipway-agent. Name resolution by getaddrinfo (IPv4 and IPv6, each
 * address in turn within the connect timeout), TLS 1.2 or later with SNI,
 * the peer checked against the CA file or the system's store and its name
 * (or address) checked, and the answer read by httpparse.c. Timeouts:
 * connecting, no byte for the low-speed time, and the whole exchange when
 * asked.
 *
 * Connections are kept. After a whole answer whose end was known from its
 * length (Content-Length or chunked), on HTTP/1.1 and without "Connection:
 * close", the connection waits for the next request to the same scheme,
 * host, port and CA file: one idle connection per thread (the agent has
 * one), for at most IDLE_KEEP_MS. One the server closed meanwhile is
 * dropped before use when that shows; when it shows only as no answer at
 * all (the write fails, or the connection ends before the first byte of
 * the answer), the request goes once more on a new connection, if its body
 * can be sent again. A request that must not arrive twice
 * (fresh_connection) never goes on a kept connection. Any error, and an answer that runs to the close, ends
 * the connection. The TLS context, with the CA store loaded, is made once
 * per CA file for the process. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "tlscontext.h"
#include "util.h"

#define PIECE_DEFAULT ((size_t) 16 << 10)
#define SEND_BUFFER ((size_t) 64 << 10)
/* How long an idle connection is kept: twice the agent's default check-in
 * interval (30 s), so that one serves the next check-in, and below the
 * 120 s after which slipwayd closes an idle connection, or nginx's 75 s. A
 * server that closes sooner costs a new connection, no error. */
#define IDLE_KEEP_MS (60u * 1000)

typedef struct Conn {
        int fd;
        SSL *ssl;
        bool tls; /* what it was opened for */
        char host[HTTP_HOST_MAX];
        char port[6];
        uint64_t idle_since_ms; /* when it was put aside */
        /* for the exchange on it */
        uint64_t deadline_ms; /* the whole exchange; 0: none */
        long idle_ms;         /* no byte either way for this long: timed out */
        HttpReply *reply;
        uint64_t received;    /* bytes of the answer read */
        bool broke;           /* it failed or ended, other than by a timeout */
        bool body_read;       /* the streamed body's read callback ran */
} Conn;

static uint64_t now_ms(void) {
        return now_usec() / 1000;
}

_printf_(4, 5) static int fail(HttpReply *reply, int r, HttpStage stage, const char *format, ...) {
        va_list ap;

        reply->failed_at = stage;
        va_start(ap, format);
        vsnprintf(reply->message, sizeof(reply->message), format, ap);
        va_end(ap);
        return r;
}

/* Waits until fd is ready for events, within the idle and overall limits.
 * Returns 0, -ETIMEDOUT, or a negative errno. */
static int conn_wait(Conn *c, short events) {
        for (;;) {
                long wait = c->idle_ms;
                struct pollfd p = { .fd = c->fd, .events = events };
                int k;

                if (c->deadline_ms > 0) {
                        uint64_t now = now_ms();
                        if (now >= c->deadline_ms)
                                return -ETIMEDOUT;
                        wait = (long) MIN((uint64_t) wait, c->deadline_ms - now);
                }
                k = poll(&p, 1, (int) wait);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -ETIMEDOUT;
                return 0;
        }
}

static const char *tls_reason(void) {
        unsigned long e = ERR_peek_last_error();
        const char *s = e ? ERR_reason_error_string(e) : NULL;

        return s ? s : "unknown TLS error";
}

/* Handles an SSL_* result that is not success: waits when OpenSSL wants to
 * read or write and returns 1 to try again, 0 for the end of the stream,
 * or a negative errno. */
static int tls_retry(Conn *c, int k) {
        int e = SSL_get_error(c->ssl, k);

        switch (e) {
        case SSL_ERROR_WANT_READ:
                return conn_wait(c, POLLIN) < 0 ? -ETIMEDOUT : 1;
        case SSL_ERROR_WANT_WRITE:
                return conn_wait(c, POLLOUT) < 0 ? -ETIMEDOUT : 1;
        case SSL_ERROR_ZERO_RETURN:
                return 0;
        case SSL_ERROR_SYSCALL:
                return errno == 0 || errno == EAGAIN ? -ECONNRESET : negative_errno();
        default:
                return -EPROTO;
        }
}

/* Reads up to n bytes: returns how many, 0 at the end of the stream, or a
 * negative errno. */
static ssize_t conn_read(Conn *c, void *buf, size_t n) {
        for (;;) {
                ssize_t k;
                int r;

                if (c->ssl) {
                        ERR_clear_error();
                        k = SSL_read(c->ssl, buf, (int) MIN(n, (size_t) INT32_MAX));
                        if (k > 0)
                                return k;
                        r = tls_retry(c, (int) k);
                        if (r <= 0)
                                return r;
                        continue;
                }
                k = recv(c->fd, buf, n, 0);
                if (k >= 0)
                        return k;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return negative_errno();
                r = conn_wait(c, POLLIN);
                if (r < 0)
                        return r;
        }
}

static int conn_write(Conn *c, const void *data, size_t n) {
        const char *p = data;

        while (n > 0) {
                ssize_t k;
                int r;

                if (c->ssl) {
                        ERR_clear_error();
                        k = SSL_write(c->ssl, p, (int) MIN(n, (size_t) INT32_MAX));
                        if (k <= 0) {
                                r = tls_retry(c, (int) k);
                                if (r < 0)
                                        return r;
                                if (r == 0)
                                        return -ECONNRESET;
                                continue;
                        }
                } else {
                        k = send(c->fd, p, n, MSG_NOSIGNAL);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno != EAGAIN)
                                        return negative_errno();
                                r = conn_wait(c, POLLOUT);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                }
                c->reply->sent = true;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Connects to one address within timeout_ms. Returns the socket or a
 * negative errno. */
static int connect_one(const struct addrinfo *ai, long timeout_ms) {
        _cleanup_close_ int fd = -1;
        struct pollfd p;
        int k, err = 0;
        socklen_t len = sizeof(err);

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                return TAKE_FD(fd);
        if (errno != EINPROGRESS)
                return negative_errno();
        p = (struct pollfd) { .fd = fd, .events = POLLOUT };
        do
                k = poll(&p, 1, (int) timeout_ms);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return negative_errno();
        if (k == 0)
                return -ETIMEDOUT;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                return negative_errno();
        if (err != 0)
                return -err;
        return TAKE_FD(fd);
}

/* Resolves u and connects to its addresses in turn, splitting what is left
 * of the connect timeout among those not tried yet. */
static int conn_open(Conn *c, const HttpUrl *u) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        uint64_t end = now_ms() + (uint64_t) HTTP_CONNECT_TIMEOUT_SEC * 1000;
        size_t n = 0;
        int k, r = -EHOSTUNREACH;

        k = getaddrinfo(u->host, u->port, &hints, &res);
        if (k != 0)
                return fail(c->reply, -EHOSTUNREACH, HTTP_STAGE_RESOLVE, "cannot resolve host '%s': %s", u->host,
                            k == EAI_SYSTEM ? strerror(errno) : gai_strerror(k));
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
                n++;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next, n--) {
                uint64_t now = now_ms();
                long left = now < end ? (long) (end - now) : 0;

                if (c->deadline_ms > 0 && c->deadline_ms < end)
                        left = now < c->deadline_ms ? (long) (c->deadline_ms - now) : 0;
                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                r = connect_one(ai, ai->ai_next ? MAX(left / (long) n, MIN(left, 1000L)) : left);
                if (r >= 0) {
                        c->fd = r;
                        break;
                }
                c->reply->os_errno = -r;
        }
        freeaddrinfo(res);
        if (r >= 0)
                return 0;
        if (r == -ETIMEDOUT)
                return fail(c->reply, -ETIMEDOUT, HTTP_STAGE_CONNECT, "connecting to %s port %s timed out", u->host,
                            u->port);
        return fail(c->reply, -EHOSTUNREACH, HTTP_STAGE_CONNECT, "cannot connect to %s port %s: %s", u->host, u->port,
                    strerror(-r));
}

static int tls_start(Conn *c, const HttpUrl *u, SSL_CTX *ctx) {
        int k, r;

        c->ssl = SSL_new(ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
                return fail(c->reply, -ENOMEM, HTTP_STAGE_TLS, "cannot set up TLS");
        if (u->ipv6 || inet_pton(AF_INET, u->host, &(struct in_addr) {}) == 1)
                k = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host);
        else
                k = SSL_set_tlsext_host_name(c->ssl, u->host) == 1 && SSL_set1_host(c->ssl, u->host) == 1;
        if (k != 1)
                return fail(c->reply, -ENOMEM, HTTP_STAGE_TLS, "cannot set up TLS for '%s'", u->host);
        for (;;) {
                ERR_clear_error();
                k = SSL_connect(c->ssl);
                if (k == 1)
                        return 0;
                r = tls_retry(c, k);
                if (r == 1)
                        continue;
                if (r == -ETIMEDOUT)
                        return fail(c->reply, r, HTTP_STAGE_TLS, "TLS handshake with %s timed out", u->host);
                if (SSL_get_verify_result(c->ssl) != X509_V_OK)
                        return fail(c->reply, -EPROTO, HTTP_STAGE_TLS, "the certificate of %s is not trusted: %s",
                                    u->host, X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
                return fail(c->reply, -EPROTO, HTTP_STAGE_TLS, "TLS handshake with %s failed: %s", u->host,
                            r == -EPROTO ? tls_reason() : strerror(-r));
        }
}

/* Closes c and frees it; returns NULL. */
static Conn *conn_free(Conn *c) {
        if (!c)
                return NULL;
        if (c->ssl) {
                (void) SSL_shutdown(c->ssl); /* one try: the socket does not block */
                SSL_free(c->ssl);
        }
        if (c->fd >= 0)
                close(c->fd);
        ERR_clear_error();
        free(c);
        return NULL;
}

/* A new connection to u, with TLS over ctx when it is set. */
static int conn_connect(const HttpUrl *u, SSL_CTX *ctx, uint64_t deadline_ms, long idle_ms, HttpReply *reply,
                        Conn **ret) {
        Conn *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return fail(reply, -ENOMEM, HTTP_STAGE_NONE, "out of memory");
        *c = (Conn) { .fd = -1, .tls = u->tls, .deadline_ms = deadline_ms, .idle_ms = idle_ms, .reply = reply };
        snprintf(c->host, sizeof(c->host), "%s", u->host);
        snprintf(c->port, sizeof(c->port), "%s", u->port);
        r = conn_open(c, u);
        if (r >= 0) {
                (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
                if (ctx)
                        r = tls_start(c, u, ctx);
        }
        if (r < 0) {
                conn_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

static bool header_token_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s == 0x7f)
                        return false;
        return true;
}

/* The request line and headers. Caller frees. */
static char *request_head(const HttpRequest *req, const HttpUrl *u) {
        bool default_port = streq(u->port, u->tls ? "443" : "80");
        bool has_body = req->body || req->read;
        _cleanup_free_ char *head = NULL;

        head = strdup_printf("%s %s%s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: %s\r\n",
                             req->method, u->target[0] == '/' ? "" : "/", u->target, u->ipv6 ? "[" : "", u->host,
                             u->ipv6 ? "]" : "", default_port ? "" : ":", default_port ? "" : u->port,
                             HTTP_USER_AGENT);
        if (head && (has_body || streq(req->method, "POST") || streq(req->method, "PUT"))) {
                char *h = strdup_printf("%sContent-Length: %llu\r\n", head,
                                        (unsigned long long) (req->read ? req->read_size : req->body_size));
                free(head);
                head = h;
        }
        for (size_t i = 0; head && req->headers && req->headers[i]; i++) {
                char *h = strdup_printf("%s%s\r\n", head, req->headers[i]);
                free(head);
                head = h;
        }
        if (head) {
                char *h = strdup_printf("%s\r\n", head);
                free(head);
                head = h;
        }
        return TAKE_PTR(head);
}

/* Sends the request. An error while the body streams out may mean the
 * server answered early and closed: *ret_broken says so, and the caller
 * reads that answer. */
static int send_request(Conn *c, const HttpRequest *req, const char *head, bool *ret_broken) {
        _cleanup_free_ char *buf = NULL;
        int r;

        *ret_broken = false;
        r = conn_write(c, head, strlen(head));
        if (r >= 0 && req->body)
                r = conn_write(c, req->body, req->body_size);
        c->broke = r < 0 && r != -ETIMEDOUT;
        if (r < 0)
                return fail(c->reply, r == -ETIMEDOUT ? r : -ECONNRESET, HTTP_STAGE_EXCHANGE,
                            "cannot send the request: %s", strerror(-r));
        if (!req->read)
                return 0;
        buf = malloc(SEND_BUFFER);
        if (!buf)
                return fail(c->reply, -ENOMEM, HTTP_STAGE_EXCHANGE, "out of memory");
        for (uint64_t sent = 0; sent < req->read_size;) {
                size_t want = (size_t) MIN((uint64_t) SEND_BUFFER, req->read_size - sent);
                ssize_t k = req->read(buf, want, req->read_userdata);

                c->body_read = true;
                if (k < 0)
                        return fail(c->reply, (int) k, HTTP_STAGE_CALLBACK, "cannot read the body: %s",
                                    strerror((int) -k));
                if (k == 0 || (size_t) k > want)
                        return fail(c->reply, -EIO, HTTP_STAGE_CALLBACK, "the body ended early");
                r = conn_write(c, buf, (size_t) k);
                if (r == -ETIMEDOUT)
                        return fail(c->reply, r, HTTP_STAGE_EXCHANGE, "sending the body timed out");
                if (r < 0) {
                        *ret_broken = c->broke = true;
                        return fail(c->reply, -ECONNRESET, HTTP_STAGE_EXCHANGE, "cannot send the body: %s",
                                    strerror(-r));
                }
                sent += (uint64_t) k;
        }
        return 0;
}

typedef struct Receive {
        const HttpRequest *req;
        HttpReply *reply;
        int error; /* a callback's own */
} Receive;

static int receive_headers(long status, void *userdata) {
        Receive *rc = userdata;
        const HttpRequest *req = rc->req;
        int r;

        rc->reply->status = status;
        if (req->fail_on_error && status >= 300) {
                rc->error = status == 404 || status == 410 ? -ENOENT : -EPROTO;
                if (status < 400)
                        fail(rc->reply, 0, HTTP_STAGE_EXCHANGE,
                             "the server redirects (HTTP %ld); redirects are not followed", status);
                else
                        fail(rc->reply, 0, HTTP_STAGE_EXCHANGE, "The requested URL returned error: %ld", status);
                return rc->error;
        }
        if (req->on_headers) {
                r = req->on_headers(status, req->userdata);
                if (r < 0) {
                        fail(rc->reply, 0, HTTP_STAGE_CALLBACK, "stopped after the headers: %s", strerror(-r));
                        return rc->error = r;
                }
        }
        return 0;
}

static int receive_body(const void *data, size_t n, void *userdata) {
        Receive *rc = userdata;
        int r;

        if (!rc->req->on_body)
                return 0;
        r = rc->req->on_body(data, n, rc->req->userdata);
        if (r < 0) {
                fail(rc->reply, 0, HTTP_STAGE_CALLBACK, "stopped in the body: %s", strerror(-r));
                rc->error = r;
        }
        return r;
}

/* Reads the answer into the parser until it is complete. */
static int receive(Conn *c, const HttpRequest *req, HttpParser *p, Receive *rc) {
        size_t size = req->piece_size > 0 ? req->piece_size : PIECE_DEFAULT;
        _cleanup_free_ char *buf = malloc(size);
        int r;

        if (!buf)
                return fail(c->reply, -ENOMEM, HTTP_STAGE_EXCHANGE, "out of memory");
        for (;;) {
                ssize_t k = conn_read(c, buf, size);

                if (k <= 0 && k != -ETIMEDOUT && k != -EPROTO)
                        c->broke = true;
                c->received += k > 0 ? (uint64_t) k : 0;
                if (k < 0)
                        return fail(c->reply, k == -ETIMEDOUT ? -ETIMEDOUT : k == -EPROTO ? -EPROTO : -ECONNRESET,
                                    HTTP_STAGE_EXCHANGE, "%s after %llu bytes of the answer",
                                    k == -ETIMEDOUT ? "timed out" : k == -EPROTO ? tls_reason() : strerror((int) -k),
                                    (unsigned long long) p->body_size);
                if (k == 0) {
                        r = http_parser_eof(p);
                        return r < 0 ? fail(c->reply, r, HTTP_STAGE_EXCHANGE, "%s", p->error) : 0;
                }
                r = http_parser_feed(p, buf, (size_t) k);
                if (r < 0) {
                        if (rc->error < 0 && r == rc->error)
                                return r; /* the message is set */
                        return fail(c->reply, r, HTTP_STAGE_EXCHANGE, "%s", p->error);
                }
                if (r > 0)
                        return 0;
        }
}

/* Keeps a write to a closed connection from killing the process: SIGPIPE
 * is blocked in this thread for the exchange, and one it raised is taken
 * back before the mask is restored. */
typedef struct PipeGuard {
        sigset_t old;
        bool was_pending;
} PipeGuard;

static void pipe_guard_begin(PipeGuard *g) {
        sigset_t block, pending;

        sigemptyset(&block);
        sigaddset(&block, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &block, &g->old);
        sigpending(&pending);
        g->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

static void pipe_guard_end(PipeGuard *g) {
        sigset_t pending, pipe;

        sigpending(&pending);
        if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
                sigemptyset(&pipe);
                sigaddset(&pipe, SIGPIPE);
                (void) sigtimedwait(&pipe, NULL, &(struct timespec) {});
        }
        pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* The idle connection of this thread, dropped when the thread ends. */
static pthread_key_t idle_key;
static bool idle_key_ok;
static pthread_once_t idle_once = PTHREAD_ONCE_INIT;

static void idle_drop(void *userdata) {
        PipeGuard guard;

        pipe_guard_begin(&guard);
        conn_free(userdata);
        pipe_guard_end(&guard);
}

static void idle_key_make(void) {
        idle_key_ok = pthread_key_create(&idle_key, idle_drop) == 0;
}

/* Whether a kept connection is still open. Nothing may arrive on an idle
 * one but the server's close, or over TLS a record without data (a late
 * session ticket), which SSL_peek() takes in. */
static bool conn_alive(Conn *c) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        char b;
        int k = poll(&p, 1, 0);

        if (k == 0)
                return true;
        if (k < 0 || !c->ssl || (p.revents & (POLLERR | POLLHUP)))
                return false;
        ERR_clear_error();
        k = SSL_peek(c->ssl, &b, 1);
        k = k <= 0 && SSL_get_error(c->ssl, k) == SSL_ERROR_WANT_READ;
        ERR_clear_error();
        return k;
}

/* This thread's idle connection when it goes where u does over ctx, is
 * fresh enough and still open; NULL else (one that is not is closed). */
static Conn *idle_take(const HttpUrl *u, SSL_CTX *ctx) {
        Conn *c;

        (void) pthread_once(&idle_once, idle_key_make);
        if (!idle_key_ok)
                return NULL;
        c = pthread_getspecific(idle_key);
        if (!c || pthread_setspecific(idle_key, NULL) != 0)
                return NULL;
        if (c->tls == u->tls && streq(c->host, u->host) && streq(c->port, u->port) &&
            (!c->ssl || SSL_get_SSL_CTX(c->ssl) == ctx) && now_ms() - c->idle_since_ms < IDLE_KEEP_MS &&
            conn_alive(c))
                return c;
        return conn_free(c);
}

/* Keeps c as this thread's idle connection. */
static void idle_put(Conn *c) {
        c->reply = NULL;
        c->idle_since_ms = now_ms();
        if (!idle_key_ok || pthread_getspecific(idle_key) || pthread_setspecific(idle_key, c) != 0)
                conn_free(c);
}

/* Whether the request can go again on another connection: its streamed
 * body, if it has one and began to read it, starts over. */
static bool body_again(const HttpRequest *req, const Conn *c) {
        return !req->read || !c->body_read || (req->rewind && req->rewind(req->read_userdata) >= 0);
}

/* The request line and headers, checked. Caller frees. */
static int request_make(const HttpRequest *req, const HttpUrl *u, HttpReply *ret, char **ret_head) {
        if (!header_token_ok(req->method) || !header_token_ok(u->target))
                return fail(ret, -EINVAL, HTTP_STAGE_NONE, "a request line cannot carry '%s'", req->url);
        for (size_t i = 0; req->headers && req->headers[i]; i++)
                if (!header_token_ok(req->headers[i]))
                        return fail(ret, -EINVAL, HTTP_STAGE_NONE, "a header cannot carry control characters");
        *ret_head = request_head(req, u);
        if (!*ret_head)
                return fail(ret, -ENOMEM, HTTP_STAGE_NONE, "out of memory");
        return 0;
}

/* Sends the request on c and reads the answer. *ret_keep says whether c
 * can carry another request. */
static int exchange(Conn *c, const HttpRequest *req, const char *head, bool *ret_keep) {
        HttpReply *ret = c->reply;
        Receive rc = { .req = req, .reply = ret };
        char send_error[sizeof(ret->message)];
        HttpParser *p;
        bool broken;
        int r, rs;

        *ret_keep = false;
        c->received = 0;
        c->broke = c->body_read = false;
        rs = send_request(c, req, head, &broken);
        if (rs < 0 && !broken)
                return rs;
        memcpy(send_error, ret->message, sizeof(send_error));

        /* The parser is large (its line buffer): on the heap, not the stack
         * of a thread that may be small. */
        p = malloc(sizeof(*p));
        if (!p)
                return fail(ret, -ENOMEM, HTTP_STAGE_EXCHANGE, "out of memory");
        http_parser_init(p, streq(req->method, "HEAD"), streq(req->method, "HEAD") ? 0 : req->body_max,
                         receive_headers, receive_body, &rc);
        r = receive(c, req, p, &rc);
        ret->content_length = p->content_length;
        snprintf(ret->location, sizeof(ret->location), "%s", p->location);
        if (r < 0 && ret->failed_at == HTTP_STAGE_EXCHANGE && r == rc.error && req->fail_on_error &&
            ret->status >= 300 && ret->status < 400 && p->location[0])
                (void) fail(ret, r, HTTP_STAGE_EXCHANGE,
                            "the server redirects to %.160s (HTTP %ld); redirects are not followed", p->location,
                            ret->status);
        *ret_keep = r >= 0 && rs >= 0 && http_parser_keep_alive(p);
        free(p);
        if (rs < 0 && (r < 0 || ret->status < 400)) {
                /* The upload broke and no refusal explains it. */
                ret->failed_at = HTTP_STAGE_EXCHANGE;
                memcpy(ret->message, send_error, sizeof(ret->message));
                return rs;
        }
        return r;
}

int http_exchange(const HttpRequest *req, HttpReply *ret) {
        const HttpOptions *o = req->opts;
        _cleanup_free_ char *head = NULL;
        uint64_t deadline_ms = 0;
        SSL_CTX *ctx = NULL;
        Conn *c = NULL;
        bool keep = false;
        PipeGuard guard;
        long idle_ms;
        HttpUrl u;
        int r;

        *ret = (HttpReply) { .content_length = -1 };
        if (http_url_parse(req->url, &u) < 0)
                return fail(ret, -EINVAL, HTTP_STAGE_NONE, "'%s' is not an http:// or https:// URL", req->url);
        r = request_make(req, &u, ret, &head);
        if (r < 0)
                return r;
        idle_ms = 1000L * (o && o->low_speed_time > 0 ? o->low_speed_time : HTTP_LOW_SPEED_TIME_SEC);
        if (o && o->timeout_sec > 0)
                deadline_ms = now_ms() + 1000ULL * (uint64_t) o->timeout_sec;
        if (u.tls) {
                r = tls_context_get(o ? o->ca_file : NULL, &ctx);
                if (r < 0) {
                        (void) fail(ret, r, HTTP_STAGE_TLS, "cannot load the CA file '%s': %s",
                                    o && o->ca_file ? o->ca_file : "(system)",
                                    r == -EPROTO ? tls_reason() : strerror(-r));
                        ERR_clear_error();
                        goto out;
                }
        }

        pipe_guard_begin(&guard);
        c = idle_take(&u, ctx);
        if (c && req->fresh_connection)
                c = conn_free(c);
        if (c) {
                c->deadline_ms = deadline_ms;
                c->idle_ms = idle_ms;
                c->reply = ret;
        }
        /* At most twice: a kept connection found closed only by the
         * request is replaced by a new one, once. */
        for (bool kept = c != NULL;; kept = false) {
                bool sent;

                if (!c) {
                        r = conn_connect(&u, ctx, deadline_ms, idle_ms, ret, &c);
                        if (r < 0)
                                break;
                }
                r = exchange(c, req, head, &keep);
                if (r >= 0 || !kept || !c->broke || c->received > 0 || !body_again(req, c))
                        break;
                log_debug("%s %s: the kept connection was closed (%s), again on a new one", req->method, req->url,
                          ret->message);
                c = conn_free(c);
                sent = ret->sent; /* what the server might have seen stays said */
                *ret = (HttpReply) { .content_length = -1, .sent = sent };
        }
        if (c && r >= 0 && keep)
                idle_put(c);
        else
                conn_free(c);
        pipe_guard_end(&guard);
out:
        SSL_CTX_free(ctx);
        if (r < 0)
                log_debug("%s %s: %s", req->method, req->url, ret->message);
        else
                ret->message[0] = 0;
        return r;
}
