// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Taking draining connections back (issue 3):
//   - Expand while connections are draining: those still Connected to the
//     same endpoint go back into the pool (stats.reclaimed) as it fills on
//     the loop, MRConn_Get returns them again, their in-flight replies arrive
//     normally, and only the connections that had already closed are opened
//     anew;
//   - pools flapping 8 -> 1 -> 8 reopen nothing, busy (their drains are
//     reclaimed) or idle (parked to close, and taken back first);
//   - Add moving a node away and straight back: the old pool, still
//     draining, is taken back instead of reconnecting.
#include <stdlib.h>

#include "drain_common.h"

// These tests see a reclaimed connection back in its pool by MRConn_Get
// handing it out while it still carries work, under conn.c's rotation;
// mrconn's default pick passes busy connections over while another is idle
// (test_pick). MRCONN_PICK is read once, at the first MRConn_Get.
__attribute__((constructor)) static void pick_round_robin(void) { setenv("MRCONN_PICK", "round_robin", 1); }

static dc_cluster cl;

#define MAXREQ 256
static dc_req reqs[MAXREQ];
static int nreq;

static bool all_called(void *arg) {
  (void)arg;
  for (int k = 0; k < nreq; k++)
    if (reqs[k].calls == 0) return false;
  return true;
}

static void check_all_answered(void) {
  CHECK(loop_run_until(&cl.loop, all_called, NULL, 10000));
  int bad = 0;
  for (int k = 0; k < nreq; k++) bad += reqs[k].calls != 1 || reqs[k].nulls != 0 || reqs[k].bad != 0;
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(dc.duplicates, 0);
}

static dc_req *next_req(void) {
  dc_req *q = &reqs[nreq];
  memset(q, 0, sizeof *q);
  q->id = nreq++;
  return q;
}

static void fast_blocking_timeouts(void) {
  // BLPOP timeouts to the ~10 ms instead of ~100 ms.
  char out[64];
  for (int i = 0; i < cl.nodes; i++)
    CHECK_EQ_INT(redis_cmd(cl.redis[i].port, out, sizeof out, "CONFIG SET hz 100"), 0);
}

#define POOL_A 6

TEST(expand_takes_draining_connections_back) {
  REQUIRE(dc_cluster_start(&cl, 1, POOL_A));
  fast_blocking_timeouts();
  nreq = 0;
  dc_reset_counts();
  // Connection by connection (MRConn_Get's order): a BLPOP of 0.1 s or 1.5 s
  // alternately, then two ECHOs.
  MRConn *conns[POOL_A];
  bool is_long[POOL_A];
  for (int j = 0; j < POOL_A; j++) {
    conns[j] = MRConn_Get(&cl.mgr, "n0");
    REQUIRE(conns[j] != NULL);
    is_long[j] = j % 2 == 1;
    REQUIRE(dc_send_blpop(conns[j], next_req(), is_long[j] ? "1.5" : "0.1") == REDIS_OK);
    REQUIRE(dc_send_echo(conns[j], next_req()) == REDIS_OK);
    REQUIRE(dc_send_echo(conns[j], next_req()) == REDIS_OK);
  }
  for (int j = 0; j < POOL_A; j++) CHECK(!dc_in(conns[j], conns, j));
  loop_run_for(&cl.loop, 20);

  MRConnManager_Shrink(&cl.mgr, 1);
  MRConn *kept = MRConn_Get(&cl.mgr, "n0");
  REQUIRE(dc_in(kept, conns, POOL_A));
  int n_short = 0, n_long = 0;
  for (int j = 0; j < POOL_A; j++)
    if (conns[j] != kept) is_long[j] ? n_long++ : n_short++;
  CHECK_EQ_INT(dc_stats(&cl.mgr).draining, POOL_A - 1);

  // The short ones finish their drain and close; the long ones go on.
  dc_stat_arg left = {&cl.mgr, (uint64_t)n_long};
  CHECK(loop_run_until(&cl.loop, dc_draining_is, &left, 3000));
  CHECK(dc_settle(&cl.loop, &cl.mgr));  // and the drained ones closed
  MRConnDrainStats s = dc_stats(&cl.mgr);
  CHECK_EQ_INT(s.graceful, n_short);

  host_log_clear();
  uint64_t t0 = now_us();
  MRConnManager_Expand(&cl.mgr, POOL_A, &cl.loop);
  printf("  Expand(1 -> 6) with %d connections draining returned in %" PRIu64 " us\n", n_long,
         now_us() - t0);
  // The pool fills on the loop, taking the draining connections back first.
  CHECK_EQ_INT(dc_stats(&cl.mgr).queued, POOL_A - 1);
  CHECK(dc_settle(&cl.loop, &cl.mgr));
  s = dc_stats(&cl.mgr);
  dc_print_stats("after Expand", s);
  CHECK_EQ_INT(s.reclaimed, n_long);
  CHECK_EQ_INT(s.draining, 0);
  CHECK_EQ_INT(cl.mgr.nodeConns, POOL_A);
  // Only the closed ones are opened anew.
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Connecting"), n_short);
  char *line = host_log_find("notice", "MRConnManager_Shrink: drain of 5 connections finished in ");
  char want[128];
  snprintf(want, sizeof want, "%d graceful, 0 forced, 0 lost their link, %d reclaimed", n_short,
           n_long);
  CHECK(line && strstr(line, want));
  if (line) printf("  log: %s\n", line);
  free(line);

  // Whether or not the new ones connected yet, MRConn_Get hands out the
  // kept and the reclaimed connections.
  MRConn *seen[DC_MAX_POOL];
  int n = dc_distinct(&cl.mgr, "n0", POOL_A, seen);
  CHECK(n >= 1 + n_long);
  for (int j = 0; j < POOL_A; j++)
    if (is_long[j] && conns[j] != kept) CHECK(dc_in(conns[j], seen, n));

  // New work on them, in order behind what they still carry.
  for (int j = 0; j < n; j++) CHECK_EQ_INT(dc_send_echo(seen[j], next_req()), REDIS_OK);
  // Their in-flight replies arrive normally.
  check_all_answered();
  printf("  all %d callbacks got their reply, the reclaimed connections' ones included\n", nreq);
  CHECK(dc_wait_connected(&cl, POOL_A, 5000));
  CHECK_EQ_INT(redis_client_count(cl.redis[0].port), POOL_A);
  CHECK_EQ_INT(host_log_count("warning", NULL), 0);
  dc_cluster_stop(&cl);
}

#define NODES_B 3
#define POOL_B 8
#define FLAPS 5

TEST(flapping_pools_reopen_only_closed_connections) {
  REQUIRE(dc_cluster_start(&cl, NODES_B, POOL_B));
  nreq = 0;
  dc_reset_counts();
  // Every connection: a BLPOP of 1 s, then an ECHO.
  for (int k = 0; k < NODES_B * POOL_B; k++) {
    MRConn *c = MRConn_Get(&cl.mgr, cl.id[k % NODES_B]);
    REQUIRE(c != NULL);
    REQUIRE(dc_send_blpop(c, next_req(), "1") == REDIS_OK);
    REQUIRE(dc_send_echo(c, next_req()) == REDIS_OK);
  }
  loop_run_for(&cl.loop, 20);
  host_log_clear();

  for (int f = 0; f < FLAPS; f++) {
    MRConnManager_Shrink(&cl.mgr, 1);
    CHECK_EQ_INT(dc_stats(&cl.mgr).draining, NODES_B * (POOL_B - 1));
    loop_run_for(&cl.loop, 10);
    MRConnManager_Expand(&cl.mgr, POOL_B, &cl.loop);
    CHECK(dc_settle(&cl.loop, &cl.mgr));
    MRConnDrainStats s = dc_stats(&cl.mgr);
    CHECK_EQ_INT(s.reclaimed, (f + 1) * NODES_B * (POOL_B - 1));
    CHECK_EQ_INT(s.draining, 0);
    loop_run_for(&cl.loop, 10);
  }
  int opened = host_log_count("debug", "Switching state to Connecting");
  printf("  %d flaps 8 -> 1 -> 8 with every connection busy: %" PRIu64
         " reclaimed, %d connections opened anew\n",
         FLAPS, dc_stats(&cl.mgr).reclaimed, opened);
  CHECK_EQ_INT(opened, 0);
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Freeing"), 0);
  for (int i = 0; i < NODES_B; i++) CHECK_EQ_INT(redis_client_count(cl.redis[i].port), POOL_B);
  check_all_answered();

  // Idle now: the surplus is parked to close, and the Expand that comes
  // first takes it back; nothing closes, nothing opens anew, and no drain
  // is counted.
  MRConnManager_Shrink(&cl.mgr, 1);
  MRConnManager_Expand(&cl.mgr, POOL_B, &cl.loop);
  CHECK(dc_settle(&cl.loop, &cl.mgr));
  MRConnDrainStats s = dc_stats(&cl.mgr);
  CHECK_EQ_INT(s.reclaimed, FLAPS * NODES_B * (POOL_B - 1));
  opened = host_log_count("debug", "Switching state to Connecting");
  printf("  one more flap with nothing in flight: %d connections opened anew\n", opened);
  CHECK_EQ_INT(opened, 0);
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Freeing"), 0);
  CHECK(dc_wait_connected(&cl, POOL_B, 5000));
  for (int i = 0; i < NODES_B; i++) CHECK(dc_wait_clients(&cl, i, POOL_B, 2000));
  dc_cluster_stop(&cl);
}

#define POOL_C 4

TEST(add_moving_a_node_back_takes_its_draining_pool_back) {
  REQUIRE(dc_cluster_start(&cl, 2, POOL_C));  // n0 on server 0, n1 on server 1
  nreq = 0;
  dc_reset_counts();
  MRConn *old[POOL_C];
  for (int j = 0; j < POOL_C; j++) {
    old[j] = MRConn_Get(&cl.mgr, "n0");
    REQUIRE(dc_send_blpop(old[j], next_req(), "0.5") == REDIS_OK);
    REQUIRE(dc_send_echo(old[j], next_req()) == REDIS_OK);
  }
  loop_run_for(&cl.loop, 20);
  host_log_clear();
  // n0 moves to server 1, and straight back to server 0.
  CHECK(MRConnManager_Add(&cl.mgr, &cl.loop, "n0", &cl.ep[1]));
  CHECK_EQ_INT(dc_stats(&cl.mgr).draining, POOL_C);
  CHECK(MRConnManager_Add(&cl.mgr, &cl.loop, "n0", &cl.ep[0]));
  // The pool to server 1 had opened none of its connections: nothing to
  // close, and nothing logged for it. The new pool fills on the loop with
  // the old connections, taken back.
  CHECK(host_log_count("notice", "MRConnManager_Add: node n0:") == 1);
  CHECK(dc_settle(&cl.loop, &cl.mgr));
  MRConnDrainStats s = dc_stats(&cl.mgr);
  dc_print_stats("after moving back", s);
  CHECK_EQ_INT(s.reclaimed, POOL_C);
  CHECK_EQ_INT(s.draining, 0);
  char tag[96];
  snprintf(tag, sizeof tag, "127.0.0.1:%d Connecting] Switching state to Connecting", cl.redis[0].port);
  CHECK_EQ_INT(host_log_count("debug", tag), 0);
  // The old connections are the pool again.
  MRConn *seen[DC_MAX_POOL];
  CHECK_EQ_INT(dc_distinct(&cl.mgr, "n0", POOL_C, seen), POOL_C);
  for (int j = 0; j < POOL_C; j++) CHECK(dc_in(seen[j], old, POOL_C));
  check_all_answered();
  CHECK(dc_wait_clients(&cl, 0, POOL_C, 2000));
  CHECK(dc_wait_clients(&cl, 1, POOL_C, 2000));
  dc_cluster_stop(&cl);
}

HARNESS_MAIN(HARNESS_TEST(expand_takes_draining_connections_back),
             HARNESS_TEST(flapping_pools_reopen_only_closed_connections),
             HARNESS_TEST(add_moving_a_node_back_takes_its_draining_pool_back))
