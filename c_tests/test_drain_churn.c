// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Churn like the production incident (issue 3): a second thread submits
// commands through a uv_async_t queue, as RediSearch's request queue does,
// while the loop thread shrinks and expands the pools of three redis-server
// nodes 50 times between 8 and 1 (a timer every 20 ms alternating Shrink(1)
// and Expand(8)). On the loop thread the async callback pops each request and
// sends it with MRConn_Get + MRConn_SendCommand; a request that cannot be
// sent (no connection, or the send fails) is "rejected" and completed at
// once, as failed. Like RediSearch's request queue, at most MAX_INFLIGHT
// requests run at a time (a finished one wakes the queue again), and the
// producer stops adding while the queue is long. One request in 32 is a
// DEBUG SLEEP 0.02: it stalls its whole shard for 20 ms, as a heavy query
// does on a single-threaded Redis, so that every connection to that shard
// has work pending behind it; the others are ECHOs.
// At the end: every submitted request completed exactly once (0 lost,
// 0 duplicated), no callback got NULL, nothing leaked, and the connections
// opened anew stay far below 50 * 7 * 3 because Expand takes the draining
// ones back. The figures are printed.
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "drain_common.h"

#define NODES 3
#define POOL 8
#define RESIZES 100      // 50 shrinks and 50 expands
#define RESIZE_MS 20
#define PER_TICK 20      // requests the producer submits every millisecond
#define MAX_QUEUED 256   // ... unless this many wait already
#define MAX_INFLIGHT 192 // 8 per connection of the full pools
#define SLEEP_EVERY 32   // one request in 32 stalls its shard for 20 ms
#define MAX_REQ 200000

// Request life: 0 never submitted, 1 queued, 2 dispatched (sent or
// rejected); `completions` counts the completions (sent ones through their
// callback, rejected ones at once).
static int completions[MAX_REQ];
static unsigned char sent_state[MAX_REQ];
static int nulls, rejected, bad_replies;
static int inflight;  // loop thread only

// The queue between the producer thread and the loop thread.
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static int queue[MAX_REQ];
static int qhead, qtail;  // under qlock
static int submitted;     // under qlock
static atomic_int stop_producer;

static dc_cluster cl;
static uv_async_t async;
static uv_timer_t resize_timer;
static int resizes_done;
static uint64_t max_shrink_us, max_expand_us;
static uint64_t draining_at_shrink;
static int handles_closed;
static bool async_open;  // the queue's wake-up handle may be used

static void complete(int id) { completions[id]++; }

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  int id = (int)(intptr_t)priv;
  complete(id);
  inflight--;
  // As RediSearch's queue does when a request ends: wake the dispatcher.
  if (async_open) uv_async_send(&async);
  if (!r) {
    nulls++;
    return;
  }
  char want[24];
  if (id % SLEEP_EVERY == 0)
    snprintf(want, sizeof want, "OK");
  else
    snprintf(want, sizeof want, "r%d", id);
  size_t len = 0;
  const char *s = MRReply_String(r, &len);
  if (!s || len != strlen(want) || memcmp(s, want, len) != 0) bad_replies++;
  MRReply_Free(r);
}

// Loop thread: what RediSearch's queue does with each request.
static void dispatch(int id) {
  sent_state[id] = 2;
  MRConn *c = MRConn_Get(&cl.mgr, cl.id[id % NODES]);
  if (!c) {
    rejected++;
    complete(id);
    return;
  }
  char echo[24];
  const char *argv[3];
  size_t lens[3];
  int argc;
  if (id % SLEEP_EVERY == 0) {
    argv[0] = "DEBUG", argv[1] = "SLEEP", argv[2] = "0.02";
    argc = 3;
  } else {
    snprintf(echo, sizeof echo, "r%d", id);
    argv[0] = "ECHO", argv[1] = echo;
    argc = 2;
  }
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  MRCommand cmd = MR_NewCommandArgvLen(argc, argv, lens);
  if (MRConn_SendCommand(c, &cmd, on_reply, (void *)(intptr_t)id) != REDIS_OK) {
    rejected++;
    complete(id);
  } else {
    inflight++;
  }
  MRCommand_Free(&cmd);
}

static void on_async(uv_async_t *h) {
  (void)h;
  while (inflight < MAX_INFLIGHT) {
    pthread_mutex_lock(&qlock);
    int id = qhead < qtail ? queue[qhead++] : -1;
    pthread_mutex_unlock(&qlock);
    if (id < 0) break;
    dispatch(id);
  }
}

static void *producer(void *arg) {
  (void)arg;
  while (!stop_producer) {
    pthread_mutex_lock(&qlock);
    for (int i = 0; i < PER_TICK && qtail < MAX_REQ && qtail - qhead < MAX_QUEUED; i++) {
      sent_state[qtail] = 1;
      queue[qtail] = qtail;
      qtail++;
      submitted++;
    }
    pthread_mutex_unlock(&qlock);
    uv_async_send(&async);
    usleep(1000);
  }
  return NULL;
}

static void on_resize(uv_timer_t *t) {
  (void)t;
  if (resizes_done >= RESIZES) return;
  uint64_t t0 = now_us();
  if (resizes_done % 2 == 0) {
    MRConnManager_Shrink(&cl.mgr, 1);
    uint64_t d = now_us() - t0;
    if (d > max_shrink_us) max_shrink_us = d;
    MRConnDrainStats s;
    MRConnManager_GetDrainStats(&cl.mgr, &s);
    draining_at_shrink += s.draining;
  } else {
    MRConnManager_Expand(&cl.mgr, POOL, &cl.loop);
    uint64_t d = now_us() - t0;
    if (d > max_expand_us) max_expand_us = d;
  }
  resizes_done++;
}

static bool churn_over(void *arg) {
  (void)arg;
  return resizes_done >= RESIZES;
}

static int completed_count(void) {
  int n = 0;
  for (int i = 0; i < MAX_REQ; i++) n += completions[i] > 0;
  return n;
}

static bool all_done(void *arg) {
  int total = *(int *)arg;
  MRConnDrainStats s;
  MRConnManager_GetDrainStats(&cl.mgr, &s);
  return s.draining == 0 && completed_count() == total;
}

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
  handles_closed++;
}

TEST(churn_loses_nothing) {
  REQUIRE(dc_cluster_start(&cl, NODES, POOL));
  host_log_clear();

  REQUIRE(uv_async_init(&cl.loop, &async, on_async) == 0);
  async_open = true;
  REQUIRE(uv_timer_init(&cl.loop, &resize_timer) == 0);
  pthread_t th;
  REQUIRE(pthread_create(&th, NULL, producer, NULL) == 0);
  uint64_t t0 = now_ms();
  uv_timer_start(&resize_timer, on_resize, RESIZE_MS, RESIZE_MS);
  CHECK(loop_run_until(&cl.loop, churn_over, NULL, 60000));
  uint64_t churn_ms = now_ms() - t0;
  stop_producer = 1;
  pthread_join(th, NULL);
  uv_timer_stop(&resize_timer);
  on_async(&async);  // what the producer queued last
  CHECK_EQ_INT(cl.mgr.nodeConns, POOL);

  pthread_mutex_lock(&qlock);
  int total = submitted;
  pthread_mutex_unlock(&qlock);
  uint64_t w0 = now_ms();
  CHECK(loop_run_until(&cl.loop, all_done, &total, 15000));
  uint64_t wait_ms = now_ms() - w0;

  int lost = 0, dup = 0, undispatched = 0;
  for (int i = 0; i < total; i++) {
    lost += completions[i] == 0;
    dup += completions[i] > 1;
    undispatched += sent_state[i] != 2;
  }
  MRConnDrainStats s = dc_stats(&cl.mgr);
  int connecting = host_log_count("debug", "Switching state to Connecting");
  int reconnecting = host_log_count("debug", "Switching state to Reconnecting");
  printf("  %d resizes in %" PRIu64 " ms (Shrink <= %" PRIu64 " us, Expand <= %" PRIu64
         " us); all replies in %" PRIu64 " ms more\n",
         resizes_done, churn_ms, max_shrink_us, max_expand_us, wait_ms);
  printf("  commands: %d submitted, %d answered, %d rejected, %d NULL, %d wrong, %d lost, %d "
         "duplicated\n",
         total, total - rejected - nulls, rejected, nulls, bad_replies, lost, dup);
  printf("  connections: %" PRIu64 " drains started (sum of draining after each Shrink), %" PRIu64
         " reclaimed by Expand, %" PRIu64 " opened anew (%d 'Connecting' logged; bound %d), %d "
         "reconnects\n",
         draining_at_shrink, s.reclaimed, (uint64_t)connecting, connecting, 50 * 7 * 3, reconnecting);
  dc_print_stats("at the end", s);

  CHECK(total > 1000);
  CHECK_EQ_INT(undispatched, 0);
  CHECK_EQ_INT(lost, 0);
  CHECK_EQ_INT(dup, 0);
  CHECK_EQ_INT(nulls, 0);
  CHECK_EQ_INT(bad_replies, 0);
  CHECK_EQ_INT(s.forced, 0);
  CHECK_EQ_INT(s.failedCallbacks, 0);
  CHECK_EQ_INT(s.draining, 0);
  CHECK_EQ_INT(host_log_count("warning", "draining connection"), 0);
  CHECK_EQ_INT(reconnecting, 0);
  // Every Expand fills its pools on the loop, taking draining connections
  // back before opening new ones; a Shrink that comes first cuts the fill
  // short, so the slots filled are at most the 50 Expands' worth.
  CHECK((long long)s.reclaimed + connecting <= 50 * NODES * (POOL - 1));
  // Every drain ended graceful or reclaimed (a Shrink of up to 256
  // connections sorts them all inside the call).
  CHECK_EQ_INT(s.broken, 0);
  CHECK_EQ_INT((long long)(s.graceful + s.reclaimed), (long long)draining_at_shrink);
  // Far below reopening everything every time.
  CHECK_MSG(connecting < 50 * 7 * 3 / 2, "%d connections opened anew", connecting);
  // Pools are whole again.
  CHECK(dc_wait_connected(&cl, POOL, 10000));
  for (int i = 0; i < NODES; i++) CHECK(dc_wait_clients(&cl, i, POOL, 3000));

  // Shutdown completes nothing twice.
  async_open = false;
  uv_close((uv_handle_t *)&async, on_handle_closed);
  uv_close((uv_handle_t *)&resize_timer, on_handle_closed);
  loop_run_until(&cl.loop, NULL, NULL, 10);
  CHECK_EQ_INT(handles_closed, 2);
  dc_cluster_stop(&cl);
  for (int i = 0; i < total; i++) dup += completions[i] > 1;
  CHECK_EQ_INT(dup, 0);
}

HARNESS_MAIN(HARNESS_TEST(churn_loses_nothing))
