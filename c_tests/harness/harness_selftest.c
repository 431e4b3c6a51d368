// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Self-test of the harness. It has its own main(): link the other harness
 * files, not this one, into test programs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- raw-socket helpers ---- */

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool raw_send(int fd, const void *p, size_t n) {
    return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n;
}

static bool raw_send_str(int fd, const char *s) {
    return raw_send(fd, s, strlen(s));
}

/* Reads until `want` bytes arrived, EOF/error, or timeout. Returns bytes read;
 * *err gets the recv error (0 for EOF or timeout). */
static size_t raw_recv(int fd, char *buf, size_t cap, size_t want, int timeout_ms, int *err) {
    size_t got = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    if (err)
        *err = 0;
    while (got < want && got < cap - 1) {
        uint64_t now = now_ms();
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) != 1)
            break;
        ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
        if (r <= 0) {
            if (r < 0 && err)
                *err = errno;
            break;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    return got;
}

/* Reads as many bytes as `want` has and compares. */
#define CHECK_RECV(fd, want)                                                                                 \
    do {                                                                                                     \
        char got_[1024];                                                                                     \
        raw_recv((fd), got_, sizeof got_, strlen(want), 2000, NULL);                                         \
        CHECK_EQ_STR(got_, (want));                                                                          \
    } while (0)

static bool file_exists(const char *dir, const char *name) {
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 && st.st_size > 0;
}

static int sh(const char *fmt, ...) HARNESS_PRINTF(1, 2);
static int sh(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- 1. the runner itself, in a child process ---- */

static void inner_pass(void) {
    CHECK(1 + 1 == 2);
    CHECK_EQ_INT(3, 3);
    CHECK_EQ_STR("a", "a");
    CHECK_EQ_STR(NULL, NULL);
}

static void inner_fail(void) {
    CHECK_EQ_STR("a", NULL);
    CHECK_EQ_INT(1, 2);
    CHECK_MSG(false, "custom %d", 42);
}

/* Runs harness_run in a child with the given argv; returns its exit status. */
static int run_inner(int argc, char **argv, char *out, size_t outlen) {
    static const struct harness_test inner[] = {HARNESS_TEST(inner_pass), HARNESS_TEST(inner_fail)};
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        int rc = harness_run(argc, argv, inner, 2);
        fflush(stdout);
        _exit(rc);
    }
    close(pfd[1]);
    size_t got = 0;
    ssize_t r;
    while (got < outlen - 1 && (r = read(pfd[0], out + got, outlen - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(pfd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *last_line(const char *s) {
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        n--;
    const char *p = s + n;
    while (p > s && p[-1] != '\n')
        p--;
    return p;
}

TEST(runner_counts_and_filters) {
    char out[4096];
    char *all[] = {"x", NULL};
    CHECK_EQ_INT(run_inner(1, all, out, sizeof out), 1);
    CHECK(strncmp(last_line(out), "1 passed, 1 failed", 18) == 0);
    CHECK(strstr(out, "PASS inner_pass (") != NULL);
    CHECK(strstr(out, "FAIL inner_fail (") != NULL);
    CHECK(strstr(out, "custom 42") != NULL);

    char *one[] = {"x", "inner_pass", NULL};
    CHECK_EQ_INT(run_inner(2, one, out, sizeof out), 0);
    CHECK(strncmp(last_line(out), "1 passed, 0 failed", 18) == 0);

    char *bad[] = {"x", "no_such_test", NULL};
    CHECK_EQ_INT(run_inner(2, bad, out, sizeof out), 1);
    CHECK(strncmp(last_line(out), "0 passed, 1 failed", 18) == 0);
}

TEST(clocks) {
    uint64_t a = now_ms(), au = now_us();
    sleep_ms(20);
    uint64_t b = now_ms(), bu = now_us();
    CHECK(b - a >= 19);
    CHECK(bu - au >= 20000);
    CHECK(b - a < 1000);
}

/* ---- 2. redis-server processes ---- */

TEST(two_redis_servers) {
    redis_proc a, b;
    REQUIRE(redis_start(&a, NULL) == 0);
    if (!CHECK(redis_start(&b, NULL) == 0)) {
        redis_stop(&a);
        return;
    }
    CHECK(a.port != b.port);
    CHECK(a.pid > 0 && b.pid > 0);

    char out[256];
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "PING"), 0);
    CHECK_EQ_STR(out, "+PONG");
    CHECK_EQ_INT(redis_cmd(b.port, out, sizeof out, "PING"), 0);
    CHECK_EQ_STR(out, "+PONG");

    /* Replies of each kind, and binary-safe / quoted arguments. */
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "SET k \"hello world\""), 0);
    CHECK_EQ_STR(out, "+OK");
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "GET k"), 0);
    CHECK_EQ_STR(out, "hello world");
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "GET missing"), 0);
    CHECK_EQ_STR(out, "$-1");
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "INCR n"), 0);
    CHECK_EQ_STR(out, ":1");
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "NOSUCHCOMMAND"), 1);
    CHECK(out[0] == '-');
    const char *argv[] = {"SET", "bin", "x\0y"};
    const size_t lens[] = {3, 3, 3};
    CHECK_EQ_INT(redis_cmdv_len(a.port, 3, argv, lens, out, sizeof out), 0);
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "STRLEN bin"), 0);
    CHECK_EQ_STR(out, ":3");
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "DEBUG SLEEP 0"), 0);
    CHECK_EQ_STR(out, "+OK");
    CHECK_EQ_INT(redis_cmd(a.port, out, sizeof out, "CLIENT PAUSE 10 ALL"), 0);
    CHECK_EQ_STR(out, "+OK");

    /* Client counting excludes the asking client. */
    CHECK_EQ_INT(redis_client_count(a.port), 0);
    int fd = raw_connect(a.port);
    CHECK(fd >= 0);
    CHECK_EQ_INT(redis_client_count(a.port), 1);
    close(fd);

    /* A command sent without waiting: the reply arrives later. */
    uint64_t t0 = now_ms();
    int sfd = redis_send(b.port, "DEBUG SLEEP 0.2");
    CHECK(sfd >= 0);
    CHECK(now_ms() - t0 < 150);
    CHECK_EQ_INT(redis_recv_reply(sfd, out, sizeof out, 5000), 0);
    CHECK_EQ_STR(out, "+OK");
    CHECK(now_ms() - t0 >= 190);
    close(sfd);

    int port_a = a.port;
    redis_stop(&a);
    redis_stop(&b);
    CHECK_EQ_INT(a.pid, 0);
    CHECK_EQ_INT(redis_cmd(port_a, out, sizeof out, "PING"), -1);
}

TEST(redis_auth_kill_restart) {
    redis_proc p;
    REQUIRE(redis_start(&p, "--requirepass secret") == 0);
    char out[256];
    CHECK_EQ_INT(redis_cmd(p.port, out, sizeof out, "PING"), 1);
    CHECK(strncmp(out, "-NOAUTH", 7) == 0);
    CHECK_EQ_INT(redis_cmd_auth(p.port, NULL, "secret", out, sizeof out, "PING"), 0);
    CHECK_EQ_STR(out, "+PONG");
    CHECK_EQ_INT(redis_cmd_auth(p.port, "default", "secret", out, sizeof out, "PING"), 0);
    CHECK_EQ_INT(redis_cmd_auth(p.port, NULL, "wrong", out, sizeof out, "PING"), 1);
    CHECK(strncmp(out, "-WRONGPASS", 10) == 0);
    CHECK_EQ_INT(redis_client_count_auth(p.port, NULL, "secret"), 0);

    int port = p.port;
    redis_kill(&p);
    CHECK_EQ_INT(p.pid, 0);
    CHECK_EQ_INT(redis_cmd(port, out, sizeof out, "PING"), -1);
    REQUIRE(redis_restart(&p) == 0);
    CHECK_EQ_INT(p.port, port);
    CHECK_EQ_INT(redis_cmd_auth(p.port, NULL, "secret", out, sizeof out, "CONFIG SET requirepass \"\""), 0);
    CHECK_EQ_INT(redis_cmd(p.port, out, sizeof out, "PING"), 0);
    CHECK_EQ_STR(out, "+PONG");
    redis_stop(&p);
}

TEST(redis_bad_args_fail_fast) {
    redis_proc p;
    uint64_t t0 = now_ms();
    CHECK_EQ_INT(redis_start(&p, "--no-such-option 1"), -1);
    CHECK_EQ_INT(p.pid, 0);
    CHECK(now_ms() - t0 < 5000);
}

/* ---- 3. TLS ---- */

TEST(tls_certs_and_tls_redis) {
    char dir[256];
    REQUIRE(harness_mkdtemp(dir, sizeof dir) == 0);
    uint64_t t0 = now_ms();
    REQUIRE(tls_make_certs(dir) == 0);
    printf("  certs made in %llu ms\n", (unsigned long long)(now_ms() - t0));
    const char *files[] = {"ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key",
                           "client_enc.key", "other_ca.crt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK_MSG(file_exists(dir, files[i]), "missing %s", files[i]);

    /* Chains: ours verify, the unrelated CA does not. */
    CHECK_EQ_INT(sh("cd %s && openssl verify -CAfile ca.crt server.crt client.crt >/dev/null 2>&1", dir), 0);
    CHECK(sh("cd %s && openssl verify -CAfile other_ca.crt server.crt >/dev/null 2>&1", dir) != 0);
    CHECK_EQ_INT(sh("cd %s && openssl verify -CAfile ca.crt -verify_ip 127.0.0.1 server.crt >/dev/null 2>&1",
                    dir),
                 0);
    CHECK_EQ_INT(
        sh("cd %s && openssl verify -CAfile ca.crt -verify_hostname localhost server.crt >/dev/null 2>&1", dir),
        0);
    /* The encrypted key opens with the passphrase only, and matches client.crt. */
    CHECK_EQ_INT(sh("cd %s && openssl pkey -in client_enc.key -passin pass:s3cret -noout 2>/dev/null", dir), 0);
    CHECK(sh("cd %s && openssl pkey -in client_enc.key -passin pass:wrong -noout 2>/dev/null", dir) != 0);
    CHECK(sh("cd %s && grep -q 'ENCRYPTED PRIVATE KEY' client_enc.key", dir) == 0);
    CHECK_EQ_INT(sh("cd %s && test \"$(openssl pkey -in client_enc.key -passin pass:s3cret -pubout)\" = "
                    "\"$(openssl x509 -in client.crt -noout -pubkey)\"",
                    dir),
                 0);

    redis_proc p;
    REQUIRE(redis_start_tls(&p, dir, NULL) == 0);
    CHECK(p.tls);
    CHECK(p.admin_port != p.port);
    char out[256];
    CHECK_EQ_INT(redis_cmd(p.admin_port, out, sizeof out, "PING"), 0);
    CHECK_EQ_STR(out, "+PONG");
    /* Plain text on the TLS port gets no PONG. */
    CHECK(redis_cmd(p.port, out, sizeof out, "PING") != 0 || strcmp(out, "+PONG") != 0);

    /* A real TLS client: redis-cli (if built with TLS), else openssl s_client. */
    if (sh("redis-cli --help 2>&1 | grep -q -- --tls") == 0) {
        CHECK_EQ_INT(sh("redis-cli --tls --cacert %s/ca.crt -h 127.0.0.1 -p %d PING 2>&1 | grep -q PONG", dir,
                        p.port),
                     0);
        /* Against the wrong CA the handshake fails. */
        CHECK(sh("redis-cli --tls --cacert %s/other_ca.crt -h 127.0.0.1 -p %d PING 2>&1 | grep -q PONG", dir,
                 p.port) != 0);
    } else {
        CHECK_EQ_INT(sh("echo | openssl s_client -connect 127.0.0.1:%d -CAfile %s/ca.crt -verify_return_error "
                        ">/dev/null 2>&1",
                        p.port, dir),
                     0);
    }
    redis_stop(&p);
}

/* ---- 4. loop helpers ---- */

static bool flag_pred(void *arg) {
    return *(bool *)arg;
}

static void set_flag(uv_timer_t *t) {
    *(bool *)t->data = true;
}

TEST(loop_helpers) {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    CHECK_EQ_INT(loop_count_open_handles(&loop), 0);

    bool flag = false;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &flag;
    uv_timer_start(&t, set_flag, 30, 0);
    uint64_t t0 = now_ms();
    CHECK(loop_run_until(&loop, flag_pred, &flag, 2000));
    uint64_t el = now_ms() - t0;
    CHECK_MSG(el >= 25 && el < 1000, "elapsed %llu ms", (unsigned long long)el);
    CHECK_EQ_INT(loop_count_open_handles(&loop), 1); /* the user timer, not ours */

    bool never = false;
    t0 = now_ms();
    CHECK(!loop_run_until(&loop, flag_pred, &never, 50));
    el = now_ms() - t0;
    CHECK_MSG(el >= 50 && el < 1000, "elapsed %llu ms", (unsigned long long)el);
    CHECK_EQ_INT(loop_count_open_handles(&loop), 1);

    t0 = now_ms();
    loop_run_for(&loop, 20);
    CHECK(now_ms() - t0 >= 20);

    /* An already-true predicate returns at once. */
    CHECK(loop_run_until(&loop, flag_pred, &flag, 0));

    loop_close_all_handles(&loop);
    CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- 5. the RESP server ---- */

static const char SECRET[] = "se\0cr\r\net"; /* binary: NUL and CRLF inside */
#define SECRET_LEN (sizeof SECRET - 1)

static bool wait_connections(resp_server *s, int want) {
    uint64_t deadline = now_ms() + 2000;
    while (resp_server_connections(s) != want && now_ms() < deadline)
        sleep_ms(2);
    return resp_server_connections(s) == want;
}

TEST(resp_server_behaviour) {
    struct resp_server_opts o = {.auth_user = "internal connection",
                                 .auth_pass = SECRET,
                                 .auth_pass_len = SECRET_LEN,
                                 .never_reply_to = "BLACKHOLE"};
    resp_server *s = resp_server_start(&o);
    REQUIRE(s != NULL);
    int port = resp_server_port(s);
    CHECK(port > 0);
    CHECK_EQ_INT(resp_server_last_auth(s, NULL, NULL, NULL, NULL), 0);

    int fd = raw_connect(port);
    REQUIRE(fd >= 0);
    CHECK(wait_connections(s, 1));
    char buf[512];

    /* Right AUTH, sent one byte at a time to exercise partial reads. */
    char auth[128];
    int n = snprintf(auth, sizeof auth, "*3\r\n$4\r\nAUTH\r\n$19\r\ninternal connection\r\n$%zu\r\n", SECRET_LEN);
    memcpy(auth + n, SECRET, SECRET_LEN);
    n += (int)SECRET_LEN;
    memcpy(auth + n, "\r\n", 2);
    n += 2;
    for (int i = 0; i < n; i++) {
        CHECK(raw_send(fd, auth + i, 1));
        if (i % 7 == 0)
            sleep_ms(1);
    }
    CHECK_RECV(fd, "+OK\r\n");

    char user[64], pass[64];
    size_t ulen = sizeof user, plen = sizeof pass;
    CHECK_EQ_INT(resp_server_last_auth(s, user, &ulen, pass, &plen), 2);
    CHECK_EQ_INT(ulen, 19);
    CHECK(memcmp(user, "internal connection", 19) == 0);
    CHECK_EQ_INT(plen, SECRET_LEN);
    CHECK(memcmp(pass, SECRET, SECRET_LEN) == 0);
    CHECK_EQ_INT(resp_server_auth_count(s), 1);

    /* Wrong AUTH (one-argument form). */
    CHECK(raw_send_str(fd, "*2\r\n$4\r\nauth\r\n$5\r\nwrong\r\n"));
    CHECK_RECV(fd, "-WRONGPASS invalid username-password pair\r\n");
    ulen = sizeof user;
    plen = 2; /* truncated copy, full length reported */
    CHECK_EQ_INT(resp_server_last_auth(s, user, &ulen, pass, &plen), 1);
    CHECK_EQ_INT(ulen, 0);
    CHECK_EQ_INT(plen, 5);
    CHECK(memcmp(pass, "wr", 2) == 0);
    CHECK_EQ_INT(resp_server_auth_count(s), 2);

    /* Pipelining, split mid-request; HELLO; inline command; other commands. */
    CHECK(raw_send_str(fd, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI"));
    sleep_ms(20);
    CHECK(raw_send_str(fd, "NG\r\n*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\nPING\r\n*2\r\n$3\r\nSET\r\n$1\r\nk\r\n"));
    const char *want = "+PONG\r\n+PONG\r\n%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n"
                       "$5\r\nproto\r\n:3\r\n+PONG\r\n+OK\r\n";
    CHECK_RECV(fd, want);
    CHECK_EQ_INT(resp_server_count(s, "ping"), 3);
    CHECK_EQ_INT(resp_server_count(s, "HELLO"), 1);
    CHECK_EQ_INT(resp_server_count(s, "set"), 1);
    CHECK_EQ_INT(resp_server_count(s, "auth"), 2);

    /* BLACKHOLE: no reply, and the connection stays silent afterwards. */
    CHECK(raw_send_str(fd, "*1\r\n$9\r\nBLACKHOLE\r\n*1\r\n$4\r\nPING\r\n"));
    CHECK_EQ_INT(raw_recv(fd, buf, sizeof buf, 1, 200, NULL), 0);
    CHECK_EQ_INT(resp_server_count(s, "blackhole"), 1);
    CHECK_EQ_INT(resp_server_count(s, "ping"), 4);

    /* Another connection is unaffected. */
    int fd2 = raw_connect(port);
    REQUIRE(fd2 >= 0);
    CHECK(raw_send_str(fd2, "*1\r\n$4\r\nPING\r\n"));
    CHECK_RECV(fd2, "+PONG\r\n");
    CHECK(wait_connections(s, 2));

    /* CUT: half a bulk reply, then a reset. */
    CHECK(raw_send_str(fd2, "*1\r\n$3\r\nCUT\r\n"));
    int err = 0;
    size_t got = raw_recv(fd2, buf, sizeof buf, sizeof buf, 2000, &err);
    CHECK_MSG(got == 0 || strcmp(buf, "$10\r\nabc") == 0, "got %zu bytes: %s", got, buf);
    CHECK_MSG(err == ECONNRESET, "recv error %d (%s)", err, strerror(err));
    close(fd2);
    CHECK(wait_connections(s, 1));

    /* drop_all resets everybody; the server keeps accepting. */
    resp_server_drop_all(s);
    CHECK_EQ_INT(resp_server_connections(s), 0);
    got = raw_recv(fd, buf, sizeof buf, sizeof buf, 2000, &err);
    CHECK_EQ_INT(got, 0);
    CHECK_EQ_INT(err, ECONNRESET);
    close(fd);
    fd = raw_connect(port);
    REQUIRE(fd >= 0);
    CHECK(raw_send_str(fd, "PING\r\n")); /* inline form */
    CHECK_RECV(fd, "+PONG\r\n");
    close(fd);
    resp_server_stop(s);
}

TEST(resp_server_require_auth) {
    struct resp_server_opts o = {.auth_pass = "pw", .require_auth = true};
    resp_server *s = resp_server_start(&o);
    REQUIRE(s != NULL);
    int fd = raw_connect(resp_server_port(s));
    REQUIRE(fd >= 0);
    CHECK(raw_send_str(fd, "PING\r\n"));
    CHECK_RECV(fd, "-NOAUTH Authentication required.\r\n");
    CHECK(raw_send_str(fd, "AUTH default pw\r\nPING\r\n"));
    CHECK_RECV(fd, "+OK\r\n+PONG\r\n");
    close(fd);
    resp_server_stop(s);

    /* No expected password: any AUTH is accepted. Also: stop with clients attached. */
    s = resp_server_start(NULL);
    REQUIRE(s != NULL);
    fd = raw_connect(resp_server_port(s));
    REQUIRE(fd >= 0);
    CHECK(raw_send_str(fd, "AUTH whatever\r\n"));
    CHECK_RECV(fd, "+OK\r\n");
    resp_server_stop(s);
    close(fd);
}

/* ---- 6. blackhole listener ---- */

TEST(blackhole_connect_hangs) {
    int port = -1;
    int lfd = blackhole_listener(&port);
    REQUIRE(lfd >= 0);
    CHECK(port > 0);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    CHECK(rc == -1 && errno == EINPROGRESS);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    uint64_t t0 = now_ms();
    CHECK_EQ_INT(poll(&p, 1, 1200), 0); /* still connecting after 1.2 s */
    CHECK(now_ms() - t0 >= 1100);
    int err = -1;
    socklen_t elen = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    CHECK_EQ_INT(err, 0);
    close(fd);
    blackhole_close(lfd);

    /* Closed: now connects are refused promptly. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == -1 && errno == ECONNREFUSED);
    close(fd);
}

TEST(free_port_refuses) {
    int port = harness_free_port();
    CHECK(port > 0);
    CHECK_EQ_INT(raw_connect(port), -1);
}

HARNESS_MAIN(HARNESS_TEST(runner_counts_and_filters), HARNESS_TEST(clocks), HARNESS_TEST(two_redis_servers),
             HARNESS_TEST(redis_auth_kill_restart), HARNESS_TEST(redis_bad_args_fail_fast),
             HARNESS_TEST(tls_certs_and_tls_redis), HARNESS_TEST(loop_helpers),
             HARNESS_TEST(resp_server_behaviour), HARNESS_TEST(resp_server_require_auth),
             HARNESS_TEST(blackhole_connect_hangs), HARNESS_TEST(free_port_refuses))
