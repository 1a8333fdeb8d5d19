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
#include <signal.h>
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

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_bodies),      test_in_dir(test_errors), test_in_dir(test_request_sent),
                test_in_dir(test_unreachable), test_in_dir(test_tls),    test_in_dir(test_fetch),
                test_in_dir(test_ipv6),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
