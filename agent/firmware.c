/* The firmware emulator: systemd-boot 252's default-entry choice and boot
 * counting over an ESP directory. firmware.h lists what it follows and
 * where it simplifies. */

#include <fnmatch.h>
#include <limits.h>

#include "bootentry.h"
#include "fileio.h"
#include "firmware.h"
#include "log.h"
#include "util.h"

/* systemd-boot lowercases ids and the default pattern before matching. */
static int id_matches(const char *file, const char *pattern) {
        _cleanup_free_ char *lower = strdup(file);

        if (!lower)
                return -ENOMEM;
        for (char *p = lower; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char) (*p - 'A' + 'a');
        return fnmatch(pattern, lower, 0) == 0;
}

static bool kernel_exists(const char *esp_dir, const BootEntry *e) {
        _cleanup_free_ char *path = NULL;

        if (isempty(e->kernel))
                return false;
        path = path_join(esp_dir, e->kernel);
        return path && path_exists(path);
}

int firmware_select(const char *esp_dir, const BootEntry *e, size_t n) {
        for (size_t i = 0; i < n && i <= INT_MAX; i++) {
                int r;

                if (!kernel_exists(esp_dir, &e[i]))
                        continue;
                r = id_matches(e[i].file, FIRMWARE_DEFAULT_PATTERN);
                if (r < 0)
                        return r;
                if (r > 0)
                        return (int) i;
        }
        return -ENOENT;
}

int firmware_boot(const char *esp_dir, BootEntry *ret) {
        _cleanup_(bootentry_release) BootEntry chosen = { .tries_left = -1 };
        BootEntry *e = NULL;
        size_t n = 0;
        int r, i;

        r = bootentries_load(esp_dir, &e, &n);
        if (r < 0)
                return r;
        i = firmware_select(esp_dir, e, n);
        r = i < 0 ? i : bootentry_copy(&e[i], &chosen);
        bootentries_free(e, n);
        if (r < 0)
                return r;

        if (chosen.tries_left >= 0) {
                int left = chosen.tries_left > 0 ? chosen.tries_left - 1 : 0;
                int done = chosen.tries_done < INT_MAX ? chosen.tries_done + 1 : INT_MAX;
                char *file = loader_entry_file_name(chosen.id, left, done);

                if (!file)
                        return -ENOMEM;
                r = bootentry_rename(esp_dir, &chosen, left, done);
                if (r < 0) {
                        free(file);
                        return log_debug_errno(r, "firmware: failed to rename boot entry '%s': %m", chosen.file);
                }
                free(chosen.file);
                chosen.file = file;
                chosen.tries_left = left;
                chosen.tries_done = done;
        }
        log_debug("firmware: booting '%s'", chosen.file);
        if (ret) {
                *ret = chosen;
                chosen = (BootEntry) {};
        }
        return 0;
}
