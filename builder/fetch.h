/* Downloads the RPMs of a lock in parallel (libcurl multi) into a cache keyed
 * by sha256, and verifies each file's sha256 and its RPM digests (librpm). */
#pragma once

#include "lock.h"
#include "progress.h"

/* For each package in lock, ensures cache_dir/rpms/<sha256>.rpm exists and is
 * verified; downloads at most `parallel` at once. On success ret_paths (same
 * order as lock->packages, NULL-terminated, caller frees with strv_free) holds
 * the cached paths. A digest mismatch is -EBADMSG and names the package and
 * URL; the bad download is not kept. */
int fetch_packages(const Lock *lock, const char *cache_dir, unsigned parallel, Progress *progress,
                   char ***ret_paths);

/* Checks an RPM file with librpm: header and payload digests must be valid
 * (signatures are not required). Returns 0 or -EBADMSG. */
int fetch_verify_rpm(const char *path);
