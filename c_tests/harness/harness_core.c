// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Assertions, the test runner, clocks, process spawning, and the registry
 * that makes sure nothing a test started outlives the test program.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"
#include "harness_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Assertions                                                                 */
/* ------------------------------------------------------------------------ */

static atomic_uint g_failures;
static pthread_mutex_t g_print_mu = PTHREAD_MUTEX_INITIALIZER;

unsigned harness_failures(void) {
    return atomic_load(&g_failures);
}

bool harness_check(bool ok, const char *file, int line, const char *fmt, ...) {
    if (ok)
        return true;
    atomic_fetch_add(&g_failures, 1);
    va_list ap;
    va_start(ap, fmt);
    /* One lock so that failures reported from several threads do not interleave. */
    pthread_mutex_lock(&g_print_mu);
    printf("  FAILED %s:%d: ", file, line);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&g_print_mu);
    va_end(ap);
    return false;
}

bool harness_check_eq_int(long long a, long long b, const char *ea, const char *eb, const char *file,
                          int line) {
    return harness_check(a == b, file, line, "CHECK_EQ_INT(%s, %s): %lld != %lld", ea, eb, a, b);
}

bool harness_check_eq_str(const char *a, const char *b, const char *ea, const char *eb, const char *file,
                          int line) {
    bool eq = (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
    if (eq)
        return true;
    return harness_check(false, file, line, "CHECK_EQ_STR(%s, %s): %s%s%s != %s%s%s", ea, eb, a ? "\"" : "",
                         a ? a : "NULL", a ? "\"" : "", b ? "\"" : "", b ? b : "NULL", b ? "\"" : "");
}

/* ------------------------------------------------------------------------ */
/* Clocks and small utilities                                                 */
/* ------------------------------------------------------------------------ */

uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t now_ms(void) {
    return now_us() / 1000u;
}

void sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int harness_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ------------------------------------------------------------------------ */
/* Registry of children and temp dirs                                         */
/* ------------------------------------------------------------------------ */

#define MAX_PIDS 128

/* Read from signal handlers without a lock: plain word-sized stores only. */
static volatile pid_t g_pids[MAX_PIDS];
static char **g_dirs;
static size_t g_ndirs;
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_cleanup_once = PTHREAD_ONCE_INIT;

void harness_track_pid(pid_t pid) {
    harness_install_cleanup();
    pthread_mutex_lock(&g_reg_mu);
    for (int i = 0; i < MAX_PIDS; i++) {
        if (g_pids[i] == 0) {
            g_pids[i] = pid;
            break;
        }
    }
    pthread_mutex_unlock(&g_reg_mu);
}

void harness_untrack_pid(pid_t pid) {
    pthread_mutex_lock(&g_reg_mu);
    for (int i = 0; i < MAX_PIDS; i++) {
        if (g_pids[i] == pid)
            g_pids[i] = 0;
    }
    pthread_mutex_unlock(&g_reg_mu);
}

void harness_kill_tracked(void) {
    for (int i = 0; i < MAX_PIDS; i++) {
        pid_t pid = g_pids[i];
        if (pid > 0)
            kill(pid, SIGKILL);
    }
    /* Reap too, so that no zombie is left for a non-reaping init. */
    for (int i = 0; i < MAX_PIDS; i++) {
        pid_t pid = g_pids[i];
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
}

void harness_track_dir(const char *dir) {
    harness_install_cleanup();
    pthread_mutex_lock(&g_reg_mu);
    char **nd = realloc(g_dirs, (g_ndirs + 1) * sizeof *nd);
    if (nd) {
        g_dirs = nd;
        g_dirs[g_ndirs] = strdup(dir);
        if (g_dirs[g_ndirs])
            g_ndirs++;
    }
    pthread_mutex_unlock(&g_reg_mu);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void cleanup_at_exit(void) {
    pthread_mutex_lock(&g_reg_mu);
    for (int i = 0; i < MAX_PIDS; i++) {
        pid_t pid = g_pids[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            g_pids[i] = 0;
        }
    }
    const char *keep = getenv("HARNESS_KEEP_TMP");
    for (size_t i = 0; i < g_ndirs; i++) {
        if (keep && *keep)
            printf("keeping %s\n", g_dirs[i]);
        else
            nftw(g_dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(g_dirs[i]);
    }
    free(g_dirs);
    g_dirs = NULL;
    g_ndirs = 0;
    pthread_mutex_unlock(&g_reg_mu);
}

static void on_fatal_signal(int sig) {
    harness_kill_tracked();
    /* SA_RESETHAND restored the default action: die of the same signal. */
    raise(sig);
}

static void install_cleanup_once(void) {
    atexit(cleanup_at_exit);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

void harness_install_cleanup(void) {
    pthread_once(&g_cleanup_once, install_cleanup_once);
}

int harness_mkdtemp(char *out, size_t outlen) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int n = snprintf(out, outlen, "%s/mrconn-XXXXXX", base);
    if (n < 0 || (size_t)n >= outlen || !mkdtemp(out))
        return -1;
    harness_track_dir(out);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Spawning                                                                   */
/* ------------------------------------------------------------------------ */

pid_t harness_spawn(const char *const *argv, const char *logpath) {
    harness_install_cleanup();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* parent, or -1 */

    /* Child: only async-signal-safe calls until exec (the parent may have threads). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl took effect */
        _exit(126);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int in = open("/dev/null", O_RDONLY);
    int out = logpath ? open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644) : open("/dev/null", O_WRONLY);
    if (in < 0 || out < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    /* Keep the test's sockets (listeners, connections) out of the child. */
    if (close_range(3, ~0U, 0) != 0) {
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

int harness_spawn_wait(const char *const *argv, const char *logpath) {
    pid_t pid = harness_spawn(argv, logpath);
    if (pid < 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ------------------------------------------------------------------------ */
/* Runner                                                                     */
/* ------------------------------------------------------------------------ */

static const char *volatile g_current_test;
static volatile unsigned g_passed, g_failed;
static volatile unsigned g_timeout_s;

static void write_str(const char *s) {
    ssize_t r = write(STDOUT_FILENO, s, strlen(s));
    (void)r;
}

static void write_uint(unsigned v) {
    char buf[16];
    int i = sizeof buf;
    buf[--i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    write_str(buf + i);
}

/* Async-signal-safe: the process is wedged, so report and leave. */
static void on_timeout(int sig) {
    (void)sig;
    harness_kill_tracked();
    write_str("FAIL ");
    write_str(g_current_test ? g_current_test : "?");
    write_str(" (timeout after ");
    write_uint(g_timeout_s);
    write_str(" s)\n");
    write_uint(g_passed);
    write_str(" passed, ");
    write_uint(g_failed + 1);
    write_str(" failed\n");
    _exit(1);
}

static bool selected(const char *name, int argc, char **argv) {
    bool any = false;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        any = true;
        if (strcmp(argv[i], name) == 0)
            return true;
    }
    return !any;
}

int harness_run(int argc, char **argv, const struct harness_test *tests, size_t n) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    harness_install_cleanup();

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0 || strcmp(argv[i], "-l") == 0) {
            for (size_t t = 0; t < n; t++)
                printf("%s\n", tests[t].name);
            return 0;
        }
    }

    const char *tenv = getenv("HARNESS_TIMEOUT");
    g_timeout_s = tenv ? (unsigned)strtoul(tenv, NULL, 10) : 300;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timeout;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    unsigned passed = 0, failed = 0;
    /* A name that matches no test is a failure, never a silent pass. */
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        bool found = false;
        for (size_t t = 0; t < n && !found; t++)
            found = strcmp(tests[t].name, argv[i]) == 0;
        if (!found) {
            printf("FAIL %s (no such test)\n", argv[i]);
            failed++;
        }
    }

    for (size_t t = 0; t < n; t++) {
        if (!selected(tests[t].name, argc, argv))
            continue;
        g_current_test = tests[t].name;
        g_passed = passed;
        g_failed = failed;
        printf("RUN  %s\n", tests[t].name);
        unsigned before = harness_failures();
        uint64_t t0 = now_us();
        alarm(g_timeout_s);
        tests[t].fn();
        alarm(0);
        double ms = (double)(now_us() - t0) / 1000.0;
        bool ok = harness_failures() == before;
        printf("%s %s (%.1f ms)\n", ok ? "PASS" : "FAIL", tests[t].name, ms);
        if (ok)
            passed++;
        else
            failed++;
    }
    g_current_test = NULL;
    printf("%u passed, %u failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}
