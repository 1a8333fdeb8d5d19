/* A small client for the slipwayd HTTP API (docs/api.md) over http.h: one
 * or several base URLs, a bearer token, a CA file for https, timeouts.
 * Requests send and receive JSON; the server's JSON errors ({"kind",
 * "error"}) become a negative errno plus a message for people, kept in the
 * client until the next request. Library code: nothing here logs above
 * debug.
 *
 * Several servers (instances of one fleet, any of which answers any
 * request): requests go to one at a time, the first at the start, and stay
 * with the one that last answered. When a request gets no HTTP answer (the
 * name does not resolve, nothing accepts the connection, TLS fails, the
 * connection breaks or times out) or the answer is 503, it goes to the next
 * server in the list, once around the list at most, with a debug line
 * saying why it left the previous one. What may be sent again:
 *
 *   - a request that never left: the server could not be resolved or
 *     connected to, TLS was not agreed on, or none of its bytes were handed
 *     to the connection. Always: no server has seen it.
 *   - a request that may have been received (sent, then the connection
 *     broke, timed out, or a 503 came): only when repeating it is harmless
 *     by HTTP or by the API's own rules: GET, HEAD, every PUT (each sets a
 *     whole value; blobs are named by their digest), POST /v1/images (the
 *     same image again is a 200), a host's check-in (a report the agent
 *     repeats every interval) and its lease calls (a POST asks for or renews
 *     the host's one lease and gets the same epoch back; a DELETE names the
 *     epoch it gives back). Anything else (registration, which revokes the
 *     token it issued before; rollouts and their actions; labels; deletions)
 *     fails with the first server's error and is not repeated: it might act
 *     twice, or the second server would answer with an error for what the
 *     first did.
 *
 * Any other answer, 4xx or 5xx, is the fleet's answer and is returned as it
 * is. When no server answers, the error names each one tried and why.
 *
 * One name that resolves to several addresses needs no list: both
 * transports try each address of a name in turn when connecting fails (the
 * unit test checks it), within the connect timeout. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "macro.h"

/* Reply bodies larger than this are refused (-EFBIG). */
#define API_REPLY_MAX (16u * 1024 * 1024)
/* A token (from a flag, a file or the environment) is at most this long. */
#define API_TOKEN_MAX 4096
/* A client takes at most this many base URLs. */
#define API_URLS_MAX 16u
/* Whole-request limit of api_request() and api_head() unless changed. */
#define API_TIMEOUT_SEC_DEFAULT 60L

typedef struct ApiClient ApiClient;

/* Called while api_upload_fd() sends: bytes handed to the connection so far
 * and the total. */
typedef void (*ApiProgressFn)(uint64_t sent, uint64_t total, void *userdata);

/* Makes a client for the servers in urls: one base URL, or several
 * separated by commas or blanks ("http://host:port" or https, an optional
 * path prefix; trailing slashes are dropped), at most API_URLS_MAX. Returns
 * -EINVAL for an empty list, another scheme, a malformed URL or one listed
 * twice, -ENOMEM; error (may be NULL) gets a message naming the URL at
 * fault. */
int api_client_new(const char *urls, ApiClient **ret, Error *error);
ApiClient *api_client_free(ApiClient *c);
static inline void api_client_freep(ApiClient **c) {
        api_client_free(*c);
}
#define _cleanup_api_client_free_ _cleanup_(api_client_freep)

/* The bearer token sent with every request (NULL: none). -EINVAL when it is
 * empty, too long, or holds characters that cannot go into a header. */
int api_client_set_token(ApiClient *c, const char *token);
/* A PEM bundle that https certificates are verified against (NULL: the
 * system's). A change to the file is taken at the next request (on
 * libcurl the file is read at each; the agent's client loads it again
 * when it changed). */
int api_client_set_ca_file(ApiClient *c, const char *path);
/* Limit on a whole JSON request in seconds (0: none beyond the transport's
 * connect timeout and low-speed abort). Uploads are never cut off by it. */
void api_client_set_timeout(ApiClient *c, long seconds);

/* The base URL requests go to now, without trailing slashes. */
const char *api_client_url(const ApiClient *c);
/* Every base URL, in the order given, separated by single spaces (a list
 * api_client_new() takes). */
const char *api_client_urls(const ApiClient *c);
/* How many base URLs the client has (at least 1). */
size_t api_client_n_urls(const ApiClient *c);
/* Makes url (one of the client's, as api_client_url() gives it) the one
 * requests go to: a caller that remembers which server answered last.
 * -ENOENT when it is not in the list. */
int api_client_prefer(ApiClient *c, const char *url);
/* Moves to the next server in the list (after the last, the first), for a
 * caller whose own transfer got no answer (a blob download); why goes into
 * the debug log. With one server, nothing changes. */
void api_client_failover(ApiClient *c, const char *why);

/* About the last failed call: a message for people ("server: <error>
 * (<kind>)", or what kept the request from getting an answer, naming the
 * URL, or each URL tried in turn); the server's kind ("" when there was none); the HTTP status (0 when
 * no answer came); the server's whole error object (owned by the client,
 * valid until the next call; NULL when there was none). */
const char *api_client_error(const ApiClient *c);
const char *api_client_error_kind(const ApiClient *c);
long api_client_error_status(const ApiClient *c);
json_t *api_client_error_reply(const ApiClient *c);
/* True when the last call failed because no HTTP answer came: the server
 * (each server tried) cannot be resolved or connected to, TLS failed, or it
 * timed out. */
bool api_client_unreachable(const ApiClient *c);

/* Reads a token from a file: the first line, surrounding whitespace
 * removed, at most API_TOKEN_MAX bytes. Caller frees. -ENOENT, -EACCES,
 * -EFBIG when larger, -EINVAL when empty. */
int api_read_token_file(const char *path, char **ret);

/* Percent-encodes s for use as one path segment or query value. Caller
 * frees; NULL on allocation failure. */
char *api_escape(const char *s);

/* Sends method (GET, POST, PUT, DELETE) to path (starting with '/', already
 * escaped) with body as JSON (may be NULL; not consumed). On a 2xx answer
 * returns 0, *ret_status (may be NULL) gets the status and *ret_reply (may
 * be NULL) the parsed body (a new reference; JSON null for an empty body).
 * On a server error returns the errno mapped from its kind: bad_request,
 * invalid_json, unknown_field, invalid_value -EINVAL; digest_mismatch
 * -EBADMSG; bad_signature -EKEYREJECTED; unauthorized -EACCES; forbidden
 * -EPERM; not_found -ENOENT; method_not_allowed -EOPNOTSUPP; conflict
 * -EEXIST; in_use -EBUSY; missing_blobs -ENODATA; too_large and
 * headers_too_large -EFBIG; range_not_satisfiable -ERANGE; unsupported_media_type -EPROTO; no_space
 * -ENOSPC; internal and other 5xx -EIO. Without an answer: -EHOSTUNREACH,
 * -ETIMEDOUT, -ECONNRESET, -EPROTO (TLS). A reply that is not JSON or
 * larger than API_REPLY_MAX: -EBADMSG, -EFBIG. Redirects are not followed
 * (-EPROTO). Several servers: see the top of this file. */
int api_request(ApiClient *c, const char *method, const char *path, json_t *body, long *ret_status,
                json_t **ret_reply);

/* HEAD path. Returns 0 and sets *ret_size (may be NULL; 0 when the server
 * sent no Content-Length) for a 2xx answer; -ENOENT for 404; else as
 * api_request(). */
int api_head(ApiClient *c, const char *path, uint64_t *ret_size);

/* PUT path with the next size bytes of fd (from its current offset) as the
 * body, streamed, with Content-Length: size. progress (may be NULL) is
 * called as bytes go out (from 0 again when the upload moves to another
 * server). The reply is handled as api_request() does. The file ending
 * early is -EIO. */
int api_upload_fd(ApiClient *c, const char *path, int fd, uint64_t size, ApiProgressFn progress, void *userdata,
                  long *ret_status, json_t **ret_reply);
