/* What the libcurl back end of http.h (http-curl.c) and slipwayd use of
 * libcurl directly: one process-wide init, easy handles with Slipway's
 * defaults (user agent, redirects, timeouts, allowed protocols, CA file),
 * and the mapping of curl results to negative errno plus a message for
 * people. slipway-agent, which links no libcurl, must not use this. */
#pragma once

#include <curl/curl.h>

#include "http.h"

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
