#include <fcntl.h>
#include <inttypes.h>
#include <time.h>

#include "cycle.h"
#include "fileio.h"
#include "hash.h"
#include "http.h"
#include "install.h"
#include "live.h"
#include "log.h"
#include "manifest.h"
#include "slot.h"
#include "util.h"

/* A download the server broke off is resumed this many times in all. */
#define LIVE_TRIES 5

/* Streams the rootfs into fd, resuming while the server goes away. */
static int live_download(Agent *a, int fd, const char *path, const char *url, const ManifestArtifact *art,
                         Error *error) {
        int r;

        for (unsigned try = 1;; try++) {
                r = stage_fd(a, fd, art->size, path, url, art->sha256, art->size, error);
                if (r >= 0 || !http_error_unreachable(r) || try == LIVE_TRIES)
                        return r;
                log_warning("live: %s; trying again in 2 s", strempty(error->message));
                error_clear(error);
                (void) nanosleep(&(struct timespec) { .tv_sec = 2 }, NULL);
        }
}

/* What the file holds, for /init's console line and for the OS. */
static int write_image_file(Agent *a, const Manifest *m, const char *image) {
        _cleanup_free_ char *path = path_join(a->config.live_dir, LIVE_IMAGE_FILE);
        _cleanup_free_ char *text = strdup_printf("NAME=%s\nVERSION=%s\nIMAGE=%s\n", m->name, m->version, image);

        if (!path || !text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0644);
}

int agent_live(Agent *a) {
        _cleanup_free_ char *cmdline = NULL, *server = NULL, *image = NULL, *signature = NULL, *rootfs_url = NULL;
        _cleanup_free_ char *host = NULL, *url = NULL, *path = NULL;
        _cleanup_error_ Error error = {};
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_close_ int fd = -1;
        const ManifestArtifact *art;
        int r;

        r = kernel_cmdline(&cmdline);
        if (r < 0)
                return log_error_errno(r, "live: cannot read the kernel command line: %m");
        server = cmdline_value(cmdline, "slipway.server");
        image = cmdline_value(cmdline, "slipway.image");
        signature = cmdline_value(cmdline, "slipway.signature");
        rootfs_url = cmdline_value(cmdline, "slipway.rootfs");
        host = cmdline_value(cmdline, "slipway.host");
        if (!server || !image || !signature)
                return log_error_errno(-EINVAL, "live: the kernel command line lacks slipway.server, slipway.image "
                                                "or slipway.signature");
        r = cmdline_server(a, "live", server);
        if (r < 0)
                return r;
        if (rootfs_url && !startswith(rootfs_url, "http://") && !startswith(rootfs_url, "https://"))
                return log_error_errno(-EINVAL, "live: slipway.rootfs is not an http(s) URL: \"%s\"", rootfs_url);
        log_info("live: booting image %.12s from %s%s%s", image, server, host ? " as host " : "", strempty(host));

        /* The manifest is the image named, signed by a key of ours, for us:
         * the checks of an update. The rootfs is then checked against it. */
        r = agent_fetch_manifest(a, &(DesiredImage) { .image = image, .manifest = image, .signature = signature }, &m,
                                 &error);
        if (r < 0)
                return log_error_errno(r, "live boot refused: %s", strempty(error.message));
        art = manifest_find_artifact(m, "rootfs");

        r = mkdir_p(a->config.live_dir, 0700);
        path = path_join(a->config.live_dir, LIVE_ROOTFS_FILE);
        if (r >= 0 && !path)
                r = -ENOMEM;
        if (r >= 0) {
                fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0)
                        r = negative_errno();
        }
        if (r < 0)
                return log_error_errno(r, "live: cannot create the rootfs file in '%s': %m", a->config.live_dir);
        /* Claimed at once, so that a rootfs larger than the memory is one
         * clear error rather than a full tmpfs halfway through. */
        r = -posix_fallocate(fd, 0, (off_t) art->size);
        if (r < 0) {
                (void) unlink(path);
                if (r == -ENOSPC)
                        return log_error_errno(r, "live: the rootfs of %s:%s (%" PRIu64 " bytes) does not fit in "
                                                  "memory ('%s')",
                                               m->name, m->version, art->size, a->config.live_dir);
                return log_error_errno(r, "live: cannot reserve %" PRIu64 " bytes in '%s': %m", art->size, path);
        }
        url = rootfs_url ? strdup(rootfs_url) : agent_blob_url(a, art->sha256);
        if (!url)
                return log_oom();
        log_info("live: fetching the rootfs of %s:%s (%" PRIu64 " bytes) into memory", m->name, m->version, art->size);
        r = live_download(a, fd, path, url, art, &error);
        if (r >= 0)
                r = write_image_file(a, m, image);
        if (r < 0) {
                (void) unlink(path);
                return log_error_errno(r, "live boot failed: %s", error.message ? error.message : strerror(-r));
        }
        log_info("live: %s:%s is in memory, verified against its signed manifest", m->name, m->version);
        return 0;
}
