/* Installs RPM files into a staging root with librpm: one ordered
 * transaction, scriptlets run chrooted into the root, rpmdb at dbpath inside
 * the root. */
#pragma once

#include <stdint.h>

#include "progress.h"

/* root must exist (empty). dbpath is absolute within the image, e.g.
 * "/usr/lib/sysimage/rpm". epoch fixes install times for reproducibility. */
int install_packages(const char *root, char *const *rpm_paths, const char *dbpath, uint64_t epoch,
                     Progress *progress);
