#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "httpparse.h"
#include "macro.h"

static bool host_char_ok(char ch) {
        return isalnum((unsigned char) ch) || ch == '-' || ch == '.' || ch == '_';
}

int http_url_parse(const char *url, HttpUrl *ret) {
        HttpUrl u = {};
        const char *rest, *host, *host_end, *p;
        size_t n;

        if ((rest = startswith(url, "http://")))
                u.tls = false;
        else if ((rest = startswith(url, "https://")))
                u.tls = true;
        else
                return -EINVAL;
        for (p = url; *p; p++)
                if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f)
                        return -EINVAL;
        n = strcspn(rest, "/?#");
        if (memchr(rest, '@', n))
                return -EINVAL;
        host = rest;
        if (*host == '[') {
                host_end = memchr(host, ']', n);
                if (!host_end || host_end == host + 1)
                        return -EINVAL;
                for (p = host + 1; p < host_end; p++)
                        if (!isxdigit((unsigned char) *p) && *p != ':' && *p != '.')
                                return -EINVAL;
                u.ipv6 = true;
                host++;
                p = host_end + 1;
        } else {
                for (p = host; p < rest + n && *p != ':'; p++)
                        if (!host_char_ok(*p))
                                return -EINVAL;
                host_end = p;
                if (host_end == host)
                        return -EINVAL;
        }
        if ((size_t) (host_end - host) >= sizeof(u.host))
                return -EINVAL;
        memcpy(u.host, host, (size_t) (host_end - host));
        if (p < rest + n) {
                unsigned long port = 0;
                const char *digits;

                if (*p != ':')
                        return -EINVAL;
                digits = ++p;
                for (; p < rest + n; p++) {
                        if (!isdigit((unsigned char) *p) || p - digits >= 5)
                                return -EINVAL;
                        port = port * 10 + (unsigned long) (*p - '0');
                }
                if (p == digits || port == 0 || port > 65535)
                        return -EINVAL;
                snprintf(u.port, sizeof(u.port), "%lu", port);
        } else
                snprintf(u.port, sizeof(u.port), "%s", u.tls ? "443" : "80");
        if (rest[n] == '#')
                return -EINVAL;
        u.target = rest + n;
        *ret = u;
        return 0;
}

void http_parser_init(HttpParser *p, bool head, uint64_t body_max, HttpHeadersFn on_headers, HttpBodyFn on_body,
                      void *userdata) {
        *p = (HttpParser) { .head = head, .body_max = body_max, .on_headers = on_headers, .on_body = on_body,
                            .userdata = userdata, .content_length = -1 };
}

_printf_(3, 4) static int parse_error(HttpParser *p, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(p->error, sizeof(p->error), format, ap);
        va_end(ap);
        return r;
}

static int parse_status(HttpParser *p, const char *line) {
        const char *rest = startswith(line, "HTTP/1.");
        long status = 0;

        if (!rest || (rest[0] != '0' && rest[0] != '1') || rest[1] != ' ')
                return parse_error(p, -EPROTO, "malformed status line");
        rest += 2;
        for (int i = 0; i < 3; i++) {
                if (!isdigit((unsigned char) rest[i]))
                        return parse_error(p, -EPROTO, "malformed status line");
                status = status * 10 + (rest[i] - '0');
        }
        if (rest[3] != 0 && rest[3] != ' ')
                return parse_error(p, -EPROTO, "malformed status line");
        if (status < 100 || status == 101)
                return parse_error(p, -EPROTO, "unexpected status %ld", status);
        p->status = status;
        p->http11 = line[strlen("HTTP/1.")] == '1';
        p->content_length = -1;
        p->chunked = false;
        p->conn_close = false;
        p->location[0] = 0;
        p->state = HTTP_PARSE_HEADERS;
        return 0;
}

static int parse_content_length(HttpParser *p, const char *value) {
        uint64_t n = 0;

        if (!*value)
                return parse_error(p, -EPROTO, "empty Content-Length");
        for (const char *v = value; *v; v++) {
                if (!isdigit((unsigned char) *v))
                        return parse_error(p, -EPROTO, "malformed Content-Length");
                if (n > (UINT64_MAX >> 2) / 10)
                        return parse_error(p, -EPROTO, "Content-Length too large");
                n = n * 10 + (uint64_t) (*v - '0');
        }
        if (p->content_length >= 0 && (uint64_t) p->content_length != n)
                return parse_error(p, -EPROTO, "two different Content-Length headers");
        p->content_length = (int64_t) n;
        return 0;
}

/* Whether a Connection header's comma-separated options name "close". */
static bool connection_says_close(const char *value) {
        while (*value) {
                size_t n = strcspn(value, ",");
                size_t k = n;

                while (k > 0 && (value[k - 1] == ' ' || value[k - 1] == '\t'))
                        k--;
                if (k == 5 && strncasecmp(value, "close", 5) == 0)
                        return true;
                value += n;
                value += strspn(value, ", \t");
        }
        return false;
}

static int parse_header(HttpParser *p, char *line) {
        char *colon, *value, *end;

        if (line[0] == ' ' || line[0] == '\t')
                return parse_error(p, -EPROTO, "folded header line");
        colon = strchr(line, ':');
        if (!colon || colon == line)
                return parse_error(p, -EPROTO, "malformed header line");
        for (char *c = line; c < colon; c++)
                if (!isgraph((unsigned char) *c))
                        return parse_error(p, -EPROTO, "malformed header name");
        *colon = 0;
        value = colon + 1;
        value += strspn(value, " \t");
        end = value + strlen(value);
        while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
                *--end = 0;
        for (char *c = value; *c; c++)
                if ((unsigned char) *c < 0x20 && *c != '\t')
                        return parse_error(p, -EPROTO, "control character in header '%s'", line);

        if (strcasecmp(line, "Content-Length") == 0)
                return parse_content_length(p, value);
        if (strcasecmp(line, "Transfer-Encoding") == 0) {
                if (strcasecmp(value, "chunked") != 0)
                        return parse_error(p, -EPROTO, "unsupported Transfer-Encoding '%.32s'", value);
                p->chunked = true;
                return 0;
        }
        if (strcasecmp(line, "Connection") == 0 && connection_says_close(value))
                p->conn_close = true;
        if (strcasecmp(line, "Location") == 0)
                snprintf(p->location, sizeof(p->location), "%s", value);
        return 0;
}

/* The blank line after the headers: what kind of body follows. */
static int headers_done(HttpParser *p) {
        int r;

        if (p->status < 200) {
                /* An interim answer (100 Continue): the real one follows. */
                p->status = 0;
                p->header_bytes = 0;
                p->state = HTTP_PARSE_STATUS;
                return 0;
        }
        if (p->on_headers) {
                r = p->on_headers(p->status, p->userdata);
                if (r < 0)
                        return r;
        }
        if (p->head || p->status == 204 || p->status == 304)
                p->state = HTTP_PARSE_DONE;
        else if (p->chunked)
                p->state = HTTP_PARSE_CHUNK_SIZE;
        else if (p->content_length >= 0) {
                if (p->body_max > 0 && (uint64_t) p->content_length > p->body_max)
                        return parse_error(p, -EFBIG, "body of %lld bytes is larger than %llu",
                                           (long long) p->content_length, (unsigned long long) p->body_max);
                p->remaining = (uint64_t) p->content_length;
                p->state = p->remaining > 0 ? HTTP_PARSE_BODY_LENGTH : HTTP_PARSE_DONE;
        } else {
                p->state = HTTP_PARSE_BODY_CLOSE;
                p->to_close = true;
        }
        return 0;
}

static int parse_chunk_size(HttpParser *p, const char *line) {
        uint64_t n = 0;
        const char *c = line;

        for (; isxdigit((unsigned char) *c); c++) {
                if (n >> 56)
                        return parse_error(p, -EPROTO, "chunk size too large");
                n = n * 16 + (uint64_t) (isdigit((unsigned char) *c) ? *c - '0' : tolower((unsigned char) *c) - 'a' + 10);
        }
        c += strspn(c, " \t");
        if (c == line || (*c && *c != ';'))
                return parse_error(p, -EPROTO, "malformed chunk size");
        p->remaining = n;
        p->state = n > 0 ? HTTP_PARSE_CHUNK_DATA : HTTP_PARSE_TRAILERS;
        return 0;
}

/* One complete line (without its line end) in a state that reads lines. */
static int parse_line(HttpParser *p) {
        char *line = p->line;

        switch (p->state) {
        case HTTP_PARSE_STATUS:
                if (!*line && p->header_bytes <= 2)
                        return 0; /* tolerate a stray line end before the status */
                return parse_status(p, line);
        case HTTP_PARSE_HEADERS:
                return *line ? parse_header(p, line) : headers_done(p);
        case HTTP_PARSE_CHUNK_SIZE:
                return parse_chunk_size(p, line);
        case HTTP_PARSE_CHUNK_END:
                if (*line)
                        return parse_error(p, -EPROTO, "chunk longer than its size");
                p->state = HTTP_PARSE_CHUNK_SIZE;
                return 0;
        case HTTP_PARSE_TRAILERS:
                if (!*line)
                        p->state = HTTP_PARSE_DONE;
                return 0;
        default:
                return parse_error(p, -EPROTO, "internal parser state");
        }
}

static int deliver(HttpParser *p, const char *data, size_t n) {
        if (p->body_max > 0 && n > p->body_max - p->body_size)
                return parse_error(p, -EFBIG, "body larger than %llu bytes", (unsigned long long) p->body_max);
        p->body_size += n;
        return p->on_body ? p->on_body(data, n, p->userdata) : 0;
}

int http_parser_feed(HttpParser *p, const void *data, size_t n) {
        const char *d = data, *end = d + n;
        int r;

        while (d < end) {
                size_t k;

                switch (p->state) {
                case HTTP_PARSE_DONE:
                        return parse_error(p, -EPROTO, "more bytes than the response holds");
                case HTTP_PARSE_BODY_CLOSE:
                        r = deliver(p, d, (size_t) (end - d));
                        if (r < 0)
                                return r;
                        d = end;
                        break;
                case HTTP_PARSE_BODY_LENGTH:
                case HTTP_PARSE_CHUNK_DATA:
                        k = (size_t) MIN((uint64_t) (end - d), p->remaining);
                        r = deliver(p, d, k);
                        if (r < 0)
                                return r;
                        d += k;
                        p->remaining -= k;
                        if (p->remaining == 0)
                                p->state = p->state == HTTP_PARSE_CHUNK_DATA ? HTTP_PARSE_CHUNK_END : HTTP_PARSE_DONE;
                        break;
                default: {
                        /* A line: up to LF, a CR before it dropped. */
                        const char *lf = memchr(d, '\n', (size_t) (end - d));
                        k = lf ? (size_t) (lf - d) : (size_t) (end - d);
                        if (p->line_len + k >= sizeof(p->line))
                                return parse_error(p, -EPROTO, "line longer than %u bytes", HTTP_LINE_MAX);
                        if (p->state == HTTP_PARSE_STATUS || p->state == HTTP_PARSE_HEADERS) {
                                p->header_bytes += k + (lf ? 1 : 0);
                                if (p->header_bytes > HTTP_HEADERS_MAX)
                                        return parse_error(p, -EPROTO, "headers longer than %u bytes",
                                                           HTTP_HEADERS_MAX);
                        }
                        memcpy(p->line + p->line_len, d, k);
                        p->line_len += k;
                        d += k;
                        if (!lf)
                                break;
                        d++;
                        if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
                                p->line_len--;
                        p->line[p->line_len] = 0;
                        if (memchr(p->line, 0, p->line_len) || memchr(p->line, '\r', p->line_len))
                                return parse_error(p, -EPROTO, "NUL or CR inside a line");
                        p->line_len = 0;
                        r = parse_line(p);
                        if (r < 0)
                                return r;
                        break;
                }
                }
        }
        return p->state == HTTP_PARSE_DONE ? 1 : 0;
}

int http_parser_eof(HttpParser *p) {
        switch (p->state) {
        case HTTP_PARSE_DONE:
        case HTTP_PARSE_BODY_CLOSE:
                p->state = HTTP_PARSE_DONE;
                return 1;
        case HTTP_PARSE_STATUS:
                if (p->header_bytes == 0)
                        return parse_error(p, -ECONNRESET, "the server closed the connection without an answer");
                return parse_error(p, -ECONNRESET, "the connection ended inside the headers");
        case HTTP_PARSE_HEADERS:
                return parse_error(p, -ECONNRESET, "the connection ended inside the headers");
        default:
                return parse_error(p, -ECONNRESET, "the connection ended after %llu bytes of the body",
                                   (unsigned long long) p->body_size);
        }
}
