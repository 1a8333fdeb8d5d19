/* A firmware emulator for the sim backend and the tests: which Boot Loader
 * Spec entry systemd-boot 252 boots from an ESP directory, and the rename
 * its boot counting does before the try.
 *
 * What it follows of systemd-boot 252 (loader.conf "timeout 0",
 * "default slipway-*", as slipway-build writes it):
 *  - entries are the ".conf" files of loader/entries that are not hidden and
 *    not "auto-*", whose "linux" file exists on the ESP (systemd-boot drops
 *    an entry whose kernel it cannot open);
 *  - menu order is bootentries_sort(): no tries left last, then the id (the
 *    lowercased file name, counter included, in 252) newest first;
 *  - the default is the first entry in menu order whose id matches the
 *    pattern (fnmatch), so an entry with tries left always wins over one at
 *    +0, and an entry at +0 is still booted when nothing else matches;
 *  - an entry with a counter is renamed before the try, +N-M to
 *    +(N-1)-(M+1), never below 0: +0-M becomes +0-(M+1), and "+N" counts as
 *    "+N-0".
 *
 * Where it simplifies:
 *  - loader.conf is not read; the pattern is FIRMWARE_DEFAULT_PATTERN. No
 *    EFI variables (LoaderEntryOneShot, LoaderEntryDefault, "@saved"), no
 *    menu, no Type #2 entries (UKIs in EFI/Linux) or automatic ones, no
 *    "sort-key" ordering (our entries carry none);
 *  - file names bootentry_parse_file_name() rejects are not entries (a
 *    malformed counter such as "+x", which systemd-boot loads as an entry
 *    without a counter; ".CONF"), and the initrd is not checked;
 *  - when no entry matches, -ENOENT (systemd-boot would boot the first entry
 *    of the menu); when the rename fails, the error (systemd-boot logs it and
 *    boots anyway). */
#pragma once

#include "bootentry.h"

#define FIRMWARE_DEFAULT_PATTERN "slipway-*"

/* Index of the entry systemd-boot would pick among e[0..n) (in menu order,
 * as bootentries_load() returns them) on the ESP at esp_dir, or -ENOENT. */
int firmware_select(const char *esp_dir, const BootEntry *e, size_t n);

/* Picks the entry systemd-boot 252 would boot from esp_dir, renames it as
 * its boot counting does before booting (+N-M to +(N-1)-(M+1); nothing for
 * an entry without a counter), crash-safely (rename, fsync of the
 * directory). ret (may be NULL) gets a copy of the chosen entry after the
 * rename; release it with bootentry_release(). -ENOENT when no entry
 * matches. */
int firmware_boot(const char *esp_dir, BootEntry *ret);
