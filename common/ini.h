/* A small INI reader: "[section]" or "[section name]" headers, "key = value"
 * lines. Errors name file:line (common/error.h).
 *
 * Comments: a line whose first non-blank character is '#' or ';' is one; on
 * any other line a '#' that follows a space or tab starts a comment that runs
 * to the end of the line ("type = erofs   # or squashfs"). A '#' with no blank
 * before it stays in the value ("http://host/repo#x"), and "\#" is a '#' that
 * stays even after a blank (the backslash is dropped); any other backslash is
 * kept. ';' after the start of a line is ordinary text. */
#pragma once

#include "error.h"
#include "macro.h"

/* Called once per key. section is the bracketed header as written
 * ("repo sample"); it is "" before any header. line is 1-based. To stop
 * parsing, return a negative errno, with error filled (error_set_at(error,
 * r, file, line, ...)); that value is returned by ini_parse_file(). */
typedef int (*IniHandler)(const char *file, unsigned line, const char *section, const char *key,
                          const char *value, void *userdata, Error *error);

/* Parses path, calling handler for each key. A syntax error is -EBADMSG,
 * with error (may be NULL) naming file:line; a file that cannot be read is
 * its errno, -EFBIG over 1 MiB. Lines are capped at 4096 bytes. Logs
 * nothing: the caller reports error. */
int ini_parse_file(const char *path, IniHandler handler, void *userdata, Error *error);

/* Same, over a NUL-terminated buffer; name is the file in errors. */
int ini_parse_string(const char *name, const char *text, IniHandler handler, void *userdata, Error *error);

/* Parses a boolean ("yes/no/true/false/on/off/1/0"). Returns 0/1 or -EINVAL. */
int parse_boolean(const char *v);
