/* Downloads the RPMs of a lock in parallel (libcurl multi) into a cache keyed
 * by sha256, and verifies each file's sha256, its RPM digests and its
 * signature (librpm, against its repository's keys). */
#pragma once

#include "lock.h"
#include "progress.h"
#include "sigcheck.h"

/* For each package in lock, ensures cache_dir/rpms/<sha256>.rpm exists and is
 * verified; downloads at most `parallel` at once. Every package's signature,
 * cached or downloaded, is checked against the keys trust holds for its
 * repository; each package's key_id and each repository's gpgcheck and keys
 * are then filled in lock. On success ret_paths (same order as
 * lock->packages, NULL-terminated, caller frees with strv_free) holds the
 * cached paths. A digest mismatch or a bad or missing signature is -EBADMSG,
 * a key the repository does not list -ENOKEY; each names the package (and
 * the URL or the repository); a refused download is not kept. */
int fetch_packages(Lock *lock, const Trust *trust, const char *cache_dir, unsigned parallel, Progress *progress,
                   char ***ret_paths);

/* Checks an RPM file with librpm: header and payload digests must be valid
 * (the signature is sigcheck_package()'s). Returns 0 or -EBADMSG. */
int fetch_verify_rpm(const char *path);
