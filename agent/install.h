/* Bring-up from bare metal: what the initramfs runs with slipway.mode=install
 * on the kernel command line (the bootserver's install script). */
#pragma once

#include "agent.h"

/* Registers with the one-time enrollment secret from the command line,
 * writes the image's disk artifact onto the first disk (verified while
 * writing and read back), grows the GPT and the var partition to the disk,
 * leaves the agent's state on the var partition, reports `installed` and
 * reboots. The command line is /proc/cmdline, or $SLIPWAY_CMDLINE. */
int agent_install(Agent *a);

/* The value of key= in a kernel command line, or NULL; caller frees. */
char *cmdline_value(const char *cmdline, const char *key);
