#include <fcntl.h>
#include <poll.h>
#include <signal.h>

#include "accel.h"
#include "fileio.h"
#include "log.h"
#include "process.h"
#include "util.h"

#define PROBE_TIMEOUT_USEC (8ULL * 1000 * 1000)
#define BANNER "Linux version"

static int boot_id(char ret[64]) {
        _cleanup_free_ char *s = NULL;
        int r = read_full_file("/proc/sys/kernel/random/boot_id", 64, &s, NULL);

        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = 0;
        snprintf(ret, 64, "%s", s);
        return 0;
}

/* Boots kernel under KVM; 1 when its banner shows up in time. */
static int probe(const char *kernel) {
        char *const argv[] = { "qemu-system-x86_64", "-accel", "kvm", "-m", "128", "-nodefaults", "-no-reboot",
                               "-display", "none", "-monitor", "none", "-serial", "stdio", "-kernel",
                               (char *) kernel, "-append", "console=ttyS0 panic=-1", NULL };
        uint64_t deadline = now_usec() + PROBE_TIMEOUT_USEC;
        _cleanup_close_ int fd = -1;
        char tail[512] = "";
        size_t n = 0;
        int found = 0, r;
        pid_t pid;

        r = spawn_piped(argv, false, &pid, &fd);
        if (r < 0)
                return r;
        while (!found) {
                uint64_t now = now_usec();
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char buf[4096];
                ssize_t m;

                if (now >= deadline)
                        break;
                r = poll(&p, 1, (int) ((deadline - now) / 1000) + 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                m = read(fd, buf, sizeof(buf));
                if (m < 0 && errno == EINTR)
                        continue;
                if (m <= 0)
                        break; /* qemu exited: KVM refused or aborted */
                /* keep the last bytes so a banner split over two reads is seen */
                for (ssize_t i = 0; i < m; i++) {
                        if (n == sizeof(tail) - 1) {
                                memmove(tail, tail + sizeof(tail) / 2, n - sizeof(tail) / 2);
                                n -= sizeof(tail) / 2;
                        }
                        tail[n++] = buf[i] ? buf[i] : ' ';
                }
                tail[n] = 0;
                found = strstr(tail, BANNER) != NULL;
        }
        kill(pid, SIGKILL);
        (void) spawn_wait(pid);
        return found;
}

int accel_kvm_usable(const char *kernel, const char *cache_dir) {
        _cleanup_free_ char *cache = NULL, *cached = NULL, *line = NULL;
        char id[64] = "";
        uint64_t t0;
        int r;

        if (access("/dev/kvm", R_OK | W_OK) < 0)
                return 0;
        if (boot_id(id) < 0)
                id[0] = 0;
        if (cache_dir && id[0]) {
                cache = path_join(cache_dir, "kvm-probe");
                if (!cache)
                        return -ENOMEM;
                if (read_full_file(cache, 256, &cached, NULL) >= 0) {
                        const char *v = startswith(cached, id);
                        if (v && streq(v, " yes\n"))
                                return 1;
                        if (v && streq(v, " no\n"))
                                return 0;
                }
        }

        t0 = now_usec();
        r = probe(kernel);
        if (r < 0)
                return r;
        log_info("KVM %s (probe boot of '%s', %.1f s)", r ? "runs guests" : "does not run guests here, using TCG",
                 kernel, (double) (now_usec() - t0) / 1e6);
        if (cache) {
                line = strdup_printf("%s %s\n", id, r ? "yes" : "no");
                /* only a cache: a failure to keep it costs another probe, nothing more */
                if (!line || mkdir_p(cache_dir, 0755) < 0 || write_file_atomic(cache, line, strlen(line), 0644) < 0)
                        log_debug("could not keep the KVM probe result in '%s'", cache);
        }
        return r;
}
