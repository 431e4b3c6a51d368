// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The `scale` benchmark (issue 11): pools of up to 10,000 connections, and
// how long the loop stalls when they are added, shrunk, grown and shut down.
// One JSON object per line, one line per (nodes x connections per node):
//   add_all_us          all the MRConnManager_Add calls of a topology, in a row
//   idle_shrink_us      Shrink(conns -> 1) with nothing in flight
//   expand_us           Expand(1 -> conns)
//   busy_shrink_us      Shrink(conns -> 1) with a command in flight on every connection
//   *_iter_ms / *_cpu_ms the longest loop iteration while that work is done:
//                       wall time less time blocked in poll (uv_metrics_idle_time),
//                       and the loop thread's CPU time (unaffected by other load)
//   shutdown_ms         Shutdown, which closes everything inside the call (CONTRACT 5)
//   bytes_per_conn      live allocator bytes / connections (hiredis context, libuv
//                       handles and mrconn's own state)
// Node ids share a few local redis-servers (--maxclients 20000); scripts/bench.sh
// raises `ulimit -n` first.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "harness.h"
#include "mrconn_test_host.h"
#include "rmr/reply.h"

#define MAX_SERVERS 4

static uv_loop_t loop;
static MRConnManager mgr;
static loop_meter meter;
static int nodes, conns;
static char (*ids)[16];
static size_t replies;

static bool nothing_queued(void *arg) {
  (void)arg;
  MRConnDrainStats s;
  MRConnManager_GetDrainStats(&mgr, &s);
  return s.queued == 0;
}

// Every pool whole and Connected: `want` round-robin picks per node give
// `want` distinct connections (a pick visits each connection once).
static bool pools_whole(void *arg) {
  int want = *(int *)arg;
  if (!nothing_queued(NULL)) return false;
  for (int i = 0; i < nodes; i++) {
    MRConn *first = MRConn_Get(&mgr, ids[i]);
    if (!first) return false;
    for (int k = 1; k < want; k++)
      if (MRConn_Get(&mgr, ids[i]) == first) return false;
  }
  return true;
}

static bool drains_over(void *arg) {
  (void)arg;
  MRConnDrainStats s;
  MRConnManager_GetDrainStats(&mgr, &s);
  return s.draining == 0 && s.queued == 0 && replies >= *(size_t *)arg;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  (void)priv;
  replies++;
  MRReply_Free(r);
}

// Runs the loop until pred holds; the meter then holds the longest iteration.
static bool measure(bool (*pred)(void *), void *arg, double *iter_ms, double *cpu_ms) {
  bool ok = loop_run_until(&loop, pred, arg, 120000);
  *iter_ms = meter.max_busy_ns / 1e6;
  *cpu_ms = meter.max_cpu_ns / 1e6;
  return ok;
}

// The measurement window starts at the next iteration.
static void window(void) {
  uv_run(&loop, UV_RUN_NOWAIT);
  loop_meter_reset(&meter);
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void scenario(int n, int c) {
  nodes = n;
  conns = c;
  ids = calloc((size_t)n, sizeof *ids);
  int nservers = n < MAX_SERVERS ? n : MAX_SERVERS;
  redis_proc servers[MAX_SERVERS];
  for (int s = 0; s < nservers; s++)
    if (redis_start(&servers[s], "--maxclients 20000") != 0) {
      fprintf(stderr, "scale: cannot start redis-server\n");
      exit(1);
    }
  host_init();
  host_set_enterprise(true);
  uv_loop_init(&loop);
  loop_meter_configure(&loop);
  loop_meter_start(&meter, &loop);
  MRConnManager_Init(&mgr, c);
  size_t base_bytes = host_alloc_live_bytes();
  double add_iter, add_cpu, shrink_iter, shrink_cpu, expand_iter, expand_cpu, busy_iter, busy_cpu;

  window();
  uint64_t t0 = now_us();
  for (int i = 0; i < n; i++) {
    snprintf(ids[i], sizeof ids[i], "node-%d", i);
    MREndpoint ep = {.host = "127.0.0.1", .port = servers[i % nservers].port};
    MRConnManager_Add(&mgr, &loop, ids[i], &ep);
  }
  uint64_t add_us = now_us() - t0;
  bool ok = measure(pools_whole, &c, &add_iter, &add_cpu);
  double bytes = (double)(host_alloc_live_bytes() - base_bytes) / ((double)n * c);

  window();
  t0 = now_us();
  MRConnManager_Shrink(&mgr, 1);
  uint64_t idle_shrink_us = now_us() - t0;
  int one = 1;
  ok &= measure(pools_whole, &one, &shrink_iter, &shrink_cpu);

  window();
  t0 = now_us();
  MRConnManager_Expand(&mgr, (uint32_t)c, &loop);
  uint64_t expand_us = now_us() - t0;
  ok &= measure(pools_whole, &c, &expand_iter, &expand_cpu);

  // A BLPOP answered after 1 s on every connection, then the Shrink; the
  // window covers the 500 ms after it (the replies, all in one burst, are
  // reply processing, not the resize).
  replies = 0;
  MRCommand cmd = MR_NewCommand(3, "BLPOP", "scale-bench-nokey", "1");
  size_t sent = 0;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < c; k++) sent += MRConn_SendCommand(MRConn_Get(&mgr, ids[i]), &cmd, on_reply, NULL) == 0;
  window();
  t0 = now_us();
  MRConnManager_Shrink(&mgr, 1);
  uint64_t busy_shrink_us = now_us() - t0;
  loop_run_for(&loop, 500);
  busy_iter = meter.max_busy_ns / 1e6;
  busy_cpu = meter.max_cpu_ns / 1e6;
  ok &= loop_run_until(&loop, drains_over, &sent, 120000);
  MRCommand_Free(&cmd);

  MRConnManager_Expand(&mgr, (uint32_t)c, &loop);
  ok &= loop_run_until(&loop, pools_whole, &c, 120000);
  t0 = now_us();
  MRConnManager_Shutdown(&mgr);
  double shutdown_ms = (now_us() - t0) / 1000.0;
  loop_meter_stop(&meter);
  loop_close_all_handles(&loop);
  ok &= uv_loop_close(&loop) == 0 && host_alloc_live_count() == 0;
  for (int s = 0; s < nservers; s++) redis_stop(&servers[s]);
  free(ids);

  printf("{\"scenario\":\"scale\",\"nodes\":%d,\"conns_per_node\":%d,\"connections\":%d,"
         "\"add_all_us\":%" PRIu64 ",\"add_iter_ms\":%.2f,\"add_cpu_ms\":%.2f,"
         "\"idle_shrink_us\":%" PRIu64 ",\"idle_shrink_iter_ms\":%.2f,\"idle_shrink_cpu_ms\":%.2f,"
         "\"expand_us\":%" PRIu64 ",\"expand_iter_ms\":%.2f,\"expand_cpu_ms\":%.2f,"
         "\"busy_shrink_us\":%" PRIu64 ",\"busy_shrink_iter_ms\":%.2f,\"busy_shrink_cpu_ms\":%.2f,"
         "\"shutdown_ms\":%.1f,\"bytes_per_conn\":%.0f,\"ok\":%s}\n",
         n, c, n * c, add_us, add_iter, add_cpu, idle_shrink_us, shrink_iter, shrink_cpu, expand_us,
         expand_iter, expand_cpu, busy_shrink_us, busy_iter, busy_cpu, shutdown_ms, bytes,
         ok ? "true" : "false");
  fflush(stdout);
  if (!ok) exit(1);
}

int main(int argc, char **argv) {
  static const int sizes[][2] = {{3, 8}, {30, 8}, {300, 8}, {1250, 8}, {3, 512}, {20, 500}};
  int only = argc > 1 ? atoi(argv[1]) : -1;  // index into sizes, for one run
  for (int i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++)
    if (only < 0 || only == i) scenario(sizes[i][0], sizes[i][1]);
  return 0;
}
