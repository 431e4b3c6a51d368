// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Test harness for the mrconn C tests.
 *
 * A small, dependency-light toolbox: assertions and a runner, real
 * redis-server processes, TLS test certificates made with the openssl CLI,
 * libuv loop helpers, a scriptable RESP server for behaviour a real Redis
 * cannot produce, and a listener whose connects never complete.
 *
 * Everything a test starts (redis-server processes, temp dirs) is registered
 * and torn down at exit, on SIGINT/SIGTERM/SIGHUP and on a test timeout;
 * children also die with the test program through PR_SET_PDEATHSIG.
 *
 * Not thread-safe unless stated: call from the test's main thread. The CHECK
 * family may be used from any thread (e.g. from a loop thread's callbacks).
 */
#ifndef MRCONN_HARNESS_H
#define MRCONN_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HARNESS_PRINTF(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))

/* ------------------------------------------------------------------------ */
/* 1. Assertions and the test runner                                          */
/* ------------------------------------------------------------------------ */

/* Each returns true when the check held. A failure prints file:line and a
 * message, counts against the running test, and execution continues. */
bool harness_check(bool ok, const char *file, int line, const char *fmt, ...) HARNESS_PRINTF(4, 5);
bool harness_check_eq_int(long long a, long long b, const char *ea, const char *eb, const char *file,
                          int line);
bool harness_check_eq_str(const char *a, const char *b, const char *ea, const char *eb, const char *file,
                          int line);

#define CHECK(cond) harness_check(!!(cond), __FILE__, __LINE__, "CHECK(%s)", #cond)
#define CHECK_MSG(cond, ...) harness_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_EQ_INT(a, b) harness_check_eq_int((long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__)
/* NULL-safe: two NULLs are equal, NULL and a string are not. */
#define CHECK_EQ_STR(a, b) harness_check_eq_str((a), (b), #a, #b, __FILE__, __LINE__)
/* Like CHECK, but leaves the (void) test function on failure. */
#define REQUIRE(cond)                                                                                        \
    do {                                                                                                     \
        if (!CHECK(cond))                                                                                    \
            return;                                                                                          \
    } while (0)

struct harness_test {
    const char *name;
    void (*fn)(void);
};

#define TEST(name) static void name(void)
#define HARNESS_TEST(name) {#name, name}

/*
 * Runs the tests named on argv (all of them when none is named; an unknown
 * name counts as a failure; "--list" prints the names). Prints
 * "PASS <name> (<ms> ms)" or "FAIL <name> (<ms> ms)" per test and finally
 * "N passed, M failed". Returns the exit code: 0 iff M == 0.
 *
 * Also ignores SIGPIPE (hiredis writes with plain send()) and arms a per-test
 * timeout: HARNESS_TIMEOUT seconds from the environment, default 300, 0 = off.
 */
int harness_run(int argc, char **argv, const struct harness_test *tests, size_t n);

/* main() in one line: HARNESS_MAIN(HARNESS_TEST(a), HARNESS_TEST(b)) */
#define HARNESS_MAIN(...)                                                                                    \
    int main(int argc, char **argv) {                                                                        \
        static const struct harness_test harness_tests_[] = {__VA_ARGS__};                                   \
        return harness_run(argc, argv, harness_tests_, sizeof harness_tests_ / sizeof harness_tests_[0]);    \
    }

/* Failures recorded so far in this process. */
unsigned harness_failures(void);

/* ------------------------------------------------------------------------ */
/* Misc                                                                       */
/* ------------------------------------------------------------------------ */

uint64_t now_ms(void); /* CLOCK_MONOTONIC */
uint64_t now_us(void);
void sleep_ms(unsigned ms);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind port 0). Nothing
 * listens on it: handy for "connection refused". -1 on error. */
int harness_free_port(void);

/* Creates a fresh directory under $TMPDIR (or /tmp), removed at exit unless
 * HARNESS_KEEP_TMP is set. 0 on success. */
int harness_mkdtemp(char *out, size_t outlen);

/* ------------------------------------------------------------------------ */
/* 2. redis-server processes                                                  */
/* ------------------------------------------------------------------------ */

typedef struct redis_proc {
    pid_t pid;       /* 0 when not running */
    int port;        /* the port clients under test use (the TLS port for TLS servers) */
    int admin_port;  /* plain-TCP port for redis_cmd & co: == port, except for TLS servers */
    bool tls;
    char dir[256];   /* working dir; redis.log and redis.out (stdout/stderr) live here */
    char certdir[256];
    char extra[512]; /* extra args, kept for redis_restart */
} redis_proc;

/*
 * Starts `redis-server` (from PATH) on 127.0.0.1 with no persistence,
 * --enable-debug-command yes, in a fresh temp dir, and waits (<= 10 s) until
 * it answers PING (any reply, so --requirepass is fine). extra_args may be
 * NULL; it is split on spaces, "double quotes" group (and "" is an empty
 * argument). Later arguments win, so extra_args can override defaults.
 * Returns 0, or -1 (after printing the server's log).
 */
int redis_start(redis_proc *p, const char *extra_args);

/*
 * TLS variant: --tls-port <port> with certdir/server.crt, server.key, ca.crt
 * and --tls-auth-clients no (override with extra, e.g.
 * "--tls-auth-clients yes"). It also listens in plain TCP on admin_port, so
 * that the redis_cmd helpers (which speak no TLS) can still set the server up.
 */
int redis_start_tls(redis_proc *p, const char *certdir, const char *extra_args);

void redis_stop(redis_proc *p);    /* SIGTERM, SIGKILL after 3 s; reaps. No-op if not running. */
void redis_kill(redis_proc *p);    /* SIGKILL; reaps. */
int redis_restart(redis_proc *p);  /* stops it if running, starts again on the same port(s) and dir */
void redis_dump_log(const redis_proc *p); /* prints the tail of its log to stdout */

/*
 * Tiny blocking client (plain TCP on 127.0.0.1). Sends one command, reads
 * its reply into out (may be NULL):
 *   simple string / error / integer: the whole line with its type byte,
 *     e.g. "+OK", "-NOAUTH Authentication required.", ":3";
 *   bulk string: its payload (truncated to outlen - 1); a nil bulk: "$-1";
 *   array / map: the header line only, e.g. "*2".
 * out is always NUL-terminated. Returns 0 for a non-error reply, 1 for an
 * error reply, -1 on I/O failure or a 30 s timeout.
 */
int redis_cmdv(int port, int argc, const char **argv, char *out, size_t outlen);
/* Binary-safe args with explicit lengths. */
int redis_cmdv_len(int port, int argc, const char **argv, const size_t *lens, char *out, size_t outlen);
/* AUTH [user] pass first (user may be NULL); an AUTH error is returned as the reply. */
int redis_cmdv_auth(int port, const char *user, const char *pass, int argc, const char **argv, char *out,
                    size_t outlen);
/* printf-style, then split into arguments like redis_start's extra_args. */
int redis_cmd(int port, char *out, size_t outlen, const char *fmt, ...) HARNESS_PRINTF(4, 5);
int redis_cmd_auth(int port, const char *user, const char *pass, char *out, size_t outlen, const char *fmt,
                   ...) HARNESS_PRINTF(6, 7);

/* Sends a command without waiting for its reply (for DEBUG SLEEP and the
 * like while a loop runs). Returns the connected fd (close it yourself), or
 * -1. redis_recv_reply reads one reply from such an fd, like redis_cmd. */
int redis_send(int port, const char *fmt, ...) HARNESS_PRINTF(2, 3);
int redis_recv_reply(int fd, char *out, size_t outlen, int timeout_ms);

/* connected_clients from INFO clients, not counting the asking client; -1 on error. */
int redis_client_count(int port);
int redis_client_count_auth(int port, const char *user, const char *pass);

/* ------------------------------------------------------------------------ */
/* 3. TLS certificates                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Runs the openssl CLI to create in dir:
 *   ca.crt/ca.key              test CA
 *   server.crt/server.key      CN 127.0.0.1, SAN IP:127.0.0.1 + DNS:localhost, signed by the CA
 *   client.crt/client.key      client cert signed by the CA
 *   client_enc.key             client.key encrypted with passphrase "s3cret" (PKCS#8, AES-256)
 *   other_ca.crt/other_ca.key  an unrelated CA
 * Output of openssl goes to dir/openssl.log. Returns 0 on success.
 */
int tls_make_certs(const char *dir);
#define TLS_CLIENT_KEY_PASS "s3cret"

/* ------------------------------------------------------------------------ */
/* 4. libuv loop helpers                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Runs the loop until pred(arg) is true or timeout_ms passes; returns true
 * iff pred held (pred NULL: just runs for timeout_ms). A repeating 1 ms timer keeps each iteration short; it is
 * closed, and its close completed, before returning. pred runs on this
 * thread between loop iterations.
 */
bool loop_run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, uint64_t timeout_ms);
void loop_run_for(uv_loop_t *loop, uint64_t ms);
/* Handles on the loop that are not closing. */
int loop_count_open_handles(uv_loop_t *loop);
/* What RediSearch does at shutdown: uv_close(h, NULL) every handle not
 * already closing, then one UV_RUN_ONCE. */
void loop_close_all_handles(uv_loop_t *loop);

/*
 * Busy time per loop iteration: the time from one uv_check callback to the
 * next, less what the loop spent blocked in poll (uv_metrics_idle_time). The
 * loop must have been configured with UV_METRICS_IDLE_TIME before it first
 * ran (loop_meter_configure). Work done between uv_run calls, such as a
 * manager call made by the test itself, counts in the iteration around it;
 * the conditions loop_run_until evaluates (the test's own probing) do not.
 * The check handle is unreferenced: it does not keep the loop alive.
 * MRCONN_METER_TRACE=1 in the environment prints every iteration over 1 ms of
 * CPU, with its start on the monotonic clock (to find it in `perf -k mono`).
 */
typedef struct loop_meter {
    uv_check_t check;
    uint64_t last_ns, last_idle_ns, last_cpu_ns;
    uint64_t max_busy_ns; /* longest iteration since the last reset (wall time) */
    uint64_t max_cpu_ns;  /* most CPU time of the loop thread in one iteration:
                             unlike wall time, not inflated when the machine is
                             busy with other work */
    uint64_t iterations;             /* since the last reset */
    uint64_t over_1ms_cpu;           /* iterations with more than 1 ms of CPU time */
    uint64_t probe_ns, probe_cpu_ns; /* loop_run_until's conditions, not counted */
    bool started;
} loop_meter;
int loop_meter_configure(uv_loop_t *loop); /* before the loop's first run */
uint64_t thread_cpu_ns(void);             /* the calling thread's CPU time */
void loop_meter_start(loop_meter *m, uv_loop_t *loop);
void loop_meter_reset(loop_meter *m); /* max back to 0, from the next iteration */
void loop_meter_stop(loop_meter *m);  /* closes the handle; run the loop once after */
/* Runs fn(arg) from a uv_async callback of the loop and returns once it ran:
 * as RediSearch's IO threads make their manager calls (in the poll phase of
 * an iteration). */
void loop_call(uv_loop_t *loop, void (*fn)(void *), void *arg);

/* ------------------------------------------------------------------------ */
/* 5. Scriptable RESP server (see harness_resp_server.c for why it exists)    */
/* ------------------------------------------------------------------------ */

struct resp_server_opts {
    /* Expected AUTH credentials. auth_pass NULL: every AUTH succeeds.
     * auth_pass is binary-safe with auth_pass_len (0: strlen(auth_pass)).
     * auth_user NULL means "default" (what one-argument AUTH implies). */
    const char *auth_user;
    const char *auth_pass;
    size_t auth_pass_len;
    /* Requests of this command (case-insensitive) are swallowed. From then
     * on the connection never replies again, as a stuck server would, so
     * replies cannot get out of order. NULL: none. */
    const char *never_reply_to;
    /* Reply -NOAUTH to anything but AUTH/HELLO/QUIT until AUTH succeeded. */
    bool require_auth;
};

typedef struct resp_server resp_server;

/* opts may be NULL. Returns NULL on failure. */
resp_server *resp_server_start(const struct resp_server_opts *opts);
int resp_server_port(resp_server *s);
void resp_server_stop(resp_server *s);
/* Resets (RST) every client connection; returns once done. */
void resp_server_drop_all(resp_server *s);
/* Requests received with this command name (case-insensitive). */
unsigned long resp_server_count(resp_server *s, const char *cmd);
unsigned long resp_server_auth_count(resp_server *s);
int resp_server_connections(resp_server *s);
/*
 * The last AUTH's arguments. *ulen / *plen: capacity of user / pass on
 * input, full length on output (the copy is truncated to the capacity and
 * NUL-terminated when there is room). user/ulen may be NULL. One-argument
 * AUTH reports an empty user. Returns the number of AUTH arguments (1 or 2),
 * or 0 if no AUTH was received yet.
 */
int resp_server_last_auth(resp_server *s, char *user, size_t *ulen, char *pass, size_t *plen);

/* ------------------------------------------------------------------------ */
/* 6. Listener whose connects never complete                                  */
/* ------------------------------------------------------------------------ */

/*
 * A listening socket on 127.0.0.1 (backlog 0, never accepts) whose accept
 * queue is pre-filled, so the kernel drops further SYNs: a connect() to
 * *port_out stays in progress (for connect-timeout tests). Returns the
 * listening fd or -1. Release it with blackhole_close(fd), which also closes
 * the filler connections.
 */
int blackhole_listener(int *port_out);
void blackhole_close(int listen_fd);

#ifdef __cplusplus
}
#endif

#endif /* MRCONN_HARNESS_H */
