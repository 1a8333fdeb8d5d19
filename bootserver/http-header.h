/* Parsers of HTTP request headers, apart from the server so that they can be
 * fuzzed alone. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Parses a Range header h (may be NULL) against a blob of size bytes.
 * Returns 1 with a single range (start, length), 0 when the header is to be
 * ignored (absent, malformed, several ranges: the whole blob is sent), or
 * -ERANGE when it cannot be satisfied (416). */
int http_range_parse(const char *h, uint64_t size, uint64_t *ret_start, uint64_t *ret_len);

/* If-None-Match (RFC 9110 13.1.2): true when h is "*" or a list of
 * entity-tags one of which names etag (a quoted tag, "\"<hex>\"") under the
 * weak comparison (a W/ prefix does not matter). A malformed list matches
 * nothing. */
bool http_if_none_match(const char *h, const char *etag);
/* If-Range (RFC 9110 13.1.5): true when h is exactly one strong
 * entity-tag equal to etag. A weak tag, another tag, a date (the blobs have
 * no Last-Modified) or anything malformed is false: the whole blob is sent. */
bool http_if_range(const char *h, const char *etag);
