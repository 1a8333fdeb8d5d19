/* A GRUB emulator for the sim backend and the tests: runs a grub.cfg as
 * GRUB would, for the commands common/grubcfg.c generates (set, search,
 * load_env, save_env, if/elif/else/fi with [ = ], [ != ], [ -z ], [ -n ],
 * menuentry, linux, initrd), and boots the default entry. It interprets
 * the script rather than re-implementing its rule, so a test of it tests
 * the generated grub.cfg.
 *
 * Devices: "search --set=VAR" finds the ESP (by --label: always; by --file:
 * when the file is there) and sets VAR to "esp"; a path "(esp)/x" is
 * ESP/x. save_env rewrites the block in place and refuses a file that is
 * missing or no valid block, as GRUB does. A command GRUB would fail
 * (load_env of a missing file) prints nothing and goes on, as GRUB's
 * script does after an error. */
#pragma once

/* Runs esp_dir/cfg_path and boots: *ret_slot gets the "slipway.slot="
 * of the default entry's linux line, *ret_id (may be NULL; caller frees)
 * its --id. -ENOENT when the default entry is missing or its kernel or
 * initrd is not there (GRUB would stop with "file not found"), -EBADMSG
 * for a script it cannot follow. */
int grub_firmware_boot(const char *esp_dir, const char *cfg_path, char *ret_slot, char **ret_id);
