/* When agents were last seen, kept in memory between writes: a check-in
 * that repeats the last report is answered by a read, and its host's
 * last_seen is noted here and written with the others once a second (by
 * main's loop, and once more at shutdown). A crash loses at most that
 * second of last_seen, nothing else; every other part of a check-in is
 * written before it is answered. */
#pragma once

#include <stdint.h>

#include "store.h"

typedef struct SeenLog SeenLog;

SeenLog *seen_log_new(void);
SeenLog *seen_log_free(SeenLog *l);

/* Notes that host id (at most 15 characters) was seen at now. -ENOMEM
 * when it could not be noted. */
int seen_log_note(SeenLog *l, const char *id, uint64_t now);

/* Writes what was noted, in one transaction; a host's last_seen only moves
 * forward. On a failure what was noted stays for the next flush. Returns
 * how many hosts were written, or a negative errno. */
int seen_log_flush(SeenLog *l, StoreDb *db);
