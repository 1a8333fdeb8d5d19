/* common/apiclient against a fake server on loopback: one canned response
 * per test, and the request it got kept for the checks. Built twice: on
 * libcurl (test-apiclient) and on the agent's own client
 * (test-apiclient-own, HTTP_BACKEND_OWN). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "tests.h"

#include "apiclient.h"
#include "fileio.h"
#include "http.h"
#include "util.h"
#ifndef HTTP_BACKEND_OWN
#include "curleasy.h"
#endif

#define REQUEST_MAX (8u << 20)

typedef struct Fake {
        int listen_fd;
        uint16_t port;
        pthread_t thread;
        const char *response; /* headers and body as sent; "": none, the connection is closed */
        unsigned hang_ms;     /* wait this long before answering */
        uint64_t big_body;    /* then this many more bytes of 'x' */
        char *request;        /* what came in: headers and body */
        size_t request_size;
        char url[64];
} Fake;

static size_t content_length(const char *headers) {
        const char *p = strcasestr(headers, "\r\nContent-Length:");
        uint64_t n = 0;
        char buf[32] = "";

        if (!p)
                return 0;
        p += strlen("\r\nContent-Length:");
        while (*p == ' ')
                p++;
        for (size_t i = 0; i + 1 < sizeof(buf) && p[i] >= '0' && p[i] <= '9'; i++)
                buf[i] = p[i];
        return safe_atou64(buf, &n) < 0 ? 0 : (size_t) n;
}

static void send_all(int fd, const char *data, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, data, n, MSG_NOSIGNAL);
                if (k <= 0)
                        return;
                data += k;
                n -= (size_t) k;
        }
}

/* Serves one connection: reads the request (answering Expect:
 * 100-continue), then sends the canned response and closes. */
static void *fake_run(void *userdata) {
        Fake *f = userdata;
        size_t alloc = REQUEST_MAX + 1, header_end = 0, want = 0;
        int fd;

        fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;
        f->request = calloc(1, alloc);
        while (f->request && f->request_size < REQUEST_MAX) {
                ssize_t k = recv(fd, f->request + f->request_size, REQUEST_MAX - f->request_size, 0);
                char *end;

                if (k <= 0)
                        break;
                f->request_size += (size_t) k;
                if (!header_end && (end = strstr(f->request, "\r\n\r\n"))) {
                        header_end = (size_t) (end - f->request) + 4;
                        want = header_end + content_length(f->request);
                        if (strcasestr(f->request, "\r\nExpect: 100-continue"))
                                send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                }
                if (header_end && f->request_size >= want)
                        break;
        }
        if (f->hang_ms > 0)
                (void) nanosleep(&(struct timespec) { .tv_sec = f->hang_ms / 1000,
                                                      .tv_nsec = (long) (f->hang_ms % 1000) * 1000000L },
                                 NULL);
        send_all(fd, f->response, strlen(f->response));
        for (uint64_t sent = 0; sent < f->big_body;) {
                static char chunk[65536];
                size_t n = (size_t) MIN((uint64_t) sizeof(chunk), f->big_body - sent);
                if (!chunk[0])
                        memset(chunk, 'x', sizeof(chunk));
                if (send(fd, chunk, n, MSG_NOSIGNAL) <= 0)
                        break;
                sent += n;
        }
        shutdown(fd, SHUT_WR);
        close(fd);
        return NULL;
}

/* Listens on 127.0.0.1:port (0: any free port). */
static void fake_start_at(Fake *f, const char *response, uint16_t port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons(port) };
        socklen_t len = sizeof(a);

        *f = (Fake) { .response = response };
        f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(f->listen_fd >= 0);
        /* A port used before may still have connections in TIME_WAIT. */
        assert_int_equal(setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &(int) { 1 }, sizeof(int)), 0);
        assert_int_equal(bind(f->listen_fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(f->listen_fd, 4), 0);
        assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *) &a, &len), 0);
        f->port = ntohs(a.sin_port);
        snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
}

static void fake_start(Fake *f, const char *response) {
        fake_start_at(f, response, 0);
}

static void fake_go(Fake *f) {
        assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(Fake *f) {
        pthread_join(f->thread, NULL);
        close(f->listen_fd);
        free(f->request);
}

/* Stops a fake that may still wait for its connection; returns whether a
 * request came in. */
static bool fake_stop_unused(Fake *f) {
        bool got;

        shutdown(f->listen_fd, SHUT_RDWR);
        pthread_join(f->thread, NULL);
        got = f->request != NULL;
        close(f->listen_fd);
        free(f->request);
        return got;
}

/* A port on 127.0.0.1 that was just free: nothing listens there. */
static void down_url(char *buf, size_t n, uint16_t *ret_port) {
        Fake f;

        fake_start(&f, "");
        close(f.listen_fd);
        snprintf(buf, n, "%s", f.url);
        if (ret_port)
                *ret_port = f.port;
}

/* A client for the URLs given, separated by spaces. */
static ApiClient *client_list(const char *urls) {
        ApiClient *c = NULL;

        assert_int_equal(api_client_new(urls, &c, NULL), 0);
        assert_int_equal(api_client_set_token(c, "slw_test"), 0);
        return c;
}

/* A response with status line status and a JSON or text body; valid until
 * the fourth call after. */
static const char *resp(const char *status, const char *body) {
        static char rs[4][1024];
        static unsigned next;
        char *r = rs[next++ % ELEMENTSOF(rs)];
        int n = snprintf(r, sizeof(rs[0]), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n%s", status, strlen(body),
                         body);

        assert_true(n > 0 && (size_t) n < sizeof(rs[0]));
        return r;
}

static ApiClient *client_for(const Fake *f) {
        ApiClient *c = NULL;

        assert_int_equal(api_client_new(f->url, &c, NULL), 0);
        assert_int_equal(api_client_set_token(c, "slw_test"), 0);
        return c;
}

static void test_escape(void **state) {
        char *s;

        (void) state;
        s = api_escape("tiny:1.0");
        assert_string_equal(s, "tiny:1.0");
        free(s);
        s = api_escape("a b/c=d&e?\xc3\xa9");
        assert_string_equal(s, "a%20b%2Fc%3Dd%26e%3F%C3%A9");
        free(s);
}

static void test_client_new(void **state) {
        static const char *const bad[] = { "", "ftp://host", "file:///etc", "http://", "http:///path", "http://a b",
                                           "http://h/?q", "127.0.0.1:8080" };
        ApiClient *c = NULL;

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(api_client_new(bad[i], &c, NULL), -EINVAL);
        assert_int_equal(api_client_new("https://boot.example:8443/api//", &c, NULL), 0);
        assert_string_equal(api_client_url(c), "https://boot.example:8443/api");
        assert_int_equal(api_client_set_token(c, "with space"), -EINVAL);
        assert_int_equal(api_client_set_token(c, "line\nbreak"), -EINVAL);
        assert_int_equal(api_client_set_token(c, ""), -EINVAL);
        assert_int_equal(api_client_set_token(c, "slw_ok"), 0);
        api_client_free(c);
}

static void test_client_list(void **state) {
        _cleanup_error_ Error e = {};
        char many[40 * 20] = "";
        ApiClient *c = NULL;

        (void) state;
        assert_int_equal(api_client_new(" http://a:8080/, https://b:8443\thttp://c ", &c, &e), 0);
        assert_int_equal(api_client_n_urls(c), 3);
        assert_string_equal(api_client_url(c), "http://a:8080");
        assert_string_equal(api_client_urls(c), "http://a:8080 https://b:8443 http://c");
        api_client_failover(c, "test");
        assert_string_equal(api_client_url(c), "https://b:8443");
        assert_int_equal(api_client_prefer(c, "http://c"), 0);
        assert_string_equal(api_client_url(c), "http://c");
        api_client_failover(c, "test");
        assert_string_equal(api_client_url(c), "http://a:8080");
        assert_int_equal(api_client_prefer(c, "http://d"), -ENOENT);
        assert_string_equal(api_client_url(c), "http://a:8080");
        api_client_free(c);

        /* The error names the URL at fault. */
        assert_int_equal(api_client_new("http://a,ftp://b,http://c", &c, &e), -EINVAL);
        assert_string_equal(e.message, "'ftp://b' is not an http:// or https:// URL");
        error_clear(&e);
        assert_int_equal(api_client_new(" , ", &c, &e), -EINVAL);
        assert_string_equal(e.message, "no server URL given");
        error_clear(&e);
        assert_int_equal(api_client_new("http://a/ http://a", &c, &e), -EINVAL);
        assert_string_equal(e.message, "'http://a' is listed twice");
        error_clear(&e);
        for (unsigned i = 0; i <= API_URLS_MAX; i++)
                snprintf(many + strlen(many), sizeof(many) - strlen(many), "http://h%u ", i);
        assert_int_equal(api_client_new(many, &c, &e), -EINVAL);
        assert_string_equal(e.message, "17 server URLs given, at most 16 are taken");
}

static void test_token_file(void **state) {
        char *t = NULL;

        (void) state;
        assert_int_equal(write_file_atomic("tok", "  slw_abc \n", 11, 0600), 0);
        assert_int_equal(api_read_token_file("tok", &t), 0);
        assert_string_equal(t, "slw_abc");
        free(t);
        assert_int_equal(write_file_atomic("empty", " \n\n", 3, 0600), 0);
        assert_int_equal(api_read_token_file("empty", &t), -EINVAL);
        assert_int_equal(api_read_token_file("missing", &t), -ENOENT);
}

static void test_request_ok(void **state) {
        Fake f;
        ApiClient *c;
        json_t *body = json_pack("{s:s}", "k", "v"), *reply = NULL;
        long status = 0;

        (void) state;
        fake_start(&f, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"
                       "Connection: close\r\n\r\n{\"a\":1}\n");
        fake_go(&f);
        c = client_for(&f);
        assert_int_equal(api_request(c, "POST", "/v1/x", body, &status, &reply), 0);
        pthread_join(f.thread, NULL);
        assert_int_equal(status, 201);
        assert_int_equal(json_integer_value(json_object_get(reply, "a")), 1);
        assert_non_null(strstr(f.request, "POST /v1/x HTTP/1.1\r\n"));
        assert_non_null(strstr(f.request, "\r\nAuthorization: Bearer slw_test\r\n"));
        assert_non_null(strstr(f.request, "\r\nContent-Type: application/json\r\n"));
        assert_non_null(strstr(f.request, "\r\n\r\n{\"k\":\"v\"}"));
        close(f.listen_fd);
        free(f.request);
        json_decref(body);
        json_decref(reply);
        api_client_free(c);
}

/* Runs one GET against a canned response; returns the result. */
static int get_with(const char *response, uint64_t big_body, ApiClient **ret_client, json_t **ret_reply) {
        Fake f;
        ApiClient *c;
        int r;

        fake_start(&f, response);
        f.big_body = big_body;
        fake_go(&f);
        c = client_for(&f);
        r = api_request(c, "GET", "/v1/thing", NULL, NULL, ret_reply);
        fake_stop(&f);
        *ret_client = c;
        return r;
}

static void test_server_error(void **state) {
        ApiClient *c;
        json_t *reply = NULL;

        (void) state;
        assert_int_equal(get_with(resp("409 Conflict", "{\"kind\":\"missing_blobs\",\"error\":\"2 blob(s) were "
                                                       "not uploaded\",\"missing\":[\"ab\"]}\n"),
                                  0, &c, &reply),
                         -ENODATA);
        assert_null(reply);
        assert_string_equal(api_client_error(c), "server: 2 blob(s) were not uploaded (missing_blobs)");
        assert_string_equal(api_client_error_kind(c), "missing_blobs");
        assert_int_equal(api_client_error_status(c), 409);
        assert_false(api_client_unreachable(c));
        assert_string_equal(json_string_value(json_array_get(json_object_get(api_client_error_reply(c), "missing"), 0)),
                            "ab");
        api_client_free(c);

        /* Control characters from the server do not reach the terminal. */
        assert_int_equal(get_with(resp("404 Not Found", "{\"kind\":\"not_found\",\"error\":\"host \\u001b[31m\"}"), 0,
                                  &c, &reply),
                         -ENOENT);
        assert_string_equal(api_client_error(c), "server: host ?[31m (not_found)");
        api_client_free(c);
}

static void test_error_not_json(void **state) {
        ApiClient *c;
        json_t *reply = NULL;

        (void) state;
        assert_int_equal(get_with("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 6\r\n\r\n<html>", 0, &c, &reply),
                         -EIO);
        assert_non_null(strstr(api_client_error(c), "HTTP 502"));
        assert_string_equal(api_client_error_kind(c), "");
        api_client_free(c);

        assert_int_equal(get_with("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, &c, &reply), -EBADMSG);
        assert_non_null(strstr(api_client_error(c), "not JSON"));
        api_client_free(c);
}

static void test_reply_too_large(void **state) {
        ApiClient *c;
        json_t *reply = NULL;

        (void) state;
        /* Announced: refused before reading it. */
        assert_int_equal(get_with("HTTP/1.1 200 OK\r\nContent-Length: 16777217\r\n\r\n", API_REPLY_MAX + 1, &c, &reply),
                         -EFBIG);
        api_client_free(c);
        /* Not announced: cut off at the cap. */
        assert_int_equal(get_with("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", API_REPLY_MAX + 1, &c, &reply),
                         -EFBIG);
        assert_non_null(strstr(api_client_error(c), "larger than 16 MiB"));
        api_client_free(c);
}

static void test_redirect(void **state) {
        ApiClient *c;
        json_t *reply = NULL;

        (void) state;
        assert_int_equal(get_with("HTTP/1.1 301 Moved\r\nLocation: http://elsewhere.invalid/v1/thing\r\n"
                                  "Content-Length: 0\r\n\r\n",
                                  0, &c, &reply),
                         -EPROTO);
        assert_non_null(strstr(api_client_error(c), "redirects to http://elsewhere.invalid/v1/thing"));
        api_client_free(c);
}

static void test_unreachable(void **state) {
        Fake f;
        ApiClient *c;
        char want[128];

        (void) state;
        /* A port that was just free: nothing listens there. */
        fake_start(&f, "");
        close(f.listen_fd);
        c = client_for(&f);
        assert_int_equal(api_request(c, "GET", "/v1/status", NULL, NULL, NULL), -EHOSTUNREACH);
        assert_true(api_client_unreachable(c));
        assert_int_equal(api_client_error_status(c), 0);
        snprintf(want, sizeof(want), "cannot reach the server at %s: Connection refused", f.url);
        assert_string_equal(api_client_error(c), want);
        api_client_free(c);
}

static void test_head(void **state) {
        Fake f;
        ApiClient *c;
        uint64_t size = 0;

        (void) state;
        fake_start(&f, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
        fake_go(&f);
        c = client_for(&f);
        assert_int_equal(api_head(c, "/blobs/sha256/ab", &size), 0);
        fake_stop(&f);
        assert_int_equal(size, 1234);
        api_client_free(c);

        fake_start(&f, "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n");
        fake_go(&f);
        c = client_for(&f);
        assert_int_equal(api_head(c, "/blobs/sha256/ab", &size), -ENOENT);
        assert_non_null(strstr(f.request, "HEAD /blobs/sha256/ab HTTP/1.1\r\n"));
        fake_stop(&f);
        api_client_free(c);
}

static uint64_t progress_last, progress_calls;

static void on_progress(uint64_t sent, uint64_t total, void *userdata) {
        assert_ptr_equal(userdata, &progress_last);
        assert_true(sent <= total);
        assert_true(sent >= progress_last);
        progress_last = sent;
        progress_calls++;
}

static void test_upload(void **state) {
        const size_t n = 3 << 20;
        _cleanup_free_ char *data = malloc(n);
        Fake f;
        ApiClient *c;
        json_t *reply = NULL;
        long status = 0;
        char *body;
        int fd;

        (void) state;
        for (size_t i = 0; i < n; i++)
                data[i] = (char) ('a' + i % 26);
        assert_int_equal(write_file_atomic("blob", data, n, 0644), 0);
        fd = open("blob", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        /* Skip the first byte: the upload starts at the current offset. */
        assert_int_equal(lseek(fd, 1, SEEK_SET), 1);

        fake_start(&f, "HTTP/1.1 201 Created\r\nContent-Length: 16\r\n\r\n{\"created\":true}");
        fake_go(&f);
        c = client_for(&f);
        assert_int_equal(api_upload_fd(c, "/v1/blobs/sha256/ab", fd, n - 1, on_progress, &progress_last, &status,
                                       &reply),
                         0);
        pthread_join(f.thread, NULL);
        assert_int_equal(status, 201);
        assert_true(json_is_true(json_object_get(reply, "created")));
        assert_int_equal(progress_last, n - 1);
        assert_true(progress_calls > 1);
        assert_non_null(strstr(f.request, "PUT /v1/blobs/sha256/ab HTTP/1.1\r\n"));
        assert_non_null(strstr(f.request, "\r\nContent-Length: 3145727\r\n"));
        body = strstr(f.request, "\r\n\r\n") + 4;
        assert_int_equal(f.request_size - (size_t) (body - f.request), n - 1);
        assert_memory_equal(body, data + 1, n - 1);
        close(f.listen_fd);
        free(f.request);
        json_decref(reply);
        api_client_free(c);

        /* A file shorter than promised is an error of its own. */
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        fake_start(&f, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}");
        fake_go(&f);
        c = client_for(&f);
        assert_int_equal(api_upload_fd(c, "/v1/blobs/sha256/ab", fd, n + 10, NULL, NULL, NULL, NULL), -EIO);
        assert_non_null(strstr(api_client_error(c), "ended after 3145728 of 3145738 bytes"));
        close(fd);
        shutdown(f.listen_fd, SHUT_RDWR);
        fake_stop(&f);
        api_client_free(c);
}

/* The first server is down: the request goes to the second, and the
 * client stays there even when the first is back. */
static void test_failover_sticky(void **state) {
        char down[64], urls[160], want[256];
        uint16_t port;
        Fake b, a;
        ApiClient *c;
        json_t *reply = NULL;

        (void) state;
        down_url(down, sizeof(down), &port);
        fake_start(&b, resp("200 OK", "{\"from\":\"b\"}"));
        fake_go(&b);
        snprintf(urls, sizeof(urls), "%s %s", down, b.url);
        c = client_list(urls);
        assert_int_equal(api_request(c, "GET", "/v1/status", NULL, NULL, &reply), 0);
        fake_stop(&b);
        assert_string_equal(json_string_value(json_object_get(reply, "from")), "b");
        json_decref(reply);
        assert_string_equal(api_client_url(c), b.url);
        assert_false(api_client_unreachable(c));

        /* The first comes back; requests stay with the second. */
        fake_start_at(&a, resp("200 OK", "{\"from\":\"a\"}"), port);
        fake_go(&a);
        fake_start_at(&b, resp("200 OK", "{\"from\":\"b\"}"), b.port);
        fake_go(&b);
        assert_int_equal(api_request(c, "POST", "/v1/rollouts", NULL, NULL, &reply), 0);
        fake_stop(&b);
        assert_string_equal(json_string_value(json_object_get(reply, "from")), "b");
        json_decref(reply);
        assert_false(fake_stop_unused(&a));

        /* Both down: the error names each server tried; the client stays
         * where it was. */
        assert_int_equal(api_request(c, "GET", "/v1/status", NULL, NULL, NULL), -EHOSTUNREACH);
        assert_true(api_client_unreachable(c));
        snprintf(want, sizeof(want),
                 "cannot reach the server at %s: Connection refused; cannot reach the server at %s: Connection refused",
                 b.url, down);
        assert_string_equal(api_client_error(c), want);
        assert_string_equal(api_client_url(c), b.url);
        api_client_free(c);
}

/* A server that may have received the request and then gave no answer:
 * what is safe to repeat goes to the next server, the rest does not. */
static void test_failover_resend(void **state) {
        static const struct {
                const char *method, *path;
                bool resent;
        } cases[] = {
                { "GET", "/v1/hosts", true },
                { "PUT", "/v1/budgets/rack", true },
                { "POST", "/v1/hosts/h-0123456789ab/checkin", true },
                { "POST", "/v1/hosts/h-0123456789ab/lease", true },
                { "DELETE", "/v1/hosts/h-0123456789ab/lease", true },
                { "POST", "/v1/images", true },
                { "POST", "/v1/rollouts", false },
                { "POST", "/v1/rollouts/3/pause", false },
                { "POST", "/v1/hosts/register", false },
                { "POST", "/v1/hosts/h-0123456789ab/labels", false },
                { "DELETE", "/v1/images/tiny:1.0", false },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_t *body = json_object();
                char urls[160];
                Fake a, b;
                ApiClient *c;
                int r;

                /* a reads the request and closes without a word. */
                fake_start(&a, "");
                fake_go(&a);
                fake_start(&b, resp("200 OK", "{}"));
                fake_go(&b);
                snprintf(urls, sizeof(urls), "%s,%s", a.url, b.url);
                c = client_list(urls);
                r = api_request(c, cases[i].method, cases[i].path, body, NULL, NULL);
                fake_stop(&a);
                if (cases[i].resent) {
                        assert_int_equal(r, 0);
                        assert_non_null(strstr(b.request, cases[i].path));
                        assert_string_equal(api_client_url(c), b.url);
                        fake_stop(&b);
                } else {
                        assert_int_equal(r, -ECONNRESET);
                        assert_true(api_client_unreachable(c));
                        assert_non_null(strstr(api_client_error(c), a.url));
                        assert_non_null(strstr(api_client_error(c), "not sent again to another server"));
                        assert_string_equal(api_client_url(c), a.url);
                        assert_false(fake_stop_unused(&b));
                }
                api_client_free(c);
                json_decref(body);
        }
}

/* A server that takes the request and does not answer in time is left for
 * the next; one that answers 503 too; any other error answer is final. */
static void test_failover_timeout_503(void **state) {
        char urls[160];
        Fake a, b;
        ApiClient *c;

        (void) state;
        fake_start(&a, resp("200 OK", "{}"));
        a.hang_ms = 2500;
        fake_go(&a);
        fake_start(&b, resp("200 OK", "{}"));
        fake_go(&b);
        snprintf(urls, sizeof(urls), "%s %s", a.url, b.url);
        c = client_list(urls);
        api_client_set_timeout(c, 1);
        assert_int_equal(api_request(c, "GET", "/v1/hosts", NULL, NULL, NULL), 0);
        assert_string_equal(api_client_url(c), b.url);
        fake_stop(&a);
        fake_stop(&b);
        api_client_free(c);

        fake_start(&a, resp("503 Service Unavailable", "{\"kind\":\"internal\",\"error\":\"no database\"}"));
        fake_go(&a);
        fake_start(&b, resp("200 OK", "{}"));
        fake_go(&b);
        snprintf(urls, sizeof(urls), "%s %s", a.url, b.url);
        c = client_list(urls);
        assert_int_equal(api_request(c, "GET", "/v1/hosts", NULL, NULL, NULL), 0);
        assert_string_equal(api_client_url(c), b.url);
        fake_stop(&a);
        fake_stop(&b);
        api_client_free(c);

        fake_start(&a, resp("500 Internal Server Error", "{\"kind\":\"internal\",\"error\":\"boom\"}"));
        fake_go(&a);
        fake_start(&b, resp("200 OK", "{}"));
        fake_go(&b);
        snprintf(urls, sizeof(urls), "%s %s", a.url, b.url);
        c = client_list(urls);
        assert_int_equal(api_request(c, "GET", "/v1/hosts", NULL, NULL, NULL), -EIO);
        assert_string_equal(api_client_error(c), "server: boom (internal)");
        assert_string_equal(api_client_url(c), a.url);
        fake_stop(&a);
        assert_false(fake_stop_unused(&b));
        api_client_free(c);
}

/* An upload that moves to another server sends the whole file again. */
static void test_failover_upload(void **state) {
        const char data[] = "0123456789abcdef";
        char urls[160], down[64], *body;
        Fake b;
        ApiClient *c;
        int fd;

        (void) state;
        assert_int_equal(write_file_atomic("blob", data, sizeof(data) - 1, 0644), 0);
        fd = open("blob", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        down_url(down, sizeof(down), NULL);
        fake_start(&b, resp("201 Created", "{}"));
        fake_go(&b);
        snprintf(urls, sizeof(urls), "%s %s", down, b.url);
        c = client_list(urls);
        assert_int_equal(api_upload_fd(c, "/v1/blobs/sha256/ab", fd, sizeof(data) - 1, NULL, NULL, NULL, NULL), 0);
        pthread_join(b.thread, NULL);
        body = strstr(b.request, "\r\n\r\n") + 4;
        assert_string_equal(body, data);
        close(b.listen_fd);
        free(b.request);
        close(fd);
        api_client_free(c);
}

#ifndef HTTP_BACKEND_OWN
/* One name that resolves to two addresses, the first with nothing
 * listening: libcurl connects to the second by itself. */
static size_t discard(char *data _unused_, size_t size, size_t nmemb, void *userdata _unused_) {
        return size * nmemb;
}

static void test_name_two_addresses(void **state) {
        char errbuf[CURL_ERROR_SIZE], url[96], resolve[96];
        struct curl_slist *rl;
        char *ip = NULL;
        long status = 0;
        Fake f;
        CURL *h;

        (void) state;
        fake_start(&f, resp("200 OK", "{}"));
        fake_go(&f);
        snprintf(url, sizeof(url), "http://slipway.test:%u/v1/status", f.port);
        snprintf(resolve, sizeof(resolve), "slipway.test:%u:127.0.0.2,127.0.0.1", f.port);
        rl = curl_slist_append(NULL, resolve);
        h = http_easy_new(url, NULL, errbuf);
        assert_non_null(h);
        assert_int_equal(curl_easy_setopt(h, CURLOPT_RESOLVE, rl), CURLE_OK);
        assert_int_equal(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard), CURLE_OK);
        assert_int_equal(curl_easy_perform(h), CURLE_OK);
        assert_int_equal(curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status), CURLE_OK);
        assert_int_equal(status, 200);
        assert_int_equal(curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip), CURLE_OK);
        assert_string_equal(ip, "127.0.0.1");
        curl_easy_cleanup(h);
        curl_slist_free_all(rl);
        fake_stop(&f);

        /* The first address alone: nothing answers there. */
        snprintf(resolve, sizeof(resolve), "slipway.test:%u:127.0.0.2", f.port);
        rl = curl_slist_append(NULL, resolve);
        h = http_easy_new(url, NULL, errbuf);
        assert_non_null(h);
        assert_int_equal(curl_easy_setopt(h, CURLOPT_RESOLVE, rl), CURLE_OK);
        assert_int_equal(curl_easy_perform(h), CURLE_COULDNT_CONNECT);
        curl_easy_cleanup(h);
        curl_slist_free_all(rl);
}

#endif

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape),        test_in_dir(test_client_new),  test_in_dir(test_token_file),
                test_in_dir(test_request_ok),         test_in_dir(test_server_error), test_in_dir(test_error_not_json),
                test_in_dir(test_reply_too_large),    test_in_dir(test_redirect),    test_in_dir(test_unreachable),
                test_in_dir(test_head),               test_in_dir(test_upload),      test_in_dir(test_client_list),
                test_in_dir(test_failover_sticky),    test_in_dir(test_failover_resend),
                test_in_dir(test_failover_timeout_503), test_in_dir(test_failover_upload),
#ifndef HTTP_BACKEND_OWN
                test_in_dir(test_name_two_addresses),
#endif
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
