#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "process.h"
#include "util.h"

extern char **environ;

/* The child's environment: ours without the names in unset, then set. */
static char **child_env(char *const *unset, char *const *set) {
        _cleanup_strv_free_ char **env = NULL;

        for (char **e = environ; e && *e; e++) {
                bool skip = false;
                for (char *const *u = unset; u && *u && !skip; u++) {
                        size_t n = strlen(*u);
                        skip = strncmp(*e, *u, n) == 0 && (*e)[n] == '=';
                }
                if (!skip && strv_extend(&env, *e) < 0)
                        return NULL;
        }
        for (char *const *s = set; s && *s; s++)
                if (strv_extend(&env, *s) < 0)
                        return NULL;
        if (!env)
                env = calloc(1, sizeof(char *));
        return TAKE_PTR(env);
}

/* Spawns argv with stdin on /dev/null, stdout on out_fd and stderr on err_fd,
 * and no other fd. */
static int spawn_fds(char *const *argv, char **env, int out_fd, int err_fd, bool own_group, pid_t *ret_pid) {
        _cleanup_close_ int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        int k;

        if (null_fd < 0)
                return negative_errno();
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, null_fd, STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out_fd < 0 ? null_fd : out_fd, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
        /* and nothing else, not even what our own parent let us inherit */
        posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
        posix_spawnattr_init(&attr);
        /* A daemon blocks the signals it waits for (sigtimedwait); its
         * children start with none blocked, or a SIGTERM would not end them. */
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | (own_group ? POSIX_SPAWN_SETPGROUP : 0));
        if (own_group)
                posix_spawnattr_setpgroup(&attr, 0);
        k = posix_spawnp(ret_pid, argv[0], &fa, &attr, argv, env);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        return -k;
}

int spawn_wait(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return -ECHILD;
}

int spawn_capture(char *const *argv, char *const *env_unset, char *const *env_set, char **ret_stderr) {
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_free_ char *buf = NULL;
        int pipefd[2] = { -1, -1 };
        size_t n = 0;
        pid_t pid;
        int k;

        env = child_env(env_unset, env_set);
        buf = malloc(SPAWN_CAPTURE_MAX + 1);
        if (!env || !buf)
                return -ENOMEM;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        k = spawn_fds(argv, env, -1, pipefd[1], false, &pid);
        close(pipefd[1]);
        if (k < 0) {
                close(pipefd[0]);
                return k;
        }
        for (;;) {
                char drain[4096];
                ssize_t m = n < SPAWN_CAPTURE_MAX ? read(pipefd[0], buf + n, SPAWN_CAPTURE_MAX - n)
                                                  : read(pipefd[0], drain, sizeof(drain));
                if (m < 0 && errno == EINTR)
                        continue;
                if (m <= 0)
                        break;
                if (n < SPAWN_CAPTURE_MAX)
                        n += (size_t) m;
        }
        close(pipefd[0]);
        buf[n] = 0;
        k = spawn_wait(pid);
        if (ret_stderr)
                *ret_stderr = TAKE_PTR(buf);
        return k;
}

int spawn_piped(char *const *argv, bool own_group, pid_t *ret_pid, int *ret_fd) {
        int pipefd[2] = { -1, -1 };
        pid_t pid;
        int k;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        k = spawn_fds(argv, environ, pipefd[1], pipefd[1], own_group, &pid);
        close(pipefd[1]);
        if (k < 0) {
                close(pipefd[0]);
                return k;
        }
        *ret_pid = pid;
        *ret_fd = pipefd[0];
        return 0;
}
