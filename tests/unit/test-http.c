/* common/http.h's transport: http_exchange() and the downloads over it,
 * against a canned server on loopback, plain or TLS (a test CA made with
 * openssl). Built twice: on libcurl (test-http) and on the agent's own
 * client (test-http-own, HTTP_BACKEND_OWN); both must answer alike. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "tests.h"

#include "fileio.h"
#include "http.h"
#include "util.h"

typedef struct Server {
        int listen_fd;
        uint16_t port;
        pthread_t thread;
        const char *response; /* sent as it is after the request's headers */
        const char *cert;     /* PEM files: TLS when set */
        const char *key;
        char request[8192];
        char url[64];
} Server;

static void send_bytes(int fd, SSL *ssl, const char *data, size_t n) {
        while (n > 0) {
                ssize_t k = ssl ? SSL_write(ssl, data, (int) n) : send(fd, data, n, MSG_NOSIGNAL);
                if (k <= 0)
                        return;
                data += k;
                n -= (size_t) k;
        }
}

/* Serves one connection: reads up to the end of the request's headers
 * (and a body by Content-Length), then sends the response and closes. */
static void *server_run(void *userdata) {
        Server *s = userdata;
        SSL_CTX *ctx = NULL;
        SSL *ssl = NULL;
        size_t n = 0;
        int fd;

        fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;
        if (s->cert) {
                ctx = SSL_CTX_new(TLS_server_method());
                if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, s->cert) != 1 ||
                    SSL_CTX_use_PrivateKey_file(ctx, s->key, SSL_FILETYPE_PEM) != 1)
                        goto out;
                ssl = SSL_new(ctx);
                SSL_set_fd(ssl, fd);
                if (SSL_accept(ssl) != 1)
                        goto out;
        }
        for (;;) {
                ssize_t k = ssl ? SSL_read(ssl, s->request + n, (int) (sizeof(s->request) - 1 - n))
                                : recv(fd, s->request + n, sizeof(s->request) - 1 - n, 0);
                const char *end, *cl;

                if (k <= 0)
                        break;
                n += (size_t) k;
                s->request[n] = 0;
                end = strstr(s->request, "\r\n\r\n");
                if (!end)
                        continue;
                cl = strcasestr(s->request, "\r\nContent-Length: ");
                if (!cl || (size_t) (end + 4 - s->request) + strtoul(cl + 18, NULL, 10) <= n)
                        break;
        }
        send_bytes(fd, ssl, s->response, strlen(s->response));
out:
        if (ssl) {
                SSL_shutdown(ssl);
                SSL_free(ssl);
        }
        SSL_CTX_free(ctx);
        shutdown(fd, SHUT_WR);
        close(fd);
        return NULL;
}

static void server_start(Server *s, const char *response, const char *cert, const char *key) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);

        *s = (Server) { .response = response, .cert = cert, .key = key };
        s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->listen_fd >= 0);
        assert_int_equal(bind(s->listen_fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(s->listen_fd, 4), 0);
        assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *) &a, &len), 0);
        s->port = ntohs(a.sin_port);
        snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%u", cert ? "https" : "http", s->port);
        assert_int_equal(pthread_create(&s->thread, NULL, server_run, s), 0);
}

static void server_stop(Server *s) {
        shutdown(s->listen_fd, SHUT_RDWR);
        pthread_join(s->thread, NULL);
        close(s->listen_fd);
}

typedef struct Body {
        char data[1 << 16];
        size_t n;
        long status_seen;
        int stop_with; /* on_headers returns this */
} Body;

static int body_add(const void *data, size_t n, void *userdata) {
        Body *b = userdata;

        if (n > sizeof(b->data) - 1 - b->n)
                return -ENOBUFS;
        memcpy(b->data + b->n, data, n);
        b->n += n;
        b->data[b->n] = 0;
        return 0;
}

static int body_headers(long status, void *userdata) {
        Body *b = userdata;

        b->status_seen = status;
        return b->stop_with;
}

/* One GET of path from a server answering response; returns the result. */
static int get(const char *response, const char *path, uint64_t body_max, bool fail_on_error, Body *b,
               HttpReply *reply) {
        Server s;
        char url[128];
        HttpRequest req = { .method = "GET", .url = url, .on_headers = body_headers, .on_body = body_add,
                            .userdata = b, .body_max = body_max, .fail_on_error = fail_on_error };
        int r;

        server_start(&s, response, NULL, NULL);
        snprintf(url, sizeof(url), "%s%s", s.url, path);
        r = http_exchange(&req, reply);
        server_stop(&s);
        return r;
}

static void test_bodies(void **state _unused_) {
        HttpReply reply;
        Body b = {};

        assert_int_equal(get("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "/a", 0, true, &b, &reply), 0);
        assert_int_equal(reply.status, 200);
        assert_int_equal(reply.content_length, 5);
        assert_int_equal(b.status_seen, 200);
        assert_string_equal(b.data, "hello");

        b = (Body) {};
        assert_int_equal(get("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nTrailer: 1\r\n\r\n",
                             "/", 0, true, &b, &reply),
                         0);
        assert_string_equal(b.data, "abcdefg");

        b = (Body) {};
        assert_int_equal(get("HTTP/1.0 200 OK\r\n\r\nto the end", "/", 0, true, &b, &reply), 0);
        assert_string_equal(b.data, "to the end");
        assert_int_equal(reply.content_length, -1);

        /* An interim answer before the real one. */
        b = (Body) {};
        assert_int_equal(get("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", "/",
                             0, true, &b, &reply),
                         0);
        assert_int_equal(reply.status, 201);
        assert_string_equal(b.data, "ok");
}

static void test_errors(void **state _unused_) {
        static char long_header[160 << 10]; /* beyond what either transport takes */
        HttpReply reply;
        Body b = {};

        assert_int_equal(get("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!", "/", 0, true, &b, &reply),
                         -ENOENT);
        assert_int_equal(reply.status, 404);
        assert_int_equal(b.n, 0);
        assert_int_equal(get("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", "/", 0, true, &b, &reply), -EPROTO);
        assert_int_equal(get("HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/x\r\nContent-Length: 0\r\n\r\n",
                             "/", 0, true, &b, &reply),
                         -EPROTO);
        assert_non_null(strstr(reply.message, "redirects"));
        /* Without fail_on_error an error answer is an answer, body and all. */
        b = (Body) {};
        assert_int_equal(get("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!", "/", 0, false, &b, &reply), 0);
        assert_int_equal(reply.status, 404);
        assert_string_equal(b.data, "no!");

        /* Larger than the caller takes, announced or not. */
        b = (Body) {};
        assert_int_equal(get("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", "/", 4, true, &b, &reply),
                         -EFBIG);
        b = (Body) {};
        assert_int_equal(get("HTTP/1.1 200 OK\r\n\r\n0123456789", "/", 4, true, &b, &reply), -EFBIG);

        /* Cut short. */
        b = (Body) {};
        assert_int_equal(get("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123", "/", 0, true, &b, &reply),
                         -ECONNRESET);
        assert_int_equal(get("", "/", 0, true, &b, &reply), -ECONNRESET);

        /* The caller stops it after the headers: its error comes back. */
        b = (Body) { .stop_with = -EBADMSG };
        assert_int_equal(get("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "/", 0, true, &b, &reply),
                         -EBADMSG);
        assert_int_equal(reply.failed_at, HTTP_STAGE_CALLBACK);
        assert_int_equal(b.n, 0);

        /* Garbage. */
        b = (Body) {};
        assert_true(get("SPDY/9 200 OK\r\n\r\n", "/", 0, true, &b, &reply) < 0);
        assert_true(get("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "/", 0, true,
                        &b, &reply) < 0);
        memset(long_header, 'a', sizeof(long_header));
        memcpy(long_header, "HTTP/1.1 200 OK\r\nX: ", 20);
        memcpy(long_header + sizeof(long_header) - 5, "\r\n\r\n", 5);
        assert_true(get(long_header, "/", 0, true, &b, &reply) < 0);
}

static void test_request_sent(void **state _unused_) {
        const char *headers[] = { "Range: bytes=100-", "Authorization: Bearer t", NULL };
        HttpRequest req = { .method = "PUT", .headers = headers, .body = "{\"a\":1}", .body_size = 7 };
        HttpReply reply;
        char url[96];
        Server s;

        server_start(&s, "HTTP/1.1 204 No Content\r\n\r\n", NULL, NULL);
        snprintf(url, sizeof(url), "%s/v1/x?y=1", s.url);
        req.url = url;
        assert_int_equal(http_exchange(&req, &reply), 0);
        server_stop(&s);
        assert_int_equal(reply.status, 204);
        assert_true(reply.sent);
        assert_non_null(strstr(s.request, "PUT /v1/x?y=1 HTTP/1.1\r\n"));
        assert_non_null(strstr(s.request, "\r\nRange: bytes=100-\r\n"));
        assert_non_null(strstr(s.request, "\r\nAuthorization: Bearer t\r\n"));
        assert_non_null(strstr(s.request, "\r\nUser-Agent: " HTTP_USER_AGENT "\r\n"));
        assert_non_null(strstr(s.request, "\r\n\r\n{\"a\":1}"));
        assert_null(strcasestr(s.request, "\r\nConnection:"));
}

static void test_unreachable(void **state _unused_) {
        HttpRequest req = { .method = "GET" };
        HttpReply reply;
        char url[96];
        Server s;

        /* A port that was just free: nothing listens there. */
        server_start(&s, "", NULL, NULL);
        server_stop(&s);
        snprintf(url, sizeof(url), "%s/", s.url);
        req.url = url;
        assert_int_equal(http_exchange(&req, &reply), -EHOSTUNREACH);
        assert_int_equal(reply.failed_at, HTTP_STAGE_CONNECT);
        assert_false(reply.sent);
        assert_int_equal(reply.status, 0);

        req.url = "ftp://127.0.0.1/";
        assert_true(http_exchange(&req, &reply) < 0);
}

/* A test CA, a certificate from it for 127.0.0.1 and localhost, and one
 * for another name only. */
static void make_certs(void) {
        const char *script =
                "set -e; exec >openssl.log 2>&1;"
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key"
                " -out ca.pem -days 2 -subj '/CN=Slipway test CA';"
                "for n in good:IP:127.0.0.1,DNS:localhost wrong:DNS:wrong.example; do"
                " f=${n%%:*}; printf 'subjectAltName=%s\\n' \"${n#*:}\" >$f.ext;"
                " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $f.key -out $f.csr"
                " -subj \"/CN=$f\";"
                " openssl x509 -req -in $f.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile $f.ext"
                " -out $f.pem; done";

        assert_int_equal(system(script), 0);
}

static int tls_get(const char *cert, const char *key, const char *ca_file, const char *host, Body *b,
                   HttpReply *reply) {
        HttpOptions opts = { .ca_file = ca_file };
        HttpRequest req = { .method = "GET", .on_body = body_add, .userdata = b, .fail_on_error = true,
                            .opts = &opts };
        char url[128];
        Server s;
        int r;

        server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret", cert, key);
        snprintf(url, sizeof(url), "https://%s:%u/blob", host, s.port);
        req.url = url;
        r = http_exchange(&req, reply);
        server_stop(&s);
        return r;
}

static void test_tls(void **state _unused_) {
        HttpReply reply;
        Body b = {};

        make_certs();
        assert_int_equal(tls_get("good.pem", "good.key", "ca.pem", "127.0.0.1", &b, &reply), 0);
        assert_string_equal(b.data, "secret");
        b = (Body) {};
        assert_int_equal(tls_get("good.pem", "good.key", "ca.pem", "localhost", &b, &reply), 0);
        assert_string_equal(b.data, "secret");

        /* A certificate for another name. */
        b = (Body) {};
        assert_int_equal(tls_get("wrong.pem", "wrong.key", "ca.pem", "127.0.0.1", &b, &reply), -EPROTO);
        assert_int_equal(reply.failed_at, HTTP_STAGE_TLS);
        assert_false(reply.sent);
        assert_int_equal(b.n, 0);
        /* Not signed by a CA we trust (the system's do not know ours). */
        assert_int_equal(tls_get("good.pem", "good.key", NULL, "127.0.0.1", &b, &reply), -EPROTO);
        assert_int_equal(reply.failed_at, HTTP_STAGE_TLS);
        assert_int_equal(b.n, 0);
}

static void test_fetch(void **state _unused_) {
        _cleanup_close_ int fd = -1;
        HttpError e = {};
        char *data = NULL, got[65];
        size_t n = 0;
        uint64_t size = 0;
        Sha256 *h = sha256_new();
        Server s;
        char url[96];

        server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", NULL, NULL);
        snprintf(url, sizeof(url), "%s/m", s.url);
        assert_int_equal(http_fetch_to_memory(url, 16, NULL, &data, &n, &e), 0);
        server_stop(&s);
        assert_int_equal(n, 3);
        assert_string_equal(data, "abc");
        free(data);

        server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", NULL, NULL);
        snprintf(url, sizeof(url), "%s/m", s.url);
        assert_int_equal(http_fetch_to_memory(url, 2, NULL, &data, &n, &e), -EFBIG);
        server_stop(&s);
        assert_string_equal(e.message, "larger than expected");

        server_start(&s, "HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n", NULL, NULL);
        snprintf(url, sizeof(url), "%s/m", s.url);
        assert_int_equal(http_fetch_to_memory(url, 16, NULL, &data, &n, &e), -ENOENT);
        server_stop(&s);
        assert_int_equal(e.status, 410);

        fd = open("out", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0 && h);
        server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", NULL, NULL);
        snprintf(url, sizeof(url), "%s/f", s.url);
        assert_int_equal(http_fetch_to_fd(url, fd, 0, h, NULL, &size, &e), 0);
        server_stop(&s);
        assert_int_equal(size, 3);
        sha256_final_hex(h, got);
        assert_string_equal(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        sha256_free(h);
}

/* The same over IPv6 loopback, where this machine has it. */
static void test_ipv6(void **state _unused_) {
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        socklen_t len = sizeof(a);
        HttpRequest req = { .method = "GET", .on_body = body_add };
        HttpReply reply;
        Body b = {};
        char url[96];
        Server s = { .response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6" };

        s.listen_fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s.listen_fd < 0 || bind(s.listen_fd, (struct sockaddr *) &a, sizeof(a)) < 0) {
                if (s.listen_fd >= 0)
                        close(s.listen_fd);
                skip();
        }
        assert_int_equal(listen(s.listen_fd, 4), 0);
        assert_int_equal(getsockname(s.listen_fd, (struct sockaddr *) &a, &len), 0);
        assert_int_equal(pthread_create(&s.thread, NULL, server_run, &s), 0);
        snprintf(url, sizeof(url), "http://[::1]:%u/x", ntohs(a.sin6_port));
        req.url = url;
        req.userdata = &b;
        assert_int_equal(http_exchange(&req, &reply), 0);
        server_stop(&s);
        assert_string_equal(b.data, "v6");
        assert_non_null(strstr(s.request, "\r\nHost: [::1]:"));
}

/* A server of several requests per connection, each served until the
 * client closes it; it counts connections and requests, and answers the
 * k-th answer with the body "answer k" in the way of its mode. */
typedef enum KeepMode {
        KEEP_ANSWER,      /* every request, the connection kept */
        KEEP_DROP_SECOND, /* a connection's second request is read, then the connection closed unanswered */
        KEEP_CLOSE_AFTER, /* closes the connection after each answer (an idle timeout at once) */
        KEEP_SAYS_CLOSE,  /* each answer says "Connection: close" (the connection stays open) */
        KEEP_HTTP10,      /* each answer is HTTP/1.0 (the connection stays open) */
        KEEP_CUT_SECOND,  /* the second request overall is answered in part, then the connection closed */
} KeepMode;

typedef struct KeepServer {
        int listen_fd;
        pthread_t thread;
        KeepMode mode;
        SSL_CTX *ctx; /* TLS when set */
        atomic_bool stop;
        unsigned connections, requests, answers; /* read after keep_stop() */
        char last_request[4096];
        char url[64];
} KeepServer;

/* Waits until fd (or ssl) has bytes or the server is told to stop. */
static bool keep_wait(KeepServer *s, int fd, SSL *ssl) {
        while (!atomic_load(&s->stop)) {
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if ((ssl && SSL_pending(ssl) > 0) || poll(&p, 1, 100) > 0)
                        return true;
        }
        return false;
}

/* Answers request after request on one connection until it ends. */
static void keep_serve(KeepServer *s, int fd, SSL *ssl) {
        char buf[8192];
        size_t n = 0;
        unsigned on_this = 0;

        for (;;) {
                char *end, answer[160], body[32];
                const char *cl;
                size_t need;
                ssize_t k;

                buf[n] = 0;
                end = strstr(buf, "\r\n\r\n");
                cl = strcasestr(buf, "\r\nContent-Length: ");
                need = end ? (size_t) (end + 4 - buf) + (cl && cl < end ? strtoul(cl + 18, NULL, 10) : 0) : SIZE_MAX;
                if (n >= need) {
                        snprintf(s->last_request, sizeof(s->last_request), "%.*s", (int) need, buf);
                        memmove(buf, buf + need, n - need);
                        n -= need;
                        s->requests++;
                        if (s->mode == KEEP_DROP_SECOND && ++on_this == 2)
                                return;
                        snprintf(body, sizeof(body), "answer %u", ++s->answers);
                        snprintf(answer, sizeof(answer), "HTTP/1.%c 200 OK\r\nContent-Length: %zu\r\n%s\r\n%s",
                                 s->mode == KEEP_HTTP10 ? '0' : '1', strlen(body),
                                 s->mode == KEEP_SAYS_CLOSE ? "Connection: close\r\n" : "", body);
                        if (s->mode == KEEP_CUT_SECOND && s->requests == 2) {
                                send_bytes(fd, ssl, answer, strlen(answer) - 3);
                                return;
                        }
                        send_bytes(fd, ssl, answer, strlen(answer));
                        if (s->mode == KEEP_CLOSE_AFTER)
                                return;
                        continue;
                }
                if (n == sizeof(buf) - 1 || !keep_wait(s, fd, ssl))
                        return;
                k = ssl ? SSL_read(ssl, buf + n, (int) (sizeof(buf) - 1 - n)) : recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
                if (k <= 0)
                        return;
                n += (size_t) k;
        }
}

static void *keep_run(void *userdata) {
        KeepServer *s = userdata;

        while (keep_wait(s, s->listen_fd, NULL)) {
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                SSL *ssl = NULL;

                if (fd < 0)
                        continue;
                s->connections++;
                if (s->ctx) {
                        ssl = SSL_new(s->ctx);
                        SSL_set_fd(ssl, fd);
                }
                if (!ssl || SSL_accept(ssl) == 1)
                        keep_serve(s, fd, ssl);
                if (ssl) {
                        SSL_shutdown(ssl);
                        SSL_free(ssl);
                }
                close(fd);
        }
        return NULL;
}

static void keep_start(KeepServer *s, KeepMode mode, bool tls) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);

        *s = (KeepServer) { .mode = mode };
        if (tls) {
                s->ctx = SSL_CTX_new(TLS_server_method());
                assert_non_null(s->ctx);
                assert_int_equal(SSL_CTX_use_certificate_chain_file(s->ctx, "good.pem"), 1);
                assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, "good.key", SSL_FILETYPE_PEM), 1);
        }
        s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->listen_fd >= 0);
        assert_int_equal(bind(s->listen_fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(s->listen_fd, 8), 0);
        assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *) &a, &len), 0);
        snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%u/k", tls ? "https" : "http", ntohs(a.sin_port));
        assert_int_equal(pthread_create(&s->thread, NULL, keep_run, s), 0);
}

static void keep_stop(KeepServer *s) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
        close(s->listen_fd);
        SSL_CTX_free(s->ctx);
}

/* A streamed request body, read from a string. */
typedef struct Upload {
        const char *data;
        size_t off;
        unsigned rewinds;
} Upload;

static ssize_t upload_read(void *buf, size_t n, void *userdata) {
        Upload *up = userdata;
        size_t k = MIN(n, strlen(up->data) - up->off);

        memcpy(buf, up->data + up->off, k);
        up->off += k;
        return (ssize_t) k;
}

static int upload_rewind(void *userdata) {
        Upload *up = userdata;

        up->off = 0;
        up->rewinds++;
        return 0;
}

/* Request i (from 1) of a run against s: a GET, or a PUT streamed from up
 * when it is set; returns the result, the body in b. */
static int keep_request(KeepServer *s, Upload *up, Body *b, HttpReply *reply) {
        HttpOptions opts = { .ca_file = "ca.pem" };
        HttpRequest req = { .method = "GET", .url = s->url, .on_body = body_add, .userdata = b,
                            .fail_on_error = true, .opts = &opts };

        if (up) {
                req.method = "PUT";
                req.read = upload_read;
                req.rewind = upload_rewind;
                req.read_size = strlen(up->data);
                req.read_userdata = up;
        }
        *b = (Body) {};
        return http_exchange(&req, reply);
}

/* Makes n requests to a server in mode; each must get its answer, in turn. */
static void keep_run_requests(KeepServer *s, KeepMode mode, bool tls, unsigned n) {
        HttpReply reply;
        Body b;

        keep_start(s, mode, tls);
        for (unsigned i = 1; i <= n; i++) {
                char want[32];

                snprintf(want, sizeof(want), "answer %u", i);
                assert_int_equal(keep_request(s, NULL, &b, &reply), 0);
                assert_string_equal(b.data, want);
        }
        keep_stop(s);
}

#ifdef HTTP_BACKEND_OWN
#define ONE_CONNECTION_FOR(n) 1u /* the own client keeps its connection */
#else
#define ONE_CONNECTION_FOR(n) (n) /* a libcurl handle per request */
#endif

static void test_keep_alive(void **state _unused_) {
        KeepServer s;

        make_certs();
        keep_run_requests(&s, KEEP_ANSWER, false, 5);
        assert_int_equal(s.connections, ONE_CONNECTION_FOR(5));
        assert_int_equal(s.requests, 5);
        keep_run_requests(&s, KEEP_ANSWER, true, 5);
        assert_int_equal(s.connections, ONE_CONNECTION_FOR(5));

        /* What a connection may not carry on. */
        keep_run_requests(&s, KEEP_SAYS_CLOSE, false, 3);
        assert_int_equal(s.connections, 3);
        keep_run_requests(&s, KEEP_HTTP10, false, 3);
        assert_int_equal(s.connections, 3);
}

/* A kept connection the server closed: found before use, or by the
 * request going unanswered, which then goes once more on a new one. */
static void test_keep_alive_closed(void **state _unused_) {
        Upload up = { .data = "a body to send again" };
        HttpReply reply;
        KeepServer s;
        Body b;

        make_certs();
        keep_run_requests(&s, KEEP_CLOSE_AFTER, false, 3);
        assert_int_equal(s.connections, 3);
        assert_int_equal(s.requests, 3);
        keep_run_requests(&s, KEEP_CLOSE_AFTER, true, 3);
        assert_int_equal(s.connections, 3);

        keep_run_requests(&s, KEEP_DROP_SECOND, false, 3);
        assert_int_equal(s.connections, 3);
#ifdef HTTP_BACKEND_OWN
        assert_int_equal(s.requests, 5); /* the second and third went twice */
#endif
        keep_run_requests(&s, KEEP_DROP_SECOND, true, 3);
        assert_int_equal(s.connections, 3);

        /* A streamed body is sent again from its start. */
        keep_start(&s, KEEP_DROP_SECOND, false);
        assert_int_equal(keep_request(&s, &up, &b, &reply), 0);
        assert_string_equal(b.data, "answer 1");
        up.off = 0;
        assert_int_equal(keep_request(&s, &up, &b, &reply), 0);
        assert_string_equal(b.data, "answer 2");
        keep_stop(&s);
        assert_non_null(strstr(s.last_request, "\r\n\r\na body to send again"));
#ifdef HTTP_BACKEND_OWN
        assert_int_equal(up.rewinds, 1);
        assert_int_equal(s.requests, 3);

        /* One that cannot be is not: the error stands. */
        keep_start(&s, KEEP_DROP_SECOND, false);
        up = (Upload) { .data = "once only" };
        assert_int_equal(keep_request(&s, &up, &b, &reply), 0);
        up.off = 0;
        {
                HttpRequest req = { .method = "PUT", .url = s.url, .read = upload_read, .read_size = 9,
                                    .read_userdata = &up, .fail_on_error = true };
                assert_int_equal(http_exchange(&req, &reply), -ECONNRESET);
        }
        keep_stop(&s);
        assert_int_equal(s.connections, 1);

        /* One that must not arrive twice goes on a new connection, so it is
         * the first there and answered, sent once. */
        keep_start(&s, KEEP_DROP_SECOND, false);
        assert_int_equal(keep_request(&s, NULL, &b, &reply), 0);
        {
                HttpRequest req = { .method = "POST", .url = s.url, .body = "once", .body_size = 4,
                                    .on_body = body_add, .userdata = &b, .fail_on_error = true,
                                    .fresh_connection = true };
                b = (Body) {};
                assert_int_equal(http_exchange(&req, &reply), 0);
                assert_string_equal(b.data, "answer 2");
        }
        keep_stop(&s);
        assert_int_equal(s.connections, 2);
        assert_int_equal(s.requests, 2);
#endif
}

/* An answer cut short on a kept connection is an error, not sent again. */
static void test_keep_alive_cut(void **state _unused_) {
        HttpReply reply;
        KeepServer s;
        Body b;

        keep_start(&s, KEEP_CUT_SECOND, false);
        assert_int_equal(keep_request(&s, NULL, &b, &reply), 0);
        assert_string_equal(b.data, "answer 1");
        assert_int_equal(keep_request(&s, NULL, &b, &reply), -ECONNRESET);
        assert_int_equal(reply.status, 200);
        /* Nothing lingers: the next request is answered. */
        assert_int_equal(keep_request(&s, NULL, &b, &reply), 0);
        assert_string_equal(b.data, "answer 3");
        keep_stop(&s);
        assert_int_equal(s.requests, 3);
        assert_int_equal(s.connections, ONE_CONNECTION_FOR(2) + 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_bodies),      test_in_dir(test_errors), test_in_dir(test_request_sent),
                test_in_dir(test_unreachable), test_in_dir(test_tls),    test_in_dir(test_fetch),
                test_in_dir(test_ipv6),        test_in_dir(test_keep_alive),
                test_in_dir(test_keep_alive_closed), test_in_dir(test_keep_alive_cut),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
