/* String, number and list helpers used across components. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* Returns a newly allocated formatted string, or NULL on allocation failure. */
char *strdup_printf(const char *format, ...) _printf_(1, 2);

/* Joins two path components with exactly one '/'. Caller frees. */
char *path_join(const char *a, const char *b);

/* Returns the JSON string literal (quotes included) for s. Caller frees. */
char *json_escape_string(const char *s);

/* Parses a decimal unsigned integer; the whole string must be consumed.
 * Returns 0, -EINVAL or -ERANGE. */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atoi(const char *s, int *ret);

/* Parses a size with an optional binary suffix: "512", "64K", "64M", "2G"
 * (K/M/G/T = 1024 powers; an optional trailing 'iB' or 'B' is accepted). */
int parse_size(const char *s, uint64_t *ret);

/* Formats bytes for people ("1.5 MiB"). buf must hold at least 16 bytes. */
const char *format_bytes(char *buf, size_t size, uint64_t bytes);

/* A NULL-terminated vector of owned strings. */
typedef char **strv;
void strv_free(char **l);
size_t strv_length(char *const *l);
/* Appends a copy of s; returns 0 or -ENOMEM. */
int strv_extend(char ***l, const char *s);
/* Appends s itself (taking ownership, freed on failure). */
int strv_consume(char ***l, char *s);
/* Splits on ASCII whitespace and commas. Returns NULL on allocation failure. */
char **strv_split_words(const char *s);
bool strv_contains(char *const *l, const char *s);
int strv_sort_unique(char **l);

static inline void strv_freep(char ***l) {
        strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Makes room for element n of the array *p of elements of size bytes (with
 * room for *cap), doubling the room when it is full: 0, or -ENOMEM with *p
 * as it was. */
int array_reserve(void **p, size_t *cap, size_t n, size_t size);
/* Appends a zeroed element to the array *p of *n elements of size bytes
 * (with room for *cap), doubling the room when it is full. Returns the new
 * element (and *n grew by one), or NULL with *p and *n as they were when
 * memory runs out. */
void *array_push(void **p, size_t *n, size_t *cap, size_t size);
#define ARRAY_PUSH(p, n, cap) ((__typeof__(p)) array_push((void **) &(p), &(n), &(cap), sizeof *(p)))

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Returns true when s is exactly 64 lowercase hex digits. */
bool sha256_hex_valid(const char *s);

/* Reads SOURCE_DATE_EPOCH from the environment. Returns 0 and sets *ret, or
 * -ENOENT when unset, -EINVAL when malformed. */
int source_date_epoch(uint64_t *ret);

/* Returns a monotonic clock in microseconds. */
uint64_t now_usec(void);

#include "banned.h"
