/* Running other programs without a shell: posix_spawn with a chosen
 * environment, output captured through a pipe. A child gets fds 0 to 2 and
 * no other, even one our own parent left open without O_CLOEXEC, and no
 * signal blocked, whatever the caller blocks. */
#pragma once

#include <sys/types.h>

#include "macro.h"

/* The output a capture keeps at most; the rest is read and dropped. */
#define SPAWN_CAPTURE_MAX (64 * 1024)

/* Runs argv (looked up in PATH) with stdin and stdout on /dev/null and stderr
 * captured. The environment is ours without each NAME listed in env_unset,
 * plus the NAME=value entries of env_set (either may be NULL). On return
 * *ret_stderr (when not NULL) holds up to SPAWN_CAPTURE_MAX bytes of stderr,
 * NUL-terminated; the caller frees it. Returns the exit status (0..255),
 * -ECHILD when the program was killed by a signal, or a negative errno when
 * it could not be started. */
int spawn_capture(char *const *argv, char *const *env_unset, char *const *env_set, char **ret_stderr);

/* Starts argv with stdin on /dev/null and stdout and stderr on a pipe whose
 * read end (O_CLOEXEC) goes to *ret_fd; the caller reads it, closes it and
 * reaps *ret_pid. With own_group, the child leads a new process group (its
 * ID is the child's), so that what it starts can be killed with it.
 * Returns 0 or a negative errno. */
int spawn_piped(char *const *argv, bool own_group, pid_t *ret_pid, int *ret_fd);

/* Waits for pid. Returns its exit status (0..255), -ECHILD when a signal
 * killed it, or a negative errno. */
int spawn_wait(pid_t pid);
