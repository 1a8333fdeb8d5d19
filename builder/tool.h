/* Running the external tools the builder drives (mkfs.erofs, mksquashfs,
 * mkfs.fat, mtools, mke2fs, qemu) and reporting their failures. */
#pragma once

/* Runs argv with stderr captured (see spawn_capture()). On failure logs each
 * line the tool printed, then one error naming the tool (and context, when
 * not NULL, as "for 'context'"). Returns 0, -EIO when the tool failed, or the
 * negative errno of a failure to start it. */
int tool_run(char *const *argv, char *const *env_unset, char *const *env_set, const char *context);
