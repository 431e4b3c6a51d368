// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Drain under load (issue 3): three redis-server nodes, pools of 8, 240
// commands in flight that each take ~300 ms (one BLPOP with a 0.3 s timeout at
// the head of every connection, ECHOs queued behind it), then
// MRConnManager_Shrink(&mgr, 1):
//   - the call returns in microseconds (bound: 20 ms);
//   - every callback gets its real reply, once; none is NULL;
//   - MRConn_Get never returns a draining connection, only the pool's
//     remaining one, all through the drain;
//   - each surplus connection closes right after its last reply (the figure
//     is printed; bound: 1 s), and the servers see their client counts drop
//     to 1;
//   - the stats and the notice logs carry the right numbers.
// And with nothing in flight, the surplus closes on the loop, in slices of
// at most 250 us, not inside the call (issue 11: no stall at any pool size).
#include "drain_common.h"

#define NODES 3
#define POOL 8
#define NREQ 240  // 10 per connection

static dc_cluster cl;
static dc_req reqs[NREQ];
static MRConn *pool[NODES][POOL];
static MRConn *remaining[NODES];

// Surplus connections (those that leave their pool) and when they closed.
static MRConn *surplus[NODES * POOL];
static char surplus_tag[NODES * POOL][96];
static uint64_t surplus_closed_us[NODES * POOL];
static int nsurplus;

static int get_calls, get_wrong;

typedef struct {
  uint64_t draining_zero_us;
} drain_watch;

// Runs between loop iterations while the drain goes on.
static bool drain_done(void *arg) {
  drain_watch *w = arg;
  // Only the pool's remaining connection may come out of MRConn_Get.
  for (int i = 0; i < NODES; i++) {
    MRConn *c = MRConn_Get(&cl.mgr, cl.id[i]);
    get_calls++;
    if (c != remaining[i]) get_wrong++;
  }
  // A surplus connection has closed once its switch to Freeing is logged.
  for (int k = 0; k < nsurplus; k++)
    if (!surplus_closed_us[k] && host_log_count("debug", surplus_tag[k]) > 0)
      surplus_closed_us[k] = now_us();
  MRConnDrainStats s;
  MRConnManager_GetDrainStats(&cl.mgr, &s);
  if (s.draining == 0 && !w->draining_zero_us) w->draining_zero_us = now_us();
  // A drained connection closes in the loop's next slice.
  return s.draining == 0 && s.queued == 0 && dc.replies + dc.nulls >= NREQ;
}

TEST(shrink_under_load_drains_gracefully) {
  nsurplus = 0;
  REQUIRE(dc_cluster_start(&cl, NODES, POOL));
  for (int i = 0; i < NODES; i++) {
    REQUIRE(dc_distinct(&cl.mgr, cl.id[i], POOL, pool[i]) == POOL);
    CHECK_EQ_INT(redis_client_count(cl.redis[i].port), POOL);
  }

  // 240 commands spread round-robin: node k % 3, then MRConn_Get's cursor.
  // The first round puts a BLPOP at the head of every connection.
  dc_reset_counts();
  memset(reqs, 0, sizeof reqs);
  for (int k = 0; k < NREQ; k++) {
    reqs[k].id = k;
    MRConn *c = MRConn_Get(&cl.mgr, cl.id[k % NODES]);
    REQUIRE(c != NULL);
    int rc = k < NODES * POOL ? dc_send_blpop(c, &reqs[k], "0.3") : dc_send_echo(c, &reqs[k]);
    REQUIRE(rc == REDIS_OK);
  }
  // Let the commands reach the servers: the BLPOPs are now blocking there.
  loop_run_for(&cl.loop, 30);
  int early = dc.replies + dc.nulls;
  CHECK_MSG(early == 0, "%d replies before the shrink (slow machine?)", early);

  host_log_clear();
  uint64_t t0 = now_us();
  MRConnManager_Shrink(&cl.mgr, 1);
  uint64_t t1 = now_us();
  uint64_t shrink_us = t1 - t0;
  printf("  Shrink(8 -> 1) with %d commands in flight returned in %" PRIu64 " us\n", NREQ - early,
         shrink_us);
  CHECK_MSG(shrink_us < 20000, "Shrink took %" PRIu64 " us", shrink_us);
  CHECK_EQ_INT(cl.mgr.nodeConns, 1);

  // Which connection stayed, which left, and what was pending on the latter.
  int pending_surplus = 0;
  for (int i = 0; i < NODES; i++) {
    remaining[i] = MRConn_Get(&cl.mgr, cl.id[i]);
    CHECK(dc_in(remaining[i], pool[i], POOL));
    for (int j = 0; j < POOL; j++) {
      if (pool[i][j] == remaining[i]) continue;
      surplus[nsurplus] = pool[i][j];
      snprintf(surplus_tag[nsurplus], sizeof surplus_tag[nsurplus],
               "[%p 127.0.0.1:%d Connected] Switching state to Freeing", (void *)pool[i][j],
               cl.redis[i].port);
      nsurplus++;
    }
  }
  CHECK_EQ_INT(nsurplus, NODES * (POOL - 1));
  for (int k = 0; k < NREQ; k++)
    if (reqs[k].calls == 0 && !dc_in(reqs[k].conn, remaining, NODES)) pending_surplus++;
  MRConnDrainStats s = dc_stats(&cl.mgr);
  dc_print_stats("after Shrink", s);
  CHECK_EQ_INT(s.draining, nsurplus);
  CHECK_EQ_INT(s.graceful + s.forced + s.broken + s.reclaimed, 0);

  char want[256];
  snprintf(want, sizeof want,
           "MRConnManager_Shrink: 8 -> 1 connections per node: 0 closed idle, %d draining with %d "
           "commands pending (no deadline)",
           nsurplus, pending_surplus);
  CHECK_MSG(host_log_count("notice", want) == 1, "missing notice: %s", want);
  CHECK_EQ_INT(pending_surplus, nsurplus * (NREQ / (NODES * POOL)));

  // Drain: the loop runs, MRConn_Get is asked between every two iterations.
  drain_watch w = {0};
  CHECK(loop_run_until(&cl.loop, drain_done, &w, 10000));
  uint64_t t_done = now_us();

  // Every callback exactly once, with its own reply.
  int lost = 0, twice = 0, nulls = 0, bad = 0;
  for (int k = 0; k < NREQ; k++) {
    lost += reqs[k].calls == 0;
    twice += reqs[k].calls > 1;
    nulls += reqs[k].nulls;
    bad += reqs[k].bad;
  }
  printf("  callbacks: %d replies, %d NULL, %d lost, %d duplicated, %d wrong\n", dc.replies, nulls,
         lost, twice, bad);
  CHECK_EQ_INT(lost, 0);
  CHECK_EQ_INT(twice, 0);
  CHECK_EQ_INT(nulls, 0);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(dc.replies, NREQ);
  printf("  MRConn_Get during the drain: %d calls, %d returned something else than the pool's "
         "remaining connection\n",
         get_calls, get_wrong);
  CHECK(get_calls > 0);
  CHECK_EQ_INT(get_wrong, 0);

  // Each surplus connection closed right after its last reply.
  uint64_t worst = 0, sum = 0;
  int closed = 0;
  for (int k = 0; k < nsurplus; k++) {
    uint64_t last = 0;
    for (int q = 0; q < NREQ; q++)
      if (reqs[q].conn == surplus[k] && reqs[q].reply_us > last) last = reqs[q].reply_us;
    if (!surplus_closed_us[k]) continue;
    closed++;
    uint64_t d = surplus_closed_us[k] > last ? surplus_closed_us[k] - last : 0;
    sum += d;
    if (d > worst) worst = d;
  }
  CHECK_EQ_INT(closed, nsurplus);
  uint64_t first_reply = UINT64_MAX;
  for (int k = 0; k < NREQ; k++)
    if (reqs[k].reply_us < first_reply) first_reply = reqs[k].reply_us;
  printf("  replies arrived %" PRIu64 "..%" PRIu64 " ms after Shrink; surplus connections closed "
         "%.2f ms (mean) / %.2f ms (worst) after their last reply; drain finished %" PRIu64
         " ms after Shrink\n",
         (first_reply - t1) / 1000, (dc.last_reply_us - t1) / 1000,
         closed ? (double)sum / closed / 1000.0 : 0.0, (double)worst / 1000.0,
         (w.draining_zero_us - t1) / 1000);
  CHECK_MSG(worst < 1000000, "a surplus connection closed %" PRIu64 " us after its last reply",
            worst);
  CHECK_MSG(t_done - t1 < 5000000, "drain took %" PRIu64 " us", t_done - t1);

  // The servers see it: one client per node, soon after the replies.
  for (int i = 0; i < NODES; i++) {
    uint64_t from = now_us();
    CHECK(dc_wait_clients(&cl, i, 1, 2000));
    printf("  node %d: 1 client, %" PRIu64 " ms after the drain ended\n", i,
           (now_us() - from) / 1000);
  }

  s = dc_stats(&cl.mgr);
  dc_print_stats("after the drain", s);
  CHECK_EQ_INT(s.draining, 0);
  CHECK_EQ_INT(s.graceful, nsurplus);
  CHECK_EQ_INT(s.forced, 0);
  CHECK_EQ_INT(s.broken, 0);
  CHECK_EQ_INT(s.reclaimed, 0);
  CHECK_EQ_INT(s.failedCallbacks, 0);

  snprintf(want, sizeof want, "MRConnManager_Shrink: drain of %d connections finished in ", nsurplus);
  char *line = host_log_find("notice", want);
  CHECK_MSG(line != NULL, "missing notice: %s...", want);
  if (line) {
    printf("  log: %s\n", line);
    CHECK(strstr(line, " ms: 21 graceful, 0 forced, 0 lost their link, 0 reclaimed, 0 callbacks "
                       "failed") != NULL);
    free(line);
  }
  long ms = dc_log_number_after("notice", want, "finished in ");
  CHECK(ms >= 200 && ms < 5000);
  CHECK_EQ_INT(host_log_count("warning", NULL), 0);

  // The remaining connection still works.
  dc_req extra = {.id = 9999};
  REQUIRE(dc_send_echo(MRConn_Get(&cl.mgr, cl.id[0]), &extra) == REDIS_OK);
  for (uint64_t end = now_ms() + 5000; extra.calls == 0 && now_ms() < end;)
    loop_run_for(&cl.loop, 5);
  CHECK_EQ_INT(extra.calls, 1);
  CHECK_EQ_INT(extra.nulls + extra.bad, 0);

  dc_cluster_stop(&cl);
}

TEST(idle_surplus_closes_on_the_loop) {
  REQUIRE(dc_cluster_start(&cl, NODES, POOL));
  for (int i = 0; i < NODES; i++) CHECK_EQ_INT(redis_client_count(cl.redis[i].port), POOL);

  host_log_clear();
  uint64_t t0 = now_us();
  MRConnManager_Shrink(&cl.mgr, 1);
  uint64_t shrink_us = now_us() - t0;
  printf("  Shrink(8 -> 1) with nothing in flight returned in %" PRIu64 " us\n", shrink_us);
  CHECK_MSG(shrink_us < 20000, "Shrink took %" PRIu64 " us", shrink_us);
  CHECK(host_log_count("notice", "MRConnManager_Shrink: 8 -> 1 connections per node: 21 closed "
                                 "idle, 0 draining with 0 commands pending (no deadline)") == 1);
  // Nothing closed inside the call: the closes are queued for the loop.
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Freeing"), 0);
  MRConnDrainStats s = dc_stats(&cl.mgr);
  CHECK_EQ_INT(s.queued, 21);
  CHECK_EQ_INT(s.draining + s.graceful + s.forced + s.broken + s.reclaimed, 0);
  // No queued connection is handed out meanwhile.
  for (int i = 0; i < NODES; i++)
    for (int k = 0; k < POOL; k++) CHECK(MRConn_Get(&cl.mgr, cl.id[i]) == MRConn_Get(&cl.mgr, cl.id[i]));

  uint64_t t1 = now_us();
  CHECK(dc_settle(&cl.loop, &cl.mgr));
  printf("  the loop closed the 21 in %" PRIu64 " us\n", now_us() - t1);
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Freeing"), 21);
  for (int i = 0; i < NODES; i++) {
    uint64_t from = now_ms();
    int n = -1;
    while ((n = redis_client_count(cl.redis[i].port)) != 1 && now_ms() - from < 1000) sleep_ms(2);
    CHECK_EQ_INT(n, 1);
  }
  // The remaining connection is the pool, and it is Connected.
  for (int i = 0; i < NODES; i++) {
    MRConn *c = MRConn_Get(&cl.mgr, cl.id[i]);
    CHECK(c != NULL);
    CHECK(MRConn_Get(&cl.mgr, cl.id[i]) == c);
    CHECK_EQ_STR(MRConnManager_GetNodeState(&cl.mgr, cl.id[i]), "Connected");
  }
  dc_cluster_stop(&cl);
}

HARNESS_MAIN(HARNESS_TEST(shrink_under_load_drains_gracefully),
             HARNESS_TEST(idle_surplus_closes_on_the_loop))
