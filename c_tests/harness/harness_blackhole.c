// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * A listener whose connects never complete, for connect-timeout tests.
 *
 * Linux drops an incoming SYN when the listener's accept queue is full. With
 * listen(fd, 0) the queue holds a single connection, so once one filler
 * connection has completed (and is never accepted) every later SYN is
 * dropped and the connecting side stays in SYN_SENT, retrying, until its own
 * timeout. No firewall rules or unroutable addresses needed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FILLERS 3
#define MAX_BLACKHOLES 16

struct blackhole {
    int listen_fd; /* -1: free slot */
    int fillers[FILLERS];
};

static struct blackhole g_holes[MAX_BLACKHOLES];
static bool g_init;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static int start_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* True if fd's non-blocking connect completed (either way) within ms. */
static bool connect_settles(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    return poll(&p, 1, ms) == 1;
}

static void close_hole(struct blackhole *h) {
    for (int i = 0; i < FILLERS; i++) {
        if (h->fillers[i] >= 0)
            close(h->fillers[i]);
        h->fillers[i] = -1;
    }
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    h->listen_fd = -1;
}

int blackhole_listener(int *port_out) {
    struct blackhole h = {.listen_fd = -1};
    for (int i = 0; i < FILLERS; i++)
        h.fillers[i] = -1;

    h.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h.listen_fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(h.listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(h.listen_fd, 0) != 0 ||
        getsockname(h.listen_fd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    int port = ntohs(a.sin_port);

    /* The first filler must complete, or the queue is not full yet. The
     * others just add margin (they sit in SYN_SENT or the queue). */
    for (int i = 0; i < FILLERS; i++) {
        h.fillers[i] = start_connect(port);
        if (h.fillers[i] < 0)
            goto fail;
        if (i == 0 && !connect_settles(h.fillers[0], 1000))
            goto fail;
    }

    /* Cheap sanity check: a probe must not complete promptly. */
    int probe = start_connect(port);
    if (probe < 0)
        goto fail;
    bool settled = connect_settles(probe, 100);
    close(probe);
    if (settled) {
        printf("blackhole_listener: a connect to port %d completed; SYNs are not being dropped\n", port);
        goto fail;
    }

    pthread_mutex_lock(&g_mu);
    if (!g_init) {
        for (int i = 0; i < MAX_BLACKHOLES; i++)
            g_holes[i].listen_fd = -1;
        g_init = true;
    }
    int slot = -1;
    for (int i = 0; i < MAX_BLACKHOLES && slot < 0; i++) {
        if (g_holes[i].listen_fd < 0)
            slot = i;
    }
    if (slot >= 0)
        g_holes[slot] = h;
    pthread_mutex_unlock(&g_mu);
    if (slot < 0)
        goto fail;

    if (port_out)
        *port_out = port;
    return h.listen_fd;
fail:
    close_hole(&h);
    return -1;
}

void blackhole_close(int listen_fd) {
    if (listen_fd < 0)
        return;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; g_init && i < MAX_BLACKHOLES; i++) {
        if (g_holes[i].listen_fd == listen_fd) {
            close_hole(&g_holes[i]);
            pthread_mutex_unlock(&g_mu);
            return;
        }
    }
    pthread_mutex_unlock(&g_mu);
    close(listen_fd); /* not one of ours: still honour "closes the fd" */
}
