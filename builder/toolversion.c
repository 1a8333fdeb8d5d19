#include <archive.h>
#include <guestfs.h>
#include <inttypes.h>
#include <unistd.h>

#include "log.h"
#include "process.h"
#include "toolversion.h"
#include "util.h"

#define OUTPUT_MAX (64 * 1024)

static bool version_char(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr(".+~_-", c);
}

char *toolversion_parse(const char *output) {
        const char *p = output;

        while (p && *p) {
                size_t n = strcspn(p, " \t\r\n");
                bool ok = n > 0 && n <= 64 && p[0] >= '0' && p[0] <= '9' && memchr(p, '.', n);

                for (size_t i = 0; ok && i < n; i++)
                        ok = version_char(p[i]);
                /* "1.5." at the end of a sentence is 1.5 */
                while (ok && n > 1 && p[n - 1] == '.')
                        n--;
                if (ok)
                        return strndup(p, n);
                p += n;
                p += strspn(p, " \t\r\n");
        }
        return NULL;
}

/* Reads all of fd, keeping the first OUTPUT_MAX bytes. */
static int read_capped(int fd, char **ret) {
        _cleanup_free_ char *buf = malloc(OUTPUT_MAX + 1);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                char scratch[4096];
                ssize_t k = n < OUTPUT_MAX ? read(fd, buf + n, OUTPUT_MAX - n) : read(fd, scratch, sizeof(scratch));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                if (n < OUTPUT_MAX)
                        n += (size_t) k;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* Runs argv and returns its stdout and stderr; the exit status must be 0
 * when must_succeed. */
static int run_output(char *const *argv, bool must_succeed, char **ret) {
        _cleanup_free_ char *out = NULL;
        _cleanup_close_ int fd = -1;
        pid_t pid;
        int r, k;

        r = spawn_piped(argv, false, &pid, &fd);
        if (r < 0)
                return r;
        r = read_capped(fd, &out);
        k = spawn_wait(pid);
        if (r < 0)
                return r;
        /* 127: a wrapper (a shell script) that could not run the program */
        if (k == 127)
                return -ENOENT;
        if (must_succeed && k != 0)
                return k < 0 ? k : -ENOENT;
        *ret = TAKE_PTR(out);
        return 0;
}

int toolversion_probe(char *const *argv, char **ret) {
        _cleanup_free_ char *out = NULL;
        char *v;
        int r;

        r = run_output(argv, false, &out);
        if (r < 0)
                return r;
        v = toolversion_parse(out);
        if (!v)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int libguestfs_version(char **ret) {
        struct guestfs_version *v;
        guestfs_h *g;
        char *s;

        g = guestfs_create_flags(GUESTFS_CREATE_NO_ENVIRONMENT);
        if (!g)
                return -ENOMEM;
        guestfs_set_error_handler(g, NULL, NULL);
        v = guestfs_version(g);
        if (!v) {
                guestfs_close(g);
                return -EIO;
        }
        s = strdup_printf("%" PRIi64 ".%" PRIi64 ".%" PRIi64 "%s", v->major, v->minor, v->release, v->extra);
        guestfs_free_version(v);
        guestfs_close(g);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int toolversion_probe_build(RootfsType type, bool disk, bool bios, json_t **ret) {
        /* mkfs.erofs 1.5 has no --version but prints its name and version
         * before it refuses the option (later versions know it); mkfs.fat
         * 4.2 has no version option and prints its banner after the error
         * for a file it cannot create. */
        static const struct {
                const char *name;
                const char *argv[6];
                int rootfs; /* the tool of this rootfs type; -1: a disk tool; -2: a BIOS disk's */
        } tools[] = {
                { "mkfs.erofs", { "mkfs.erofs", "--version" }, ROOTFS_EROFS },
                { "mksquashfs", { "mksquashfs", "-version" }, ROOTFS_SQUASHFS },
                { "mkfs.fat", { "mkfs.fat", "-C", "/dev/null/version-probe", "1" }, -1 },
                { "mtools", { "mcopy", "--version" }, -1 },
                { "mke2fs", { "mke2fs", "-V" }, -1 },
                { "grub-mkimage", { "grub-mkimage", "--version" }, -2 },
        };
        json_t *o = json_object();
        int r;

        if (!o)
                return log_oom();
        for (size_t i = 0; i < ELEMENTSOF(tools); i++) {
                _cleanup_free_ char *v = NULL;

                if (tools[i].rootfs >= 0 ? tools[i].rootfs != (int) type : tools[i].rootfs == -1 ? !disk : !bios)
                        continue;
                r = toolversion_probe((char *const *) tools[i].argv, &v);
                if (r < 0) {
                        json_decref(o);
                        if (r == -EBADMSG)
                                return log_error_errno(r, "cannot tell the version of %s from '%s %s'",
                                                       tools[i].name, tools[i].argv[0], tools[i].argv[1]);
                        return log_error_errno(r, "cannot run %s to tell its version: %m", tools[i].argv[0]);
                }
                if (json_object_set_new(o, tools[i].name, json_string(v)) < 0) {
                        json_decref(o);
                        return log_oom();
                }
        }
        /* The initramfs's compressors, in-process through libarchive (the
         * builder's own code decides the rest of its bytes). */
        if (json_object_set_new(o, "libzstd", json_string(strempty(archive_libzstd_version()))) < 0 ||
            json_object_set_new(o, "zlib", json_string(strempty(archive_zlib_version()))) < 0) {
                json_decref(o);
                return log_oom();
        }
        if (disk) {
                _cleanup_free_ char *v = NULL;

                r = libguestfs_version(&v);
                if (r < 0 || json_object_set_new(o, "libguestfs", json_string(v)) < 0) {
                        json_decref(o);
                        return log_error_errno(r < 0 ? r : -ENOMEM, "cannot tell the version of libguestfs: %m");
                }
        }
        *ret = o;
        return 0;
}

/* The first line argv prints, in *ret; -ENOENT when it prints none. */
static int first_line(char *const argv[], char **ret) {
        _cleanup_free_ char *out = NULL;
        int r;

        r = run_output(argv, true, &out);
        if (r < 0)
                return r;
        out[strcspn(out, "\n")] = 0;
        if (isempty(out))
                return -ENOENT;
        *ret = TAKE_PTR(out);
        return 0;
}

/* dpkg: "pkg:arch: /path" (diversions and several owners aside), then the
 * package's version. */
static int dpkg_owner(const char *path, char **ret) {
        _cleanup_free_ char *out = NULL, *pkg = NULL;
        char *const search[] = { "dpkg-query", "-S", (char *) path, NULL };
        size_t n;
        int r;

        r = run_output(search, true, &out);
        if (r < 0)
                return r;
        n = strcspn(out, ",\n");
        if (n < 3 || !strstr(out, ": "))
                return -ENOENT;
        pkg = strndup(out, (size_t) (strstr(out, ": ") - out));
        if (!pkg)
                return -ENOMEM;
        char *const show[] = { "dpkg-query", "-W", "-f", "${Package} ${Version}", pkg, NULL };
        return first_line(show, ret);
}

static int rpm_owner(const char *path, char **ret) {
        char *const argv[] = { "rpm", "-qf", "--qf", "%{NEVRA}\\n", (char *) path, NULL };

        return first_line(argv, ret);
}

int toolversion_host_package(const char *path, char **ret) {
        _cleanup_free_ char *real = realpath(path, NULL);
        const char *p = real ? real : path;

        /* dpkg-query -S takes anything but an absolute path as a pattern */
        if (p[0] != '/')
                return -ENOENT;
        /* the real path, then the given one: with a merged /usr, dpkg knows
         * /sbin/mke2fs while the file is /usr/sbin/mke2fs */
        if (access("/var/lib/dpkg/status", F_OK) == 0 &&
            (dpkg_owner(p, ret) >= 0 || (path[0] == '/' && dpkg_owner(path, ret) >= 0)))
                return 0;
        if (rpm_owner(p, ret) >= 0)
                return 0;
        return -ENOENT;
}
