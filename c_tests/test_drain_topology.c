// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Drains beyond Shrink, and drains that end otherwise than gracefully
// (issue 3):
//   - MRConnManager_Disconnect under load: the node's pool drains, every
//     callback gets its real reply, the notice names the node;
//   - MRConnManager_Add with a changed endpoint under load: the old pool
//     drains, new work goes to the new endpoint at once;
//   - Shutdown mid-drain: draining connections are closed by force, every
//     pending callback gets NULL exactly once, and no handle of the library
//     is left open when Shutdown returns;
//   - a server killed mid-drain: pending callbacks get NULL once, the
//     connections are freed, no reconnect is attempted for them, stats.broken
//     counts them; when some replies came first, the warning and the stats
//     count only the callbacks still pending (the drain's countdown follows
//     each read);
//   - the single-shard case: Init, Add and Shrink before the loop ever ran
//     (connections still Connecting): the surplus closes at once, nothing
//     crashes, and Shutdown then one UV_RUN_ONCE leaves a closable loop and
//     no leak.
#include "drain_common.h"

#define POOL 4
#define PER_CONN 3  // a BLPOP, then two ECHOs, on every connection
#define NREQ (POOL * PER_CONN)

static dc_cluster cl;
static dc_req reqs[NREQ];

static bool all_called(void *arg) {
  (void)arg;
  for (int k = 0; k < NREQ; k++)
    if (reqs[k].calls == 0) return false;
  return true;
}

// Puts a BLPOP of `seconds` at the head of every connection of node i, then
// two ECHOs behind each; lets them reach the server.
static bool load_node(int i, const char *seconds) {
  memset(reqs, 0, sizeof reqs);
  dc_reset_counts();
  for (int k = 0; k < NREQ; k++) {
    reqs[k].id = k;
    MRConn *c = MRConn_Get(&cl.mgr, cl.id[i]);
    if (!c) return false;
    int rc = k < POOL ? dc_send_blpop(c, &reqs[k], seconds) : dc_send_echo(c, &reqs[k]);
    if (rc != REDIS_OK) return false;
  }
  loop_run_for(&cl.loop, 20);
  return dc.replies + dc.nulls == 0;
}

// Every request called once; returns how many got NULL.
static int called_once_nulls(void) {
  int nulls = 0;
  for (int k = 0; k < NREQ; k++) {
    CHECK_EQ_INT(reqs[k].calls, 1);
    nulls += reqs[k].nulls;
  }
  CHECK_EQ_INT(dc.duplicates, 0);
  return nulls;
}

TEST(disconnect_under_load_drains) {
  REQUIRE(dc_cluster_start(&cl, 2, POOL));
  REQUIRE(load_node(0, "0.2"));
  host_log_clear();
  uint64_t t0 = now_us();
  CHECK_EQ_INT(MRConnManager_Disconnect(&cl.mgr, "n0"), REDIS_OK);
  printf("  Disconnect with %d commands in flight returned in %" PRIu64 " us\n", NREQ,
         now_us() - t0);
  CHECK(MRConn_Get(&cl.mgr, "n0") == NULL);
  CHECK(MRConnManager_GetNodeState(&cl.mgr, "n0") == NULL);
  CHECK_EQ_INT(MRConnManager_Disconnect(&cl.mgr, "n0"), REDIS_ERR);
  CHECK(host_log_count("notice", "MRConnManager_Disconnect: node n0: 0 connections closed idle, 4 "
                                 "draining with 12 commands pending (no deadline)") == 1);
  CHECK_EQ_INT(dc_stats(&cl.mgr).draining, POOL);

  CHECK(loop_run_until(&cl.loop, all_called, NULL, 5000));
  CHECK_EQ_INT(called_once_nulls(), 0);
  CHECK_EQ_INT(dc.bad, 0);
  dc_stat_arg none = {&cl.mgr, 0};
  CHECK(loop_run_until(&cl.loop, dc_draining_is, &none, 2000));
  MRConnDrainStats s = dc_stats(&cl.mgr);
  dc_print_stats("after the drain", s);
  CHECK_EQ_INT(s.graceful, POOL);
  CHECK_EQ_INT(s.forced + s.broken + s.reclaimed + s.failedCallbacks, 0);
  char *line = host_log_find("notice", "MRConnManager_Disconnect: drain of 4 connections finished in ");
  CHECK(line && strstr(line, "4 graceful, 0 forced"));
  if (line) printf("  log: %s\n", line);
  free(line);
  CHECK(dc_wait_clients(&cl, 0, 0, 2000));
  // The other node is untouched.
  CHECK(MRConn_Get(&cl.mgr, "n1") != NULL);
  CHECK_EQ_INT(redis_client_count(cl.redis[1].port), POOL);
  dc_cluster_stop(&cl);
}

static MRConn *old_conns[POOL];

static bool new_pool_connected(void *arg) {
  (void)arg;
  MRConn *seen[DC_MAX_POOL];
  int n = dc_distinct(&cl.mgr, "n0", POOL, seen);
  for (int j = 0; j < n; j++)
    if (dc_in(seen[j], old_conns, POOL)) return false;
  return n == POOL;
}

TEST(endpoint_change_under_load_drains_the_old_pool) {
  // n0 on server 0, n1 on server 1; then n0 moves to server 1.
  REQUIRE(dc_cluster_start(&cl, 2, POOL));
  REQUIRE(dc_distinct(&cl.mgr, "n0", POOL, old_conns) == POOL);
  REQUIRE(load_node(0, "0.2"));
  host_log_clear();
  uint64_t t0 = now_us();
  CHECK(MRConnManager_Add(&cl.mgr, &cl.loop, "n0", &cl.ep[1]));
  printf("  Add (endpoint change) with %d commands in flight returned in %" PRIu64 " us\n", NREQ,
         now_us() - t0);
  char want[256];
  snprintf(want, sizeof want, "MRConnManager_Add: Node n0 endpoint changed from 127.0.0.1:%d to 127.0.0.1:%d",
           cl.redis[0].port, cl.redis[1].port);
  CHECK_MSG(host_log_count("notice", want) == 1, "missing: %s", want);
  CHECK(host_log_count("notice", "MRConnManager_Add: node n0: 0 connections closed idle, 4 draining "
                                 "with 12 commands pending (no deadline)") == 1);
  CHECK_EQ_INT(dc_stats(&cl.mgr).draining, POOL);
  // Same endpoint again: nothing changes.
  CHECK(!MRConnManager_Add(&cl.mgr, &cl.loop, "n0", &cl.ep[1]));

  // New work goes to the new endpoint only, as soon as it is connected.
  CHECK(loop_run_until(&cl.loop, new_pool_connected, NULL, 5000));
  CHECK(!dc_in(MRConn_Get(&cl.mgr, "n0"), old_conns, POOL));
  CHECK(loop_run_until(&cl.loop, all_called, NULL, 5000));
  CHECK_EQ_INT(called_once_nulls(), 0);
  CHECK_EQ_INT(dc.bad, 0);
  for (int k = 0; k < NREQ; k++) CHECK(dc_in(reqs[k].conn, old_conns, POOL));
  dc_stat_arg none = {&cl.mgr, 0};
  CHECK(loop_run_until(&cl.loop, dc_draining_is, &none, 2000));
  MRConnDrainStats s = dc_stats(&cl.mgr);
  dc_print_stats("after the drain", s);
  CHECK_EQ_INT(s.graceful, POOL);
  CHECK_EQ_INT(s.forced + s.broken + s.reclaimed + s.failedCallbacks, 0);
  char *line = host_log_find("notice", "MRConnManager_Add: drain of 4 connections finished in ");
  CHECK(line && strstr(line, "4 graceful, 0 forced"));
  if (line) printf("  log: %s\n", line);
  free(line);
  CHECK(dc_wait_clients(&cl, 0, 0, 2000));
  CHECK(dc_wait_clients(&cl, 1, 2 * POOL, 2000));
  dc_cluster_stop(&cl);
}

TEST(shutdown_mid_drain_fails_pending_once) {
  REQUIRE(dc_cluster_start(&cl, 1, POOL));
  REQUIRE(load_node(0, "2"));
  host_log_clear();
  MRConnManager_Shrink(&cl.mgr, 1);
  CHECK_EQ_INT(dc_stats(&cl.mgr).draining, POOL - 1);
  loop_run_for(&cl.loop, 20);
  CHECK_EQ_INT(dc.replies + dc.nulls + dc.closed, 0);

  MRConnManager_Shutdown(&cl.mgr);
  // Every callback ran inside Shutdown, once, with Shutdown's error reply.
  CHECK_EQ_INT(dc.closed, NREQ);
  CHECK_EQ_INT(dc.nulls + dc.duplicates, 0);
  char want[112];
  snprintf(want, sizeof want, "ERR connection to 127.0.0.1:%d closed: connection manager shut down",
           cl.redis[0].port);
  int text_ok = 0;
  for (int k = 0; k < NREQ; k++) text_ok += reqs[k].calls == 1 && strcmp(reqs[k].err, want) == 0;
  CHECK_EQ_INT(text_ok, NREQ);
  // One line for the node: the others are summed (issue 18 item 4), and
  // the drain's report counts them all.
  CHECK_EQ_INT(host_log_count("warning", "Shutdown while draining after "), 1);
  char *w = host_log_find("warning", "Shutdown while draining after ");
  CHECK(w && strstr(w, ": closing by force, failing 3 pending commands"));
  if (w) printf("  log: %s\n", w);
  free(w);
  // CONTRACT §5: every handle of the library is closing already.
  CHECK_EQ_INT(loop_count_open_handles(&cl.loop), 0);
  loop_close_all_handles(&cl.loop);
  CHECK_EQ_INT(uv_loop_close(&cl.loop), 0);
  CHECK_EQ_INT((long long)host_alloc_live_count(), 0);
  // The loop's last pass found nothing more to fail.
  CHECK_EQ_INT(dc.closed, NREQ);
  CHECK_EQ_INT(dc.nulls + dc.duplicates, 0);
  uint64_t from = now_ms();
  int n;
  while ((n = redis_client_count(cl.redis[0].port)) != 0 && now_ms() - from < 2000) sleep_ms(5);
  CHECK_EQ_INT(n, 0);
  redis_stop(&cl.redis[0]);
}

TEST(server_killed_mid_drain) {
  REQUIRE(dc_cluster_start(&cl, 1, POOL));
  MRConn *conns[POOL];
  REQUIRE(dc_distinct(&cl.mgr, "n0", POOL, conns) == POOL);
  REQUIRE(load_node(0, "5"));
  host_log_clear();
  MRConnManager_Shrink(&cl.mgr, 1);
  MRConn *kept = MRConn_Get(&cl.mgr, "n0");
  CHECK(dc_in(kept, conns, POOL));
  CHECK_EQ_INT(dc_stats(&cl.mgr).draining, POOL - 1);
  loop_run_for(&cl.loop, 20);

  uint64_t t_kill = now_us();
  redis_kill(&cl.redis[0]);
  CHECK(loop_run_until(&cl.loop, all_called, NULL, 5000));
  printf("  all %d callbacks called %.1f ms after the kill\n", NREQ, (now_us() - t_kill) / 1000.0);
  CHECK_EQ_INT(called_once_nulls(), NREQ);
  MRConnDrainStats s = dc_stats(&cl.mgr);
  dc_print_stats("after the kill", s);
  CHECK_EQ_INT(s.draining, 0);
  CHECK_EQ_INT(s.broken, POOL - 1);
  CHECK_EQ_INT(s.graceful + s.forced + s.reclaimed, 0);
  // A broken link fails with NULL, as in conn.c; the stats count those too.
  CHECK_EQ_INT(s.failedCallbacks, NREQ - PER_CONN);
  CHECK_EQ_INT(host_log_count("warning", "Link lost while draining"), 1);  // the node's first
  char *line = host_log_find("notice", "MRConnManager_Shrink: drain of 3 connections finished in ");
  // Each drained connection had PER_CONN callbacks pending when its link broke.
  CHECK(line && strstr(line, "0 graceful, 0 forced, 3 lost their link, 0 reclaimed, 9 callbacks failed"));
  if (line) printf("  log: %s\n", line);
  free(line);

  // Let the remaining connection try to reconnect a few times; the drained
  // ones must not.
  loop_run_for(&cl.loop, 700);
  int kept_reconnects = 0;
  for (int j = 0; j < POOL; j++) {
    char tag[40];
    snprintf(tag, sizeof tag, "[%p ", (void *)conns[j]);
    int reconnects = dc_log_count_both("debug", tag, "Switching state to Reconnecting");
    if (conns[j] == kept) {
      kept_reconnects = reconnects;
      continue;
    }
    CHECK_EQ_INT(reconnects, 0);
    CHECK_EQ_INT(dc_log_count_both("debug", tag, "Switching state to Freeing"), 1);
    CHECK_EQ_INT(dc_log_count_both("debug", tag, "Switching state to Connecting"), 0);
  }
  printf("  the pool's remaining connection switched to Reconnecting %d time(s); the 3 drained "
         "ones never\n",
         kept_reconnects);
  CHECK(kept_reconnects >= 1);
  dc_finish_loop(&cl.loop, &cl.mgr);
}

static void single_shard(bool run_loop) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  host_init();
  host_set_enterprise(true);
  host_log_clear();
  uv_loop_t loop;
  MRConnManager mgr;
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 8);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n0", &ep));
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n0"), "Connecting");
  // The resize on "Redis's main thread", before the loop ever ran.
  uint64_t t0 = now_us();
  MRConnManager_Shrink(&mgr, 1);
  printf("  Shrink(8 -> 1) before the loop ran returned in %" PRIu64 " us\n", now_us() - t0);
  // Before the loop ran, no connection had been opened: the pool is just
  // smaller, and only the one kept is left to open.
  CHECK(host_log_count("notice", "MRConnManager_Shrink: 8 -> 1 connections per node: 0 closed "
                                 "idle, 0 draining with 0 commands pending") == 1);
  CHECK_EQ_INT(host_log_count("debug", "Switching state to"), 0);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n0"), "Connecting");
  CHECK_EQ_INT(dc_stats(&mgr).queued, 1);
  CHECK_EQ_INT(dc_stats(&mgr).draining, 0);
  CHECK_EQ_INT(mgr.nodeConns, 1);

  if (run_loop) {
    // The loop starts: the one remaining connection connects and works.
    bool up = false;
    for (uint64_t end = now_ms() + 5000; !up && now_ms() < end;) {
      loop_run_for(&loop, 5);
      const char *st = MRConnManager_GetNodeState(&mgr, "n0");
      up = st && strcmp(st, "Connected") == 0;
    }
    CHECK(up);
    dc_req q = {.id = 1};
    dc_reset_counts();
    CHECK_EQ_INT(dc_send_echo(MRConn_Get(&mgr, "n0"), &q), REDIS_OK);
    for (uint64_t end = now_ms() + 5000; q.calls == 0 && now_ms() < end;) loop_run_for(&loop, 5);
    CHECK_EQ_INT(q.calls, 1);
    CHECK_EQ_INT(q.nulls + q.bad, 0);
    CHECK_EQ_INT(redis_client_count(r.port), 1);
    dc_finish_loop(&loop, &mgr);
  } else {
    // RediSearch when the loop thread never ran: Shutdown, then one
    // UV_RUN_ONCE, then the loop must close.
    MRConnManager_Shutdown(&mgr);
    CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
    uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    CHECK_EQ_INT((long long)host_alloc_live_count(), 0);
  }
  redis_stop(&r);
}

TEST(single_shard_shrink_before_the_loop_ran) { single_shard(false); }
TEST(single_shard_shrink_before_the_loop_ran_then_loop_runs) { single_shard(true); }

// A drain counts what is still pending as replies arrive (read by read, in
// O(1) each): when its link breaks after some replies, the warning and the
// stats name only the callbacks that got NULL.
TEST(link_lost_after_some_replies_counts_only_the_rest) {
  REQUIRE(dc_cluster_start(&cl, 1, 2));
  MRConn *conns[2];
  REQUIRE(dc_distinct(&cl.mgr, "n0", 2, conns) == 2);
  memset(reqs, 0, sizeof reqs);
  dc_reset_counts();
  // On each connection: two ECHOs, a BLPOP of 5 s, two more ECHOs.
  for (int j = 0; j < 2; j++)
    for (int k = 0; k < 5; k++) {
      dc_req *q = &reqs[j * 5 + k];
      q->id = j * 5 + k;
      REQUIRE((k == 2 ? dc_send_blpop(conns[j], q, "5") : dc_send_echo(conns[j], q)) == REDIS_OK);
    }
  host_log_clear();
  MRConnManager_Shrink(&cl.mgr, 1);  // one of them drains, 5 pending
  CHECK(host_log_count("notice", "1 draining with 5 commands pending") == 1);
  loop_run_for(&cl.loop, 100);  // the first two ECHOs on each are answered
  CHECK_EQ_INT(dc.replies, 4);
  redis_kill(&cl.redis[0]);
  uint64_t from = now_ms();
  while (dc.replies + dc.nulls < 10 && now_ms() - from < 5000) loop_run_for(&cl.loop, 10);
  CHECK_EQ_INT(dc.nulls, 6);
  MRConnDrainStats s = dc_stats(&cl.mgr);
  CHECK_EQ_INT(s.broken, 1);
  CHECK_EQ_INT(s.failedCallbacks, 3);
  char *line = host_log_find("warning", "Link lost while draining: ");
  CHECK(line && strstr(line, "Link lost while draining: 3 pending commands failed"));
  if (line) printf("  log: %s\n", line);
  free(line);
  CHECK_EQ_INT(dc.duplicates, 0);
  dc_cluster_stop(&cl);
}

HARNESS_MAIN(HARNESS_TEST(disconnect_under_load_drains),
             HARNESS_TEST(endpoint_change_under_load_drains_the_old_pool),
             HARNESS_TEST(shutdown_mid_drain_fails_pending_once),
             HARNESS_TEST(server_killed_mid_drain),
             HARNESS_TEST(link_lost_after_some_replies_counts_only_the_rest),
             HARNESS_TEST(single_shard_shrink_before_the_loop_ran),
             HARNESS_TEST(single_shard_shrink_before_the_loop_ran_then_loop_runs))
