/* The HTTP side of slipwayd: the libmicrohttpd daemon, routing, request
 * bodies with caps, authentication, and replies (JSON errors with a stable
 * kind). It knows no resource: each api-*.c file holds one resource's
 * routes and handlers (routes.h lists the tables), and main.c hands the
 * list to server_start(). */
#pragma once

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "seen.h"
#include "store.h"
#include "macro.h"

typedef struct BlobWriter BlobWriter;
typedef struct LeaseWaiters LeaseWaiters;

/* Error kinds: the stable names clients match on (docs/api.md). */
typedef enum ErrorKind {
        KIND_BAD_REQUEST,
        KIND_INVALID_JSON,
        KIND_UNKNOWN_FIELD,
        KIND_INVALID_VALUE,
        KIND_DIGEST_MISMATCH,
        KIND_BAD_SIGNATURE,
        KIND_UNAUTHORIZED,
        KIND_FORBIDDEN,
        KIND_NOT_FOUND,
        KIND_METHOD_NOT_ALLOWED,
        KIND_CONFLICT,
        KIND_IN_USE,
        KIND_MISSING_BLOBS,
        KIND_TOO_LARGE,
        KIND_HEADERS_TOO_LARGE,
        KIND_UNSUPPORTED_MEDIA_TYPE,
        KIND_RANGE_NOT_SATISFIABLE,
        KIND_NO_SPACE,
        KIND_UNAVAILABLE,
        KIND_INTERNAL,
        _KIND_MAX,
} ErrorKind;

const char *error_kind_to_string(ErrorKind k);
unsigned error_kind_status(ErrorKind k);

typedef struct Metrics {
        atomic_ulong requests[6];   /* by status class: index status/100 */
        atomic_ulong by_code[600];
        atomic_ulong errors[_KIND_MAX];
        atomic_ullong blob_bytes;   /* blob bytes handed to clients */
        atomic_ulong blob_requests;
        atomic_ulong checkins;
        atomic_ulong lease_refusals[8]; /* lease requests refused, by LeaseRefusal */
        /* The coordinator's ticks on this instance while it leads. */
        atomic_ulong ticks;
        atomic_ullong tick_usec_sum, tick_usec_max;
} Metrics;

typedef struct Server {
        ServerConfig config; /* guarded by config_lock; replaced on SIGHUP */
        pthread_rwlock_t config_lock;
        StoreDb *store;
        char *state_dir;
        char *blob_dir;
        char *tmp_dir;
        char *public_url;    /* effective, guarded by config_lock */
        struct MHD_Daemon *mhd;
        uint16_t port;       /* bound port */
        uint64_t started_usec;
        Metrics metrics;
        atomic_uint connections; /* HTTP connections open */
        unsigned keep_max;       /* with more open, answers close theirs (server_start) */
        LeaseWaiters *lease_waiters; /* lease requests that wait (api-leases.c) */
        struct Replicator *replicator; /* copies of blobs between instances (replicator.c) */
        struct Webhooks *webhooks;     /* the webhooks' sender (webhooks.c) */
        SeenLog *seen;               /* last_seen of unchanged check-ins, flushed each second */
        struct Leader *leader;       /* this instance and whether it coordinates (leader.h) */
        struct EventHub *events;     /* the live event stream (events.h) */
        const struct Route *const *routes; /* the tables matched in order, NULL-terminated */
} Server;

/* Who may call a route: no one in particular, a named token of a role
 * (roles.h) or a higher one, a host, or any token at all. The route table
 * is the one place where a route's role is set; authenticate() in server.c
 * the one where it is enforced. */
typedef enum Auth {
        AUTH_PUBLIC,
        AUTH_VIEWER,
        AUTH_OPERATOR,
        AUTH_ADMIN,
        AUTH_HOST, /* the host named by the path's first wildcard, or an admin */
        AUTH_ANY,  /* any named token, or any host's token (whoami) */
} Auth;

typedef enum BodyKind {
        BODY_NONE,
        BODY_JSON,
        BODY_BLOB,
} BodyKind;

typedef struct Request {
        Server *server;
        struct MHD_Connection *conn;
        const struct Route *route;
        const char *method;
        char *target;        /* the request target as sent (not decoded), up to a NUL */
        uintptr_t target_at; /* where libmicrohttpd held it (see request_target_nul) */
        bool begun;          /* routed, authenticated, caps checked */
        char *path;
        char *args[2];       /* the route's wildcard segments, URL-decoded */
        char *actor;         /* token name, "host:<id>", or "anonymous" */
        int role;            /* a named token's Role (roles.h); -1 for a host or no token */
        /* body */
        char *body;
        size_t body_size;
        bool body_too_large;
        bool body_unexpected; /* a body came for a route that takes none */
        BlobWriter *blob;
        int blob_error;
        bool replied;
        const char *reply_header[2]; /* one extra header for the reply (name, value) */
        uint64_t blob_bytes; /* bytes of a blob response, counted when it completes */
        json_t *deferred;    /* the reply of a suspended request, sent when it resumes */
        bool fetch_done;     /* a blob fetch it was suspended for ended (replicator.c) */
        int fetch_result;    /* and how: 0 or a negative errno */
        /* A host route's read transaction, in which the host's token was
         * checked: the handler may go on reading in it (taking it with
         * TAKE_PTR), or leave it to be rolled back when it returns. */
        StoreTx *tx;
        /* The time the handler was called: one clock for everything the
         * request decides and reports (time(NULL), read once). */
        uint64_t now;
        unsigned long log_id; /* its id in JSON log lines; 0 until set */
} Request;

typedef struct Route {
        const char *method;
        const char *pattern; /* segments; "*" matches one */
        Auth auth;
        BodyKind body;
        enum MHD_Result (*handler)(Request *req);
} Route;

/* Checks a request target as the client sent it, before percent-decoding
 * (n bytes at target): -EBADMSG when its path or query holds a control
 * character (0x00-0x1f or 0x7f), sent as is or percent-encoded; then
 * *ret_offset is where it starts and *ret_char what it is. 0 otherwise. */
int http_target_check(const char *target, size_t n, size_t *ret_offset, unsigned char *ret_char);

/* Matches path (no leading '/') against a route pattern; the wildcard
 * segments are copied into args (caller frees). Returns true on a match. */
bool route_match(const char *pattern, const char *path, char *args[2]);

/* Starts listening per s->config (TLS when configured), answering with
 * routes: tables matched in order, the list ending in NULL and each table
 * in an entry whose method is NULL. */
int server_start(Server *s, const Route *const *routes);
void server_stop(Server *s);

/* Replies. Each queues the response and returns MHD's result; the JSON
 * replies take ownership of body. */
enum MHD_Result reply_json(Request *req, unsigned status, json_t *body);
enum MHD_Result reply_error(Request *req, ErrorKind kind, const char *format, ...) _printf_(3, 4);
/* An error with extra members (e.g. "missing"); takes ownership of extra. */
enum MHD_Result reply_error_extra(Request *req, ErrorKind kind, json_t *extra, const char *format, ...)
        _printf_(4, 5);
/* Maps a negative errno from the catalog to the matching error reply. */
enum MHD_Result reply_errno(Request *req, int error, const char *what);
enum MHD_Result reply_text(Request *req, unsigned status, const char *content_type, const char *text);
enum MHD_Result reply_response(Request *req, unsigned status, struct MHD_Response *resp);

/* The request body as a JSON object, or an error reply already queued
 * (returns NULL and sets *ret_result). Members not in allowed (a
 * NULL-terminated list) are refused as unknown_field; allowed NULL leaves
 * the members to the handler, which must check them itself. */
json_t *request_json(Request *req, const char *const *allowed, enum MHD_Result *ret_result);
/* auth.c: checks the bearer token against the route's authentication and
 * least role, setting req->actor (and req->role for a named token); on
 * failure an error reply is queued in ret_result and false returned. */
bool request_authenticate(Request *req, enum MHD_Result *ret_result);

/* A numeric IPv4 or IPv6 address and its NUL. */
#define REQUEST_ADDRESS_MAX 46

/* The numeric address of req's client; an IPv4-mapped IPv6 address is
 * written as IPv4 (a dual-stack listener sees both forms of one client).
 * -ENOTCONN when libmicrohttpd does not know it. */
int request_client_address(Request *req, char ret[REQUEST_ADDRESS_MAX]);

/* The path's first wildcard as a positive row ID (a rollout's, a
 * pipeline's); -EINVAL when it is not one. */
int request_id_arg(Request *req, int64_t *ret);
/* Query parameter or header value; NULL when absent. */
const char *request_arg(Request *req, const char *name);
const char *request_header(Request *req, const char *name);

/* The configuration, read-locked for the caller; release with config_put(). */
const ServerConfig *config_get(Server *s);
void config_put(Server *s);
/* The URL hosts use to reach the server; caller frees. */
char *server_public_url(Server *s);

