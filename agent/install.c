#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "bootgrub.h"
#include "cycle.h"
#include "fileio.h"
#include "gpt.h"
#include "grubcfg.h"
#include "install.h"
#include "log.h"
#include "manifest.h"
#include "slot.h"
#include "util.h"

/* linux/ext4.h is not a uapi header before 6.x: the ioctl of resize2fs -o. */
#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif

char *cmdline_value(const char *cmdline, const char *key) {
        size_t n = strlen(key);

        for (const char *p = cmdline; p && *p;) {
                while (*p == ' ' || *p == '\n')
                        p++;
                const char *end = strpbrk(p, " \n");
                size_t len = end ? (size_t) (end - p) : strlen(p);
                if (len > n && strncmp(p, key, n) == 0 && p[n] == '=')
                        return strndup(p + n + 1, len - n - 1);
                p = end;
        }
        return NULL;
}

int kernel_cmdline(char **ret) {
        const char *env = getenv("SLIPWAY_CMDLINE");

        if (env) {
                *ret = strdup(env);
                return *ret ? 0 : -ENOMEM;
        }
        return read_full_file("/proc/cmdline", 65536, ret, NULL);
}

int cmdline_server(Agent *a, const char *mode, const char *server) {
        _cleanup_error_ Error e = {};
        int r;

        if (a->api)
                return 0;
        r = api_client_new(server, &a->api, &e);
        if (r < 0)
                return log_error_errno(r, "%s: bad slipway.server \"%s\": %s", mode, server, strempty(e.message));
        api_client_set_timeout(a->api, 30);
        return 0;
}

/* The first whole disk: vd*, sd*, nvme*n*, xvd*, in name order. */
static char *first_disk(void) {
        _cleanup_free_ char *best = NULL;
        struct dirent *de;
        DIR *d = opendir("/sys/block");

        if (!d)
                return NULL;
        while ((de = readdir(d))) {
                const char *n = de->d_name;
                if (!startswith(n, "vd") && !startswith(n, "sd") && !startswith(n, "nvme") && !startswith(n, "xvd"))
                        continue;
                if (!best || strcmp(n, best) < 0) {
                        free(best);
                        best = strdup(n);
                }
        }
        closedir(d);
        return best ? strdup_printf("/dev/%s", best) : NULL;
}

/* The device of partition number part of disk ("/dev/vda" 4 → "/dev/vda4",
 * "/dev/nvme0n1" 4 → "/dev/nvme0n1p4"). */
static char *partition_device(const char *disk, int part) {
        size_t n = strlen(disk);
        bool digit = n > 0 && disk[n - 1] >= '0' && disk[n - 1] <= '9';
        return strdup_printf("%s%s%d", disk, digit ? "p" : "", part);
}

/* Grows the ext4 file system mounted at mnt to the size of its partition
 * dev, online, as resize2fs would (the kernel does the work: no tool needed
 * in the initramfs). A failure leaves the smaller file system, which works. */
static int grow_ext4(const char *mnt, const char *dev) {
        _cleanup_close_ int dfd = -1, mfd = -1;
        uint64_t bytes = 0, blocks;
        struct statfs sf;

        dfd = open(dev, O_RDONLY | O_CLOEXEC);
        mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || mfd < 0 || ioctl(dfd, BLKGETSIZE64, &bytes) < 0 || fstatfs(mfd, &sf) < 0 || sf.f_bsize == 0)
                return log_warning_errno(negative_errno(), "install: cannot size the var file system: %m");
        blocks = bytes / (uint64_t) sf.f_bsize;
        if (blocks <= (uint64_t) sf.f_blocks)
                return 0;
        if (ioctl(mfd, EXT4_IOC_RESIZE_FS, &blocks) < 0)
                return log_warning_errno(negative_errno(), "install: cannot grow the var file system: %m");
        log_info("install: var file system grown to %" PRIu64 " MiB", bytes >> 20);
        return 1;
}

/* Leaves the agent's state where the installed system's agent finds it:
 * lib/slipway/agent.json on the var partition. */
static int seed_var(Agent *a, const char *disk, int fd) {
        _cleanup_free_ char *dev = NULL, *dir = NULL, *path = NULL;
        const char *mnt = "/run/slipway-var";
        int part, r;

        part = gpt_find_partition(fd, "var");
        if (part < 0)
                return log_error_errno(part, "the installed disk has no var partition: %m");
        dev = partition_device(disk, part);
        if (!dev)
                return -ENOMEM;
        r = mkdir_p(mnt, 0755);
        if (r < 0)
                return r;
        if (mount(dev, mnt, "ext4", 0, NULL) < 0)
                return log_error_errno(negative_errno(), "cannot mount '%s': %m", dev);
        (void) grow_ext4(mnt, dev);
        dir = strdup_printf("%s/lib/slipway", mnt);
        path = dir ? path_join(dir, "agent.json") : NULL;
        r = path ? mkdir_p(dir, 0700) : -ENOMEM;
        if (r >= 0)
                r = agent_state_save(path, &a->state);
        (void) umount(mnt);
        return r;
}

/* For an image whose loader is GRUB: the state of a host just brought up
 * in its grubenv (slot a good with version, b empty, a first), whatever
 * the disk artifact carried. The ESP is found by its partition type, as
 * firmware finds it. One grubenv_save(): in place, crash-safe. */
static int seed_grubenv(const char *disk, int fd, const char *version) {
        _cleanup_free_ char *dev = NULL, *env = NULL;
        const char *mnt = "/run/slipway-esp";
        int part, r;

        part = gpt_find_esp(fd);
        if (part < 0)
                return log_error_errno(part, "the installed disk has no EFI System Partition: %m");
        dev = partition_device(disk, part);
        env = path_join(mnt, GRUBCFG_ENV_PATH);
        if (!dev || !env)
                return -ENOMEM;
        r = mkdir_p(mnt, 0755);
        if (r < 0)
                return r;
        if (mount(dev, mnt, "vfat", 0, NULL) < 0)
                return log_error_errno(negative_errno(), "cannot mount the ESP '%s': %m", dev);
        r = bootgrub_install(env, 'a', version);
        if (r < 0)
                log_error_errno(r, "cannot write '%s' on the ESP: %m", GRUBCFG_ENV_PATH);
        else
                log_info("install: grubenv: slot a good with %s", version);
        if (umount(mnt) < 0 && r >= 0)
                r = log_error_errno(negative_errno(), "cannot unmount the ESP: %m");
        return r;
}

int agent_install(Agent *a) {
        _cleanup_free_ char *cmdline = NULL, *server = NULL, *host = NULL, *secret = NULL, *mac = NULL;
        _cleanup_free_ char *disk = NULL, *url = NULL, *image_id = NULL;
        _cleanup_error_ Error error = {};
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_close_ int fd = -1;
        const ManifestArtifact *art;
        _cleanup_(desired_image_release) DesiredImage desired = {};
        uint64_t size = 0, end = 0;
        int r;

        r = kernel_cmdline(&cmdline);
        if (r < 0)
                return log_error_errno(r, "install: cannot read the kernel command line: %m");
        server = cmdline_value(cmdline, "slipway.server");
        host = cmdline_value(cmdline, "slipway.host");
        secret = cmdline_value(cmdline, "slipway.enroll");
        mac = cmdline_value(cmdline, "slipway.mac");
        if (!server || !secret || !mac)
                return log_error_errno(-EINVAL, "install: the kernel command line lacks slipway.server, "
                                                "slipway.enroll or slipway.mac");
        r = cmdline_server(a, "install", server);
        if (r < 0)
                return r;
        log_info("install: host %s (%s) registering with %s", strempty(host), mac, server);
        r = agent_register(a, mac, secret);
        if (r < 0)
                return r;
        a->booted_slot = 'a';
        (void) agent_set_report(a, HOST_INSTALLING, NULL);
        r = agent_checkin(a, NULL, &desired);
        if (r < 0)
                return log_error_errno(r, "install: check-in failed: %s", api_client_error(a->api));
        if (!desired.image) {
                (void) agent_set_report(a, HOST_FAILED, "no image is assigned to this host");
                (void) agent_checkin(a, NULL, NULL);
                return log_error_errno(-ENOENT, "install: the server assigns no image to this host");
        }
        image_id = strdup(desired.image);
        r = image_id ? agent_fetch_manifest(a, &desired, &m, &error) : error_set(&error, -ENOMEM, "out of memory");
        art = m ? manifest_find_artifact(m, "disk") : NULL;
        if (r >= 0 && !art)
                r = error_set(&error, -ENOENT, "image %s:%s has no disk artifact to install", m->name, m->version);
        disk = a->config.disk ? strdup(a->config.disk) : first_disk();
        if (r >= 0 && !disk)
                r = error_set(&error, -ENODEV, "no disk to install on");
        if (r >= 0) {
                fd = open(disk, O_RDWR | O_CLOEXEC);
                if (fd < 0)
                        r = negative_errno();
                if (r >= 0 && ioctl(fd, BLKGETSIZE64, &size) < 0) {
                        struct stat st;
                        r = fstat(fd, &st) < 0 ? negative_errno() : 0;
                        size = (uint64_t) st.st_size;
                }
                if (r < 0)
                        error_set(&error, r, "cannot open the disk '%s': %m", disk);
        }
        if (r >= 0) {
                size_t tried = 0;

                log_info("install: writing %s:%s (%" PRIu64 " bytes) to %s", m->name, m->version, art->size, disk);
                do {
                        free(url);
                        url = agent_blob_url(a, art->sha256);
                        r = url ? stage_fd(a, fd, size, disk, url, art->sha256, art->size, &error)
                                : error_set(&error, -ENOMEM, "out of memory");
                } while (r < 0 && agent_failover(a, r, error.message, &tried));
        }
        if (r >= 0) {
                r = gpt_grow(fd, size, "var", &end);
                if (r < 0)
                        error_set(&error, r, "cannot grow the partition table of '%s': %m", disk);
                else
                        log_info("install: var now ends at sector %" PRIu64, end);
                (void) ioctl(fd, BLKRRPART, NULL);
        }
        if (r >= 0 && streq_ptr(m->loader, "grub")) {
                r = seed_grubenv(disk, fd, m->version);
                if (r < 0)
                        error_set(&error, r, "cannot write the GRUB state on '%s': %m", disk);
        }
        if (r < 0) {
                log_error("install failed: %s", strempty(error.message));
                (void) agent_set_report(a, HOST_FAILED, error.message);
                (void) agent_checkin(a, NULL, NULL);
                return r;
        }
        /* Slot a holds the image now: the disk artifact's root-a is its rootfs. */
        if (state_set(&a->state.slots[0].image, image_id) < 0 || state_set(&a->state.slots[0].version, m->version) < 0)
                return log_oom();
        a->state.slots[0].complete = true;
        r = agent_set_report(a, HOST_INSTALLED, NULL);
        if (r >= 0 && seed_var(a, disk, fd) < 0)
                log_warning("install: the installed system's agent will have to register again");
        (void) agent_checkin(a, NULL, NULL);
        log_info("install: done, rebooting into slot a");
        return a->backend->reboot(a);
}
