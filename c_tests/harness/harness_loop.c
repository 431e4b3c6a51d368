// SPDX-License-Identifier: MIT OR Apache-2.0
/* libuv loop helpers: run a loop until a condition holds, and inspect handles. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "harness.h"

static void tick(uv_timer_t *t) {
    (void)t; /* exists only so that UV_RUN_ONCE returns at least every 1 ms */
}

static void on_tick_closed(uv_handle_t *h) {
    *(bool *)h->data = true;
}

bool loop_run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, uint64_t timeout_ms) {
    if (pred && pred(arg))
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
        ok = pred && pred(arg);
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
    return ok || (pred && pred(arg));
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
