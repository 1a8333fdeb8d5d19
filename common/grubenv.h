/* GRUB's environment block (grubenv): what load_env and save_env read and
 * write, and what grub-editenv edits. One file of exactly GRUBENV_SIZE
 * bytes: the header line, "name=value" lines (a backslash escapes a
 * backslash or a line break in a value), and '#' padding to the end.
 *
 * GRUB rewrites the block where it lies: save_env writes the file's own
 * sectors, found through the file system, and never changes its size (it
 * cannot: it writes no file system metadata). grubenv_save() does the same from the
 * running system (see there for why, and why it is crash-safe).
 *
 * Functions return 0 or a negative errno and do not log above debug. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define GRUBENV_SIZE 1024u
#define GRUBENV_SECTOR 512u
#define GRUBENV_HEADER "# GRUB Environment Block\n"

typedef struct GrubEnv {
        char **names;
        char **values;
        size_t n;
} GrubEnv;

/* Parses a block. -EBADMSG when data is not GRUBENV_SIZE bytes, lacks the
 * header or has a line without '='. ret is the caller's (grubenv_release());
 * untouched on failure. Comment lines are skipped. */
int grubenv_parse(const char *data, size_t n, GrubEnv *ret);

/* Formats env into ret: the header, the variables in their order, '#'
 * padding. -E2BIG when they do not fit in GRUBENV_SIZE bytes. ret_used (may
 * be NULL) gets the bytes before the padding. */
int grubenv_format(const GrubEnv *env, char ret[GRUBENV_SIZE], size_t *ret_used);

/* The value of name, or NULL. The pointer is env's. */
const char *grubenv_get(const GrubEnv *env, const char *name);

/* Sets name to a copy of value, in place when it is there (GRUB keeps the
 * order too), else at the end; value NULL unsets it. -EINVAL for a name
 * with '=', a line break or nothing. */
int grubenv_set(GrubEnv *env, const char *name, const char *value);

void grubenv_release(GrubEnv *env);

/* Reads the block at path. -ENOENT when missing, -EBADMSG when it is no
 * valid block (another size, no header). */
int grubenv_load(const char *path, GrubEnv *ret);

/* Writes env to path, crash-safely, with the first-sector rule: the bytes
 * up to and including the last line of every variable named in
 * first_sector (a NULL-terminated list; may be NULL) must lie in the first
 * GRUBENV_SECTOR bytes (-E2BIG otherwise).
 *
 * An existing valid block is rewritten in place, as GRUB's save_env does:
 * only the 512-byte sectors that change are written, the later ones first
 * and the first sector last, then fdatasync(). A sector is the unit a disk
 * writes whole, so a power cut leaves the first sector old or new; the
 * variables named in first_sector are then either all old or all new. The
 * file keeps its size and its blocks, which is what GRUB needs to find it
 * (a renamed-over copy would have new blocks, on FAT with no journal to
 * make the rename atomic, and a torn directory entry there loses the file).
 *
 * A missing file, or one that is no valid block, is created anew: a
 * temporary file, fsync, rename, fsync of the directory (there is nothing
 * good to keep in place). */
int grubenv_save(const char *path, const GrubEnv *env, const char *const *first_sector);
