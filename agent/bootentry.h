/* Boot Loader Spec (Type #1) entries on the ESP, with systemd-boot's boot
 * counting: reading, ordering, writing and renaming them as the agent
 * stages, arms, blesses and gives up images.
 *
 * Names and bodies are common/loaderentry.h's: one entry per staged image,
 * loader/entries/slipway-<gen>-<version>[+LEFT[-DONE]].conf, whose body
 * names the slot in its options ("slipway.slot=a"). A staged entry starts
 * disarmed as "+0", is armed to "+3" (three tries) once a reboot lease is
 * granted; the firmware renames +N-M to +(N-1)-(M+1) before every try;
 * blessing renames it to plain "<id>.conf"; giving up renames it to "+0-M"
 * ("+0" when none were done). systemd-boot sorts entries with no tries left
 * after all others, so a slot that never comes up healthy falls back to the
 * last good one.
 *
 * Writes and renames are crash-safe: a new entry is written to a temporary
 * file whose name starts with ".tmp-" and does not end in ".conf" (neither
 * systemd-boot nor bootentries_load() reads it), fsynced, renamed into place,
 * and the directory is fsynced; a rename is followed by an fsync of the
 * directory. (FAT has no journal: this is the best an ESP offers.)
 *
 * Functions return 0 or a negative errno and log at most at debug level. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "loaderentry.h"

/* The tries a freshly staged entry gets. */
#define BOOTENTRY_TRIES 3

typedef struct BootEntry {
        char *file;      /* file name in loader/entries */
        char *id;        /* file name without the counter and ".conf" */
        unsigned gen;    /* from id, 0 when the id is not slipway-<gen>-<version> */
        char *version;   /* from the id, NULL when the id is not slipway-<gen>-<version> */
        char slot;       /* 'a' or 'b' from "slipway.slot=" in options, 0 when absent */
        char *kernel;    /* the "linux" path (relative to the ESP root), NULL when absent */
        int tries_left;  /* -1: no counter (blessed or never counted) */
        int tries_done;  /* 0 when absent */
} BootEntry;

/* Parses an entry file name ("slipway-2-1.4+2-1.conf") into ret: file, id,
 * gen, version and the counter; slot and kernel stay empty (they come from
 * the content). -EINVAL for names that are not entries systemd-boot would
 * load (no ".conf", empty id, hidden, "auto-") and for malformed counters
 * ("+x", "+-1", "+3-", counters above INT_MAX). ret is the caller's and is
 * released with bootentry_release(); untouched on failure. */
int bootentry_parse_file_name(const char *file, BootEntry *ret);

/* Frees what e holds and empties it. Accepts NULL. */
void bootentry_release(BootEntry *e);

/* Copies src into ret (deep). ret untouched on failure (-ENOMEM). */
int bootentry_copy(const BootEntry *src, BootEntry *ret);

/* Reads the ".conf" files in ESP/loader/entries (regular files only;
 * hidden files, temporary files and names bootentry_parse_file_name()
 * rejects are skipped), parses the content for slot and kernel, and
 * returns the entries in menu order (bootentries_sort()). A missing entries
 * directory means no entries. *ret is freed with bootentries_free() and is
 * NULL when there are none. Entry files are capped at 64 KiB (-EFBIG). */
int bootentries_load(const char *esp_dir, BootEntry **ret, size_t *ret_n);

/* Frees n entries and the array. Accepts NULL. */
void bootentries_free(BootEntry *e, size_t n);

/* systemd-boot 252's menu order for our entries: entries with no tries left
 * (tries_left == 0) last; then by the loader's id, which in 252 is the whole
 * lowercased file name, counter included, compared with the UAPI version
 * format rules (as strverscmp_improved()) newest first; between equal ids,
 * more tries left first, then fewer tries done. Negative when a comes first. */
int bootentry_compare(const BootEntry *a, const BootEntry *b);
void bootentries_sort(BootEntry *e, size_t n);

/* The version comparison of the UAPI version format specification (what
 * systemd calls strverscmp_improved()), case-insensitive as systemd-boot
 * lowercases ids: <0 when a is older than b, 0 when equal, >0 when newer. */
int bootentry_verscmp(const char *a, const char *b);

/* true when tries_left == 0: the firmware has given up on it, or the agent
 * has marked it bad. */
bool bootentry_is_bad(const BootEntry *e);

/* Writes a new entry for image name:version, generation gen, into
 * ESP/loader/entries (created when missing), atomically: temporary file,
 * fsync, rename, fsync of the directory. tries < 0 writes no counter. The
 * body is loader_entry_body()'s, which refuses (-EINVAL) a bad name,
 * version, slot or cmdline; gen 0 is -EINVAL too. -EEXIST when an entry
 * with the same id exists under another counter; the same file name is
 * replaced. ret_file (may be NULL) gets the file name; caller frees. */
int bootentry_write(const char *esp_dir, unsigned gen, const char *name, const char *version, char slot,
                    const char *cmdline, int tries, char **ret_file);

/* Renames e's file to loader_entry_file_name(e->id, tries_left, tries_done)
 * and fsyncs the directory: rename(2), then fsync of the directory, so a
 * crash leaves either name, never none. A no-op when the name stays. */
int bootentry_rename(const char *esp_dir, const BootEntry *e, int tries_left, int tries_done);

/* Renames e's file to "<id>.conf" and fsyncs the directory. A no-op when e
 * has no counter. -ENOENT when e->file is gone (e.g. renamed since it was
 * loaded). */
int bootentry_bless(const char *esp_dir, const BootEntry *e);

/* Renames e's file to "<id>+0-<tries_done>.conf" ("<id>+0.conf" when none
 * were done) and fsyncs the directory. A no-op when already so named. */
int bootentry_mark_bad(const char *esp_dir, const BootEntry *e);

/* Unlinks e's file and fsyncs the directory. -ENOENT when it is gone. */
int bootentry_remove(const char *esp_dir, const BootEntry *e);

/* Removes the temporary files an interrupted bootentry_write() leaves in
 * ESP/loader/entries. Returns how many were removed. */
int bootentries_remove_stale(const char *esp_dir);

/* The generation for the next staged entry: the largest gen + 1 (1 when
 * there is none). */
unsigned bootentries_next_gen(const BootEntry *e, size_t n);
