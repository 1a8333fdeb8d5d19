/* Slipway's own initramfs: a newc cpio (libarchive) with busybox, the init
 * script, the kernel modules the slot needs and, when the image has it, the
 * agent. */
#pragma once

#include <stdint.h>

/* Finds the kernel in the staging root (/lib/modules/<kver>/vmlinuz, then
 * /boot/vmlinuz-<kver>). Returns -ENOENT when the image has none. */
int kernel_find(const char *root, char **ret_path, char **ret_kver);

/* Writes the initramfs for kernel kver to out_path: modules are taken with
 * their dependencies (modules.dep) from root; every entry has mtime = epoch,
 * uid/gid 0, sorted order. Returns -ENOENT naming a missing module. */
int initramfs_make(const char *root, const char *kver, char *const *modules, uint64_t epoch, const char *out_path);
