/* common/apiclient against a fake server on loopback: one canned response
 * per test, and the request it got kept for the checks. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "tests.h"

#include "apiclient.h"
#include "fileio.h"
#include "util.h"

#define REQUEST_MAX (8u << 20)

typedef struct Fake {
        int listen_fd;
        uint16_t port;
        pthread_t thread;
        const char *response; /* headers and body as sent */
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

static void fake_start(Fake *f, const char *response) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);

        *f = (Fake) { .response = response };
        f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(f->listen_fd >= 0);
        assert_int_equal(bind(f->listen_fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(f->listen_fd, 4), 0);
        assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *) &a, &len), 0);
        f->port = ntohs(a.sin_port);
        snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
}

static void fake_go(Fake *f) {
        assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(Fake *f) {
        pthread_join(f->thread, NULL);
        close(f->listen_fd);
        free(f->request);
}

/* A response with status line status and a JSON or text body; valid until
 * the next call. */
static const char *resp(const char *status, const char *body) {
        static char r[1024];
        int n = snprintf(r, sizeof(r), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n\r\n%s", status, strlen(body), body);

        assert_true(n > 0 && (size_t) n < sizeof(r));
        return r;
}

static ApiClient *client_for(const Fake *f) {
        ApiClient *c = NULL;

        assert_int_equal(api_client_new(f->url, &c), 0);
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
                assert_int_equal(api_client_new(bad[i], &c), -EINVAL);
        assert_int_equal(api_client_new("https://boot.example:8443/api//", &c), 0);
        assert_string_equal(api_client_url(c), "https://boot.example:8443/api");
        assert_int_equal(api_client_set_token(c, "with space"), -EINVAL);
        assert_int_equal(api_client_set_token(c, "line\nbreak"), -EINVAL);
        assert_int_equal(api_client_set_token(c, ""), -EINVAL);
        assert_int_equal(api_client_set_token(c, "slw_ok"), 0);
        api_client_free(c);
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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape),        test_in_dir(test_client_new),  test_in_dir(test_token_file),
                test_in_dir(test_request_ok),         test_in_dir(test_server_error), test_in_dir(test_error_not_json),
                test_in_dir(test_reply_too_large),    test_in_dir(test_redirect),    test_in_dir(test_unreachable),
                test_in_dir(test_head),               test_in_dir(test_upload),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
