/* The mirrors of a repository: its baseurls, the entries of its mirrorlist
 * and the URLs of its metalink (by preference), tried in that order. A
 * mirror that fails (refuses, times out, is too slow, serves a wrong size or
 * checksum) is skipped for the next with one warning, and not asked again by
 * the same Mirrors; the fetch fails only when no mirror is left, with one
 * error listing each mirror's reason. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "definition.h"
#include "curleasy.h"

/* A mirrorlist or metalink file is small. */
#define MIRRORS_LIST_MAX (4U * 1024U * 1024U)
/* Mirrors one repository may have. */
#define MIRRORS_MAX 256U

typedef struct Mirrors Mirrors;

/* What a metalink says repomd.xml must be: its size (0 when not given) and
 * checksums (type names as in the metalink: "sha256", "sha512", ...). */
typedef struct MetalinkRepomd {
        uint64_t size;
        char **hash_types;
        char **hashes; /* lowercase hex, same order as hash_types */
} MetalinkRepomd;

/* Parses mirrorlist text: one URL a line, '#' comments and blank lines
 * skipped. Keeps file://, http:// and https:// URLs (trailing '/' removed),
 * returns them in ret (caller frees). -EBADMSG when none is left. */
int mirrorlist_parse(const char *text, char ***ret);

/* Parses a metalink XML (text of size bytes): the URLs of repomd.xml by
 * preference (highest first, file order among equals), each turned into its
 * repository's base URL (".../repodata/repomd.xml" removed), and what
 * repomd.xml must be. -EBADMSG for anything that is not such a metalink. */
int metalink_parse(const char *text, size_t size, char ***ret_urls, MetalinkRepomd *ret_repomd);
void metalink_repomd_release(MetalinkRepomd *m);

/* Checks data against m: size, and every checksum of a type OpenSSL knows
 * (at least one must be known). Returns 0, or -EBADMSG with reason set. */
int metalink_repomd_check(const MetalinkRepomd *m, const void *data, size_t size, char *reason, size_t reason_size);

/* Collects the mirrors of rd: baseurls, then the mirrorlist's entries, then
 * the metalink's (a mirrorlist that holds a metalink counts as one). Logs
 * one error naming the repository when a list cannot be fetched or read,
 * or when no mirror is left. */
int mirrors_load(const RepoDef *rd, Mirrors **ret);
/* The same from fixed URLs (a lock's mirrors): repo_id for messages,
 * http options from timeout/minrate (0: defaults). */
int mirrors_new(const char *repo_id, char *const *urls, unsigned timeout, uint64_t minrate, Mirrors **ret);
Mirrors *mirrors_free(Mirrors *m);
static inline void mirrors_freep(Mirrors **m) {
        mirrors_free(*m);
}
#define _cleanup_mirrors_free_ _cleanup_(mirrors_freep)

/* All the mirrors, in the order they are tried (owned by m, NULL-terminated). */
char *const *mirrors_urls(const Mirrors *m);
size_t mirrors_count(const Mirrors *m);
/* The metalink's expectation of repomd.xml, or NULL when there is no metalink. */
const MetalinkRepomd *mirrors_metalink_repomd(const Mirrors *m);
/* The options for transfers from these mirrors (low-speed limit). */
const HttpOptions *mirrors_http_options(const Mirrors *m);

/* Whether mirror i has failed before (its reason, or NULL when it has not). */
const char *mirrors_failed(const Mirrors *m, size_t i);
/* Marks mirror i failed with r (negative errno) and reason, and logs the
 * one warning about it (what: the file that failed, e.g.
 * "repodata/repomd.xml") unless no other mirror is left: then the error of
 * mirrors_log_exhausted() names it. Nothing when it was marked before. */
void mirrors_mark_failed(Mirrors *m, size_t i, const char *what, int r, const char *reason);
/* Marks failed, without a new warning, the mirrors of m that failed for a
 * definition's metadata in this process (mirrors_load's Mirrors): a mirror
 * skipped for repomd.xml is not asked for packages and not warned about
 * twice. Leaves m as it is when that would leave no
 * mirror. Returns how many it marked. */
size_t mirrors_skip_failed_before(Mirrors *m);
/* Logs the error that no mirror could serve `what`, with each mirror's
 * reason (for a repository with one mirror: "repository 'ID' at URL is
 * unreachable (...)" or "repository 'ID' at URL: WHAT: REASON"), and
 * returns r. */
int mirrors_log_exhausted(const Mirrors *m, const char *what, int r);

/* Describes a failed transfer (r and e from http_result()) as a reason for
 * skipping a mirror: "unreachable: ...", "timed out or too slow: ...". */
void mirrors_describe_error(int r, const HttpError *e, char *reason, size_t reason_size);

/* Checks what a mirror served. data is the bytes for mirrors_fetch_memory(),
 * NULL for mirrors_fetch_fd() (the caller knows its file). Returns 0 to
 * accept, a negative errno to try the next mirror, with reason set. */
typedef int (*MirrorCheck)(const char *url, const char *data, size_t size, void *userdata, char *reason,
                           size_t reason_size);

/* Fetches path (relative to a mirror's base URL) from the first mirror that
 * has not failed and whose answer check (may be NULL) accepts, at most max
 * bytes. ret_data (NUL-terminated, caller frees) and ret_size get the bytes,
 * ret_mirror (may be NULL) the index of the mirror that served them. When
 * every mirror failed, one error is logged (mirrors_log_exhausted()) and
 * the last failure's errno returned. */
int mirrors_fetch_memory(Mirrors *m, const char *path, size_t max, MirrorCheck check, void *userdata,
                         char **ret_data, size_t *ret_size, size_t *ret_mirror);

/* The same into fd (truncated before each attempt), at most max bytes
 * (0 = no cap). */
int mirrors_fetch_fd(Mirrors *m, const char *path, int fd, uint64_t max, MirrorCheck check, void *userdata,
                     size_t *ret_mirror);
