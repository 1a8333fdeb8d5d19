/* The one error that carries a message. Functions return a negative errno;
 * where a message must travel from where it is known to where it is shown
 * (a parser's "file:line: ...", what the agent reports to the server), they
 * take an Error as their last parameter and fill it. Whoever holds the
 * Error at the end logs or sends it once.
 *
 *     _cleanup_error_ Error e = {};
 *     r = ini_parse_file(path, handler, data, &e);
 *     if (r < 0)
 *             return error_log(&e);
 */
#pragma once

#include "macro.h"

typedef struct Error {
        int code;      /* a negative errno; 0 while nothing failed */
        char *message; /* for people, without the place; NULL when it could not be made */
        char *file;    /* where: a file (or another input) name, or NULL */
        unsigned line; /* 1-based line in file; 0 when the whole file is meant */
} Error;

/* Records an error in e (which may be NULL: then only the code is
 * returned), replacing the one it held: code (< 0), the place (file may be
 * NULL, line 0) and a message, where "%m" is strerror(-code). Returns code,
 * so that `return error_set_at(...)` reads as a plain errno return. Out of
 * memory, the code is kept and the message left NULL. */
int error_set_at(Error *e, int code, const char *file, unsigned line, const char *format, ...) _printf_(5, 6);
#define error_set(e, code, ...) error_set_at((e), (code), NULL, 0, __VA_ARGS__)

/* "FILE:LINE: MESSAGE", "FILE: MESSAGE" or "MESSAGE" (strerror(-code) when
 * there is no message). Caller frees; NULL on allocation failure. */
char *error_format(const Error *e);

/* Logs error_format(e) at error level and returns e->code. */
int error_log(const Error *e);

/* Frees what e holds and empties it. */
void error_clear(Error *e);
#define _cleanup_error_ _cleanup_(error_clear)
