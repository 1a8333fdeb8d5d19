#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>

#include "apiclient.h"
#include "error.h"
#include "fileio.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* An upload may sit idle this long while the server fsyncs a large blob
 * after its last byte. */
#define API_UPLOAD_LOW_SPEED_TIME_SEC 300L

struct ApiClient {
        char **urls;   /* the base URLs, in the order given */
        size_t n_urls;
        size_t current; /* the one requests go to */
        char *list;    /* the URLs joined by spaces */
        char *auth_header; /* "Authorization: Bearer …", or NULL */
        char *ca_file;
        long timeout_sec;

        /* the last failure */
        char error[4096];
        char kind[64];
        long status;
        json_t *error_reply;
        bool unreachable;
};

#define URL(c) ((c)->urls[(c)->current])

/* One transfer: the upload source and the reply sink. */
typedef struct Transfer {
        /* upload */
        int fd;
        off_t start;
        uint64_t size;
        uint64_t sent;
        ApiProgressFn progress;
        void *userdata;
        int read_error;
        /* reply */
        char *buf;
        size_t n;
        size_t alloc;
        int write_error;
        uint64_t content_length; /* of a HEAD answer */
} Transfer;

static bool url_char_ok(char ch) {
        return (unsigned char) ch > 0x20 && (unsigned char) ch < 0x7f;
}

/* Checks one base URL and returns a copy without trailing slashes. */
static int url_normalize(const char *url, char **ret) {
        _cleanup_free_ char *copy = NULL;
        const char *rest;
        HttpUrl u;
        size_t n;

        if (isempty(url))
                return -EINVAL;
        rest = startswith(url, "http://");
        if (!rest)
                rest = startswith(url, "https://");
        if (!rest || isempty(rest) || *rest == '/')
                return -EINVAL;
        for (const char *p = url; *p; p++)
                if (!url_char_ok(*p) || *p == '?' || *p == '#')
                        return -EINVAL;
        n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
                n--;
        copy = strndup(url, n);
        if (!copy)
                return -ENOMEM;

        /* The host and port as the transport reads them. */
        if (http_url_parse(copy, &u) < 0)
                return -EINVAL;
        *ret = TAKE_PTR(copy);
        return 0;
}

int api_client_new(const char *urls, ApiClient **ret, Error *error) {
        _cleanup_strv_free_ char **words = NULL, **list = NULL;
        _cleanup_free_ char *joined = NULL;
        ApiClient *c;
        size_t n;
        int r;

        words = strv_split_words(strempty(urls));
        if (!words)
                return error_set(error, -ENOMEM, "out of memory");
        n = strv_length(words);
        if (n == 0)
                return error_set(error, -EINVAL, "no server URL given");
        if (n > API_URLS_MAX)
                return error_set(error, -EINVAL, "%zu server URLs given, at most %u are taken", n, API_URLS_MAX);
        list = calloc(n + 1, sizeof(char *));
        if (!list)
                return error_set(error, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                r = url_normalize(words[i], &list[i]);
                if (r == -EINVAL)
                        return error_set(error, r, "'%s' is not an http:// or https:// URL", words[i]);
                if (r < 0)
                        return error_set(error, r, "cannot check the URL '%s': %m", words[i]);
                for (size_t j = 0; j < i; j++)
                        if (streq(list[j], list[i]))
                                return error_set(error, -EINVAL, "'%s' is listed twice", words[i]);
        }
        for (size_t i = 0; i < n; i++) {
                char *j = strdup_printf("%s%s%s", strempty(joined), joined ? " " : "", list[i]);
                if (!j)
                        return error_set(error, -ENOMEM, "out of memory");
                free(joined);
                joined = j;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return error_set(error, -ENOMEM, "out of memory");
        c->urls = TAKE_PTR(list);
        c->n_urls = n;
        c->list = TAKE_PTR(joined);
        c->timeout_sec = API_TIMEOUT_SEC_DEFAULT;
        *ret = c;
        return 0;
}

ApiClient *api_client_free(ApiClient *c) {
        if (!c)
                return NULL;
        strv_free(c->urls);
        free(c->list);
        free(c->auth_header);
        free(c->ca_file);
        json_decref(c->error_reply);
        free(c);
        return NULL;
}

int api_client_set_token(ApiClient *c, const char *token) {
        char *h = NULL;

        if (token) {
                size_t n = strlen(token);
                if (n == 0 || n > API_TOKEN_MAX)
                        return -EINVAL;
                for (const char *p = token; *p; p++)
                        if (!url_char_ok(*p))
                                return -EINVAL;
                h = strdup_printf("Authorization: Bearer %s", token);
                if (!h)
                        return -ENOMEM;
        }
        free(c->auth_header);
        c->auth_header = h;
        return 0;
}

int api_client_set_ca_file(ApiClient *c, const char *path) {
        char *p = NULL;

        if (path) {
                p = strdup(path);
                if (!p)
                        return -ENOMEM;
        }
        free(c->ca_file);
        c->ca_file = p;
        return 0;
}

void api_client_set_timeout(ApiClient *c, long seconds) {
        c->timeout_sec = seconds > 0 ? seconds : 0;
}

const char *api_client_url(const ApiClient *c) {
        return URL(c);
}

const char *api_client_urls(const ApiClient *c) {
        return c->list;
}

size_t api_client_n_urls(const ApiClient *c) {
        return c->n_urls;
}

int api_client_prefer(ApiClient *c, const char *url) {
        for (size_t i = 0; url && i < c->n_urls; i++)
                if (streq(c->urls[i], url)) {
                        c->current = i;
                        return 0;
                }
        return -ENOENT;
}

void api_client_failover(ApiClient *c, const char *why) {
        size_t next = (c->current + 1) % c->n_urls;

        if (next == c->current)
                return;
        log_debug("leaving %s for %s: %s", URL(c), c->urls[next], strempty(why));
        c->current = next;
}

const char *api_client_error(const ApiClient *c) {
        return c->error;
}

const char *api_client_error_kind(const ApiClient *c) {
        return c->kind;
}

long api_client_error_status(const ApiClient *c) {
        return c->status;
}

json_t *api_client_error_reply(const ApiClient *c) {
        return c->error_reply;
}

bool api_client_unreachable(const ApiClient *c) {
        return c->unreachable;
}

static void error_reset(ApiClient *c) {
        c->error[0] = 0;
        c->kind[0] = 0;
        c->status = 0;
        c->unreachable = false;
        json_decref(c->error_reply);
        c->error_reply = NULL;
}

_printf_(3, 4) static int client_error(ApiClient *c, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(c->error, sizeof(c->error), format, ap);
        va_end(ap);
        /* The server's words end up on a terminal: no escape sequences. */
        for (char *p = c->error; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        return r;
}

int api_read_token_file(const char *path, char **ret) {
        _cleanup_free_ char *data = NULL;
        char *start, *end;
        size_t n;
        int r;

        /* Room for a trailing newline and some whitespace around the token. */
        r = read_full_file(path, API_TOKEN_MAX + 64, &data, &n);
        if (r < 0)
                return r;
        if (strlen(data) != n)
                return -EINVAL;
        start = data;
        while (isspace((unsigned char) *start))
                start++;
        end = start;
        while (*end && *end != '\n' && *end != '\r')
                end++;
        while (end > start && isspace((unsigned char) end[-1]))
                end--;
        *end = 0;
        if (end == start)
                return -EINVAL;
        if ((size_t) (end - start) > API_TOKEN_MAX)
                return -EFBIG;
        start = strdup(start);
        if (!start)
                return -ENOMEM;
        *ret = start;
        return 0;
}

char *api_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *out, *o;

        out = malloc(n * 3 + 1);
        if (!out)
                return NULL;
        o = out;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                /* RFC 3986 unreserved, and ':' which a path segment may hold
                 * (name:version, MAC addresses) and reads better as it is. */
                if (isalnum(*p) || strchr("-._~:", *p)) {
                        *o++ = (char) *p;
                        continue;
                }
                *o++ = '%';
                *o++ = hex[*p >> 4];
                *o++ = hex[*p & 15];
        }
        *o = 0;
        return out;
}

static int reply_write(const void *data, size_t n, void *userdata) {
        Transfer *t = userdata;

        if (t->n + n + 1 > t->alloc) {
                size_t na = MAX(MAX(t->alloc * 2, t->n + n + 1), (size_t) 4096);
                char *nb = realloc(t->buf, na);
                if (!nb)
                        return t->write_error = -ENOMEM;
                t->buf = nb;
                t->alloc = na;
        }
        memcpy(t->buf + t->n, data, n);
        t->n += n;
        t->buf[t->n] = 0;
        return 0;
}

static ssize_t upload_read(void *buf, size_t want, void *userdata) {
        Transfer *t = userdata;
        ssize_t n;

        if (t->sent >= t->size)
                return 0; /* libcurl may ask once more at the end */
        if (want > t->size - t->sent)
                want = (size_t) (t->size - t->sent);
        do
                n = read(t->fd, buf, want);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return t->read_error = negative_errno();
        if (n == 0)
                /* The file is shorter than the Content-Length we promised. */
                return t->read_error = -EIO;
        t->sent += (uint64_t) n;
        if (t->progress)
                t->progress(t->sent, t->size, t->userdata);
        return n;
}

static int upload_rewind(void *userdata) {
        Transfer *t = userdata;

        if (lseek(t->fd, t->start, SEEK_SET) < 0)
                return negative_errno();
        t->sent = 0;
        return 0;
}

static const struct {
        const char *kind;
        int error;
} kind_errors[] = {
        { "bad_request", -EINVAL },
        { "invalid_json", -EINVAL },
        { "unknown_field", -EINVAL },
        { "invalid_value", -EINVAL },
        { "digest_mismatch", -EBADMSG },
        { "bad_signature", -EKEYREJECTED },
        { "unauthorized", -EACCES },
        { "forbidden", -EPERM },
        { "not_found", -ENOENT },
        { "method_not_allowed", -EOPNOTSUPP },
        { "conflict", -EEXIST },
        { "in_use", -EBUSY },
        { "missing_blobs", -ENODATA },
        { "too_large", -EFBIG },
        { "headers_too_large", -EFBIG },
        { "unsupported_media_type", -EPROTO },
        { "range_not_satisfiable", -ERANGE },
        { "no_space", -ENOSPC },
        { "internal", -EIO },
};

static int status_to_errno(long status) {
        switch (status) {
        case 400:
                return -EINVAL;
        case 401:
                return -EACCES;
        case 403:
                return -EPERM;
        case 404:
        case 410:
                return -ENOENT;
        case 409:
                return -EEXIST;
        case 413:
        case 431:
                return -EFBIG;
        case 416:
                return -ERANGE;
        case 507:
                return -ENOSPC;
        default:
                return status >= 500 ? -EIO : -EPROTO;
        }
}

/* Turns an HTTP error answer into the client's error state. */
static int server_error(ApiClient *c, long status, const char *body, size_t n) {
        json_t *j = n > 0 ? json_loadb(body, n, 0, NULL) : NULL;
        const char *kind = json_string_value(json_object_get(j, "kind"));
        const char *msg = json_string_value(json_object_get(j, "error"));
        int r = status_to_errno(status);

        c->status = status;
        if (!kind) {
                json_decref(j);
                return client_error(c, r, "server: HTTP %ld from %s, without an error message", status, URL(c));
        }
        for (size_t i = 0; i < ELEMENTSOF(kind_errors); i++)
                if (streq(kind, kind_errors[i].kind)) {
                        r = kind_errors[i].error;
                        break;
                }
        snprintf(c->kind, sizeof(c->kind), "%s", kind);
        c->error_reply = j;
        if (!msg)
                return client_error(c, r, "server: HTTP %ld (%s)", status, c->kind);
        return client_error(c, r, "server: %s (%s)", msg, c->kind);
}

/* Describes a transfer that got no (complete) answer. */
static int transport_error(ApiClient *c, int r, const HttpReply *reply, const Transfer *t) {
        if (t->read_error < 0) {
                if (t->read_error == -EIO)
                        return client_error(c, -EIO, "the file to upload ended after %" PRIu64 " of %" PRIu64 " bytes",
                                         t->sent, t->size);
                return client_error(c, t->read_error, "cannot read the file to upload: %s", strerror(-t->read_error));
        }
        if (r == -EFBIG)
                return client_error(c, -EFBIG, "the reply of %s is larger than %u MiB", URL(c), API_REPLY_MAX >> 20);
        if (t->write_error < 0)
                return client_error(c, t->write_error, "cannot keep the reply of %s: %s", URL(c),
                                 strerror(-t->write_error));
        if (r == -ENOMEM)
                return client_error(c, -ENOMEM, "out of memory");

        c->unreachable = true;
        switch (reply->failed_at) {
        case HTTP_STAGE_RESOLVE:
                return client_error(c, r, "cannot reach the server at %s: %s", URL(c), reply->message);
        case HTTP_STAGE_CONNECT:
                if (r == -ETIMEDOUT)
                        return client_error(c, r, "the server at %s did not answer in time: %s", URL(c),
                                            reply->message);
                if (reply->os_errno > 0)
                        return client_error(c, r, "cannot reach the server at %s: %s", URL(c),
                                            strerror(reply->os_errno));
                return client_error(c, r, "cannot reach the server at %s: %s", URL(c), reply->message);
        case HTTP_STAGE_TLS:
                return client_error(c, -EPROTO, "cannot talk TLS with the server at %s: %s", URL(c), reply->message);
        default:
                if (r == -ETIMEDOUT)
                        return client_error(c, r, "the server at %s did not answer in time: %s", URL(c),
                                            reply->message);
                return client_error(c, r, "no answer from the server at %s: %s", URL(c), reply->message);
        }
}

typedef enum TransferKind {
        TRANSFER_JSON,
        TRANSFER_HEAD,
        TRANSFER_UPLOAD,
} TransferKind;

/* Judges a finished exchange: 0 for a 2xx answer, else the client's error
 * state is set and a negative errno returned. */
static int transfer_judge(ApiClient *c, TransferKind kind, int r, const HttpReply *reply, const char *url,
                          Transfer *t) {
        long status = reply->status;

        if (r < 0)
                return transport_error(c, r, reply, t);
        if (status >= 200 && status < 300)
                return 0;
        c->status = status;
        if (status >= 300 && status < 400)
                return client_error(c, -EPROTO, "the server at %s redirects to %s (HTTP %ld); redirects are not followed",
                                 URL(c), reply->location[0] ? reply->location : "elsewhere", status);
        if (status == 404 && kind == TRANSFER_HEAD) {
                snprintf(c->kind, sizeof(c->kind), "not_found");
                return client_error(c, -ENOENT, "%s: not found", url);
        }
        if (status >= 400)
                return server_error(c, status, t->buf, t->n);
        return client_error(c, -EPROTO, "unexpected HTTP %ld from %s", status, URL(c));
}

static bool resend_safe(const char *method, const char *path);

/* Runs one request against the current server. On a 2xx answer returns 0
 * with the status; else the client's error state is set, *ret_sent says
 * whether the server may have received the request, and a negative errno
 * is returned. */
static int transfer_once(ApiClient *c, TransferKind kind, const char *method, const char *path, const char *json,
                         Transfer *t, long *ret_status, bool *ret_sent) {
        _cleanup_free_ char *url = NULL;
        HttpOptions opts = { .ca_file = c->ca_file,
                             .timeout_sec = kind == TRANSFER_UPLOAD ? 0 : c->timeout_sec,
                             .low_speed_time = kind == TRANSFER_UPLOAD ? API_UPLOAD_LOW_SPEED_TIME_SEC : 0 };
        const char *headers[4];
        size_t n_headers = 0;
        /* what must not arrive twice never goes on a kept connection, which
         * the server may have closed as the request went */
        HttpRequest req = { .method = method, .headers = headers, .on_body = reply_write, .userdata = t,
                            .opts = &opts, .fresh_connection = !resend_safe(method, path) };
        HttpReply reply;
        int r;

        error_reset(c);
        *ret_sent = false;
        url = strdup_printf("%s%s", URL(c), path);
        if (!url)
                return client_error(c, -ENOMEM, "out of memory");
        req.url = url;
        headers[n_headers++] = "Accept: application/json";
        if (c->auth_header)
                headers[n_headers++] = c->auth_header;
        if (json)
                headers[n_headers++] = "Content-Type: application/json";
        if (kind == TRANSFER_UPLOAD)
                headers[n_headers++] = "Content-Type: application/octet-stream";
        headers[n_headers] = NULL;
        /* A HEAD's Content-Length is the size of a blob, not of a reply. */
        if (kind != TRANSFER_HEAD)
                req.body_max = API_REPLY_MAX;
        if (json) {
                req.body = json;
                req.body_size = strlen(json);
        }
        if (kind == TRANSFER_UPLOAD) {
                req.read = upload_read;
                req.rewind = upload_rewind;
                req.read_size = t->size;
                req.read_userdata = t;
        }

        r = http_exchange(&req, &reply);
        r = transfer_judge(c, kind, r, &reply, url, t);
        if (r >= 0 && kind == TRANSFER_HEAD && reply.content_length > 0)
                t->content_length = (uint64_t) reply.content_length;
        if (r < 0) {
                *ret_sent = reply.sent;
                log_debug("%s %s: %s", method, url, c->error);
                return r;
        }
        *ret_status = reply.status;
        return 0;
}

/* Whether a request that may have been received can be sent again, to
 * another server: its effect is the same however often it arrives. GET
 * and HEAD change nothing; every PUT sets a whole value (a blob is named by
 * its digest and stored once); publishing an image that is there already
 * is a 200; a check-in is a report the agent repeats every interval anyway;
 * a lease request asks for, or renews, the host's one lease (the same
 * epoch comes back), and its release names the epoch it gives back. Any
 * other POST or DELETE (registration, rollouts and their actions, labels,
 * tokens, deletions) might act twice, or answer the second time with an
 * error for what the first did. */
static bool resend_safe(const char *method, const char *path) {
        const char *rest;

        if (streq(method, "GET") || streq(method, "HEAD") || streq(method, "PUT"))
                return true;
        if (streq(method, "POST") && streq(path, "/v1/images"))
                return true;
        rest = startswith(path, "/v1/hosts/");
        rest = rest ? strchr(rest, '/') : NULL;
        if (!rest)
                return false;
        if (streq(rest, "/lease"))
                return streq(method, "POST") || streq(method, "DELETE");
        return streq(rest, "/checkin") && streq(method, "POST");
}

/* Makes t ready to send its request again. */
static int transfer_rewind(ApiClient *c, Transfer *t) {
        free(t->buf);
        t->buf = NULL;
        t->n = t->alloc = 0;
        t->write_error = t->read_error = 0;
        t->content_length = 0;
        if (t->fd >= 0) {
                if (lseek(t->fd, t->start, SEEK_SET) < 0) {
                        int r = negative_errno();
                        return client_error(c, r, "cannot read the file to upload again: %s", strerror(-r));
                }
                t->sent = 0;
        }
        return 0;
}

/* Runs one request, moving on to the next server while the current one
 * gives no answer (or a 503) and the request may go there (see the header).
 * Once around the list at most; the client stays on the server that
 * answered. When none did, the error names each server and why, and the
 * client stays where it began. */
static int transfer_run(ApiClient *c, TransferKind kind, const char *method, const char *path, const char *json,
                        Transfer *t, long *ret_status) {
        _cleanup_free_ char *tried = NULL;
        char last[sizeof(c->error)];
        size_t start = c->current;
        bool sent;
        int r;

        assert(path && path[0] == '/');
        for (size_t attempt = 1;; attempt++) {
                r = transfer_once(c, kind, method, path, json, t, ret_status, &sent);
                if (r >= 0)
                        return 0;
                if (c->n_urls == 1 || !(c->unreachable || c->status == 503))
                        return r;
                snprintf(last, sizeof(last), "%s", c->error);
                if (attempt >= c->n_urls || (sent && !resend_safe(method, path))) {
                        bool stop_early = attempt < c->n_urls;

                        c->current = start;
                        return client_error(c, r, "%s%s%s%s", strempty(tried), tried ? "; " : "", last,
                                            stop_early ? " (not sent again to another server: it may have been "
                                                         "received, and repeating it is not safe)"
                                                       : "");
                }
                if (tried) {
                        char *more = strdup_printf("%s; %s", tried, last);
                        free(tried);
                        tried = more;
                } else
                        tried = strdup(last);
                if (!tried) {
                        c->current = start;
                        return client_error(c, -ENOMEM, "out of memory");
                }
                api_client_failover(c, last);
                r = transfer_rewind(c, t);
                if (r < 0) {
                        c->current = start;
                        return r;
                }
        }
}

/* Parses a 2xx reply body. */
static int reply_parse(ApiClient *c, const Transfer *t, json_t **ret) {
        json_error_t e;
        json_t *j;

        if (t->n == 0) {
                *ret = json_null();
                return 0;
        }
        j = json_loadb(t->buf, t->n, 0, &e);
        if (!j)
                return client_error(c, -EBADMSG, "the server at %s sent a reply that is not JSON (line %d: %s)", URL(c),
                                 e.line, e.text);
        *ret = j;
        return 0;
}

static int finish(ApiClient *c, int r, Transfer *t, long status, long *ret_status, json_t **ret_reply) {
        json_t *reply = NULL;

        if (r >= 0 && ret_reply)
                r = reply_parse(c, t, &reply);
        free(t->buf);
        if (r < 0)
                return r;
        if (ret_status)
                *ret_status = status;
        if (ret_reply)
                *ret_reply = reply;
        return 0;
}

int api_request(ApiClient *c, const char *method, const char *path, json_t *body, long *ret_status,
                json_t **ret_reply) {
        _cleanup_free_ char *json = NULL;
        Transfer t = { .fd = -1 };
        long status = 0;
        int r;

        if (body) {
                json = json_dumps(body, JSON_COMPACT);
                if (!json) {
                        error_reset(c);
                        return client_error(c, -ENOMEM, "cannot encode the request");
                }
        }
        r = transfer_run(c, TRANSFER_JSON, method, path, json, &t, &status);
        return finish(c, r, &t, status, ret_status, ret_reply);
}

int api_head(ApiClient *c, const char *path, uint64_t *ret_size) {
        Transfer t = { .fd = -1 };
        long status = 0;
        int r;

        r = transfer_run(c, TRANSFER_HEAD, "HEAD", path, NULL, &t, &status);
        free(t.buf);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = t.content_length;
        return 0;
}

int api_upload_fd(ApiClient *c, const char *path, int fd, uint64_t size, ApiProgressFn progress, void *userdata,
                  long *ret_status, json_t **ret_reply) {
        Transfer t = { .fd = fd, .size = size, .progress = progress, .userdata = userdata };
        long status = 0;
        int r;

        assert(fd >= 0);
        t.start = lseek(fd, 0, SEEK_CUR);
        if (t.start < 0) {
                error_reset(c);
                r = negative_errno();
                return client_error(c, r, "cannot read the file to upload: %s", strerror(-r));
        }
        r = transfer_run(c, TRANSFER_UPLOAD, "PUT", path, NULL, &t, &status);
        return finish(c, r, &t, status, ret_status, ret_reply);
}
