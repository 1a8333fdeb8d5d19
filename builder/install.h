/* Installs RPM files into a staging root with librpm: one ordered
 * transaction, scriptlets run chrooted into the root, rpmdb at dbpath inside
 * the root. */
#pragma once

#include <stdint.h>

#include "progress.h"
#include "sigcheck.h"

/* root must exist (empty). keys[i] holds the keys of the repository
 * rpm_paths[i] comes from: its signature is checked against them before it
 * is installed. dbpath is absolute within the image, e.g.
 * "/usr/lib/sysimage/rpm". epoch fixes install times for reproducibility. */
int install_packages(const char *root, char *const *rpm_paths, const RepoKeys *const *keys, const char *dbpath,
                     uint64_t epoch, Progress *progress);
