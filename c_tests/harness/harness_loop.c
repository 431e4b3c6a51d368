// SPDX-License-Identifier: MIT OR Apache-2.0
/* libuv loop helpers: run a loop until a condition holds, and inspect handles. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The meter running on a loop, if any: the conditions loop_run_until
 * evaluates are the test's own work, which it does not count. */
static loop_meter *metered;

static bool probe(uv_loop_t *loop, bool (*pred)(void *), void *arg) {
    if (!pred)
        return false;
    loop_meter *m = metered && metered->check.loop == loop ? metered : NULL;
    uint64_t t0 = m ? uv_hrtime() : 0, c0 = m ? thread_cpu_ns() : 0;
    bool ok = pred(arg);
    if (m) {
        m->probe_ns += uv_hrtime() - t0;
        m->probe_cpu_ns += thread_cpu_ns() - c0;
    }
    return ok;
}

static void tick(uv_timer_t *t) {
    (void)t; /* exists only so that UV_RUN_ONCE returns at least every 1 ms */
}

static void on_tick_closed(uv_handle_t *h) {
    *(bool *)h->data = true;
}

bool loop_run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, uint64_t timeout_ms) {
    if (probe(loop, pred, arg))
        return true;
    uv_timer_t timer;
    bool closed = false;
    uv_timer_init(loop, &timer);
    timer.data = &closed;
    uv_timer_start(&timer, tick, 1, 1);

    uint64_t deadline = now_ms() + timeout_ms;
    bool ok = false;
    for (;;) {
        uv_run(loop, UV_RUN_ONCE);
        ok = probe(loop, pred, arg);
        if (ok || now_ms() >= deadline)
            break;
    }

    /* The timer lives on this stack frame: its close must complete here. */
    uv_close((uv_handle_t *)&timer, on_tick_closed);
    for (int i = 0; !closed && i < 1000; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    if (!closed)
        harness_check(false, __FILE__, __LINE__, "loop_run_until: helper timer did not finish closing");
    /* A condition that held ends the wait, even if the closing pass changed it;
     * after a timeout the closing pass gets a last say. */
    return ok || probe(loop, pred, arg);
}

void loop_run_for(uv_loop_t *loop, uint64_t ms) {
    loop_run_until(loop, NULL, NULL, ms);
}

static void count_open(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h))
        (*(int *)arg)++;
}

int loop_count_open_handles(uv_loop_t *loop) {
    int n = 0;
    uv_walk(loop, count_open, &n);
    return n;
}

static void close_one(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void loop_close_all_handles(uv_loop_t *loop) {
    uv_walk(loop, close_one, NULL);
    uv_run(loop, UV_RUN_ONCE);
}

int loop_meter_configure(uv_loop_t *loop) {
    return uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
}

uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void meter_check(uv_check_t *h) {
    loop_meter *m = h->data;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(h->loop);
    uint64_t cpu = thread_cpu_ns();
    if (m->started) {
        uint64_t busy = (now - m->last_ns) - (idle - m->last_idle_ns) - m->probe_ns;
        if (busy > m->max_busy_ns)
            m->max_busy_ns = busy;
        uint64_t busy_cpu = cpu - m->last_cpu_ns - m->probe_cpu_ns;
        if (busy_cpu > m->max_cpu_ns)
            m->max_cpu_ns = busy_cpu;
        m->iterations++;
        m->over_1ms_cpu += busy_cpu > 1000000;
        if (getenv("MRCONN_METER_TRACE") && busy_cpu > 1000000)
            fprintf(stderr, "meter: %.2f ms busy, %.2f ms cpu from %.6f\n", busy / 1e6, busy_cpu / 1e6,
                    m->last_ns / 1e9);
    }
    m->probe_ns = m->probe_cpu_ns = 0;
    m->started = true;
    m->last_ns = now;
    m->last_idle_ns = idle;
    m->last_cpu_ns = cpu;
}

void loop_meter_start(loop_meter *m, uv_loop_t *loop) {
    memset(m, 0, sizeof *m);
    uv_check_init(loop, &m->check);
    m->check.data = m;
    uv_check_start(&m->check, meter_check);
    uv_unref((uv_handle_t *)&m->check);
    metered = m;
}

void loop_meter_reset(loop_meter *m) {
    m->max_busy_ns = 0;
    m->max_cpu_ns = 0;
    m->iterations = m->over_1ms_cpu = 0;
    m->probe_ns = m->probe_cpu_ns = 0;
    m->started = false;
}

void loop_meter_stop(loop_meter *m) {
    if (metered == m)
        metered = NULL;
    uv_close((uv_handle_t *)&m->check, NULL);
}

struct loop_call {
    void (*fn)(void *);
    void *arg;
    bool done;
};

static void on_call(uv_async_t *a) {
    struct loop_call *c = a->data;
    c->fn(c->arg);
    c->done = true;
    uv_stop(a->loop); /* this iteration must not then block in poll */
}

static void on_call_closed(uv_handle_t *h) {
    h->data = NULL;
}

void loop_call(uv_loop_t *loop, void (*fn)(void *), void *arg) {
    struct loop_call c = {fn, arg, false};
    uv_async_t a;
    uv_async_init(loop, &a, on_call);
    a.data = &c;
    uv_async_send(&a);
    while (!c.done)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&a, on_call_closed);
    while (a.data)
        uv_run(loop, UV_RUN_NOWAIT);
}
