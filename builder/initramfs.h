/* Slipway's own initramfs: a newc cpio (libarchive) with busybox, the init
 * script, the kernel modules the slot needs and, when the image has it, the
 * agent. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Finds the kernel in the staging root (/lib/modules/<kver>/vmlinuz, then
 * /boot/vmlinuz-<kver>). Returns -ENOENT when the image has none. */
int kernel_find(const char *root, char **ret_path, char **ret_kver);

/* Writes the initramfs for kernel kver to out_path: modules are taken with
 * their dependencies (modules.dep) from root; every entry has mtime = epoch,
 * uid/gid 0, sorted order. Returns -ENOENT naming a missing module. */
int initramfs_make(const char *root, const char *kver, char *const *modules, uint64_t epoch, const char *out_path);

/* What the x86-64 ELF file b of size bytes needs to run: *ret_interp gets
 * its PT_INTERP (NULL for a static binary), *ret_needed its DT_NEEDED names
 * (NULL when none). Both are the caller's (free(), strv_free()) and are
 * untouched on failure. -ENOEXEC for anything that is not a sane ELF64. */
int initramfs_elf_deps(const uint8_t *b, size_t size, char **ret_interp, char ***ret_needed);
