/* Output for people: aligned tables for lists, "key: value" blocks for one
 * object, sizes and times in human terms. Every string that came from the
 * server is passed through here, which replaces control characters, so a
 * host cannot send escape sequences to the operator's terminal. */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

typedef struct Table Table;

/* A table with n_columns (1..16) columns named by headers (copied). NULL
 * when out of memory. */
Table *table_new(size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
static inline void table_freep(Table **t) {
        table_free(*t);
}
#define _cleanup_table_free_ _cleanup_(table_freep)

/* Appends a row of n_columns cells (copied; NULL or "" shows as "-").
 * Returns 0 or -ENOMEM. */
int table_add_row(Table *t, const char *const *cells);
size_t table_rows(const Table *t);

/* Prints the header (unless header is false) and the rows, columns
 * separated by two spaces, the last one not padded. Widths are at least
 * min_widths[i] when min_widths is not NULL. Rows are dropped afterwards, so
 * a table can be printed in batches. */
void table_print(Table *t, FILE *f, bool header, const size_t *min_widths);
/* Ends a listing on stdout: when r < 0 (a row could not be added) logs the
 * lack of memory and returns it; when t has no rows prints the line `empty`;
 * else prints t with its header. Returns 0 otherwise. */
int table_print_listing(Table *t, int r, const char *empty);

/* Prints "key:" padded to a fixed width, then the formatted value, made
 * safe for a terminal, and a newline. */
void field_print(const char *key, const char *format, ...) _printf_(2, 3);
/* A further line of the field above, indented under its value and past
 * that by indent spaces, control characters replaced. */
void field_continue(unsigned indent, const char *format, ...) _printf_(2, 3);

/* Copies s with control characters replaced by '?' (NULL gives "-").
 * Caller frees; NULL when out of memory. */
char *text_safe(const char *s);

/* "12 s ago", "3 min ago", "5 h ago", "2 days ago", or the date for older
 * times; "never" for 0. buf holds at least 32 bytes. */
const char *format_ago(char *buf, size_t size, int64_t when, int64_t now);
/* Local time "2026-11-25 14:32:35 UTC"; "-" for 0. buf holds at least 40
 * bytes. */
const char *format_time(char *buf, size_t size, int64_t when);
/* A duration for people: "42 s", "3 min", "2 h 5 min", "3 days 4 h". */
const char *format_duration(char *buf, size_t size, uint64_t seconds);

/* A JSON value as one short line: strings as they are, objects as
 * "k=v, k=v" (nested values compact JSON), null as "-". Caller frees. */
char *json_inline(json_t *v);
