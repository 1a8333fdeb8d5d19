/* Fuzzes the agent's HTTP response parser (common/httpparse.c) and its URL
 * splitter. The first byte picks how the rest is cut into reads (the
 * parser must give the same verdict however the bytes arrive), whether
 * the request was a HEAD, and a cap on the body; the bytes up to the first
 * newline are also tried as a URL. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Seen {
        uint64_t body;
        long status;
        unsigned headers_calls;
} Seen;

static int on_headers(long status, void *userdata) {
        Seen *s = userdata;

        s->status = status;
        s->headers_calls++;
        return 0;
}

static int on_body(const void *data, size_t n, void *userdata) {
        Seen *s = userdata;

        (void) data;
        s->body += n;
        return 0;
}

/* Feeds all of data in reads of step bytes (0: at once); returns the
 * verdict: 1 complete, 0 cut short, negative errno. */
static int run(const uint8_t *data, size_t size, size_t step, bool head, uint64_t max, Seen *seen,
               HttpParser *p) {
        int r = 0;

        http_parser_init(p, head, max, on_headers, on_body, seen);
        /* Bytes after a complete response are fed too: they are an error. */
        for (size_t off = 0; off < size && r >= 0;) {
                size_t k = step ? (step < size - off ? step : size - off) : size - off;
                r = http_parser_feed(p, data + off, k);
                off += k;
        }
        if (r == 0)
                r = http_parser_eof(p);
        /* What every verdict promises. */
        if (seen->body != p->body_size || (max > 0 && p->body_size > max))
                abort();
        if (seen->headers_calls > 1 || (seen->headers_calls == 1 && (seen->status < 200 || seen->status > 999)))
                abort();
        if (r == 1 && (seen->headers_calls != 1 || (head && p->body_size > 0)))
                abort();
        if (r < 0 && r != -EPROTO && r != -EFBIG && r != -ECONNRESET)
                abort();
        if (r < 0 && !p->error[0])
                abort();
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static HttpParser whole, pieces;
        Seen a = {}, b = {};
        const uint8_t *nl;
        uint64_t max;
        bool head;
        size_t step;
        int ra, rb;

        if (size < 1 || size > 256 * 1024)
                return 0;
        step = (data[0] & 0x0f) + 1;
        head = data[0] & 0x10;
        max = data[0] & 0x20 ? 64 : 0;
        data++;
        size--;

        ra = run(data, size, 0, head, max, &a, &whole);
        rb = run(data, size, step, head, max, &b, &pieces);
        /* The same verdict, status and body; but past a cap, a read is
         * refused whole, so less may have been given out. */
        if (ra != rb || a.status != b.status || (ra != -EFBIG && a.body != b.body))
                abort();

        nl = memchr(data, '\n', size);
        if (nl) {
                char url[512];
                HttpUrl u;
                size_t n = (size_t) (nl - data);

                if (n < sizeof(url)) {
                        memcpy(url, data, n);
                        url[n] = 0;
                        if (http_url_parse(url, &u) == 0 && (!u.host[0] || !u.port[0] || !u.target))
                                abort();
                }
        }
        return 0;
}
