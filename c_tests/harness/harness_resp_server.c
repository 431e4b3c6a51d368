// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * A small scriptable RESP server for the tests.
 *
 * It exists ONLY for what a real redis-server cannot be made to do:
 *   - accept the OSS coordinator's internal `AUTH "internal connection" <secret>`
 *     (binary-safe secret) and let a test read back exactly what was sent;
 *   - replies that never come (opts.never_reply_to);
 *   - a reset in the middle of a reply (CUT) and abrupt resets of every
 *     connection at a moment the test chooses (resp_server_drop_all).
 * Everything else belongs in tests against a real redis-server.
 *
 * It runs a poll() loop on its own thread, listening on 127.0.0.1 on a free
 * port. It parses RESP arrays (pipelined, split across reads at any byte) and
 * inline commands, and replies:
 *   AUTH [user] pass  +OK, or -WRONGPASS invalid username-password pair
 *   HELLO [2|3 ...]   a small server-info array (RESP2) or map (3)
 *   PING [msg]        +PONG, or msg as a bulk string
 *   ECHO msg          msg as a bulk string
 *   CUT               "$10\r\nabc" (half a bulk reply), then RST
 *   QUIT              +OK, then close
 *   <never_reply_to>  nothing, and nothing ever again on that connection
 *   anything else     +OK
 * and counts every request by command name.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BULK (512u * 1024 * 1024)
#define MAX_INLINE (64u * 1024)
#define MAX_ARGC (1024u * 1024)

struct client {
    int fd;
    bool dead;
    bool stalled; /* swallowed a never-reply request: silent from then on */
    bool authed;
    char *in;
    size_t inlen, incap;
    char *out;
    size_t outlen, outcap;
};

struct cmd_count {
    char name[64];
    unsigned long n;
};

struct resp_server {
    int lfd, port;
    int wake_rd, wake_wr;
    pthread_t thread;

    /* Configuration: immutable once the thread runs. */
    char *auth_user;
    char *auth_pass;
    size_t auth_pass_len;
    char *never_reply_to;
    bool require_auth;

    /* Server thread only. */
    struct client *clients;
    size_t nclients, capclients;
    const char **argv;
    size_t *lens;
    size_t argcap;
    unsigned drop_seen;

    /* Shared with the test thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, exited;
    unsigned drop_req, drop_done;
    struct cmd_count *counts;
    size_t ncounts, capcounts;
    char *last_user, *last_pass;
    size_t last_ulen, last_plen;
    int last_auth_argc;
    unsigned long auth_count;
    int nconn;
};

/* ------------------------------------------------------------------------ */
/* Output                                                                     */
/* ------------------------------------------------------------------------ */

static bool grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < need)
        ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb)
        return false;
    *buf = nb;
    *cap = ncap;
    return true;
}

static void flush_out(struct client *c) {
    size_t off = 0;
    while (off < c->outlen) {
        ssize_t w = send(c->fd, c->out + off, c->outlen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                c->dead = true;
            break;
        }
    }
    memmove(c->out, c->out + off, c->outlen - off);
    c->outlen -= off;
}

static void reply(struct client *c, const char *data, size_t len) {
    if (c->dead || c->stalled)
        return;
    if (!grow(&c->out, &c->outcap, c->outlen + len)) {
        c->dead = true;
        return;
    }
    memcpy(c->out + c->outlen, data, len);
    c->outlen += len;
    flush_out(c);
}

static void reply_str(struct client *c, const char *s) {
    reply(c, s, strlen(s));
}

static void reply_bulk(struct client *c, const char *data, size_t len) {
    char hdr[32];
    int n = snprintf(hdr, sizeof hdr, "$%zu\r\n", len);
    reply(c, hdr, (size_t)n);
    reply(c, data, len);
    reply(c, "\r\n", 2);
}

/* RST instead of FIN: the peer sees ECONNRESET, not an orderly EOF. */
static void reset_fd(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void close_client(struct client *c, bool rst) {
    if (c->fd >= 0) {
        if (rst)
            reset_fd(c->fd);
        else
            close(c->fd);
    }
    c->fd = -1;
    c->dead = true;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                    */
/* ------------------------------------------------------------------------ */

static bool ensure_args(resp_server *s, size_t n) {
    if (n <= s->argcap)
        return true;
    size_t cap = s->argcap ? s->argcap : 16;
    while (cap < n)
        cap *= 2;
    const char **a = realloc(s->argv, cap * sizeof *a);
    if (!a)
        return false;
    s->argv = a;
    size_t *l = realloc(s->lens, cap * sizeof *l);
    if (!l)
        return false;
    s->lens = l;
    s->argcap = cap;
    return true;
}

/* "<type><integer>\r\n": 1 parsed, 0 incomplete, -1 malformed. */
static int int_line(const char **pp, const char *end, char type, long long *v) {
    const char *p = *pp;
    if (p >= end)
        return 0;
    if (*p != type)
        return -1;
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    if (!cr || cr + 1 >= end)
        return (end - p) > 32 ? -1 : 0;
    if (cr[1] != '\n')
        return -1;
    const char *d = p + 1;
    bool neg = d < cr && *d == '-';
    if (neg)
        d++;
    if (d == cr || cr - d > 18)
        return -1;
    long long x = 0;
    for (; d < cr; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        x = x * 10 + (*d - '0');
    }
    *v = neg ? -x : x;
    *pp = cr + 2;
    return 1;
}

static int parse_inline(resp_server *s, const char *buf, size_t len, size_t *used, size_t *argc) {
    const char *nl = memchr(buf, '\n', len);
    if (!nl)
        return len > MAX_INLINE ? -1 : 0;
    const char *end = nl;
    if (end > buf && end[-1] == '\r')
        end--;
    size_t n = 0;
    for (const char *p = buf; p < end;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        const char *start = p;
        while (p < end && *p != ' ' && *p != '\t')
            p++;
        if (!ensure_args(s, n + 1))
            return -1;
        s->argv[n] = start;
        s->lens[n] = (size_t)(p - start);
        n++;
    }
    *used = (size_t)(nl - buf) + 1;
    *argc = n;
    return 1;
}

/* One request: 1 parsed (argc may be 0), 0 incomplete, -1 protocol error. */
static int parse_request(resp_server *s, const char *buf, size_t len, size_t *used, size_t *argc) {
    if (len == 0)
        return 0;
    if (buf[0] != '*')
        return parse_inline(s, buf, len, used, argc);
    const char *p = buf, *end = buf + len;
    long long n;
    int r = int_line(&p, end, '*', &n);
    if (r <= 0)
        return r;
    if (n > (long long)MAX_ARGC)
        return -1;
    if (n < 0)
        n = 0;
    if (!ensure_args(s, (size_t)n))
        return -1;
    for (long long i = 0; i < n; i++) {
        long long l;
        r = int_line(&p, end, '$', &l);
        if (r <= 0)
            return r;
        if (l < 0 || l > (long long)MAX_BULK)
            return -1;
        if (end - p < l + 2)
            return 0;
        s->argv[i] = p;
        s->lens[i] = (size_t)l;
        p += l;
        if (p[0] != '\r' || p[1] != '\n')
            return -1;
        p += 2;
    }
    *used = (size_t)(p - buf);
    *argc = (size_t)n;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                   */
/* ------------------------------------------------------------------------ */

static void count_command(resp_server *s, const char *name) {
    pthread_mutex_lock(&s->mu);
    size_t i = 0;
    while (i < s->ncounts && strcmp(s->counts[i].name, name) != 0)
        i++;
    if (i == s->ncounts) {
        if (s->ncounts == s->capcounts) {
            size_t cap = s->capcounts ? s->capcounts * 2 : 16;
            struct cmd_count *nc = realloc(s->counts, cap * sizeof *nc);
            if (!nc) {
                pthread_mutex_unlock(&s->mu);
                return;
            }
            s->counts = nc;
            s->capcounts = cap;
        }
        snprintf(s->counts[i].name, sizeof s->counts[i].name, "%s", name);
        s->counts[i].n = 0;
        s->ncounts++;
    }
    s->counts[i].n++;
    pthread_mutex_unlock(&s->mu);
}

static char *dup_bytes(const char *p, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static void cmd_auth(resp_server *s, struct client *c, size_t argc) {
    if (argc != 2 && argc != 3) {
        reply_str(c, "-ERR wrong number of arguments for 'auth' command\r\n");
        return;
    }
    const char *user = argc == 3 ? s->argv[1] : "";
    size_t ulen = argc == 3 ? s->lens[1] : 0;
    const char *pass = s->argv[argc - 1];
    size_t plen = s->lens[argc - 1];

    pthread_mutex_lock(&s->mu);
    free(s->last_user);
    free(s->last_pass);
    s->last_user = dup_bytes(user, ulen);
    s->last_ulen = ulen;
    s->last_pass = dup_bytes(pass, plen);
    s->last_plen = plen;
    s->last_auth_argc = (int)argc - 1;
    s->auth_count++;
    pthread_mutex_unlock(&s->mu);

    bool ok = true;
    if (s->auth_pass) {
        /* One-argument AUTH means the "default" user, as in Redis. */
        const char *want_user = s->auth_user ? s->auth_user : "default";
        const char *got_user = argc == 3 ? user : "default";
        size_t got_ulen = argc == 3 ? ulen : strlen("default");
        ok = got_ulen == strlen(want_user) && memcmp(got_user, want_user, got_ulen) == 0 &&
             plen == s->auth_pass_len && memcmp(pass, s->auth_pass, plen) == 0;
    }
    if (ok) {
        c->authed = true;
        reply_str(c, "+OK\r\n");
    } else {
        reply_str(c, "-WRONGPASS invalid username-password pair\r\n");
    }
}

static void cmd_hello(resp_server *s, struct client *c, size_t argc) {
    long proto = 2;
    if (argc >= 2) {
        char v[8] = {0};
        memcpy(v, s->argv[1], s->lens[1] < sizeof v - 1 ? s->lens[1] : sizeof v - 1);
        proto = strtol(v, NULL, 10);
        if (proto != 2 && proto != 3) {
            reply_str(c, "-NOPROTO unsupported protocol version\r\n");
            return;
        }
    }
    const char *fields = "$6\r\nserver\r\n$5\r\nredis\r\n"
                         "$7\r\nversion\r\n$5\r\n7.0.0\r\n"
                         "$5\r\nproto\r\n";
    reply_str(c, proto == 3 ? "%3\r\n" : "*6\r\n");
    reply_str(c, fields);
    reply_str(c, proto == 3 ? ":3\r\n" : ":2\r\n");
}

static void handle_request(resp_server *s, struct client *c, size_t argc) {
    if (argc == 0)
        return;
    char name[64];
    size_t nlen = s->lens[0] < sizeof name - 1 ? s->lens[0] : sizeof name - 1;
    for (size_t i = 0; i < nlen; i++) {
        char ch = s->argv[0][i];
        name[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
    }
    name[nlen] = '\0';
    count_command(s, name);

    if (c->stalled)
        return;
    if (s->never_reply_to && strcasecmp(name, s->never_reply_to) == 0) {
        c->stalled = true;
        return;
    }
    if (strcmp(name, "AUTH") == 0) {
        cmd_auth(s, c, argc);
        return;
    }
    if (s->require_auth && !c->authed && strcmp(name, "HELLO") != 0 && strcmp(name, "QUIT") != 0) {
        reply_str(c, "-NOAUTH Authentication required.\r\n");
        return;
    }
    if (strcmp(name, "PING") == 0) {
        if (argc >= 2)
            reply_bulk(c, s->argv[1], s->lens[1]);
        else
            reply_str(c, "+PONG\r\n");
    } else if (strcmp(name, "ECHO") == 0) {
        if (argc == 2)
            reply_bulk(c, s->argv[1], s->lens[1]);
        else
            reply_str(c, "-ERR wrong number of arguments for 'echo' command\r\n");
    } else if (strcmp(name, "HELLO") == 0) {
        cmd_hello(s, c, argc);
    } else if (strcmp(name, "CUT") == 0) {
        reply_str(c, "$10\r\nabc");
        close_client(c, true);
    } else if (strcmp(name, "QUIT") == 0) {
        reply_str(c, "+OK\r\n");
        close_client(c, false);
    } else {
        reply_str(c, "+OK\r\n");
    }
}

/* ------------------------------------------------------------------------ */
/* Event loop                                                                 */
/* ------------------------------------------------------------------------ */

static void on_readable(resp_server *s, struct client *c) {
    if (!grow(&c->in, &c->incap, c->inlen + 16384)) {
        close_client(c, true);
        return;
    }
    ssize_t got = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, MSG_DONTWAIT);
    if (got < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            close_client(c, false);
        return;
    }
    bool eof = got == 0;
    c->inlen += (size_t)got;

    size_t off = 0;
    while (!c->dead) {
        size_t used = 0, argc = 0;
        int r = parse_request(s, c->in + off, c->inlen - off, &used, &argc);
        if (r == 0)
            break;
        if (r < 0) {
            reply_str(c, "-ERR Protocol error\r\n");
            close_client(c, false);
            break;
        }
        handle_request(s, c, argc);
        off += used;
    }
    if (!c->dead) {
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
        if (eof)
            close_client(c, false);
    }
}

static void accept_clients(resp_server *s) {
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient error: poll will tell again */
        if (s->nclients == s->capclients) {
            size_t cap = s->capclients ? s->capclients * 2 : 16;
            struct client *nc = realloc(s->clients, cap * sizeof *nc);
            if (!nc) {
                reset_fd(fd);
                continue;
            }
            s->clients = nc;
            s->capclients = cap;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct client *c = &s->clients[s->nclients++];
        memset(c, 0, sizeof *c);
        c->fd = fd;
    }
}

/* Frees dead clients and publishes the connection count. */
static void compact_clients(resp_server *s) {
    size_t j = 0;
    for (size_t i = 0; i < s->nclients; i++) {
        struct client *c = &s->clients[i];
        if (c->dead) {
            close_client(c, false);
            free(c->in);
            free(c->out);
        } else {
            s->clients[j++] = *c;
        }
    }
    s->nclients = j;
    pthread_mutex_lock(&s->mu);
    s->nconn = (int)j;
    pthread_mutex_unlock(&s->mu);
}

static void reset_all(resp_server *s) {
    for (size_t i = 0; i < s->nclients; i++)
        close_client(&s->clients[i], true);
    compact_clients(s);
}

static void *server_main(void *arg) {
    resp_server *s = arg;
    struct pollfd *pfds = NULL;
    size_t pcap = 0;
    for (;;) {
        size_t n = s->nclients + 2;
        if (n > pcap) {
            struct pollfd *np = realloc(pfds, n * 2 * sizeof *np);
            if (!np)
                break;
            pfds = np;
            pcap = n * 2;
        }
        pfds[0] = (struct pollfd){.fd = s->wake_rd, .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (size_t i = 0; i < s->nclients; i++) {
            struct client *c = &s->clients[i];
            pfds[i + 2] = (struct pollfd){.fd = c->fd, .events = (short)(POLLIN | (c->outlen ? POLLOUT : 0))};
        }
        if (poll(pfds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }

        if (pfds[0].revents) {
            char buf[64];
            while (read(s->wake_rd, buf, sizeof buf) > 0) {
            }
            pthread_mutex_lock(&s->mu);
            bool stop = s->stop;
            unsigned req = s->drop_req;
            pthread_mutex_unlock(&s->mu);
            if (stop)
                break;
            if (req != s->drop_seen) {
                reset_all(s);
                s->drop_seen = req;
                pthread_mutex_lock(&s->mu);
                s->drop_done = req;
                pthread_cond_broadcast(&s->cv);
                pthread_mutex_unlock(&s->mu);
            }
            continue; /* pfds no longer match the clients; poll again */
        }

        for (size_t i = 0; i + 2 < n; i++) {
            struct client *c = &s->clients[i];
            short re = pfds[i + 2].revents;
            if (c->dead || !re)
                continue;
            if (re & POLLOUT)
                flush_out(c);
            if (!c->dead && (re & (POLLIN | POLLHUP | POLLERR)))
                on_readable(s, c);
        }
        if (pfds[1].revents & POLLIN)
            accept_clients(s);
        compact_clients(s);
    }
    free(pfds);
    reset_all(s);
    pthread_mutex_lock(&s->mu);
    s->exited = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* API                                                                        */
/* ------------------------------------------------------------------------ */

static void wake(resp_server *s) {
    ssize_t w = write(s->wake_wr, "x", 1);
    (void)w; /* a full pipe already means "wake up" */
}

static void free_server(resp_server *s) {
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->wake_rd >= 0)
        close(s->wake_rd);
    if (s->wake_wr >= 0)
        close(s->wake_wr);
    free(s->auth_user);
    free(s->auth_pass);
    free(s->never_reply_to);
    free(s->clients);
    free(s->argv);
    free(s->lens);
    free(s->counts);
    free(s->last_user);
    free(s->last_pass);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

resp_server *resp_server_start(const struct resp_server_opts *opts) {
    resp_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->lfd = s->wake_rd = s->wake_wr = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    if (opts) {
        if (opts->auth_user)
            s->auth_user = strdup(opts->auth_user);
        if (opts->auth_pass) {
            s->auth_pass_len = opts->auth_pass_len ? opts->auth_pass_len : strlen(opts->auth_pass);
            s->auth_pass = dup_bytes(opts->auth_pass, s->auth_pass_len);
        }
        if (opts->never_reply_to)
            s->never_reply_to = strdup(opts->never_reply_to);
        s->require_auth = opts->require_auth;
    }

    int pfd[2];
    if (pipe2(pfd, O_NONBLOCK | O_CLOEXEC) != 0)
        goto fail;
    s->wake_rd = pfd[0];
    s->wake_wr = pfd[1];

    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        goto fail;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 128) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    s->port = ntohs(a.sin_port);

    if (pthread_create(&s->thread, NULL, server_main, s) != 0)
        goto fail;
    return s;
fail:
    free_server(s);
    return NULL;
}

int resp_server_port(resp_server *s) {
    return s->port;
}

void resp_server_stop(resp_server *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    wake(s);
    pthread_join(s->thread, NULL);
    free_server(s);
}

void resp_server_drop_all(resp_server *s) {
    pthread_mutex_lock(&s->mu);
    unsigned mine = ++s->drop_req;
    pthread_mutex_unlock(&s->mu);
    wake(s);
    pthread_mutex_lock(&s->mu);
    while (s->drop_done != mine && !s->exited)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

unsigned long resp_server_count(resp_server *s, const char *cmd) {
    unsigned long n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ncounts; i++) {
        if (strcasecmp(s->counts[i].name, cmd) == 0)
            n = s->counts[i].n;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

unsigned long resp_server_auth_count(resp_server *s) {
    pthread_mutex_lock(&s->mu);
    unsigned long n = s->auth_count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int resp_server_connections(resp_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->nconn;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void copy_out(char *dst, size_t *cap_len, const char *src, size_t len) {
    if (!cap_len)
        return;
    size_t cap = *cap_len;
    if (dst && cap) {
        size_t c = len < cap ? len : cap;
        memcpy(dst, src, c);
        if (c < cap)
            dst[c] = '\0';
    }
    *cap_len = len;
}

int resp_server_last_auth(resp_server *s, char *user, size_t *ulen, char *pass, size_t *plen) {
    pthread_mutex_lock(&s->mu);
    int argc = s->last_auth_argc;
    if (argc > 0) {
        copy_out(user, ulen, s->last_user ? s->last_user : "", s->last_user ? s->last_ulen : 0);
        copy_out(pass, plen, s->last_pass ? s->last_pass : "", s->last_pass ? s->last_plen : 0);
    }
    pthread_mutex_unlock(&s->mu);
    return argc;
}
