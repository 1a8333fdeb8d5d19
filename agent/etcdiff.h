#pragma once

#include <stdbool.h>
#include <stdio.h>

/* What the host changed in /etc, read from the overlay's upper layer on var
 * and marked against the image's own /etc (docs/host-config.md). */

typedef enum EtcChange {
        ETC_SAME,    /* copied up, but type, mode, owner and content are the image's */
        ETC_CHANGED, /* the image has it too, and the host's differs */
        ETC_NEW,     /* only the host has it */
        ETC_DELETED, /* the image has it, the host removed it (whiteout, opaque directory) */
        _ETC_CHANGE_MAX,
        _ETC_CHANGE_INVALID = -22,
} EtcChange;

const char *etc_change_to_string(EtcChange c);

/* Called once per path, in name order, directories before what they hold.
 * path starts with "/etc/"; a directory's ends in '/'. note is NULL or a
 * few words on why (e.g. "whiteout"). A negative return stops the walk and
 * is returned by etc_diff(). */
typedef int (*EtcDiffFn)(const char *path, EtcChange change, const char *note, void *userdata);

/* Walks the upper layer upper (an overlayfs upper directory: whiteouts are
 * character devices 0/0, opaque directories carry trusted.overlay.opaque or
 * user.overlay.opaque = "y") and compares each entry with the same path
 * under image (the image's /etc; NULL or missing: every file counts as new).
 * Entries that are the same are reported too; the caller filters. Returns 0,
 * -ENOENT when upper does not exist, or another negative errno when a
 * directory cannot be read. */
int etc_diff(const char *upper, const char *image, EtcDiffFn fn, void *userdata);

/* Prints etc_diff() as lines "STATE  PATH[  (NOTE)]" to out; all: the
 * files that are the same too. Returns the number of lines printed, or a
 * negative errno from etc_diff(). */
int etc_diff_print(const char *upper, const char *image, bool all, FILE *out);
