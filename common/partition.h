/* What the builder's disk image and the agent agree on about a Slipway
 * disk's GPT beyond names and types. */
#pragma once

#include <stdint.h>

/* Partition attribute bit 63 of Linux partition types (Discoverable
 * Partitions Specification, "no-auto"): tools that find partitions by their
 * type (systemd-dissect, systemd-gpt-auto-generator) skip a partition that
 * has it. Of the two root slots, the one not in use carries it: root-b on a
 * disk as built; the agent moves it when it switches slots. */
#define GPT_FLAG_NO_AUTO (UINT64_C(1) << 63)
