/* Live boot: what the initramfs runs with slipway.mode=live on the kernel
 * command line (the bootserver's live script). */
#pragma once

#include "agent.h"

/* The file that live mode leaves the verified rootfs in, below live-dir;
 * the initramfs mounts it read-only from a loop device. */
#define LIVE_ROOTFS_FILE "rootfs"
/* Beside it: NAME=, VERSION= and IMAGE= of what it holds. */
#define LIVE_IMAGE_FILE "image"

/* Reads slipway.server=, slipway.image= (the image ID: the SHA-256 of its
 * manifest), slipway.signature= (the SHA-256 of the manifest's signature
 * blob) and, optional, slipway.rootfs= (where to get the rootfs; default the
 * server's blob) from the command line; fetches the manifest and checks it
 * as an update would (it is the image, its signature verifies against a key
 * in keys-dir, the architecture is ours, it has a rootfs); then streams the
 * rootfs into live-dir/rootfs (a tmpfs: memory) with the same code as a
 * slot, verified while written and read back. Returns 0 when the file holds
 * exactly the rootfs; on any failure logs one error, removes the file and
 * returns a negative errno. The command line is /proc/cmdline, or
 * $SLIPWAY_CMDLINE. */
int agent_live(Agent *a);
