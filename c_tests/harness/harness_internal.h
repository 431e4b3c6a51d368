// SPDX-License-Identifier: MIT OR Apache-2.0
/* Shared between the harness's own .c files; not for tests. */
#ifndef MRCONN_HARNESS_INTERNAL_H
#define MRCONN_HARNESS_INTERNAL_H

#include <sys/types.h>

/* Idempotent: atexit cleanup plus SIGINT/SIGTERM/SIGHUP/SIGQUIT handlers. */
void harness_install_cleanup(void);

/* Child processes killed (SIGKILL) and reaped at exit or on a fatal signal. */
void harness_track_pid(pid_t pid);
void harness_untrack_pid(pid_t pid);
/* Async-signal-safe. */
void harness_kill_tracked(void);

/* Directories removed recursively at exit (unless HARNESS_KEEP_TMP is set). */
void harness_track_dir(const char *dir);

/* Fork/exec argv (argv[0] looked up in PATH) with stdout and stderr appended
 * to logpath (or /dev/null when NULL) and stdin from /dev/null; the child
 * dies with us. Returns the child's pid, or -1. */
pid_t harness_spawn(const char *const *argv, const char *logpath);
/* harness_spawn then wait: the exit status (0..255), or -1. */
int harness_spawn_wait(const char *const *argv, const char *logpath);

#endif
