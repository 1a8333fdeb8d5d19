#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "blobs.h"
#include "fileio.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* The request line and header fields together, as sent, are capped at
 * HEADER_SIZE_MAX (431 headers_too_large, docs/api.md). libmicrohttpd holds
 * them in a per-connection pool of CONNECTION_MEMORY_LIMIT and refuses what
 * does not fit there by itself, with a reply that is not ours (HTML): the
 * pool is well above the cap so that it is slipwayd that refuses, with
 * JSON, in all but grossly oversized requests. */
#define HEADER_SIZE_MAX (16 * 1024)
#define CONNECTION_MEMORY_LIMIT (64 * 1024)
#define CONNECTION_LIMIT 4096u

static const struct {
        const char *name;
        unsigned status;
} kinds[_KIND_MAX] = {
        [KIND_BAD_REQUEST] = { "bad_request", 400 },
        [KIND_INVALID_JSON] = { "invalid_json", 400 },
        [KIND_UNKNOWN_FIELD] = { "unknown_field", 400 },
        [KIND_INVALID_VALUE] = { "invalid_value", 400 },
        [KIND_DIGEST_MISMATCH] = { "digest_mismatch", 400 },
        [KIND_BAD_SIGNATURE] = { "bad_signature", 400 },
        [KIND_UNAUTHORIZED] = { "unauthorized", 401 },
        [KIND_FORBIDDEN] = { "forbidden", 403 },
        [KIND_NOT_FOUND] = { "not_found", 404 },
        [KIND_METHOD_NOT_ALLOWED] = { "method_not_allowed", 405 },
        [KIND_CONFLICT] = { "conflict", 409 },
        [KIND_IN_USE] = { "in_use", 409 },
        [KIND_MISSING_BLOBS] = { "missing_blobs", 409 },
        [KIND_TOO_LARGE] = { "too_large", 413 },
        [KIND_HEADERS_TOO_LARGE] = { "headers_too_large", 431 },
        [KIND_UNSUPPORTED_MEDIA_TYPE] = { "unsupported_media_type", 415 },
        [KIND_RANGE_NOT_SATISFIABLE] = { "range_not_satisfiable", 416 },
        [KIND_NO_SPACE] = { "no_space", 507 },
        [KIND_UNAVAILABLE] = { "unavailable", 503 },
        [KIND_INTERNAL] = { "internal", 500 },
};

const char *error_kind_to_string(ErrorKind k) {
        return k < _KIND_MAX ? kinds[k].name : "internal";
}

unsigned error_kind_status(ErrorKind k) {
        return k < _KIND_MAX ? kinds[k].status : 500;
}

const ServerConfig *config_get(Server *s) {
        pthread_rwlock_rdlock(&s->config_lock);
        return &s->config;
}

void config_put(Server *s) {
        pthread_rwlock_unlock(&s->config_lock);
}

char *server_public_url(Server *s) {
        char *u;

        pthread_rwlock_rdlock(&s->config_lock);
        u = strdup(s->public_url);
        pthread_rwlock_unlock(&s->config_lock);
        return u;
}

bool route_match(const char *pattern, const char *path, char *args[2]) {
        size_t n_args = 0;

        for (;;) {
                const char *pe = strchrnul(pattern, '/'), *se = strchrnul(path, '/');
                size_t pl = (size_t) (pe - pattern), sl = (size_t) (se - path);

                if (pl == 1 && pattern[0] == '*') {
                        if (sl == 0 || n_args >= 2)
                                goto fail;
                        args[n_args] = strndup(path, sl);
                        if (!args[n_args])
                                goto fail;
                        n_args++;
                } else if (pl != sl || memcmp(pattern, path, pl) != 0)
                        goto fail;
                if (!*pe && !*se)
                        return true;
                if (!*pe || !*se)
                        goto fail;
                pattern = pe + 1;
                path = se + 1;
        }
fail:
        for (size_t i = 0; i < n_args; i++) {
                free(args[i]);
                args[i] = NULL;
        }
        return false;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int http_target_check(const char *target, size_t n, size_t *ret_offset, unsigned char *ret_char) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) target[i];

                /* decoded as libmicrohttpd decodes: %XX with two hex digits */
                if (c == '%' && n - i >= 3 && unhex(target[i + 1]) >= 0 && unhex(target[i + 2]) >= 0)
                        c = (unsigned char) (unhex(target[i + 1]) * 16 + unhex(target[i + 2]));
                if (c < 0x20 || c == 0x7f) {
                        *ret_offset = i;
                        *ret_char = c;
                        return -EBADMSG;
                }
        }
        return 0;
}

int request_client_address(Request *req, char ret[REQUEST_ADDRESS_MAX]) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        const char *p = NULL;

        if (!sa)
                return -ENOTCONN;
        if (sa->sa_family == AF_INET) {
                struct sockaddr_in in;
                memcpy(&in, sa, sizeof in);
                p = inet_ntop(AF_INET, &in.sin_addr, ret, REQUEST_ADDRESS_MAX);
        } else if (sa->sa_family == AF_INET6) {
                struct sockaddr_in6 in6;
                memcpy(&in6, sa, sizeof in6);
                if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr))
                        p = inet_ntop(AF_INET, &in6.sin6_addr.s6_addr[12], ret, REQUEST_ADDRESS_MAX);
                else
                        p = inet_ntop(AF_INET6, &in6.sin6_addr, ret, REQUEST_ADDRESS_MAX);
        } else
                return -EAFNOSUPPORT;
        return p ? 0 : negative_errno();
}

int request_id_arg(Request *req, int64_t *ret) {
        uint64_t v;

        if (safe_atou64(req->args[0], &v) < 0 || v == 0 || v > INT64_MAX)
                return -EINVAL;
        *ret = (int64_t) v;
        return 0;
}

const char *request_arg(Request *req, const char *name) {
        return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *request_header(Request *req, const char *name) {
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

enum MHD_Result reply_response(Request *req, unsigned status, struct MHD_Response *resp) {
        enum MHD_Result ret;

        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Server", "slipwayd");
        if (atomic_load(&req->server->connections) > req->server->keep_max)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        if (req->reply_header[0])
                MHD_add_response_header(resp, req->reply_header[0], req->reply_header[1]);
        ret = MHD_queue_response(req->conn, status, resp);
        MHD_destroy_response(resp);
        req->replied = true;
        if (status < 600) {
                atomic_fetch_add(&req->server->metrics.by_code[status], 1);
                atomic_fetch_add(&req->server->metrics.requests[status / 100], 1);
        }
        return ret;
}

enum MHD_Result reply_text(Request *req, unsigned status, const char *content_type, const char *text) {
        size_t n = strlen(text);
        struct MHD_Response *resp;
        char *copy = malloc(n + 1);

        if (!copy)
                return MHD_NO;
        memcpy(copy, text, n + 1);
        resp = MHD_create_response_from_buffer(n, copy, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(copy);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", content_type);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        return reply_response(req, status, resp);
}

enum MHD_Result reply_json(Request *req, unsigned status, json_t *body) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ char *line = NULL;

        text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(body);
        if (!text)
                return MHD_NO;
        line = strdup_printf("%s\n", text);
        return line ? reply_text(req, status, "application/json", line) : MHD_NO;
}

static enum MHD_Result reply_error_va(Request *req, ErrorKind kind, json_t *extra, const char *format, va_list ap) {
        _cleanup_free_ char *msg = NULL;
        json_t *body, *text;

        if (vasprintf(&msg, format, ap) < 0) {
                json_decref(extra);
                return MHD_NO;
        }
        text = json_string(msg);
        if (!text) {
                /* The message quotes what the client sent, which need not
                 * be UTF-8 as JSON strings must. */
                for (char *p = msg; *p; p++)
                        if ((unsigned char) *p >= 0x80)
                                *p = '?';
                text = json_string(msg);
        }
        body = extra ? extra : json_object();
        json_object_set_new(body, "kind", json_string(error_kind_to_string(kind)));
        json_object_set_new(body, "error", text);
        atomic_fetch_add(&req->server->metrics.errors[kind], 1);
        if (kind == KIND_INTERNAL || kind == KIND_NO_SPACE || kind == KIND_UNAVAILABLE)
                log_error("%s /%s: %s", req->method, req->path, msg);
        else
                log_debug("%s /%s: %s: %s", req->method, req->path, error_kind_to_string(kind), msg);
        return reply_json(req, error_kind_status(kind), body);
}

enum MHD_Result reply_error(Request *req, ErrorKind kind, const char *format, ...) {
        enum MHD_Result r;
        va_list ap;

        va_start(ap, format);
        r = reply_error_va(req, kind, NULL, format, ap);
        va_end(ap);
        return r;
}

enum MHD_Result reply_error_extra(Request *req, ErrorKind kind, json_t *extra, const char *format, ...) {
        enum MHD_Result r;
        va_list ap;

        va_start(ap, format);
        r = reply_error_va(req, kind, extra, format, ap);
        va_end(ap);
        return r;
}

enum MHD_Result reply_errno(Request *req, int error, const char *what) {
        switch (error) {
        case -ENOENT:
                return reply_error(req, KIND_NOT_FOUND, "%s: not found", what);
        case -EEXIST:
                return reply_error(req, KIND_CONFLICT, "%s: already exists", what);
        case -EBUSY:
                return reply_error(req, KIND_IN_USE, "%s: in use", what);
        case -ENOSPC:
        case -EDQUOT:
                return reply_error(req, KIND_NO_SPACE, "%s: no space left on the server", what);
        case -EINVAL:
                return reply_error(req, KIND_INVALID_VALUE, "%s: invalid", what);
        case -ECONNRESET:
        case -ECONNREFUSED:
        case -ETIMEDOUT:
        case -EAGAIN:
        case -EROFS:
                /* The database is out of reach, in a failover, or gave up
                 * on a transaction that may succeed when sent again:
                 * nothing was granted; a client may go to another
                 * instance. */
                return reply_error(req, KIND_UNAVAILABLE, "%s: the state database is unavailable (%s)", what,
                                   strerror(-error));
        default:
                return reply_error(req, KIND_INTERNAL, "%s: %s", what, strerror(-error));
        }
}

json_t *request_json(Request *req, const char *const *allowed, enum MHD_Result *ret_result) {
        const char *ct = request_header(req, "Content-Type");
        const char *key;
        json_error_t e;
        json_t *j, *v;

        if (ct && !startswith(ct, "application/json")) {
                *ret_result = reply_error(req, KIND_UNSUPPORTED_MEDIA_TYPE,
                                          "expected Content-Type application/json, got \"%s\"", ct);
                return NULL;
        }
        j = json_loadb(req->body ? req->body : "", req->body_size, JSON_REJECT_DUPLICATES, &e);
        if (!j) {
                *ret_result = reply_error(req, KIND_INVALID_JSON, "body: invalid JSON at line %d column %d: %s",
                                          e.line, e.column, e.text);
                return NULL;
        }
        if (!json_is_object(j)) {
                json_decref(j);
                *ret_result = reply_error(req, KIND_INVALID_JSON, "body: not a JSON object");
                return NULL;
        }
        json_object_foreach(j, key, v) {
                bool ok = !allowed;

                for (size_t i = 0; allowed && allowed[i]; i++)
                        if (streq(allowed[i], key))
                                ok = true;
                if (!ok) {
                        _cleanup_free_ char *k = json_escape_string(key);
                        *ret_result = reply_error(req, KIND_UNKNOWN_FIELD, "body: unknown member %s", k ? k : "?");
                        json_decref(j);
                        return NULL;
                }
        }
        return j;
}

/* libmicrohttpd's URI callback: called with the request target before it
 * is decoded, the one place where a %00 can be seen (the decoded path and
 * query arguments end at it). The request starts here; on_completed frees
 * it. */
static void *on_target(void *cls, const char *uri, struct MHD_Connection *conn) {
        Request *req = calloc(1, sizeof *req);

        if (!req)
                return NULL;
        req->server = cls;
        req->conn = conn;
        req->target = strdup(uri ? uri : "");
        if (!req->target) {
                free(req);
                return NULL;
        }
        req->target_at = (uintptr_t) uri;
        return req;
}

/* libmicrohttpd parses the request line in place: the target it logged is
 * followed, in the same buffer, by one space and the version. A target sent
 * with a NUL in it looks shorter than that distance; returns true then. */
static bool request_target_nul(const Request *req, const char *version) {
        return req->target_at != 0 && !isempty(version) && (uintptr_t) version > req->target_at &&
               (uintptr_t) version - req->target_at - 1 != strlen(req->target);
}

static void request_free(Request *req) {
        if (!req)
                return;
        if (req->blob)
                blob_writer_abort(req->blob);
        free(req->target);
        free(req->path);
        free(req->args[0]);
        free(req->args[1]);
        free(req->actor);
        free(req->body);
        json_decref(req->deferred);
        store_tx_rollback(&req->tx);
        free(req);
}

/* How the client framed the body, from every header (libmicrohttpd itself
 * looks at the first Content-Length only, and at none beside a
 * Transfer-Encoding). */
typedef struct Framing {
        const char *length;       /* the first Content-Length */
        const char *other_length; /* a later one that differs from it */
        const char *encoding;     /* the first Transfer-Encoding */
        unsigned n_encodings;
} Framing;

static enum MHD_Result framing_add(void *cls, enum MHD_ValueKind kind _unused_, const char *key, const char *value) {
        Framing *f = cls;

        value = strempty(value);
        if (strcasecmp(key, "Content-Length") == 0) {
                if (!f->length)
                        f->length = value;
                else if (!f->other_length && !streq(f->length, value))
                        f->other_length = value;
        } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
                if (!f->encoding)
                        f->encoding = value;
                f->n_encodings++;
        }
        return MHD_YES;
}

/* The request line and headers, before routing: a control character in the
 * target, headers over the cap, a body framed two ways. Returns false with
 * an error queued. */
static bool request_check_head(Request *req, const char *version, Framing *ret_framing,
                               enum MHD_Result *ret_result) {
        const union MHD_ConnectionInfo *info;
        Framing f = {};
        unsigned char c = 0;
        size_t off = strlen(req->target);
        int r = -EBADMSG;

        if (!request_target_nul(req, version))
                r = http_target_check(req->target, off, &off, &c);
        if (r < 0) {
                const char *q = strchr(req->target, '?');
                *ret_result = reply_error(req, KIND_BAD_REQUEST,
                                          "request target \"%.200s\": the %s has a control character (%%%02X) at byte %zu",
                                          req->target, q && (size_t) (q - req->target) < off ? "query" : "path", c, off);
                return false;
        }
        info = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
        if (info && info->header_size > HEADER_SIZE_MAX) {
                *ret_result = reply_error(req, KIND_HEADERS_TOO_LARGE,
                                          "the request line and headers are %zu bytes, over the cap of %d",
                                          info->header_size, HEADER_SIZE_MAX);
                return false;
        }
        MHD_get_connection_values(req->conn, MHD_HEADER_KIND, framing_add, &f);
        if (f.other_length) {
                *ret_result = reply_error(req, KIND_BAD_REQUEST, "two different Content-Length headers: \"%.40s\" and \"%.40s\"",
                                          f.length, f.other_length);
                return false;
        }
        if (f.encoding && (f.n_encodings > 1 || strcasecmp(f.encoding, "chunked") != 0)) {
                *ret_result = reply_error(req, KIND_BAD_REQUEST,
                                          "Transfer-Encoding \"%.40s\": only one, \"chunked\", is understood", f.encoding);
                return false;
        }
        if (f.encoding && f.length) {
                *ret_result = reply_error(req, KIND_BAD_REQUEST, "both Content-Length and Transfer-Encoding frame the body");
                return false;
        }
        *ret_framing = f;
        return true;
}

/* The cap on the route's body and the option that sets it. */
static uint64_t body_cap(Request *req, const char **ret_option) {
        const ServerConfig *c = config_get(req->server);
        uint64_t cap = req->route->body == BODY_BLOB ? c->max_blob : c->max_json;

        config_put(req->server);
        *ret_option = req->route->body == BODY_BLOB ? "max-blob" : "max-json";
        return cap;
}

/* First call for a request: the head, routing, authentication, size caps.
 * Returns true when the request goes on to its body and handler. */
static bool request_begin(Request *req, const char *url, const char *method, const char *version,
                          enum MHD_Result *ret_result) {
        const char *option;
        bool path_known = false;
        uint64_t length = 0, cap;
        Framing f;

        req->method = method;
        while (*url == '/')
                url++;
        req->path = strdup(url);
        if (!req->path) {
                *ret_result = MHD_NO;
                return false;
        }
        if (!request_check_head(req, version, &f, ret_result))
                return false;
        for (const Route *const *t = req->server->routes; *t && !req->route; t++)
                for (const Route *rt = *t; rt->method; rt++) {
                        char *args[2] = {};

                        if (!route_match(rt->pattern, req->path, args))
                                continue;
                        path_known = true;
                        if (!streq(rt->method, req->method)) {
                                free(args[0]);
                                free(args[1]);
                                continue;
                        }
                        req->route = rt;
                        req->args[0] = args[0];
                        req->args[1] = args[1];
                        break;
                }
        if (!req->route) {
                if (path_known)
                        *ret_result = reply_error(req, KIND_METHOD_NOT_ALLOWED, "%s is not allowed on /%s",
                                                  req->method, req->path);
                else
                        *ret_result = reply_error(req, KIND_NOT_FOUND, "no such resource: /%s", req->path);
                return false;
        }
        /* A host route is authenticated with its body in, just before its
         * handler, which may go on in the token's read transaction. */
        if (req->route->auth != AUTH_HOST && !request_authenticate(req, ret_result))
                return false;

        if (f.length && safe_atou64(f.length, &length) < 0) {
                *ret_result = reply_error(req, KIND_BAD_REQUEST, "invalid Content-Length \"%.40s\"", f.length);
                return false;
        }
        if (req->route->body == BODY_NONE) {
                if (length == 0 && !f.encoding)
                        return true;
                *ret_result = reply_error(req, KIND_BAD_REQUEST, "%s /%s takes no body", req->method, req->path);
                return false;
        }
        cap = body_cap(req, &option);
        if (length > cap) {
                *ret_result = reply_error(req, KIND_TOO_LARGE, "body of %llu bytes is over the cap of %llu (%s)",
                                          (unsigned long long) length, (unsigned long long) cap, option);
                return false;
        }
        if (req->route->body == BODY_BLOB) {
                int r = blob_writer_new(req->server->state_dir, req->args[0], &req->blob);
                if (r == -EINVAL) {
                        *ret_result = reply_error(req, KIND_INVALID_VALUE, "'%s' is not a sha256 digest",
                                                  req->args[0]);
                        return false;
                }
                if (r < 0) {
                        *ret_result = reply_errno(req, r, "blob upload");
                        return false;
                }
        }
        return true;
}

static void request_body(Request *req, const char *data, size_t n) {
        const char *option;

        if (req->route->body == BODY_NONE) {
                req->body_unexpected = true;
                return;
        }
        if (req->body_too_large)
                return;
        if (n > body_cap(req, &option) - req->body_size) {
                /* A chunked body has no length to check first: what came is
                 * dropped, the rest read, and 413 is the answer at its end. */
                req->body_too_large = true;
                blob_writer_abort(TAKE_PTR(req->blob));
                free(req->body);
                req->body = NULL;
                return;
        }
        if (req->route->body == BODY_BLOB) {
                req->body_size += n;
                if (req->blob_error >= 0)
                        req->blob_error = blob_writer_write(req->blob, data, n);
                return;
        }
        char *b = realloc(req->body, req->body_size + n + 1);
        if (!b) {
                req->body_too_large = true;
                return;
        }
        memcpy(b + req->body_size, data, n);
        req->body_size += n;
        b[req->body_size] = 0;
        req->body = b;
}

/* The fields of a request in JSON log lines: an id of its own (this
 * instance's count), the actor once known, and the host a host route
 * names. Set on each call for it, as a connection's calls may run on
 * different threads. */
static void request_log_context(Request *req) {
        static atomic_ulong ids;
        char id[24];

        if (!log_get_json())
                return;
        if (!req->log_id)
                req->log_id = atomic_fetch_add(&ids, 1) + 1;
        log_context_clear();
        snprintf(id, sizeof id, "%lu", req->log_id);
        log_context_set("request", id);
        log_context_set("actor", req->actor);
        if (req->path && startswith(req->path, "v1/hosts/"))
                log_context_set("host", req->args[0]);
}

static enum MHD_Result on_request(void *cls _unused_, struct MHD_Connection *conn _unused_, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
        Request *req = *con_cls;
        enum MHD_Result result = MHD_YES;
        const char *option;

        if (!req)
                return MHD_NO; /* on_target could not allocate it: close */
        request_log_context(req);
        if (!req->begun) {
                req->begun = true;
                if (!request_begin(req, url, method, version, &result))
                        return result;
                return MHD_YES;
        }
        if (req->replied) {
                /* An early reply (auth, size): drop whatever body still comes. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                request_body(req, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (req->body_unexpected)
                return reply_error(req, KIND_BAD_REQUEST, "%s /%s takes no body", req->method, req->path);
        if (req->body_too_large) {
                uint64_t cap = body_cap(req, &option);
                return reply_error(req, KIND_TOO_LARGE, "body over the cap of %llu bytes (%s)", (unsigned long long) cap,
                                   option);
        }
        if (req->deferred) {
                /* Resumed: the answer is ready. */
                json_t *reply = req->deferred;
                req->deferred = NULL;
                return reply_json(req, 200, reply);
        }
        if (!req->actor && !request_authenticate(req, &result))
                return result;
        req->now = (uint64_t) time(NULL);
        request_log_context(req);
        result = req->route->handler(req);
        store_tx_rollback(&req->tx);
        return result;
}

static void on_completed(void *cls, struct MHD_Connection *conn _unused_, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        Server *s = cls;
        Request *req = *con_cls;

        if (!req)
                return;
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && req->blob_bytes > 0)
                atomic_fetch_add(&s->metrics.blob_bytes, req->blob_bytes);
        request_free(req);
        *con_cls = NULL;
        log_context_clear();
}

static void on_connection(void *cls, struct MHD_Connection *conn _unused_, void **socket_context _unused_,
                          enum MHD_ConnectionNotificationCode code) {
        Server *s = cls;

        if (code == MHD_CONNECTION_NOTIFY_STARTED)
                atomic_fetch_add(&s->connections, 1);
        else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
                atomic_fetch_sub(&s->connections, 1);
}

/* How many connections may stay open between requests. Each holds a
 * descriptor and one of libmicrohttpd's places, and agents keep theirs
 * (common/httpc.c): past half of the smaller of the two limits, answers
 * say "Connection: close", so that a fleet cannot fill the server; those
 * hosts then open a connection per request. */
static unsigned keep_max(void) {
        struct rlimit rl;
        rlim_t n = CONNECTION_LIMIT;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                n = MIN(n, rl.rlim_cur);
        return (unsigned) n / 2;
}

static void on_mhd_log(void *cls _unused_, const char *fm, va_list ap) {
        char buf[512];
        size_t n;

        vsnprintf(buf, sizeof buf, fm, ap);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        log_debug("http: %s", buf);
}

int server_start(Server *s, const Route *const *routes) {
        _cleanup_free_ char *cert = NULL, *key = NULL;
        struct addrinfo *ai = NULL;
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
        uint16_t port;
        int r;

        s->routes = routes;
        s->keep_max = keep_max();

        r = server_config_listen_address(&s->config, &ai, &port);
        if (r < 0)
                return log_error_errno(r, "listen: cannot use \"%s\": %m", strempty(s->config.listen));
        if (ai->ai_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        if (s->config.tls_cert) {
                r = read_full_file(s->config.tls_cert, SERVER_TLS_FILE_MAX, &cert, NULL);
                if (r >= 0)
                        r = read_full_file(s->config.tls_key, SERVER_TLS_FILE_MAX, &key, NULL);
                if (r < 0) {
                        freeaddrinfo(ai);
                        return log_error_errno(r, "cannot read the TLS certificate or key: %m");
                }
                flags |= MHD_USE_TLS;
        }
        s->mhd = MHD_start_daemon(flags, port, NULL, NULL, on_request, s,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                  MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                  MHD_OPTION_THREAD_POOL_SIZE, (unsigned) s->config.threads,
                                  MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                                  MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY_LIMIT,
                                  MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                  MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                  MHD_OPTION_URI_LOG_CALLBACK, on_target, s,
                                  cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
                                  MHD_OPTION_HTTPS_MEM_KEY, key,
                                  MHD_OPTION_END);
        freeaddrinfo(ai);
        if (!s->mhd)
                return log_error_errno(-EADDRINUSE, "cannot listen on %s (in use, or a bad TLS key or certificate)",
                                       s->config.listen);
        info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : port;
        return 0;
}

void server_stop(Server *s) {
        if (s->mhd) {
                MHD_stop_daemon(s->mhd);
                s->mhd = NULL;
        }
}
