// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * redis-server processes for tests, and a tiny blocking RESP client used to
 * set them up (CONFIG SET, CLIENT PAUSE, DEBUG SLEEP, INFO clients).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"
#include "harness_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD_TIMEOUT_MS 30000
#define MAX_ARGS 64

/* ------------------------------------------------------------------------ */
/* Argument splitting                                                         */
/* ------------------------------------------------------------------------ */

/* In place: spaces separate, "double quotes" group, "" is an empty argument. */
static int split_args(char *s, char **argv, int max) {
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        if (!*s)
            return n;
        if (n == max)
            return -1;
        if (*s == '"') {
            char *end = strchr(s + 1, '"');
            if (!end)
                return -1;
            *end = '\0';
            argv[n++] = s + 1;
            s = end + 1;
        } else {
            argv[n++] = s;
            while (*s && *s != ' ' && *s != '\t' && *s != '\n')
                s++;
            if (*s)
                *s++ = '\0';
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Client                                                                     */
/* ------------------------------------------------------------------------ */

struct rbuf {
    int fd;
    uint64_t deadline_ms;
    size_t len, pos;
    char buf[8192];
};

static int connect_local(int port, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS)
            goto fail;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t elen = sizeof err;
        if (poll(&pfd, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err)
            goto fail;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
fail:
    close(fd);
    return -1;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline_ms) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            uint64_t now = now_ms();
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (now >= deadline_ms || poll(&pfd, 1, (int)(deadline_ms - now)) != 1)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

static int rb_fill(struct rbuf *r) {
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (r->len == sizeof r->buf)
        return -1;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= r->deadline_ms)
            return -1;
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(r->deadline_ms - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr != 1)
            return -1;
        ssize_t got = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, MSG_DONTWAIT);
        if (got > 0) {
            r->len += (size_t)got;
            return 0;
        }
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return -1; /* EOF or error */
    }
}

/* One CRLF-terminated line, without the CRLF, into line (truncated). */
static int rb_line(struct rbuf *r, char *line, size_t cap) {
    for (;;) {
        char *start = r->buf + r->pos;
        char *nl = memchr(start, '\n', r->len - r->pos);
        if (nl) {
            size_t n = (size_t)(nl - start);
            if (n > 0 && start[n - 1] == '\r')
                n--;
            size_t c = n < cap - 1 ? n : cap - 1;
            memcpy(line, start, c);
            line[c] = '\0';
            r->pos += (size_t)(nl - start) + 1;
            return 0;
        }
        if (rb_fill(r) != 0)
            return -1;
    }
}

/* Consumes n bytes, copying what fits (cap - 1) into out. */
static int rb_bytes(struct rbuf *r, char *out, size_t cap, size_t n) {
    size_t copied = 0;
    while (n > 0) {
        if (r->pos == r->len && rb_fill(r) != 0)
            return -1;
        size_t avail = r->len - r->pos;
        size_t take = avail < n ? avail : n;
        if (out && copied < cap - 1) {
            size_t c = take < cap - 1 - copied ? take : cap - 1 - copied;
            memcpy(out + copied, r->buf + r->pos, c);
            copied += c;
        }
        r->pos += take;
        n -= take;
    }
    if (out)
        out[copied] = '\0';
    return 0;
}

static int read_reply(struct rbuf *r, char *out, size_t outlen) {
    char line[512];
    char dummy[1];
    if (!out || outlen == 0) {
        out = dummy;
        outlen = sizeof dummy;
    }
    out[0] = '\0';
    if (rb_line(r, line, sizeof line) != 0)
        return -1;
    if (line[0] == '$') {
        long long n = strtoll(line + 1, NULL, 10);
        if (n < 0) {
            snprintf(out, outlen, "%s", line);
            return 0;
        }
        if (rb_bytes(r, out, outlen, (size_t)n) != 0 || rb_bytes(r, NULL, 0, 2) != 0)
            return -1;
        return 0;
    }
    snprintf(out, outlen, "%s", line);
    return line[0] == '-' ? 1 : 0;
}

static int send_command(int fd, int argc, const char **argv, const size_t *lens, uint64_t deadline_ms) {
    size_t cap = 32;
    for (int i = 0; i < argc; i++)
        cap += (lens ? lens[i] : strlen(argv[i])) + 32;
    char *buf = malloc(cap);
    if (!buf)
        return -1;
    size_t n = (size_t)snprintf(buf, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);
        n += (size_t)snprintf(buf + n, cap - n, "$%zu\r\n", l);
        memcpy(buf + n, argv[i], l);
        n += l;
        buf[n++] = '\r';
        buf[n++] = '\n';
    }
    int rc = send_all(fd, buf, n, deadline_ms);
    free(buf);
    return rc;
}

static int cmd_io(int port, const char *user, const char *pass, int argc, const char **argv,
                  const size_t *lens, char *out, size_t outlen) {
    if (out && outlen)
        out[0] = '\0';
    struct rbuf *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    int rc = -1;
    r->deadline_ms = now_ms() + CMD_TIMEOUT_MS;
    r->fd = connect_local(port, CMD_TIMEOUT_MS);
    if (r->fd < 0)
        goto done;
    if (pass) {
        const char *auth[3] = {"AUTH", user ? user : pass, pass};
        if (send_command(r->fd, user ? 3 : 2, auth, NULL, r->deadline_ms) != 0)
            goto done;
        rc = read_reply(r, out, outlen);
        if (rc != 0)
            goto done;
        rc = -1;
    }
    if (send_command(r->fd, argc, argv, lens, r->deadline_ms) != 0)
        goto done;
    rc = read_reply(r, out, outlen);
done:
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    return rc;
}

int redis_cmdv_len(int port, int argc, const char **argv, const size_t *lens, char *out, size_t outlen) {
    return cmd_io(port, NULL, NULL, argc, argv, lens, out, outlen);
}

int redis_cmdv(int port, int argc, const char **argv, char *out, size_t outlen) {
    return cmd_io(port, NULL, NULL, argc, argv, NULL, out, outlen);
}

int redis_cmdv_auth(int port, const char *user, const char *pass, int argc, const char **argv, char *out,
                    size_t outlen) {
    return cmd_io(port, user, pass, argc, argv, NULL, out, outlen);
}

static int vcmd(int port, const char *user, const char *pass, char *out, size_t outlen, const char *fmt,
                va_list ap) {
    char line[4096];
    char *argv[MAX_ARGS];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    int argc = split_args(line, argv, MAX_ARGS);
    if (argc <= 0)
        return -1;
    return cmd_io(port, user, pass, argc, (const char **)argv, NULL, out, outlen);
}

int redis_cmd(int port, char *out, size_t outlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vcmd(port, NULL, NULL, out, outlen, fmt, ap);
    va_end(ap);
    return rc;
}

int redis_cmd_auth(int port, const char *user, const char *pass, char *out, size_t outlen, const char *fmt,
                   ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vcmd(port, user, pass, out, outlen, fmt, ap);
    va_end(ap);
    return rc;
}

int redis_send(int port, const char *fmt, ...) {
    char line[4096];
    char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    int argc = split_args(line, argv, MAX_ARGS);
    if (argc <= 0)
        return -1;
    int fd = connect_local(port, CMD_TIMEOUT_MS);
    if (fd < 0)
        return -1;
    if (send_command(fd, argc, (const char **)argv, NULL, now_ms() + CMD_TIMEOUT_MS) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int redis_recv_reply(int fd, char *out, size_t outlen, int timeout_ms) {
    struct rbuf *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->fd = fd;
    r->deadline_ms = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    /* Bytes after this reply, if the server already sent any, are dropped:
     * meant for one command per connection, as redis_send makes. */
    int rc = read_reply(r, out, outlen);
    free(r);
    return rc;
}

int redis_client_count_auth(int port, const char *user, const char *pass) {
    char info[8192];
    const char *argv[] = {"INFO", "clients"};
    if (cmd_io(port, user, pass, 2, argv, NULL, info, sizeof info) != 0)
        return -1;
    const char *p = strstr(info, "connected_clients:");
    if (!p)
        return -1;
    return atoi(p + strlen("connected_clients:")) - 1;
}

int redis_client_count(int port) {
    return redis_client_count_auth(port, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Processes                                                                  */
/* ------------------------------------------------------------------------ */

static void path_in(char *out, size_t cap, const char *dir, const char *file) {
    snprintf(out, cap, "%s/%s", dir, file);
}

static pid_t spawn_redis(const redis_proc *p) {
    char port[16], admin[16], logfile[300], outfile[300];
    char cert[300], key[300], ca[300];
    char extra[sizeof p->extra];
    char *extra_argv[MAX_ARGS];
    const char *argv[2 * MAX_ARGS];
    int n = 0;

    snprintf(port, sizeof port, "%d", p->port);
    snprintf(admin, sizeof admin, "%d", p->admin_port);
    path_in(logfile, sizeof logfile, p->dir, "redis.log");
    path_in(outfile, sizeof outfile, p->dir, "redis.out");

    argv[n++] = "redis-server";
    if (p->tls) {
        path_in(cert, sizeof cert, p->certdir, "server.crt");
        path_in(key, sizeof key, p->certdir, "server.key");
        path_in(ca, sizeof ca, p->certdir, "ca.crt");
        argv[n++] = "--port";
        argv[n++] = admin;
        argv[n++] = "--tls-port";
        argv[n++] = port;
        argv[n++] = "--tls-cert-file";
        argv[n++] = cert;
        argv[n++] = "--tls-key-file";
        argv[n++] = key;
        argv[n++] = "--tls-ca-cert-file";
        argv[n++] = ca;
        argv[n++] = "--tls-auth-clients";
        argv[n++] = "no";
    } else {
        argv[n++] = "--port";
        argv[n++] = port;
    }
    const char *fixed[] = {"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                           "--dir", p->dir, "--logfile", logfile, "--enable-debug-command", "yes"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];

    snprintf(extra, sizeof extra, "%s", p->extra);
    int ne = split_args(extra, extra_argv, MAX_ARGS);
    if (ne < 0)
        return -1;
    for (int i = 0; i < ne; i++)
        argv[n++] = extra_argv[i];
    argv[n] = NULL;
    return harness_spawn(argv, outfile);
}

static bool reap(redis_proc *p, int options) {
    int st;
    pid_t r = waitpid(p->pid, &st, options);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        harness_untrack_pid(p->pid);
        p->pid = 0;
        return true;
    }
    return false;
}

/* 0: ready; -2: exited (reaped); -3: another server answers on the port
 * (ours killed); -1: no answer in time (killed). */
static int launch_and_wait(redis_proc *p) {
    pid_t pid = spawn_redis(p);
    if (pid < 0)
        return -1;
    p->pid = pid;
    harness_track_pid(pid);
    uint64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        if (reap(p, WNOHANG))
            return -2;
        /* Any reply (INFO's text, -NOAUTH, -LOADING) means a server serves
         * requests there; when it is INFO's text, it must name our process:
         * another test run may have taken the same free port first. */
        struct rbuf *r = calloc(1, sizeof *r);
        if (!r)
            break;
        r->deadline_ms = now_ms() + 500;
        r->fd = connect_local(p->admin_port, 200);
        int rc = -1;
        char reply[4096];
        const char *info[] = {"INFO", "server"};
        if (r->fd >= 0) {
            if (send_command(r->fd, 2, info, NULL, r->deadline_ms) == 0)
                rc = read_reply(r, reply, sizeof reply);
            close(r->fd);
        }
        free(r);
        if (rc == 0) {
            char mine[40];
            snprintf(mine, sizeof mine, "process_id:%d\r", (int)pid);
            if (strstr(reply, mine))
                return 0;
            if (strstr(reply, "process_id:")) {
                /* Someone else's server on our port: ours cannot bind. */
                redis_kill(p);
                return -3;
            }
        }
        if (rc > 0)
            return 0;
        sleep_ms(10);
    }
    redis_kill(p);
    return -1;
}

void redis_dump_log(const redis_proc *p) {
    const char *files[] = {"redis.out", "redis.log"};
    for (size_t i = 0; i < 2; i++) {
        char path[300];
        path_in(path, sizeof path, p->dir, files[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char buf[4096];
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        buf[got] = '\0';
        fclose(f);
        printf("---- %s (tail) ----\n%s\n---- end ----\n", path, buf);
    }
}

static bool file_contains(const char *dir, const char *file, const char *needle) {
    char path[300];
    path_in(path, sizeof path, dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Did the last start fail because somebody took the port meanwhile? */
static bool port_was_taken(const redis_proc *p) {
    return file_contains(p->dir, "redis.log", "in use") || file_contains(p->dir, "redis.out", "in use");
}

static int start_common(redis_proc *p) {
    int rc = -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        p->port = harness_free_port();
        p->admin_port = p->port;
        if (p->tls) {
            do
                p->admin_port = harness_free_port();
            while (p->admin_port == p->port);
        }
        if (p->port < 0 || p->admin_port < 0)
            break;
        rc = launch_and_wait(p);
        if (rc != -3 && (rc != -2 || !port_was_taken(p)))
            break;
    }
    if (rc != 0) {
        printf("redis_start: redis-server did not come up (dir %s)\n", p->dir);
        redis_dump_log(p);
        return -1;
    }
    return 0;
}

static int prepare(redis_proc *p, const char *extra_args) {
    memset(p, 0, sizeof *p);
    if (extra_args && strlen(extra_args) >= sizeof p->extra)
        return -1;
    snprintf(p->extra, sizeof p->extra, "%s", extra_args ? extra_args : "");
    return harness_mkdtemp(p->dir, sizeof p->dir);
}

int redis_start(redis_proc *p, const char *extra_args) {
    if (prepare(p, extra_args) != 0)
        return -1;
    return start_common(p);
}

int redis_start_tls(redis_proc *p, const char *certdir, const char *extra_args) {
    if (prepare(p, extra_args) != 0)
        return -1;
    if (strlen(certdir) >= sizeof p->certdir)
        return -1;
    p->tls = true;
    snprintf(p->certdir, sizeof p->certdir, "%s", certdir);
    return start_common(p);
}

void redis_stop(redis_proc *p) {
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    uint64_t deadline = now_ms() + 3000;
    while (now_ms() < deadline) {
        if (reap(p, WNOHANG))
            return;
        sleep_ms(5);
    }
    redis_kill(p);
}

void redis_kill(redis_proc *p) {
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    reap(p, 0);
}

int redis_restart(redis_proc *p) {
    redis_stop(p);
    /* Same port: only retry, never pick another. */
    uint64_t deadline = now_ms() + 5000;
    int rc;
    do {
        rc = launch_and_wait(p);
        if (rc == -2)
            sleep_ms(100);
    } while (rc == -2 && now_ms() < deadline);
    if (rc != 0) {
        printf("redis_restart: redis-server did not come back on port %d\n", p->port);
        redis_dump_log(p);
        return -1;
    }
    return 0;
}
