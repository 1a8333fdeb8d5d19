/* One HTTP exchange, whichever library carries it: the transport interface
 * that apiclient.c and the downloads below are written over, with two back
 * ends chosen when a program is linked. slipwayd, slipctl and slipway-build
 * link http-curl.c (libcurl: proxies, mirrors, file://, redirects);
 * slipway-agent links httpc.c, a small HTTP/1.1 client of our own on
 * sockets and OpenSSL, which keeps the agent free of libcurl's many
 * libraries and keeps its connection from one request to the next (one
 * idle connection per thread); the libcurl back end opens one per
 * exchange. Both send Slipway's user agent and map failures to the same
 * negative errno values; only libcurl takes file:// URLs and follows
 * redirects (the agent's servers send none).
 * Library code: nothing here logs above debug. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hash.h"
#include "httpparse.h"
#include "macro.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif
#define HTTP_USER_AGENT "slipway/" SLIPWAY_VERSION

/* Connecting must not take longer than this. */
#define HTTP_CONNECT_TIMEOUT_SEC 10L
/* A transfer slower than 1 byte/s for this long is aborted (-ETIMEDOUT). */
#define HTTP_LOW_SPEED_TIME_SEC 30L
/* The size of a message in HttpError and HttpReply. */
#define HTTP_ERROR_SIZE 256

typedef struct HttpOptions {
        const char *ca_file; /* PEM bundle trusted for https; NULL: the system's */
        long timeout_sec;    /* whole transfer, 0 = no limit beyond the low-speed abort */
        long low_speed_limit; /* bytes/s below which ... */
        long low_speed_time;  /* ... for this many seconds a transfer is aborted; 0: the defaults above */
} HttpOptions;

/* What went wrong with the last transfer, for the message the caller logs. */
typedef struct HttpError {
        long status; /* HTTP status of the last response, 0 when there was none */
        char message[HTTP_ERROR_SIZE];
} HttpError;

/* Where an exchange failed. */
typedef enum HttpStage {
        HTTP_STAGE_NONE,     /* it did not, or before any network step */
        HTTP_STAGE_RESOLVE,  /* the host name did not resolve */
        HTTP_STAGE_CONNECT,  /* no address accepted the connection */
        HTTP_STAGE_TLS,      /* the handshake or the certificate check failed */
        HTTP_STAGE_EXCHANGE, /* sending the request or reading the answer */
        HTTP_STAGE_CALLBACK, /* a callback of the caller's stopped it */
} HttpStage;

/* Gives the next bytes of a streamed request body: returns how many were
 * put into buf (at most n; 0 only once all read_size bytes were given), or
 * a negative errno. */
typedef ssize_t (*HttpReadFn)(void *buf, size_t n, void *userdata);
/* Starts a streamed body again from its first byte; a negative errno when
 * it cannot. */
typedef int (*HttpRewindFn)(void *userdata);

typedef struct HttpRequest {
        const char *method;         /* GET, HEAD, POST, PUT or DELETE */
        const char *url;            /* http:// or https:// */
        const char *const *headers; /* "Name: value" lines, NULL-terminated; may be NULL */
        const void *body;           /* a body from memory of body_size bytes, or NULL */
        size_t body_size;
        HttpReadFn read;            /* else, when set, a body of read_size bytes streamed from here */
        HttpRewindFn rewind;        /* may be NULL */
        uint64_t read_size;
        void *read_userdata;
        HttpHeadersFn on_headers;   /* the final status, before any of the body; may be NULL */
        HttpBodyFn on_body;         /* the body in pieces; NULL drops it */
        void *userdata;             /* for on_headers and on_body */
        uint64_t body_max;          /* a longer body is -EFBIG; 0: no cap */
        size_t piece_size;          /* the receive buffer, so the largest piece; 0: 16 KiB */
        bool fail_on_error;         /* HTTP >= 300 is an error and its body is not given out */
        bool follow_redirects;      /* libcurl: up to 10, to http/https; the own client: -EPROTO */
        bool fresh_connection;      /* must not be sent twice: never on a kept connection, never again */
        const HttpOptions *opts;    /* may be NULL */
} HttpRequest;

typedef struct HttpReply {
        long status;            /* of the final answer, 0 when none came */
        int64_t content_length; /* as announced, -1 when not */
        char location[512];     /* a redirect's target, "" for none */
        bool sent;              /* bytes of the request went to the connection */
        HttpStage failed_at;
        int os_errno;           /* why connecting failed, when it did (0: unknown) */
        char message[HTTP_ERROR_SIZE]; /* for people, when it failed */
} HttpReply;

/* Sends req and reads the answer, giving the body to req->on_body. Returns
 * 0 when a whole answer came (any status, unless fail_on_error), else:
 * -EHOSTUNREACH when the host cannot be resolved or connected to,
 * -ETIMEDOUT for a connect, idle (low speed) or overall timeout,
 * -ECONNRESET when the connection broke or ended before the answer did,
 * -EPROTO for TLS failures, a malformed answer, or (fail_on_error) HTTP
 * >= 300 but 404/410, which are -ENOENT; -EFBIG for a body above body_max;
 * -EINVAL for a URL it does not take; -ENOMEM; or the error a callback
 * returned. ret (not NULL) is filled in either case. When a streamed
 * upload breaks because the server answered early (a refusal), that answer
 * is what is returned. The own back end sends a request once more, on a
 * new connection, when the kept one it went on turns out closed before
 * any of the answer came and its body can be sent again; a request with
 * fresh_connection goes on a new connection (the kept one is closed) and
 * only once. libcurl's back end opens a connection per request. */
int http_exchange(const HttpRequest *req, HttpReply *ret);

/* Whether an error of http_exchange() means the server could not be
 * reached or went away mid-transfer (-EHOSTUNREACH, -ETIMEDOUT,
 * -ECONNRESET), rather than answering with something wrong. */
static inline bool http_error_unreachable(int r) {
        return r == -EHOSTUNREACH || r == -ETIMEDOUT || r == -ECONNRESET;
}

/* Downloads url into fd (from its current offset), following redirects
 * and taking file:// where the back end can (libcurl). At most max_bytes are
 * accepted (0 = no cap; more is -EFBIG). When hash is not NULL every byte
 * written is added to it. ret_size (may be NULL) gets the byte count on
 * success; ret_error (may be NULL) is filled on failure. Returns 0 or a
 * negative errno as http_exchange() with fail_on_error; on failure fd may
 * hold a partial download, which the caller discards. */
int http_fetch_to_fd(const char *url, int fd, uint64_t max_bytes, Sha256 *hash, const HttpOptions *opts,
                     uint64_t *ret_size, HttpError *ret_error);

/* Downloads url into memory, at most max_bytes (more is -EFBIG). ret_data is
 * NUL-terminated (not counted in ret_size) and owned by the caller. */
int http_fetch_to_memory(const char *url, size_t max_bytes, const HttpOptions *opts, char **ret_data,
                         size_t *ret_size, HttpError *ret_error);
