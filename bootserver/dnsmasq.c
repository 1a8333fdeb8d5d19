/* The supervised dnsmasq process: spawned with a clean environment, restarted
 * with a backoff when it dies, stopped with SIGTERM then SIGKILL. What it is
 * told to do (the configuration) comes from dhcp-config.c. */
#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "dnsmasq.h"
#include "fileio.h"
#include "log.h"
#include "util.h"

#define USEC_PER_SEC 1000000ULL
#define RESTART_DELAY_FIRST_USEC (1 * USEC_PER_SEC)
#define RESTART_DELAY_MAX_USEC (30 * USEC_PER_SEC)
/* An instance that ran this long before dying starts the backoff afresh. */
#define RESTART_RESET_USEC (60 * USEC_PER_SEC)
#define STOP_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* dnsmasq's whole environment: a PATH with the sbin directories. */
#define CHILD_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

struct Dnsmasq {
        DhcpConfig config;     /* defaults filled in */
        char *text;            /* the configuration of the instance that runs or is due to; NULL: none */
        char *program;         /* dnsmasq_path resolved when the current instance was spawned */
        char *pid_file;        /* where its pid is recorded */
        bool stopped;          /* dnsmasq_stop() was called, and no dnsmasq_start() since */
        pid_t pid;             /* 0: not running */
        uint64_t spawned_usec; /* when pid was spawned */
        uint64_t restart_usec; /* when a dead instance is due again; 0: nothing scheduled */
        uint64_t delay_usec;   /* the delay before the next restart after a death */
        unsigned restarts;
};

/* Our copy of c with the defaults filled in, so later comparisons see what
 * is in force. */
static int config_copy_with_defaults(const DhcpConfig *c, DhcpConfig *ret) {
        DhcpConfig n;
        int r;

        r = dhcp_config_copy(c, &n);
        if (r < 0)
                return r;
        if ((!n.tftp_root && !(n.tftp_root = strdup(DHCP_TFTP_ROOT_DEFAULT))) ||
            (!n.dnsmasq_path && !(n.dnsmasq_path = strdup(DHCP_DNSMASQ_PATH_DEFAULT)))) {
                dhcp_config_release(&n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

static int validate_quietly(const DhcpConfig *c) {
        _cleanup_free_ char *error = NULL;
        int r = dhcp_config_validate(c, NULL, &error);

        if (r == -EINVAL)
                log_debug("invalid DHCP configuration: %s", strempty(error));
        return r;
}

int dnsmasq_new(const DhcpConfig *c, Dnsmasq **ret) {
        Dnsmasq *d;
        int r;

        r = validate_quietly(c);
        if (r < 0)
                return r;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        r = config_copy_with_defaults(c, &d->config);
        if (r < 0) {
                free(d);
                return r;
        }
        d->delay_usec = RESTART_DELAY_FIRST_USEC;
        *ret = d;
        return 0;
}

/* Writes text to run_dir/dnsmasq.conf, atomically. */
static int write_conf(const DhcpConfig *c, const char *text) {
        _cleanup_free_ char *path = path_join(c->run_dir, DNSMASQ_CONF_FILE);
        int r;

        if (!path)
                return -ENOMEM;
        r = mkdir_p(c->run_dir, 0755);
        if (r < 0)
                return log_debug_errno(r, "failed to create '%s': %m", c->run_dir);
        r = write_file_atomic(path, text, strlen(text), 0644);
        if (r < 0)
                return log_debug_errno(r, "failed to write '%s': %m", path);
        return 0;
}

/* The start time of pid (field 22 of /proc/pid/stat, in clock ticks since
 * boot), which tells a process from a later one with its pid. Returns 0, or
 * -ESRCH when pid is gone or a zombie. */
static int process_start_time(pid_t pid, unsigned long long *ret) {
        _cleanup_free_ char *path = NULL, *stat = NULL;
        unsigned long long t;
        const char *p;
        char state;

        path = strdup_printf("/proc/%d/stat", (int) pid);
        if (!path)
                return -ENOMEM;
        if (read_full_file(path, 4096, &stat, NULL) < 0)
                return -ESRCH;
        /* "pid (comm) state ppid …": comm may hold anything, even ") " */
        p = strrchr(stat, ')');
        if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                         &state, &t) != 2)
                return -EIO;
        if (state == 'Z' || state == 'X')
                return -ESRCH;
        *ret = t;
        return 0;
}

/* "PID STARTTIME BOOTID": the boot id keeps a file that survived a reboot
 * from naming whatever process has that pid and start time now. */
static char *pid_file_line(pid_t pid) {
        _cleanup_free_ char *boot_id = NULL;
        unsigned long long t;

        if (process_start_time(pid, &t) < 0 ||
            read_full_file("/proc/sys/kernel/random/boot_id", 64, &boot_id, NULL) < 0)
                return NULL;
        boot_id[strcspn(boot_id, "\n")] = 0;
        return strdup_printf("%d %llu %s\n", (int) pid, t, boot_id);
}

/* Ends the dnsmasq that run_dir/dnsmasq.pid names when it still runs: one
 * left behind by a slipwayd that was killed. (PR_SET_PDEATHSIG does not
 * cover that: dnsmasq's switch to the user nobody clears it.) It is not our
 * child, so it is watched through /proc rather than waited for. */
static void kill_stale(const DhcpConfig *c) {
        _cleanup_free_ char *path = path_join(c->run_dir, DNSMASQ_PID_FILE), *s = NULL, *line = NULL;
        unsigned long long recorded, now;
        int pid;

        if (!path || read_full_file(path, 64, &s, NULL) < 0)
                return;
        if (sscanf(s, "%d %llu", &pid, &recorded) != 2 || pid <= 1 || !(line = pid_file_line(pid)) ||
            !streq(line, s))
                return;
        log_warning("stopping dnsmasq (pid %d) left behind by an earlier slipwayd", pid);
        for (int round = 0; round < 2; round++) {
                uint64_t deadline = now_usec() + (round == 0 ? STOP_TIMEOUT_USEC : USEC_PER_SEC);

                (void) kill(pid, round == 0 ? SIGTERM : SIGKILL);
                while (process_start_time(pid, &now) == 0 && now == recorded) {
                        struct timespec pause = { .tv_nsec = 20 * 1000 * 1000 };

                        if (now_usec() >= deadline)
                                break;
                        (void) nanosleep(&pause, NULL);
                }
                if (process_start_time(pid, &now) < 0 || now != recorded)
                        return;
        }
        log_warning("dnsmasq (pid %d) left behind by an earlier slipwayd does not go away", pid);
}

/* Records pid in run_dir/dnsmasq.pid for kill_stale(). */
static void write_pid_file(Dnsmasq *d, pid_t pid) {
        _cleanup_free_ char *line = pid_file_line(pid);

        free(d->pid_file);
        d->pid_file = path_join(d->config.run_dir, DNSMASQ_PID_FILE);
        if (!d->pid_file || !line || write_file_atomic(d->pid_file, line, strlen(line), 0644) < 0)
                log_debug("cannot record dnsmasq's pid %d in '%s'", (int) pid, strempty(d->pid_file));
}

/* In the forked child: only async-signal-safe calls from here to exec. */
static _Noreturn void child_exec(const char *program, char *const *argv, char *const *envp, pid_t parent,
                                 int null_fd, int error_fd, int max_fd) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        int e;

        /* slipwayd gone, by whatever means: dnsmasq goes too */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                goto fail;
        /* ignored signals and the blocked mask survive exec; dnsmasq wants neither */
        for (int s = 1; s < NSIG; s++)
                (void) sigaction(s, &dfl, NULL);
        /* The raw call: glibc's sigprocmask() leaves its own two real-time
         * signals as they are, and a parent may have had them blocked. */
        sigemptyset(&none);
        if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, (size_t) (_NSIG / 8)) < 0)
                goto fail;
        /* a terminal's ^C is for slipwayd, which stops dnsmasq itself */
        if (setpgid(0, 0) < 0)
                goto fail;
        if (dup2(null_fd, STDIN_FILENO) < 0)
                goto fail;
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                (void) dup2(null_fd, STDOUT_FILENO);
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                for (int fd = 3; fd < max_fd; fd++)
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        execve(program, argv, envp);
fail:
        e = errno;
        (void) !write(error_fd, &e, sizeof(e));
        _exit(127);
}

/* Spawns dnsmasq with the configuration file written for d. Returns 0 once
 * dnsmasq has been executed, or the negative errno of what failed. */
static int spawn(Dnsmasq *d) {
        _cleanup_free_ char *program = NULL, *conf = NULL, *conf_arg = NULL;
        _cleanup_close_ int null_fd = -1;
        char *envp[] = { (char *) CHILD_PATH, NULL };
        char *argv[4] = {};
        int pipefd[2], e = 0, max_fd, r;
        pid_t parent = getpid(), pid;
        ssize_t n;

        assert(d->pid == 0);
        kill_stale(&d->config);
        r = dnsmasq_find_program(d->config.dnsmasq_path, &program);
        if (r < 0)
                return log_debug_errno(r, "failed to find '%s': %m", d->config.dnsmasq_path);
        conf = path_join(d->config.run_dir, DNSMASQ_CONF_FILE);
        conf_arg = conf ? strdup_printf("--conf-file=%s", conf) : NULL;
        if (!conf_arg)
                return -ENOMEM;
        argv[0] = program;
        argv[1] = (char *) "--keep-in-foreground";
        argv[2] = conf_arg;

        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
                return negative_errno();
        max_fd = (int) MIN(MAX(sysconf(_SC_OPEN_MAX), 1024L), 65536L);
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close(pipefd[0]);
                close(pipefd[1]);
                return r;
        }
        if (pid == 0)
                child_exec(program, argv, envp, parent, null_fd, pipefd[1], max_fd);
        close(pipefd[1]);
        /* EOF: the exec closed the pipe; an int: why it failed */
        do
                n = read(pipefd[0], &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        close(pipefd[0]);
        if (n == (ssize_t) sizeof(e)) {
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return log_debug_errno(e > 0 ? -e : -EIO, "failed to execute '%s': %m", program);
        }
        free(d->program);
        d->program = TAKE_PTR(program);
        d->pid = pid;
        d->spawned_usec = now_usec();
        write_pid_file(d, pid);
        log_debug("started %s (pid %d) with '%s'", d->program, (int) pid, conf);
        return 0;
}

int dnsmasq_start(Dnsmasq *d) {
        _cleanup_free_ char *text = NULL;
        int r;

        d->stopped = false;
        if (d->config.mode == DHCP_MODE_OFF || d->text)
                return 0; /* nothing to run, or running (or due to restart) already */
        d->delay_usec = RESTART_DELAY_FIRST_USEC;
        r = dnsmasq_config_render(&d->config, &text);
        if (r < 0)
                return r;
        r = write_conf(&d->config, text);
        if (r < 0)
                return r;
        r = spawn(d);
        if (r < 0)
                return r;
        d->text = TAKE_PTR(text);
        return 0;
}

/* SIGTERM, a grace period, SIGKILL; reaps the child. Supervision state is
 * the caller's business. */
static void terminate(Dnsmasq *d) {
        uint64_t deadline;
        pid_t pid = d->pid;

        if (pid <= 0)
                return;
        d->pid = 0;
        if (kill(pid, SIGTERM) < 0 && errno == ESRCH) {
                /* gone already (and maybe reaped by someone else) */
                (void) waitpid(pid, NULL, WNOHANG);
                return;
        }
        deadline = now_usec() + STOP_TIMEOUT_USEC;
        for (;;) {
                struct timespec pause = { .tv_nsec = 20 * 1000 * 1000 };
                pid_t k = waitpid(pid, NULL, WNOHANG);

                if (k == pid || (k < 0 && errno != EINTR))
                        break;
                if (now_usec() >= deadline) {
                        log_warning("dnsmasq (pid %d) did not exit within %llu s of SIGTERM; killing it", (int) pid,
                                    STOP_TIMEOUT_USEC / USEC_PER_SEC);
                        (void) kill(pid, SIGKILL);
                        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                                ;
                        break;
                }
                (void) nanosleep(&pause, NULL);
        }
        if (d->pid_file)
                (void) unlink(d->pid_file);
        log_debug("dnsmasq (pid %d) stopped", (int) pid);
}

int dnsmasq_stop(Dnsmasq *d) {
        terminate(d);
        d->stopped = true;
        d->restart_usec = 0;
        free(d->text);
        d->text = NULL;
        return 0;
}

Dnsmasq *dnsmasq_free(Dnsmasq *d) {
        if (!d)
                return NULL;
        dnsmasq_stop(d);
        dhcp_config_release(&d->config);
        free(d->text);
        free(d->program);
        free(d->pid_file);
        free(d);
        return NULL;
}

/* Puts the next restart after the current delay and doubles the delay. */
static void schedule_restart(Dnsmasq *d, uint64_t now) {
        d->restart_usec = now + d->delay_usec;
        d->delay_usec = MIN(d->delay_usec * 2, RESTART_DELAY_MAX_USEC);
}

int dnsmasq_reload(Dnsmasq *d, const DhcpConfig *c) {
        _cleanup_free_ char *text = NULL;
        DhcpConfig n;
        bool same;
        int r;

        r = validate_quietly(c);
        if (r < 0)
                return r;
        if (c->mode != DHCP_MODE_OFF) {
                r = dnsmasq_config_render(c, &text);
                if (r < 0)
                        return r;
        }
        r = config_copy_with_defaults(c, &n);
        if (r < 0)
                return r;
        same = streq_ptr(d->text, text) && streq(d->config.dnsmasq_path, n.dnsmasq_path);
        dhcp_config_release(&d->config);
        d->config = n;
        if (d->stopped || same)
                return 0;

        if (!text) {
                /* the mode is off now */
                terminate(d);
                d->restart_usec = 0;
                free(d->text);
                d->text = NULL;
                return 1;
        }
        /* the new file first: when it cannot be written, the old dnsmasq runs on */
        r = write_conf(&d->config, text);
        if (r < 0)
                return r;
        terminate(d);
        free(d->text);
        d->text = TAKE_PTR(text);
        d->restart_usec = 0;
        d->delay_usec = RESTART_DELAY_FIRST_USEC;
        r = spawn(d);
        if (r < 0) {
                schedule_restart(d, now_usec());
                return r;
        }
        return 1;
}

/* "exited with status 2 (network: address in use or interface missing)",
 * "was killed by signal 9 (KILL)". */
static void describe_status(int status, char *buf, size_t size) {
        static const char *const meaning[] = {
                [1] = " (configuration)",
                [2] = " (network: address in use, interface missing, no permission)",
                [3] = " (filesystem: missing file or directory, permissions)",
                [4] = " (out of memory)",
        };

        if (status < 0)
                snprintf(buf, size, "was reaped elsewhere, its status is unknown");
        else if (WIFEXITED(status))
                snprintf(buf, size, "exited with status %d%s", WEXITSTATUS(status),
                         WEXITSTATUS(status) < (int) ELEMENTSOF(meaning) && meaning[WEXITSTATUS(status)]
                                 ? meaning[WEXITSTATUS(status)]
                                 : "");
        else if (WIFSIGNALED(status))
                snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
                         strempty(sigabbrev_np(WTERMSIG(status))));
        else
                snprintf(buf, size, "ended with wait status 0x%x", (unsigned) status);
}

int dnsmasq_check(Dnsmasq *d) {
        uint64_t now = now_usec();
        int status = -1, r;

        if (d->stopped || !d->text)
                return 0;
        if (d->pid > 0) {
                char how[128];
                pid_t k = waitpid(d->pid, &status, WNOHANG);

                if (k == 0 || (k < 0 && errno == EINTR)) {
                        if (now - d->spawned_usec >= RESTART_RESET_USEC)
                                d->delay_usec = RESTART_DELAY_FIRST_USEC;
                        return 0;
                }
                if (k < 0)
                        status = -1;
                describe_status(status, how, sizeof(how));
                if (now - d->spawned_usec >= RESTART_RESET_USEC)
                        d->delay_usec = RESTART_DELAY_FIRST_USEC;
                log_warning("dnsmasq (pid %d) %s after %llu s; restarting it in %llu s", (int) d->pid, how,
                            (unsigned long long) ((now - d->spawned_usec) / USEC_PER_SEC),
                            (unsigned long long) (d->delay_usec / USEC_PER_SEC));
                d->pid = 0;
                schedule_restart(d, now);
                return 0;
        }
        if (d->restart_usec == 0 || now < d->restart_usec)
                return 0;
        d->restart_usec = 0;
        /* the file again, in case run_dir was cleaned up under us */
        r = write_conf(&d->config, d->text);
        if (r >= 0)
                r = spawn(d);
        if (r < 0) {
                log_warning_errno(r, "failed to restart dnsmasq: %m; trying again in %llu s",
                                  (unsigned long long) (d->delay_usec / USEC_PER_SEC));
                schedule_restart(d, now);
                return r;
        }
        d->restarts++;
        log_info("dnsmasq restarted (pid %d, restart %u)", (int) d->pid, d->restarts);
        return 1;
}

pid_t dnsmasq_pid(const Dnsmasq *d) {
        return d->pid;
}

unsigned dnsmasq_restarts(const Dnsmasq *d) {
        return d->restarts;
}
