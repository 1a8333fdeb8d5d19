/* Parsers of the HTTP request headers that blobs are served by: Range,
 * If-None-Match, If-Range. */
#include <string.h>

#include "http-header.h"
#include "util.h"

int http_range_parse(const char *h, uint64_t size, uint64_t *ret_start, uint64_t *ret_len) {
        const char *spec = h ? startswith(h, "bytes=") : NULL;
        _cleanup_free_ char *a = NULL;
        const char *dash;
        uint64_t first, last;

        if (!spec || strchr(spec, ','))
                return 0;
        dash = strchr(spec, '-');
        if (!dash)
                return 0;
        a = strndup(spec, (size_t) (dash - spec));
        if (!a)
                return 0;
        if (isempty(a)) {
                /* suffix: the last N bytes */
                if (safe_atou64(dash + 1, &last) < 0)
                        return 0;
                if (last == 0 || size == 0)
                        return -ERANGE;
                *ret_len = MIN(last, size);
                *ret_start = size - *ret_len;
                return 1;
        }
        if (safe_atou64(a, &first) < 0)
                return 0;
        if (isempty(dash + 1))
                last = size > 0 ? size - 1 : 0;
        else if (safe_atou64(dash + 1, &last) < 0 || last < first)
                return 0;
        if (first >= size)
                return -ERANGE;
        last = MIN(last, size - 1);
        *ret_start = first;
        *ret_len = last - first + 1;
        return 1;
}

static const char *skip_ows(const char *p) {
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

/* Reads one entity-tag at p: [W/]"<etagc>*"; sets *ret_weak and the opaque
 * tag with its quotes (ret_tag, ret_len). Returns the position after it, or
 * NULL when there is none. */
static const char *entity_tag(const char *p, bool *ret_weak, const char **ret_tag, size_t *ret_len) {
        const char *q;

        *ret_weak = false;
        if (p[0] == 'W' && p[1] == '/') {
                *ret_weak = true;
                p += 2;
        }
        if (*p != '"')
                return NULL;
        for (q = p + 1; *q != '"'; q++)
                /* etagc: visible ASCII but the quote, and obs-text */
                if ((unsigned char) *q < 0x21 || *q == 0x7f)
                        return NULL;
        *ret_tag = p;
        *ret_len = (size_t) (q + 1 - p);
        return q + 1;
}

bool http_if_none_match(const char *h, const char *etag) {
        bool found = false;

        if (!h)
                return false;
        h = skip_ows(h);
        if (*h == '*')
                return *skip_ows(h + 1) == 0;
        /* #entity-tag: empty elements and spaces around commas are allowed */
        while (*h) {
                const char *tag;
                size_t n;
                bool weak;

                if (*h == ',') {
                        h = skip_ows(h + 1);
                        continue;
                }
                h = entity_tag(h, &weak, &tag, &n);
                if (!h)
                        return false;
                if (n == strlen(etag) && memcmp(tag, etag, n) == 0)
                        found = true;
                h = skip_ows(h);
                if (*h && *h != ',')
                        return false;
        }
        return found;
}

bool http_if_range(const char *h, const char *etag) {
        const char *tag;
        size_t n;
        bool weak;

        if (!h)
                return false;
        h = entity_tag(skip_ows(h), &weak, &tag, &n);
        return h && !weak && *skip_ows(h) == 0 && n == strlen(etag) && memcmp(tag, etag, n) == 0;
}
