#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fileio.h"
#include "health.h"
#include "log.h"
#include "process.h"
#include "units.h"
#include "util.h"

/* Keeps what a command writes: the first cap bytes, or with tail a window
 * that slides over the output and ends with its last cap bytes. */
typedef struct Capture {
        char *buf;      /* 2 * cap + 1 with tail, cap + 1 without */
        size_t cap, have;
        bool tail, dropped;
} Capture;

/* Reads once from fd into c. Returns bytes read, 0 at the end, negative
 * errno. */
static ssize_t capture_read(Capture *c, int fd) {
        char scratch[256];
        ssize_t k;

        if (c->tail && c->have == 2 * c->cap) {
                memmove(c->buf, c->buf + c->cap, c->cap);
                c->have = c->cap;
                c->dropped = true;
        }
        if (c->tail)
                k = read(fd, c->buf + c->have, 2 * c->cap - c->have);
        else if (c->have < c->cap)
                k = read(fd, c->buf + c->have, c->cap - c->have);
        else /* Past the cap, output is read into scratch and dropped. */
                k = read(fd, scratch, sizeof scratch);
        if (k < 0)
                return negative_errno();
        if (k > 0 && (c->tail || c->have < c->cap))
                c->have += (size_t) k;
        return k;
}

/* The kept text: with tail, the last cap bytes from the start of a line
 * when anything before them was dropped. Caller frees. */
static char *capture_text(Capture *c) {
        const char *s = c->buf;
        size_t n = c->have;

        if (c->tail && n > c->cap) {
                s += n - c->cap;
                n = c->cap;
                c->dropped = true;
        }
        if (c->tail && c->dropped) {
                const char *nl = memchr(s, '\n', n);
                if (nl && nl + 1 < s + n) {
                        n -= (size_t) (nl + 1 - s);
                        s = nl + 1;
                }
        }
        return strndup(s, n);
}

int health_command(char *const *argv, uint64_t timeout_usec, size_t cap, bool tail, char **ret_output) {
        _cleanup_free_ char *buf = malloc(tail ? 2 * cap + 1 : cap + 1);
        Capture c = { .buf = buf, .cap = cap, .tail = tail };
        uint64_t deadline = now_usec() + timeout_usec;
        pid_t pid;
        int fd, r, status = 0;
        bool timed_out = false, exited = false;

        if (!buf)
                return -ENOMEM;
        r = spawn_piped(argv, true, &pid, &fd);
        if (r < 0) {
                *ret_output = strdup("");
                return r;
        }
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
                k = capture_read(&c, fd);
                if (k == -EINTR)
                        continue;
                if (k <= 0)
                        break;
        }
        close(fd);
        /* The check ends when it exits (what it left running is killed with
         * its group, and may not hold the output pipe open) or at the
         * deadline (the whole group is killed). */
        (void) kill(-pid, SIGKILL);
        *ret_output = capture_text(&c);
        if (!exited) {
                while (waitpid(pid, &status, 0) < 0)
                        if (errno != EINTR)
                                return negative_errno();
        }
        if (timed_out)
                return -ETIMEDOUT;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
}

void health_report_add(json_t *report, size_t *used, const char *name, json_t *entry, const char *output) {
        size_t n = strlen(strempty(output));

        if (!report || !entry) {
                json_decref(entry);
                return;
        }
        if (*used + n > HEALTH_REPORT_MAX) {
                n = HEALTH_REPORT_MAX - MIN(*used, HEALTH_REPORT_MAX);
                json_object_set_new(entry, "truncated", json_true());
        }
        json_object_set_new(entry, "output", json_stringn(strempty(output), n));
        *used += n;
        json_object_set_new(report, name, entry);
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The regular files in dir whose names pass want(), sorted by byte order;
 * a missing directory has none. */
static int list_checks(const char *dir, bool (*want)(const char *name, const struct stat *st), char ***ret) {
        _cleanup_strv_free_ char **names = NULL;
        struct dirent *de;
        DIR *d;

        d = opendir(dir);
        if (!d && errno != ENOENT)
                return negative_errno();
        while (d && (de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                struct stat st;

                if (de->d_name[0] == '.')
                        continue;
                p = path_join(dir, de->d_name);
                if (!p || stat(p, &st) < 0 || !S_ISREG(st.st_mode) || !want(de->d_name, &st))
                        continue;
                if (strv_extend(&names, de->d_name) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        if (d)
                closedir(d);
        if (names)
                qsort(names, strv_length(names), sizeof(char *), name_compare);
        *ret = TAKE_PTR(names);
        return 0;
}

static bool want_executable(const char *name, const struct stat *st) {
        (void) name;
        return st->st_mode & 0111;
}

/* greenboot runs every "*.sh", executable or not, with bash. */
static bool want_greenboot(const char *name, const struct stat *st) {
        (void) st;
        return endswith(name, ".sh");
}

/* The verdicts so far. */
typedef struct Judgement {
        json_t *report;
        size_t used;
        char *failed;   /* the first required failure */
        bool ok;
} Judgement;

/* Runs one script and records its verdict. Returns whether it passed. */
static bool run_script(Judgement *j, const char *name, char *const *argv, bool required, uint64_t timeout_sec) {
        _cleanup_free_ char *out = NULL;
        int r = health_command(argv, timeout_sec * 1000000ULL, HEALTH_OUTPUT_MAX, false, &out);
        bool ok = r == 0;

        health_report_add(j->report, &j->used, name,
                          json_pack("{s:b, s:b, s:i}", "required", required, "ok", ok, "exit", r), out);
        if (ok)
                log_info("health check '%s' passed", name);
        else
                log_warning("health check '%s' (%s) failed: %s (%d)", name, required ? "required" : "wanted",
                            r == -ETIMEDOUT ? "timed out" : r == -ECHILD ? "killed" : "exit status", r);
        if (!ok && required && j->ok) {
                j->ok = false;
                j->failed = strdup_printf("%s: %s%s", name, r == -ETIMEDOUT ? "timed out after the time limit; " : "",
                                          isempty(out) ? "(no output)" : out);
        }
        return ok;
}

static int run_health_dir(Judgement *j, const char *dir, uint64_t timeout_sec) {
        _cleanup_strv_free_ char **names = NULL;
        int r = list_checks(dir, want_executable, &names);

        if (r < 0)
                return log_error_errno(r, "cannot read the health checks in '%s': %m", dir);
        for (size_t i = 0; names && names[i]; i++) {
                _cleanup_free_ char *p = path_join(dir, names[i]);
                char *argv[] = { p, NULL };

                if (!p)
                        return -ENOMEM;
                (void) run_script(j, names[i], argv, !endswith(names[i], ".wanted"), timeout_sec);
        }
        return 0;
}

/* Appends the words of one line of the array to l; *done once ")" ends it. */
static int disabled_words(const char *p, char ***l, bool *done) {
        while (*p && !*done) {
                _cleanup_free_ char *w = NULL;
                size_t n = 0;
                char q = 0;

                if (strchr(" \t\r", *p)) {
                        p++;
                        continue;
                }
                if (*p == '#')
                        break;
                if (*p == ')') {
                        *done = true;
                        break;
                }
                if (*p == '"' || *p == '\'')
                        q = *p++;
                while (p[n] && (q ? p[n] != q : !strchr(" \t\r#)", p[n])))
                        n++;
                w = strndup(p, n);
                if (!w || strv_extend(l, w) < 0)
                        return -ENOMEM;
                p += n + (q && p[n] == q);
        }
        return 0;
}

int greenboot_disabled(const char *conf, char ***ret) {
        _cleanup_free_ char *data = NULL;
        _cleanup_strv_free_ char **l = NULL;
        bool in = false, done = false;
        int r;

        r = read_full_file(conf, 64 * 1024, &data, NULL);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return r;
        for (char *line = data, *next; line && !done; line = next) {
                const char *p = line;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!in) {
                        p = startswith(p, "DISABLED_HEALTHCHECKS=(");
                        if (!p)
                                continue;
                        in = true;
                }
                r = disabled_words(p, &l, &done);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* One of greenboot's directories, as greenboot runs it: in name order, and
 * in required.d, once one has failed the rest are skipped; the scripts
 * greenboot.conf disables are left out. Returns whether every required
 * script passed. */
static int run_greenboot_dir(Judgement *j, const char *dir, bool required, char *const *disabled,
                             uint64_t timeout_sec) {
        _cleanup_strv_free_ char **names = NULL;
        int r = list_checks(dir, want_greenboot, &names);

        if (r < 0)
                return log_error_errno(r, "cannot read the greenboot checks in '%s': %m", dir);
        for (size_t i = 0; names && names[i]; i++) {
                _cleanup_free_ char *p = path_join(dir, names[i]);
                char *argv[] = { (char *) "bash", p, NULL };

                if (!p)
                        return -ENOMEM;
                if (strv_contains(disabled, names[i])) {
                        log_info("greenboot check '%s' skipped: disabled in greenboot.conf", p);
                        continue;
                }
                if (!run_script(j, p, argv, required, timeout_sec) && required) {
                        for (size_t k = i + 1; names[k]; k++)
                                log_warning("greenboot check '%s/%s' skipped after a failure", dir, names[k]);
                        return 0;
                }
        }
        return 1;
}

/* Each root's required.d then wanted.d; a required failure ends the run,
 * as it ends greenboot's. */
static int run_greenboot(Judgement *j, char *const *roots, const char *conf, uint64_t timeout_sec) {
        _cleanup_strv_free_ char **disabled = NULL;
        int k = conf ? greenboot_disabled(conf, &disabled) : 0;

        if (k < 0)
                return log_error_errno(k, "cannot read '%s': %m", conf);
        for (size_t i = 0; roots && roots[i]; i++) {
                _cleanup_free_ char *req = path_join(roots[i], "required.d"), *want = path_join(roots[i], "wanted.d");
                int r;

                if (!req || !want)
                        return -ENOMEM;
                r = run_greenboot_dir(j, req, true, disabled, timeout_sec);
                if (r <= 0)
                        return r;
                r = run_greenboot_dir(j, want, false, disabled, timeout_sec);
                if (r < 0)
                        return r;
        }
        return 0;
}

int health_judge(const HealthConfig *c, json_t **ret_report, char **ret_failed) {
        Judgement j = { .report = json_object(), .ok = true };
        int r = 0;

        if (!j.report)
                return -ENOMEM;
        if (c->required_units || c->no_failed_units || c->boot_complete) {
                _cleanup_free_ char *failed = NULL;
                r = units_judge(c, j.report, &j.used, &failed);
                if (r == 0) {
                        j.ok = false;
                        j.failed = TAKE_PTR(failed);
                }
        }
        if (r >= 0 && c->dir)
                r = run_health_dir(&j, c->dir, c->timeout_sec);
        if (r >= 0 && c->greenboot_dirs)
                r = run_greenboot(&j, c->greenboot_dirs, c->greenboot_conf, c->timeout_sec);
        if (r < 0) {
                json_decref(j.report);
                free(j.failed);
                return r;
        }
        if (ret_report)
                *ret_report = j.report;
        else
                json_decref(j.report);
        if (ret_failed)
                *ret_failed = j.failed;
        else
                free(j.failed);
        return j.ok;
}

int health_run(const char *dir, uint64_t timeout_sec, json_t **ret_report, char **ret_failed) {
        HealthConfig c = { .dir = dir, .timeout_sec = timeout_sec };
        return health_judge(&c, ret_report, ret_failed);
}
