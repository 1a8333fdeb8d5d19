#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "blobs.h"
#include "fileio.h"
#include "log.h"
#include "server.h"
#include "tokens.h"
#include "util.h"

/* Request headers beyond this many bytes are refused by libmicrohttpd. */
#define CONNECTION_MEMORY_LIMIT (64 * 1024)

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
        [KIND_UNSUPPORTED_MEDIA_TYPE] = { "unsupported_media_type", 415 },
        [KIND_RANGE_NOT_SATISFIABLE] = { "range_not_satisfiable", 416 },
        [KIND_NO_SPACE] = { "no_space", 507 },
        [KIND_INTERNAL] = { "internal", 500 },
};

const char *error_kind_to_string(ErrorKind k) {
        return k < _KIND_MAX ? kinds[k].name : "internal";
}

unsigned error_kind_status(ErrorKind k) {
        return k < _KIND_MAX ? kinds[k].status : 500;
}

static const Route routes[] = {
        { "GET", "v1/status", AUTH_PUBLIC, BODY_NONE, handle_status },
        { "GET", "blobs/sha256/*", AUTH_PUBLIC, BODY_NONE, handle_blob_get },
        { "HEAD", "blobs/sha256/*", AUTH_PUBLIC, BODY_NONE, handle_blob_get },
        { "PUT", "v1/blobs/sha256/*", AUTH_ADMIN, BODY_BLOB, handle_blob_put },
        { "POST", "v1/images", AUTH_ADMIN, BODY_JSON, handle_images_post },
        { "GET", "v1/images", AUTH_ADMIN, BODY_NONE, handle_images_list },
        { "GET", "v1/images/*", AUTH_ADMIN, BODY_NONE, handle_image_get },
        { "DELETE", "v1/images/*", AUTH_ADMIN, BODY_NONE, handle_image_delete },
        { "POST", "v1/hosts/register", AUTH_PUBLIC, BODY_JSON, handle_hosts_register },
        { "GET", "v1/hosts", AUTH_ADMIN, BODY_NONE, handle_hosts_list },
        { "GET", "v1/hosts/*", AUTH_ADMIN, BODY_NONE, handle_host_get },
        { "POST", "v1/hosts/*/labels", AUTH_ADMIN, BODY_JSON, handle_host_labels },
        { "PUT", "v1/hosts/*/image", AUTH_ADMIN, BODY_JSON, handle_host_image },
        { "POST", "v1/hosts/*/checkin", AUTH_HOST, BODY_JSON, handle_host_checkin },
        { "POST", "v1/hosts/*/lease", AUTH_HOST, BODY_JSON, handle_lease_acquire },
        { "DELETE", "v1/hosts/*/lease", AUTH_HOST, BODY_JSON, handle_lease_release },
        { "GET", "v1/budgets", AUTH_ADMIN, BODY_NONE, handle_budgets_list },
        { "PUT", "v1/budgets/*", AUTH_ADMIN, BODY_JSON, handle_budget_put },
        { "DELETE", "v1/budgets/*", AUTH_ADMIN, BODY_NONE, handle_budget_delete },
        { "POST", "v1/rollouts/plan", AUTH_ADMIN, BODY_JSON, handle_rollout_plan },
        { "POST", "v1/rollouts", AUTH_ADMIN, BODY_JSON, handle_rollout_start },
        { "GET", "v1/rollouts", AUTH_ADMIN, BODY_NONE, handle_rollouts_list },
        { "GET", "v1/rollouts/*", AUTH_ADMIN, BODY_NONE, handle_rollout_get },
        { "POST", "v1/rollouts/*/*", AUTH_ADMIN, BODY_NONE, handle_rollout_action },
        { "POST", "v1/pre-reboot", AUTH_PUBLIC, BODY_JSON, handle_fleetlock_pre_reboot },
        { "POST", "v1/steady-state", AUTH_PUBLIC, BODY_JSON, handle_fleetlock_steady_state },
        { "GET", "boot/ipxe", AUTH_PUBLIC, BODY_NONE, handle_ipxe },
        { "GET", "v1/audit", AUTH_ADMIN, BODY_NONE, handle_audit },
        { "GET", "metrics", AUTH_PUBLIC, BODY_NONE, handle_metrics },
};

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
        json_t *body;

        if (vasprintf(&msg, format, ap) < 0) {
                json_decref(extra);
                return MHD_NO;
        }
        body = extra ? extra : json_object();
        json_object_set_new(body, "kind", json_string(error_kind_to_string(kind)));
        json_object_set_new(body, "error", json_string(msg));
        atomic_fetch_add(&req->server->metrics.errors[kind], 1);
        if (kind == KIND_INTERNAL || kind == KIND_NO_SPACE)
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

static const char *bearer_token(Request *req) {
        const char *h = request_header(req, "Authorization");
        const char *t = h ? startswith(h, "Bearer ") : NULL;

        return t && *t ? t : NULL;
}

/* Checks the route's authentication; on failure an error is queued and
 * false returned. */
static bool authenticate(Request *req, enum MHD_Result *ret_result) {
        const char *token;
        char *name = NULL;
        int r;

        if (req->route->auth == AUTH_PUBLIC) {
                req->actor = strdup("anonymous");
                return true;
        }
        token = bearer_token(req);
        if (!token) {
                *ret_result = reply_error(req, KIND_UNAUTHORIZED, "a bearer token is required");
                return false;
        }
        if (req->route->auth == AUTH_HOST) {
                /* Agents are the common case here: their token first. */
                r = tokens_check_host(req->server->db, req->args[0], token, &name);
                if (r > 0) {
                        req->actor = name;
                        return true;
                }
                if (r < 0) {
                        *ret_result = reply_errno(req, r, "token check");
                        return false;
                }
        }
        r = tokens_check_admin(req->server->db, token, &name);
        if (r > 0) {
                req->actor = name;
                return true;
        }
        if (r == 0)
                r = tokens_is_host_token(req->server->db, token);
        if (r < 0) {
                *ret_result = reply_errno(req, r, "token check");
                return false;
        }
        /* Only a token that is known gets 403; an unknown or revoked one is
         * 401 on every route, whatever host the path names. */
        if (r == 0)
                *ret_result = reply_error(req, KIND_UNAUTHORIZED, "unknown token");
        else if (req->route->auth == AUTH_HOST)
                *ret_result = reply_error(req, KIND_FORBIDDEN, "the token does not belong to host '%s'",
                                          req->args[0]);
        else
                *ret_result = reply_error(req, KIND_FORBIDDEN, "a host token cannot make admin calls");
        return false;
}

static Request *request_new(Server *s, struct MHD_Connection *conn, const char *url, const char *method) {
        Request *req = calloc(1, sizeof *req);

        if (!req)
                return NULL;
        req->server = s;
        req->conn = conn;
        req->method = method;
        while (*url == '/')
                url++;
        req->path = strdup(url);
        if (!req->path) {
                free(req);
                return NULL;
        }
        return req;
}

static void request_free(Request *req) {
        if (!req)
                return;
        if (req->blob)
                blob_writer_abort(req->blob);
        free(req->path);
        free(req->args[0]);
        free(req->args[1]);
        free(req->actor);
        free(req->body);
        json_decref(req->deferred);
        free(req);
}

/* First call for a request: routing, authentication, size caps. Returns
 * true when the request goes on to its body and handler. */
static bool request_begin(Request *req, enum MHD_Result *ret_result) {
        const ServerConfig *c;
        const char *cl;
        bool path_known = false;
        uint64_t length = 0, cap;

        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                char *args[2] = {};

                if (!route_match(routes[i].pattern, req->path, args))
                        continue;
                path_known = true;
                if (!streq(routes[i].method, req->method)) {
                        free(args[0]);
                        free(args[1]);
                        continue;
                }
                req->route = &routes[i];
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
        if (!authenticate(req, ret_result))
                return false;

        cl = request_header(req, "Content-Length");
        if (cl && safe_atou64(cl, &length) < 0) {
                *ret_result = reply_error(req, KIND_BAD_REQUEST, "invalid Content-Length \"%s\"", cl);
                return false;
        }
        c = config_get(req->server);
        cap = req->route->body == BODY_BLOB ? c->max_blob : c->max_json;
        config_put(req->server);
        if (length > cap) {
                *ret_result = reply_error(req, KIND_TOO_LARGE, "body of %llu bytes is over the cap of %llu",
                                          (unsigned long long) length, (unsigned long long) cap);
                return false;
        }
        if (req->route->body == BODY_BLOB) {
                int r = blob_writer_new(req->server, req->args[0], &req->blob);
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
        if (req->route->body == BODY_BLOB) {
                if (req->blob_error >= 0)
                        req->blob_error = blob_writer_write(req->blob, data, n);
                return;
        }
        if (req->body_too_large || req->route->body == BODY_NONE) {
                req->body_too_large = true;
                return;
        }
        const ServerConfig *c = config_get(req->server);
        uint64_t cap = c->max_json;
        config_put(req->server);
        if (req->body_size + n > cap) {
                req->body_too_large = true;
                free(req->body);
                req->body = NULL;
                req->body_size = 0;
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version _unused_, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        Server *s = cls;
        Request *req = *con_cls;
        enum MHD_Result result = MHD_YES;

        if (!req) {
                req = request_new(s, conn, url, method);
                if (!req)
                        return MHD_NO;
                *con_cls = req;
                if (!request_begin(req, &result))
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
        if (req->body_too_large)
                return reply_error(req, KIND_TOO_LARGE, "body over the cap of this endpoint");
        if (req->deferred) {
                /* Resumed: the answer is ready. */
                json_t *reply = req->deferred;
                req->deferred = NULL;
                return reply_json(req, 200, reply);
        }
        return req->route->handler(req);
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

int server_start(Server *s) {
        _cleanup_free_ char *cert = NULL, *key = NULL;
        struct addrinfo *ai = NULL;
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
        uint16_t port;
        int r;

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
                                  MHD_OPTION_CONNECTION_LIMIT, 4096u,
                                  MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY_LIMIT,
                                  MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                  cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
                                  MHD_OPTION_HTTPS_MEM_KEY, key,
                                  MHD_OPTION_END);
        freeaddrinfo(ai);
        if (!s->mhd)
                return log_error_errno(-EADDRINUSE, "cannot listen on %s (in use, or a bad TLS key or certificate)",
                                       s->config.listen);
        info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : port;
        if (lease_waiters_start(s) < 0)
                log_warning("cannot start the lease waiters' thread: lease requests with \"wait\" are answered at once");
        return 0;
}

void server_stop(Server *s) {
        lease_waiters_stop(s);
        if (s->mhd) {
                MHD_stop_daemon(s->mhd);
                s->mhd = NULL;
        }
}
