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

/* The kernel command line: $SLIPWAY_CMDLINE when set, else /proc/cmdline.
 * *ret is the caller's. */
int kernel_cmdline(char **ret);

/* The value of key= in a kernel command line, or NULL; caller frees. */
char *cmdline_value(const char *cmdline, const char *key);

/* Sets up a->api for server (slipway.server= of the command line) unless a
 * server is configured already; logs "MODE: bad slipway.server" and
 * returns -EINVAL for a bad URL. */
int cmdline_server(Agent *a, const char *mode, const char *server);
