/* Fuzzes what slipwayd parses from a request line and headers: routing of a
 * path, the Range header, MAC and UUID query parameters, If-None-Match and
 * If-Range, the request target as sent (control characters). The first byte
 * picks the parser; invariants abort. */
#include <stdint.h>

#include "blobs.h"
#include "http-header.h"
#include "hosts.h"
#include "server.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const patterns[] = { "v1/status", "blobs/sha256/*", "v1/hosts/*/checkin", "v1/images/*",
                                        "v1/hosts/*/labels" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL;
        char mac[18], uuid[37];

        if (size < 1 || size > 4096)
                return 0;
        s = strndup((const char *) data + 1, size - 1);
        if (!s)
                return 0;
        switch (data[0] % 5) {
        case 0:
                for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
                        char *args[2] = {};
                        if (route_match(patterns[i], s, args)) {
                                /* a wildcard never spans a '/' and is never empty */
                                for (int k = 0; k < 2; k++)
                                        if (args[k] && (!*args[k] || strchr(args[k], '/')))
                                                abort();
                        }
                        free(args[0]);
                        free(args[1]);
                }
                break;
        case 1: {
                uint64_t sizes[] = { 0, 1, 100, UINT64_MAX / 2 };
                for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                        uint64_t start = 0, len = 0;
                        int r = http_range_parse(s, sizes[i], &start, &len);
                        if (r > 0 && (len == 0 || start >= sizes[i] || len > sizes[i] - start))
                                abort();
                }
                break;
        }
        case 2:
                if (mac_normalize(s, mac) == 0 && (strlen(mac) != 17 || mac_normalize(mac, mac) != 0))
                        abort();
                if (uuid_normalize(s, uuid) == 0 && (strlen(uuid) != 36 || uuid_normalize(uuid, uuid) != 0))
                        abort();
                break;
        case 3: {
                static const char etag[] = "\"9f86d081\"";
                /* a strong match of one tag is also a weak match */
                if (http_if_range(s, etag) && (!http_if_none_match(s, etag) || !strstr(s, etag)))
                        abort();
                break;
        }
        case 4: {
                /* the raw bytes, NULs included: a control character is found
                 * where it is, and a clean target has none sent as is */
                const char *t = (const char *) data + 1;
                size_t n = size - 1, off = SIZE_MAX;
                unsigned char c = 0xff;
                if (http_target_check(t, n, &off, &c) < 0) {
                        if (off >= n || (c >= 0x20 && c != 0x7f) || (t[off] != '%' && (unsigned char) t[off] != c))
                                abort();
                } else
                        for (size_t i = 0; i < n; i++)
                                if ((unsigned char) t[i] < 0x20 || t[i] == 0x7f)
                                        abort();
                break;
        }
        }
        return 0;
}
