/* Just enough GPT for bring-up and slot switches: find a partition by
 * name, grow a disk image written onto a larger disk (move the backup header
 * to the end, extend the last partition), and mark which root slot tools
 * that discover partitions by type may use. */
#pragma once

#include <stdint.h>

#include "partition.h"

/* 1-based number of the partition called name (UTF-16 GPT name compared as
 * ASCII) on the disk open as fd; -ENOENT when there is none, -EBADMSG when
 * the primary header or its entries fail their checks. */
int gpt_find_partition(int fd, const char *name);

/* 1-based number of the first EFI System Partition by its type GUID, as
 * firmware finds it (its name may be anything); errors as above. */
int gpt_find_esp(int fd);

/* Rewrites the GPT of fd for a disk of disk_size bytes: backup header and
 * entries at the end, last usable LBA, and the partition called grow_name
 * extended to the last MiB boundary that fits. Headers and entries get new
 * CRCs; the protective MBR its size. ret_new_end (may be NULL) gets the
 * partition's new last LBA. Returns 0, -EBADMSG for a GPT that does not
 * check out, -ENOENT when grow_name is missing, -EINVAL when another
 * partition lies after it (growing it would overlap), -ENOSPC when the disk is
 * smaller than the table says. */
int gpt_grow(int fd, uint64_t disk_size, const char *grow_name, uint64_t *ret_new_end);

/* Clears GPT_FLAG_NO_AUTO on the partition called active and sets it on the
 * one called inactive, in one rewrite of both tables (backup first, then
 * the primary; fsynced). Other attribute bits stay. Returns 1 when the table
 * was rewritten, 0 when it said so already, -ENOENT when a name is missing,
 * -EINVAL when both names are one partition, -EBADMSG for a GPT that does
 * not check out. */
int gpt_mark_active(int fd, const char *active, const char *inactive);

/* 1 when the partition called name has GPT_FLAG_NO_AUTO, 0 when not; the
 * errors of gpt_find_partition(). */
int gpt_no_auto(int fd, const char *name);
