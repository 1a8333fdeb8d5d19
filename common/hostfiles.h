/* What slipwayd and the agent agree on about host files
 * (docs/host-files.md): which paths, modes and owners a file may have, and
 * the digest of a host's rendered files, which the check-in reply names
 * and the agent checks what it fetched against. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "error.h"

/* Caps: files in one set, a path's length, one file's content, the files
 * of one host (all its sets). */
#define HOST_FILES_SET_MAX 64
#define HOST_FILE_PATH_MAX 255
#define HOST_FILE_CONTENT_MAX (256 * 1024)
#define HOST_FILES_MAX 1024

/* An absolute path whose components are [A-Za-z0-9._+@-] and not "." or
 * "..", no empty one, no trailing slash, at most HOST_FILE_PATH_MAX. */
bool host_file_path_valid(const char *p);
/* "0644" or "644": four octal digits without set-ID or sticky bits, into
 * ret as four digits. -EINVAL otherwise. */
int host_file_mode_parse(const char *s, char ret[5]);
/* "UID:GID", numbers below 2^31. */
bool host_file_owner_valid(const char *s);

/* The digest of files, an array of {"path", "mode", "owner", "content",
 * ...} in any order: SHA-256 of the compact JSON of those four members,
 * keys sorted, files by path. 0, or -ENOMEM, or -EINVAL for an array that
 * is not such files. */
int host_files_digest(const json_t *files, char ret[65]);

/* Checks a host's files as the agent gets them ({"digest", "files": [...]}):
 * each file's members and caps, no path twice, and the digest is theirs.
 * -EBADMSG with the reason in error. */
int host_files_check(const json_t *j, Error *error);
