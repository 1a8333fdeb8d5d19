/* The parts of HTTP/1.1 the agent's own client (common/httpc.c) needs that
 * involve no socket: splitting an http:// or https:// URL, and reading a
 * response as it arrives (status line, headers, a body sized by
 * Content-Length, chunked, or running to the end of the connection).
 * Everything that comes from the server is capped and checked; a response
 * that breaks the rules is an error with a message, never a crash.
 * Library code: nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One status or header line, and all of them together, are at most this long. */
#define HTTP_LINE_MAX (8u * 1024)
#define HTTP_HEADERS_MAX (64u * 1024)
/* The host part of a URL. */
#define HTTP_HOST_MAX 256

typedef struct HttpUrl {
        bool tls;                  /* https */
        char host[HTTP_HOST_MAX];  /* without the brackets of an IPv6 literal */
        char port[6];              /* "80", "443" or the URL's */
        const char *target;        /* points into the URL: the path and query, "" for none */
        bool ipv6;                 /* host was in brackets */
} HttpUrl;

/* Splits url ("http://host[:port][/path]" or https; host a name, an IPv4
 * address or [IPv6]). Returns 0 or -EINVAL for another scheme, an empty or
 * bad host, a bad port, user info, or characters a request line cannot
 * carry. ret->target points into url. */
int http_url_parse(const char *url, HttpUrl *ret);

/* Called with each piece of the body as it arrives; a negative errno stops
 * the response with that error. */
typedef int (*HttpBodyFn)(const void *data, size_t n, void *userdata);
/* Called once the final response's headers are read; a negative errno stops
 * the response. */
typedef int (*HttpHeadersFn)(long status, void *userdata);

typedef enum HttpParseState {
        HTTP_PARSE_STATUS,
        HTTP_PARSE_HEADERS,
        HTTP_PARSE_BODY_LENGTH,
        HTTP_PARSE_CHUNK_SIZE,
        HTTP_PARSE_CHUNK_DATA,
        HTTP_PARSE_CHUNK_END,
        HTTP_PARSE_TRAILERS,
        HTTP_PARSE_BODY_CLOSE,
        HTTP_PARSE_DONE,
} HttpParseState;

typedef struct HttpParser {
        /* set by http_parser_init() */
        bool head;           /* the request was HEAD: no body follows */
        uint64_t body_max;   /* 0: no cap */
        HttpHeadersFn on_headers;
        HttpBodyFn on_body;
        void *userdata;

        /* what was read */
        long status;
        int64_t content_length; /* -1 when none was sent */
        bool chunked;
        bool http11;            /* the status line said HTTP/1.1 */
        bool conn_close;        /* a Connection header named "close" */
        bool to_close;          /* the body runs to the end of the connection */
        char location[512];     /* of a redirect, "" for none */
        uint64_t body_size;     /* body bytes handed to on_body */
        char error[160];        /* why the last feed failed */

        /* internal */
        HttpParseState state;
        char line[HTTP_LINE_MAX];
        size_t line_len;
        size_t header_bytes;
        uint64_t remaining;     /* of a Content-Length body or a chunk */
} HttpParser;

void http_parser_init(HttpParser *p, bool head, uint64_t body_max, HttpHeadersFn on_headers, HttpBodyFn on_body,
                      void *userdata);

/* Feeds n bytes of the response. Returns 0 when more are wanted, 1 when the
 * response is complete (then bytes beyond it are an error: -EPROTO),
 * -EPROTO for a malformed response, -EFBIG for a body larger than
 * body_max, or a callback's error. On failure p->error says why (but for a
 * callback's own error). */
int http_parser_feed(HttpParser *p, const void *data, size_t n);

/* The connection ended. Returns 1 when that completes the response (a body
 * that runs to the end), -ECONNRESET when the response was cut short (with
 * p->error set). */
int http_parser_eof(HttpParser *p);

/* Whether the connection may carry another request after this response:
 * it is complete, HTTP/1.1 without "Connection: close", and its end was
 * known from its length (not the end of the connection). */
static inline bool http_parser_keep_alive(const HttpParser *p) {
        return p->state == HTTP_PARSE_DONE && p->http11 && !p->conn_close && !p->to_close;
}

/* Whether the status line has been read (p->status is the server's). */
static inline bool http_parser_has_status(const HttpParser *p) {
        return p->status > 0;
}
