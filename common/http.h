/* A thin libcurl wrapper: one process-wide init, easy handles with Slipway's
 * defaults (user agent, redirects, timeouts, allowed protocols, CA file), and
 * the mapping of curl results to negative errno plus a message for people.
 * Library code: nothing here logs above debug. */
#pragma once

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "hash.h"
#include "macro.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif
#define HTTP_USER_AGENT "slipway/" SLIPWAY_VERSION

/* Connecting must not take longer than this. */
#define HTTP_CONNECT_TIMEOUT_SEC 10L
/* A transfer slower than 1 byte/s for this long is aborted (-ETIMEDOUT). */
#define HTTP_LOW_SPEED_TIME_SEC 30L

typedef struct HttpOptions {
        const char *ca_file; /* PEM bundle trusted for https; NULL: the system's */
        long timeout_sec;    /* whole transfer, 0 = no limit beyond the low-speed abort */
        long low_speed_limit; /* bytes/s below which ... */
        long low_speed_time;  /* ... for this many seconds a transfer is aborted; 0: the defaults above */
} HttpOptions;

/* What went wrong with the last transfer, for the message the caller logs. */
typedef struct HttpError {
        long status; /* HTTP status of the last response, 0 when there was none */
        char message[CURL_ERROR_SIZE];
} HttpError;

/* Initialises libcurl once per process; safe from several threads. Returns 0
 * or -EIO. Every other function here calls it. */
int http_global_init(void);

/* Returns a new easy handle for url with Slipway's defaults: file, http and
 * https only (redirects to http/https only, at most 10), fail on HTTP >= 400,
 * the timeouts above, opts (may be NULL), and errbuf as CURLOPT_ERRORBUFFER
 * (errbuf must outlive the handle). The caller sets the write callback and
 * frees with curl_easy_cleanup(). Returns NULL on allocation failure. */
CURL *http_easy_new(const char *url, const HttpOptions *opts, char errbuf[CURL_ERROR_SIZE]);

/* Maps the result of a finished transfer on c to 0 or a negative errno:
 * cannot resolve/connect -EHOSTUNREACH, HTTP 404/410 or missing file -ENOENT,
 * other HTTP >= 400 and protocol/TLS failures -EPROTO, timeouts -ETIMEDOUT,
 * size cap -EFBIG. write_error is what the caller's write callback recorded
 * when it aborted the transfer (0 if it did not); it wins over the curl code.
 * When ret_error is not NULL it gets the status and a message (curl's
 * errbuf when set, else a description of code). */
int http_result(CURL *c, CURLcode code, int write_error, const char *errbuf, HttpError *ret_error);

/* Whether an http_result() error means the server could not be reached or
 * went away mid-transfer (-EHOSTUNREACH, -ETIMEDOUT, -ECONNRESET), rather
 * than answering with something wrong. */
static inline bool http_error_unreachable(int r) {
        return r == -EHOSTUNREACH || r == -ETIMEDOUT || r == -ECONNRESET;
}

/* Downloads url into fd (from its current offset). At most max_bytes are
 * accepted (0 = no cap; more is -EFBIG). When hash is not NULL every byte
 * written is added to it. ret_size (may be NULL) gets the byte count on
 * success; ret_error (may be NULL) is filled on failure. Returns 0 or a
 * negative errno as http_result() maps it; on failure fd may hold a partial
 * download, which the caller discards. */
int http_fetch_to_fd(const char *url, int fd, uint64_t max_bytes, Sha256 *hash, const HttpOptions *opts,
                     uint64_t *ret_size, HttpError *ret_error);

/* Downloads url into memory, at most max_bytes (more is -EFBIG). ret_data is
 * NUL-terminated (not counted in ret_size) and owned by the caller. */
int http_fetch_to_memory(const char *url, size_t max_bytes, const HttpOptions *opts, char **ret_data,
                         size_t *ret_size, HttpError *ret_error);
