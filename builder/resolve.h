/* Resolution: load each repository's rpm-md metadata into a libsolv pool and
 * solve the definition's package list into a Lock. */
#pragma once

#include "definition.h"
#include "lock.h"
#include "progress.h"

/* Fetches repomd.xml and primary (filelists too when needed) of every repo in
 * def (metadata cached under cache_dir/repodata/<sha256 of repomd>), solves
 * "install every package in def->packages" for def->arch, and returns the
 * full transaction as a lock. Errors name the package or the repo:
 * missing package -ENOENT, conflicts -EDEADLK (every solver problem logged),
 * unreachable repo -EHOSTUNREACH or the curl-derived errno. */
int resolve_packages(const ImageDef *def, const char *cache_dir, Progress *progress, Lock **ret);
