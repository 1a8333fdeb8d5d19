#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "health.h"
#include "log.h"
#include "process.h"
#include "util.h"

#define OUTPUT_MAX 2048

/* Runs one check in its own process group; returns its exit status,
 * -ETIMEDOUT, -ECHILD (signal), or a negative errno when it could not
 * start. ret_output gets up to OUTPUT_MAX bytes of its stdout and stderr.
 * The check ends when it exits (what it left running is killed with its
 * group, and may not hold the output pipe open) or at the deadline (the
 * whole group is killed). */
static int run_check(const char *path, uint64_t timeout_sec, char **ret_output) {
        char *argv[] = { (char *) path, NULL };
        char buf[OUTPUT_MAX + 1], scratch[256];
        size_t have = 0;
        uint64_t deadline = now_usec() + timeout_sec * 1000000ULL;
        pid_t pid;
        int fd, r, status = 0;
        bool timed_out = false, exited = false;

        r = spawn_piped(argv, true, &pid, &fd);
        if (r < 0)
                return r;
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = now_usec();
                ssize_t k;

                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                /* Once it has exited, only what is already in the pipe is read. */
                r = poll(&p, 1, exited ? 0 : (int) MIN((deadline - now) / 1000 + 1, 100));
                if (r < 0 && errno != EINTR)
                        break;
                if (r == 0 && exited)
                        break;
                if (r <= 0) {
                        if (waitpid(pid, &status, WNOHANG) == pid)
                                exited = true;
                        continue;
                }
                /* Past the cap, output is read into scratch and dropped. */
                k = have < OUTPUT_MAX ? read(fd, buf + have, OUTPUT_MAX - have) : read(fd, scratch, sizeof scratch);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                if (have < OUTPUT_MAX)
                        have += (size_t) k;
        }
        close(fd);
        (void) kill(-pid, SIGKILL);
        buf[have] = 0;
        *ret_output = strdup(buf);
        if (!exited) {
                while (waitpid(pid, &status, 0) < 0)
                        if (errno != EINTR)
                                return negative_errno();
        }
        if (timed_out)
                return -ETIMEDOUT;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int health_run(const char *dir, uint64_t timeout_sec, json_t **ret_report, char **ret_failed) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ char *failed = NULL;
        json_t *report = json_object();
        struct dirent *de;
        DIR *d;
        int result = 1;

        d = opendir(dir);
        if (!d && errno != ENOENT) {
                json_decref(report);
                return negative_errno();
        }
        while (d && (de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                struct stat st;

                if (de->d_name[0] == '.')
                        continue;
                p = path_join(dir, de->d_name);
                if (!p || stat(p, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
                        continue;
                if (strv_extend(&names, de->d_name) < 0) {
                        closedir(d);
                        json_decref(report);
                        return -ENOMEM;
                }
        }
        if (d)
                closedir(d);
        if (names)
                qsort(names, strv_length(names), sizeof(char *), name_compare);

        for (size_t i = 0; names && names[i]; i++) {
                _cleanup_free_ char *p = path_join(dir, names[i]), *out = NULL;
                bool required = !endswith(names[i], ".wanted");
                int r = run_check(p, timeout_sec, &out);
                bool ok = r == 0;

                json_object_set_new(report, names[i],
                                    json_pack("{s:b, s:b, s:i, s:s}", "required", required, "ok", ok, "exit", r,
                                              "output", strempty(out)));
                if (ok)
                        log_info("health check '%s' passed", names[i]);
                else
                        log_warning("health check '%s' (%s) failed: %s (%d)", names[i],
                                    required ? "required" : "wanted",
                                    r == -ETIMEDOUT ? "timed out" : r == -ECHILD ? "killed" : "exit status", r);
                if (!ok && required && result == 1) {
                        result = 0;
                        failed = strdup_printf("%s: %s%s", names[i],
                                               r == -ETIMEDOUT ? "timed out after the time limit; " : "",
                                               isempty(out) ? "(no output)" : out);
                }
        }
        if (ret_report)
                *ret_report = report;
        else
                json_decref(report);
        if (ret_failed)
                *ret_failed = TAKE_PTR(failed);
        return result;
}
