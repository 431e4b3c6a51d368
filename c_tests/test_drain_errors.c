// SPDX-License-Identifier: MIT OR Apache-2.0
//
// A forced drain never turns into silently missing results (issue 9).
//
// 1. The default deadline never cuts work RediSearch itself still waits for.
//    When RediSearch enforces its query timeout (search-on-timeout fail or
//    return-strict) it is max(5000, search-timeout + 1000) ms; with the
//    `return` policy (RediSearch's default, whose coordinator waits for every
//    shard however late) or a timeout of 0, there is none, as in conn.c.
//    Three managers drain side by side on one loop, each started under
//    another configuration:
//    - fail, 12000 ms: a 7 s command (BLPOP on a real redis-server) on a
//      shrunk-away connection gets its real reply;
//    - return, 500 ms (RediSearch's defaults): a command that is never
//      answered is not failed within 10 s; the drain stays open until
//      Shutdown, which fails it with its error reply;
//    - fail, 500 ms: forced at 5000 ms, with the error reply "ERR connection
//      to 127.0.0.1:<port> closed: drain deadline of 5000 ms reached",
//      exactly once, and no NULL after it.
//    SetDrainTimeout(200) (a set deadline) is test_drain_deadline's.
// 2. A callback receiving that error reply may call back into the manager:
//    send on another connection, Expand, Shrink, Add (equal and new
//    endpoint), Disconnect (another node, its own node) and Shutdown. Every
//    callback still runs exactly once, nothing leaks, no handle stays open.
//
// The commands that are never answered go to the harness's RESP server
// (never_reply_to): a real redis-server cannot be made to hold one reply
// forever.
#include "config.h"
#include "drain_common.h"

static uv_loop_t loop;

// A manager with one node of two connections. Both get the same command, so
// that whichever one a Shrink to 1 removes (the pool keeps its first) drains
// with it, while the other keeps its own.
typedef struct {
  MRConnManager mgr;
  MRConn *conns[2];
} one_node;

static bool both_connected(void *arg) {
  one_node *n = arg;
  return dc_distinct(&n->mgr, "n0", 2, n->conns) == 2;
}

static void one_node_start(one_node *n, int port) {
  MRConnManager_Init(&n->mgr, 2);
  MREndpoint ep = {.host = "127.0.0.1", .port = port};
  CHECK(MRConnManager_Add(&n->mgr, &loop, "n0", &ep));
  CHECK(loop_run_until(&loop, both_connected, n, 10000));
}

// Sends argv on both connections of n, one request each.
static void send_both(one_node *n, dc_req *q, int argc, const char **argv) {
  for (int i = 0; i < 2; i++) CHECK_EQ_INT(dc_send_argv(n->conns[i], &q[i], argc, argv), REDIS_OK);
}

static bool any_called(void *arg) {
  dc_req *q = arg;
  return q[0].calls + q[1].calls > 0;
}

static bool both_called(void *arg) {
  dc_req *q = arg;
  return q[0].calls > 0 && q[1].calls > 0;
}

// A loop, a real redis-server, and a RESP server that never answers STALL.
static resp_server *servers_start(redis_proc *r) {
  host_init();
  host_set_enterprise(true);
  if (uv_loop_init(&loop) != 0 || redis_start(r, NULL) != 0) return NULL;
  struct resp_server_opts o = {.never_reply_to = "STALL"};
  return resp_server_start(&o);
}

// After the managers are shut down: no NULL reply and no second callback
// came after the error replies, no handle is open, nothing leaks.
static void servers_stop(redis_proc *r, resp_server *srv) {
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_EQ_INT(dc.nulls + dc.duplicates, 0);
  CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
  loop_close_all_handles(&loop);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  CHECK_EQ_INT((long long)host_alloc_live_count(), 0);
  resp_server_stop(srv);
  redis_stop(r);
}

TEST(deadline_follows_the_query_timeout) {
  redis_proc r;
  resp_server *srv = servers_start(&r);
  REQUIRE(srv != NULL);
  dc_reset_counts();
  static one_node slow, unlimited, dflt;
  one_node_start(&slow, r.port);
  one_node_start(&unlimited, resp_server_port(srv));
  one_node_start(&dflt, resp_server_port(srv));
  static dc_req q_slow[2], q_unlimited[2], q_dflt[2];
  memset(q_slow, 0, sizeof q_slow);
  memset(q_unlimited, 0, sizeof q_unlimited);
  memset(q_dflt, 0, sizeof q_dflt);
  const char *stall[] = {"STALL"};
  const char *blpop[] = {"BLPOP", "drain-errors-nokey", "7"};
  host_log_clear();
  uint64_t t0 = now_us();

  // fail, 12000: the drain waits up to 13 s, so the 7 s BLPOP ends with its
  // real reply (a nil).
  RSGlobalConfig.requestConfigParams.timeoutPolicy = TimeoutPolicy_Fail;
  RSGlobalConfig.requestConfigParams.queryTimeoutMS = 0;
  CHECK_EQ_INT(MRConnManager_GetDrainTimeout(), 0);  // unlimited: none either
  RSGlobalConfig.requestConfigParams.queryTimeoutMS = 12000;
  CHECK_EQ_INT(MRConnManager_GetDrainTimeout(), 13000);
  send_both(&slow, q_slow, 3, blpop);
  loop_run_for(&loop, 20);
  MRConnManager_Shrink(&slow.mgr, 1);
  CHECK_EQ_INT(host_log_count("notice", "1 draining with 1 commands pending (deadline 13000 ms)"), 1);

  // RediSearch's defaults, return and 500: RediSearch waits for the shard,
  // and so does the drain.
  RSGlobalConfig.requestConfigParams.timeoutPolicy = TimeoutPolicy_Return;
  RSGlobalConfig.requestConfigParams.queryTimeoutMS = 500;
  CHECK_EQ_INT(MRConnManager_GetDrainTimeout(), 0);
  send_both(&unlimited, q_unlimited, 1, stall);
  loop_run_for(&loop, 20);
  MRConnManager_Shrink(&unlimited.mgr, 1);
  CHECK_EQ_INT(host_log_count("notice", "1 draining with 1 commands pending (no deadline)"), 1);

  // fail, 500: 5000 ms.
  RSGlobalConfig.requestConfigParams.timeoutPolicy = TimeoutPolicy_Fail;
  CHECK_EQ_INT(MRConnManager_GetDrainTimeout(), 5000);
  send_both(&dflt, q_dflt, 1, stall);
  loop_run_for(&loop, 20);
  uint64_t t_dflt = now_us();
  MRConnManager_Shrink(&dflt.mgr, 1);
  CHECK_EQ_INT(host_log_count("notice", "1 draining with 1 commands pending (deadline 5000 ms)"), 1);

  // Only the drained connection's command fails at the deadline.
  CHECK(loop_run_until(&loop, any_called, q_dflt, 8000));
  dc_req *forced = q_dflt[0].calls ? &q_dflt[0] : &q_dflt[1];
  dc_req *kept = forced == &q_dflt[0] ? &q_dflt[1] : &q_dflt[0];
  double dflt_ms = (forced->reply_us - t_dflt) / 1000.0;
  char want[112];
  snprintf(want, sizeof want, "ERR connection to 127.0.0.1:%d closed: drain deadline of 5000 ms reached",
           resp_server_port(srv));
  printf("  fail, 500 ms: failed after %.0f ms with \"%s\"\n", dflt_ms, forced->err);
  CHECK_EQ_INT(forced->closed, 1);
  CHECK_EQ_STR(forced->err, want);
  CHECK(dflt_ms >= 4900 && dflt_ms <= 7000);
  CHECK_EQ_INT(kept->calls, 0);
  CHECK_EQ_INT(dc_stats(&dflt.mgr).forced, 1);

  CHECK(loop_run_until(&loop, both_called, q_slow, 9000));
  for (int i = 0; i < 2; i++) {
    double slow_ms = (q_slow[i].reply_us - t0) / 1000.0;
    printf("  fail, 12000 ms: a 7 s command got its real reply after %.0f ms\n", slow_ms);
    CHECK_EQ_INT(q_slow[i].closed + q_slow[i].nulls + q_slow[i].bad, 0);
    CHECK(slow_ms >= 6900);
  }
  dc_stat_arg none_draining = {&slow.mgr, 0};
  CHECK(loop_run_until(&loop, dc_draining_is, &none_draining, 2000));
  CHECK_EQ_INT(dc_stats(&slow.mgr).graceful, 1);

  // 10 s after its Shrink, the drain under RediSearch's defaults still waits.
  while (now_us() - t0 < 10100000) loop_run_for(&loop, 100);
  printf("  return, 500 ms (RediSearch's defaults): nothing failed after %.0f ms\n",
         (now_us() - t0) / 1000.0);
  CHECK_EQ_INT(q_unlimited[0].calls + q_unlimited[1].calls, 0);
  CHECK_EQ_INT(dc_stats(&unlimited.mgr).draining, 1);
  MRConnManager_Shutdown(&unlimited.mgr);
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_INT(q_unlimited[i].closed, 1);
    CHECK(strstr(q_unlimited[i].err, " closed: connection manager shut down") != NULL);
  }

  MRConnManager_Shutdown(&slow.mgr);
  MRConnManager_Shutdown(&dflt.mgr);
  CHECK_EQ_INT(kept->closed, 1);
  CHECK(strstr(kept->err, " closed: connection manager shut down") != NULL);
  for (int i = 0; i < 2; i++) CHECK_EQ_INT(q_slow[i].calls + q_unlimited[i].calls + q_dflt[i].calls, 3);
  RSGlobalConfig.requestConfigParams.queryTimeoutMS = 500;
  RSGlobalConfig.requestConfigParams.timeoutPolicy = TimeoutPolicy_Return;
  servers_stop(&r, srv);
}

// ---- 2. calling back into the manager from a forced error reply ----

// The stuck node's pool: a STALL pending on every connection, then all but
// one shrunk away; the one kept is retired by the last callback's Disconnect.
#define STUCK 8

static MRConnManager mgr;
static int live_port, stuck_port;
static int reentered;  // callbacks that called back into the manager
static dc_req stuck_reqs[STUCK];
static dc_req sent_inside;  // a command sent from inside a forced callback

static void reenter(redisAsyncContext *ac, void *r, void *priv) {
  dc_on_reply(ac, r, priv);
  MREndpoint same = {.host = "127.0.0.1", .port = stuck_port};
  MREndpoint other = {.host = "127.0.0.1", .port = live_port};
  switch (reentered++) {
    case 0: {
      MRConn *c = MRConn_Get(&mgr, "live");
      CHECK(c != NULL);
      CHECK_EQ_INT(dc_send_echo(c, &sent_inside), REDIS_OK);
      break;
    }
    case 1:
      MRConnManager_Expand(&mgr, 3, &loop);
      break;
    case 2:
      MRConnManager_Shrink(&mgr, 1);
      break;
    case 3:
      CHECK(!MRConnManager_Add(&mgr, &loop, "stuck", &same));
      break;
    case 4:
      CHECK(MRConnManager_Add(&mgr, &loop, "new", &other));
      break;
    case 5:
      CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "live"), REDIS_OK);
      break;
    case 6:
      CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "stuck"), REDIS_OK);
      MRConnManager_Shutdown(&mgr);
      break;
    default:  // the kept connection's, failed by that Shutdown
      break;
  }
}

static bool pools_ready(void *arg) {
  (void)arg;
  MRConn *seen[STUCK];
  return dc_distinct(&mgr, "stuck", STUCK, seen) == STUCK && MRConn_Get(&mgr, "live") != NULL;
}

static bool all_stuck_called(void *arg) {
  (void)arg;
  for (int k = 0; k < STUCK; k++)
    if (stuck_reqs[k].calls == 0) return false;
  return sent_inside.calls > 0;
}

TEST(forced_error_callbacks_may_call_back_in) {
  redis_proc r;
  resp_server *srv = servers_start(&r);
  REQUIRE(srv != NULL);
  live_port = r.port;
  stuck_port = resp_server_port(srv);
  dc_reset_counts();
  memset(stuck_reqs, 0, sizeof stuck_reqs);
  memset(&sent_inside, 0, sizeof sent_inside);
  sent_inside.id = 1000;
  reentered = 0;

  MRConnManager_Init(&mgr, STUCK);
  MREndpoint stuck_ep = {.host = "127.0.0.1", .port = stuck_port};
  MREndpoint live_ep = {.host = "127.0.0.1", .port = live_port};
  CHECK(MRConnManager_Add(&mgr, &loop, "stuck", &stuck_ep));
  CHECK(MRConnManager_Add(&mgr, &loop, "live", &live_ep));
  CHECK(loop_run_until(&loop, pools_ready, NULL, 10000));
  MRConn *conns[STUCK];
  REQUIRE(dc_distinct(&mgr, "stuck", STUCK, conns) == STUCK);
  const char *stall[] = {"STALL"};
  int k = 0;
  for (int j = 0; j < STUCK; j++) {
    size_t lens[] = {5};
    MRCommand cmd = MR_NewCommandArgvLen(1, stall, lens);
    stuck_reqs[k].conn = conns[j];
    CHECK_EQ_INT(MRConn_SendCommand(conns[j], &cmd, reenter, &stuck_reqs[k]), REDIS_OK);
    MRCommand_Free(&cmd);
    k++;
  }
  REQUIRE(k == STUCK);
  loop_run_for(&loop, 20);

  MRConnManager_SetDrainTimeout(100);
  MRConnManager_Shrink(&mgr, 1);
  CHECK_EQ_INT(dc_stats(&mgr).draining, STUCK - 1);
  CHECK(loop_run_until(&loop, all_stuck_called, NULL, 5000));
  printf("  %d forced callbacks called back in; the command sent from one got %s\n", reentered,
         sent_inside.closed ? sent_inside.err : sent_inside.nulls ? "NULL" : "its reply");
  CHECK_EQ_INT(reentered, STUCK);
  for (int j = 0; j < STUCK; j++) {
    CHECK_EQ_INT(stuck_reqs[j].calls, 1);
    CHECK_EQ_INT(stuck_reqs[j].closed, 1);
  }
  CHECK_EQ_INT(sent_inside.calls, 1);
  CHECK_EQ_INT(sent_inside.nulls, 0);
  CHECK(mgr.map == NULL);  // the last callback shut the manager down

  MRConnManager_SetDrainTimeout(MRCONN_DRAIN_TIMEOUT_DEFAULT);
  servers_stop(&r, srv);
}

// ---- 3. what counts as pending work ----

static bool server_saw(void *arg) {
  char out[64];
  return redis_cmd(*(int *)arg, out, sizeof out, "EXISTS nocb-done-0 nocb-done-1") == 0 &&
         strcmp(out, ":2") == 0;
}

// A command queued without a callback has no callback to count, but its
// bytes and its reply are still on the connection: Shrink drains it (one
// rule, src/pending.rs, decides both "close at once" and "drain over"),
// rather than cutting it off before the server got it.
TEST(a_command_without_callback_still_drains) {
  redis_proc r;
  resp_server *srv = servers_start(&r);
  REQUIRE(srv != NULL);
  dc_reset_counts();
  static one_node n;
  one_node_start(&n, r.port);
  // On each connection, a blocking pop answered after 0.3 s, then a SET it
  // holds back, both without a callback.
  for (int c = 0; c < 2; c++) {
    char key[16];
    snprintf(key, sizeof key, "nocb-done-%d", c);
    const char *pop[] = {"BLPOP", "nocb-none", "0.3"};
    const char *set[] = {"SET", key, "1"};
    for (int i = 0; i < 2; i++) {
      const char **argv = i ? set : pop;
      size_t lens[3] = {strlen(argv[0]), strlen(argv[1]), strlen(argv[2])};
      MRCommand cmd = MR_NewCommandArgvLen(3, argv, lens);
      CHECK_EQ_INT(MRConn_SendCommand(n.conns[c], &cmd, NULL, NULL), REDIS_OK);
      MRCommand_Free(&cmd);
    }
  }
  loop_run_for(&loop, 20);
  host_log_clear();
  MRConnManager_Shrink(&n.mgr, 1);
  CHECK_EQ_INT(host_log_count("notice", "0 closed idle, 1 draining with 0 commands pending"), 1);
  CHECK_EQ_INT(dc_stats(&n.mgr).draining, 1);
  dc_stat_arg over = {&n.mgr, 0};
  CHECK(loop_run_until(&loop, dc_draining_is, &over, 3000));
  CHECK_EQ_INT(dc_stats(&n.mgr).graceful, 1);
  CHECK(loop_run_until(&loop, server_saw, &r.port, 2000));
  MRConnManager_Shutdown(&n.mgr);
  servers_stop(&r, srv);
}

HARNESS_MAIN(HARNESS_TEST(deadline_follows_the_query_timeout),
             HARNESS_TEST(forced_error_callbacks_may_call_back_in),
             HARNESS_TEST(a_command_without_callback_still_drains))
