/* The disk backend: a real host. Slots are the GPT partitions named root-a
 * and root-b, the ESP is mounted at esp-dir, the booted slot comes from the
 * kernel command line (slipway.slot=) and the booted entry from
 * systemd-boot's LoaderEntrySelected EFI variable. The no-auto marks are
 * attributes in the GPT of the disk that holds the slots. */
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "agent.h"
#include "fileio.h"
#include "gpt.h"
#include "loaderentry.h"
#include "log.h"
#include "process.h"
#include "util.h"

#define LOADER_ENTRY_SELECTED \
        "/sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

static int disk_init(Agent *a _unused_) {
        return 0;
}

/* An EFI variable holding a UTF-16LE string, as ASCII. */
static char *efivar_string(const char *path) {
        _cleanup_free_ char *data = NULL;
        size_t n, k = 0;
        char *s;

        if (read_full_file(path, 4096, &data, &n) < 0 || n < 4)
                return NULL;
        s = malloc(n / 2 + 1);
        if (!s)
                return NULL;
        for (size_t i = 4; i + 1 < n; i += 2) {
                if (data[i] == 0 && data[i + 1] == 0)
                        break;
                s[k++] = data[i + 1] == 0 ? data[i] : '?';
        }
        s[k] = 0;
        return s;
}

static int disk_booted(Agent *a _unused_, char *ret_slot, char **ret_entry, char *ret_boot_id) {
        _cleanup_free_ char *cmdline = NULL, *boot_id = NULL;
        const char *p;
        char *id;

        if (read_full_file("/proc/cmdline", 65536, &cmdline, NULL) < 0)
                return -EIO;
        p = strstr(cmdline, LOADER_SLOT_KEY);
        p = p ? p + strlen(LOADER_SLOT_KEY) : NULL;
        *ret_slot = p && (*p == 'a' || *p == 'b') ? *p : 'a';
        if (read_full_file("/proc/sys/kernel/random/boot_id", 64, &boot_id, NULL) < 0)
                return -EIO;
        snprintf(ret_boot_id, 33, "%.*s", (int) strcspn(boot_id, "\n"), boot_id);
        id = efivar_string(LOADER_ENTRY_SELECTED);
        /* systemd-boot's entry IDs are the file names, ".conf" included. */
        *ret_entry = !id ? NULL : endswith(id, ".conf") ? strdup(id) : strdup_printf("%s.conf", id);
        free(id);
        return 0;
}

static int disk_slot_open(Agent *a, char slot, int flags, int *ret_fd, uint64_t *ret_size) {
        _cleanup_free_ char *p = strdup_printf("/dev/disk/by-partlabel/root-%c", slot);
        uint64_t size = 0;
        int fd;

        if (!p)
                return -ENOMEM;
        if ((flags & O_ACCMODE) != O_RDONLY && slot == a->booted_slot)
                return -EBUSY;
        fd = open(p, flags | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
                struct stat st;
                if (fstat(fd, &st) < 0) {
                        close(fd);
                        return negative_errno();
                }
                size = (uint64_t) st.st_size;
        }
        *ret_fd = fd;
        *ret_size = size;
        return 0;
}

/* The whole disk (/dev/NAME) that holds the partition at path, from
 * sysfs: the partition's directory sits in its disk's. -ENOTBLK when path
 * is not a partition. */
static int disk_of_partition(const char *path, char **ret) {
        _cleanup_free_ char *sys = NULL, *real = NULL, *flag = NULL;
        struct stat st;
        char *slash;

        if (stat(path, &st) < 0)
                return negative_errno();
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        sys = strdup_printf("/sys/dev/block/%u:%u", major(st.st_rdev), minor(st.st_rdev));
        if (!sys)
                return -ENOMEM;
        real = realpath(sys, NULL);
        if (!real)
                return negative_errno();
        flag = path_join(real, "partition");
        if (!flag)
                return -ENOMEM;
        if (access(flag, F_OK) < 0)
                return -ENOTBLK;
        slash = strrchr(real, '/');
        if (!slash || slash == real)
                return -ENOTBLK;
        *slash = 0;
        *ret = strdup_printf("/dev/%s", strrchr(real, '/') + 1);
        return *ret ? 0 : -ENOMEM;
}

static int disk_mark_active(Agent *a _unused_, char slot) {
        _cleanup_free_ char *part = strdup_printf("/dev/disk/by-partlabel/root-%c", slot), *disk = NULL;
        _cleanup_close_ int fd = -1;
        char active[] = "root-?", inactive[] = "root-?";
        int r;

        if (!part)
                return -ENOMEM;
        r = disk_of_partition(part, &disk);
        if (r < 0)
                return r;
        fd = open(disk, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        active[5] = slot;
        inactive[5] = other_slot(slot);
        return gpt_mark_active(fd, active, inactive);
}

static const char *disk_esp_dir(Agent *a) {
        return a->config.esp_dir;
}

static int disk_reboot(Agent *a) {
        sync();
        if (a->config.reboot_command) {
                char *argv[] = { "/bin/sh", "-c", a->config.reboot_command, NULL };
                int r = spawn_capture(argv, NULL, NULL, NULL);
                return r == 0 ? 0 : r < 0 ? r : -EIO;
        }
        if (reboot(RB_AUTOBOOT) < 0)
                return negative_errno();
        return -EIO;
}

const Backend backend_disk = {
        .name = "disk",
        .init = disk_init,
        .booted = disk_booted,
        .slot_open = disk_slot_open,
        .esp_dir = disk_esp_dir,
        .mark_active = disk_mark_active,
        .reboot = disk_reboot,
};
