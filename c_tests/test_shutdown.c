// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Shutdown and RediSearch's teardown of an IO runtime (CONTRACT §5): the
 * loop thread runs uv_stop, one UV_RUN_NOWAIT pass, MRConnManager_Shutdown,
 * then uv_close(h, NULL) on every handle not already closing, one
 * UV_RUN_ONCE, uv_loop_close. With commands in flight on a real
 * redis-server (blocking BLPOPs, a DEBUG SLEEP, commands not even written
 * yet), every callback runs exactly once, with an error reply "ERR
 * connection to <host:port> closed: connection manager shut down" (conn.c
 * runs none of them: their queries would hang); when Shutdown
 * returns no handle of the library is left open (so the NULL-callback
 * closes find nothing of ours); uv_loop_close returns 0 and the counting
 * allocator shows nothing live. Connections in every state are shut down
 * together (Connected with pending work, draining after Shrink,
 * Authenticating, Re-Authenticating, Reconnecting, Connecting), and so are
 * connections that left their pool (Disconnect, Add with a new endpoint)
 * while their AUTH was in flight. Also the "loop never ran" order: Init,
 * Add, Shutdown, one UV_RUN_ONCE, uv_loop_close.
 * One case uses the hand-written RESP server: an AUTH that is never
 * answered, which a real redis-server cannot be made to do.
 */
#include <string.h>

#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

#define INFLIGHT 50

/* RediSearch's teardown, with the checks of §5 between its steps. */
static void teardown_checked(void) {
  uv_stop(&loop);
  uv_run(&loop, UV_RUN_NOWAIT);
  MRConnManager_Shutdown(&mgr);
  CHECK(mgr.map == NULL || dictSize(mgr.map) == 0);
  /* Every handle of the library is closing already. */
  CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
  loop_close_all_handles(&loop);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* Every one of n callbacks ran once, with Shutdown's error reply. */
static void check_all_closed_once(tu_reply *r, int n) {
  int calls_ok = 0, closed = 0;
  for (int i = 0; i < n; i++) {
    calls_ok += r[i].calls == 1 && r[i].nulls == 0;
    closed += r[i].type == REDIS_REPLY_ERROR && strstr(r[i].text, "ERR connection to 127.0.0.1:") == r[i].text &&
              strstr(r[i].text, " closed: connection manager shut down") != NULL;
  }
  CHECK_EQ_INT(calls_ok, n);
  CHECK_EQ_INT(closed, n);
}

TEST(commands_in_flight) {
  tu_begin();
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 4);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 4, 10000));

  static tu_reply rep[INFLIGHT + 1];
  memset(rep, 0, sizeof rep);
  MRCommand cmds[INFLIGHT + 1];
  for (int i = 0; i < INFLIGHT; i++) {
    cmds[i] = MR_NewCommand(3, "BLPOP", "nosuchkey", "2");
    cmds[i].protocol = i % 2 ? 3 : 2; /* some with a HELLO queued before them */
    MRConn *c = MRConn_Get(&mgr, "n1");
    CHECK(c != NULL);
    CHECK_EQ_INT(MRConn_SendCommand(c, &cmds[i], tu_on_reply, &rep[i]), REDIS_OK);
  }
  cmds[INFLIGHT] = MR_NewCommand(3, "DEBUG", "SLEEP", "0.3");
  CHECK_EQ_INT(MRConn_SendCommand(MRConn_Get(&mgr, "n1"), &cmds[INFLIGHT], tu_on_reply, &rep[INFLIGHT]),
               REDIS_OK);
  /* Let them reach the server. */
  loop_run_for(&loop, 50);
  for (int i = 0; i <= INFLIGHT; i++) CHECK_EQ_INT(rep[i].calls, 0);

  teardown_checked();
  check_all_closed_once(rep, INFLIGHT + 1);
  for (int i = 0; i <= INFLIGHT; i++) MRCommand_Free(&cmds[i]);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
  redis_stop(&r);
}

TEST(commands_not_yet_written) {
  tu_begin();
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 2);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 2, 10000));
  tu_reply rep[10];
  memset(rep, 0, sizeof rep);
  MRCommand cmd = MR_NewCommand(1, "PING");
  for (int i = 0; i < 10; i++)
    CHECK_EQ_INT(MRConn_SendCommand(MRConn_Get(&mgr, "n1"), &cmd, tu_on_reply, &rep[i]), REDIS_OK);
  /* Straight to the teardown: the loop never wrote them. */
  MRConnManager_Shutdown(&mgr);
  check_all_closed_once(rep, 10);
  CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
  loop_close_all_handles(&loop);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  check_all_closed_once(rep, 10);
  MRCommand_Free(&cmd);
  TU_CHECK_NO_LEAK();
  redis_stop(&r);
}

TEST(loop_never_ran) {
  tu_begin();
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  int port;
  int bh = blackhole_listener(&port);
  REQUIRE(bh >= 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 3);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  MREndpoint hole = {.host = "127.0.0.1", .port = port};
  MREndpoint refused = {.host = "127.0.0.1", .port = harness_free_port()};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(MRConnManager_Add(&mgr, &loop, "n2", &hole));
  CHECK(MRConnManager_Add(&mgr, &loop, "n3", &refused));
  /* Resizes before the loop exists, as a single-shard cluster does. */
  MRConnManager_Expand(&mgr, 5, &loop);
  MRConnManager_Shrink(&mgr, 2);
  CHECK_EQ_INT(mgr.nodeConns, 2);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n1"), "Connecting");

  /* The freeing thread's order: Shutdown, then one UV_RUN_ONCE. */
  MRConnManager_Shutdown(&mgr);
  CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
  uv_run(&loop, UV_RUN_ONCE);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  TU_CHECK_NO_LEAK();
  blackhole_close(bh);
  redis_stop(&r);
}

TEST(every_state_at_once) {
  tu_begin();
  redis_proc plain, locked;
  REQUIRE(redis_start(&plain, NULL) == 0);
  REQUIRE(redis_start(&locked, "--requirepass right") == 0);
  int port;
  int bh = blackhole_listener(&port);
  REQUIRE(bh >= 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_SetDrainTimeout(30000);
  MRConnManager_Init(&mgr, 3);
  MREndpoint busy = {.host = "127.0.0.1", .port = plain.port};
  MREndpoint reauth = {.host = "127.0.0.1", .port = locked.port, .password = "wrong"};
  MREndpoint refused = {.host = "127.0.0.1", .port = harness_free_port()};
  MREndpoint hole = {.host = "127.0.0.1", .port = port};
  CHECK(MRConnManager_Add(&mgr, &loop, "busy", &busy));
  CHECK(MRConnManager_Add(&mgr, &loop, "reauth", &reauth));
  CHECK(MRConnManager_Add(&mgr, &loop, "refused", &refused));
  CHECK(MRConnManager_Add(&mgr, &loop, "hole", &hole));
  CHECK(tu_wait_state(&loop, &mgr, plain.port, "Connected", 3, 10000));
  CHECK(tu_wait_node_state(&loop, &mgr, "reauth", "Re-Authenticating", 5000));
  CHECK(tu_wait_node_state(&loop, &mgr, "refused", "Reconnecting", 5000));
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "hole"), "Connecting");

  /* Work on every connection of "busy", then shrink: two of them drain. */
  tu_reply rep[9];
  memset(rep, 0, sizeof rep);
  MRCommand cmd = MR_NewCommand(3, "BLPOP", "nosuchkey", "5");
  for (int i = 0; i < 9; i++)
    CHECK_EQ_INT(MRConn_SendCommand(MRConn_Get(&mgr, "busy"), &cmd, tu_on_reply, &rep[i]), REDIS_OK);
  loop_run_for(&loop, 50);
  MRConnManager_Shrink(&mgr, 1);
  MRConnDrainStats st;
  CHECK_EQ_INT(MRConnManager_GetDrainStats(&mgr, &st), REDIS_OK);
  CHECK_EQ_INT(st.draining, 2);
  loop_run_for(&loop, 50);

  teardown_checked();
  check_all_closed_once(rep, 9);
  MRCommand_Free(&cmd);
  TU_CHECK_NO_LEAK();
  MRConnManager_SetDrainTimeout(MRCONN_DRAIN_TIMEOUT_DEFAULT);
  blackhole_close(bh);
  redis_stop(&plain);
  redis_stop(&locked);
}

/* Run the loop until the hand-written server has seen n AUTHs. */
typedef struct {
  resp_server *s;
  unsigned long n;
} auth_wait;

static bool auths_seen(void *arg) {
  auth_wait *w = arg;
  return resp_server_count(w->s, "AUTH") >= w->n;
}

/*
 * A pool whose AUTH never gets an answer leaves the manager (Disconnect, or
 * Add with another endpoint) and the manager shuts down right after: the
 * hiredis contexts still waiting for that AUTH must not outlive Shutdown.
 */
static void auth_never_answered(bool by_disconnect) {
  tu_begin();
  host_set_enterprise(false);
  struct resp_server_opts o = {.never_reply_to = "AUTH"};
  resp_server *s = resp_server_start(&o);
  REQUIRE(s != NULL);
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 2);
  MREndpoint ep = {.host = "127.0.0.1", .port = resp_server_port(s)};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  auth_wait w = {s, 2};
  CHECK(loop_run_until(&loop, auths_seen, &w, 5000));
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n1"), "Authenticating");

  if (by_disconnect) {
    CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n1"), REDIS_OK);
  } else {
    host_set_enterprise(true);
    MREndpoint other = {.host = "127.0.0.1", .port = r.port};
    CHECK(MRConnManager_Add(&mgr, &loop, "n1", &other));
  }
  /* The link closes now, not at some reply that never comes. */
  uint64_t deadline = now_ms() + 3000;
  while (resp_server_connections(s) > 0 && now_ms() < deadline) loop_run_for(&loop, 10);
  CHECK_EQ_INT(resp_server_connections(s), 0);
  teardown_checked();
  TU_CHECK_NO_LEAK();
  resp_server_stop(s);
  redis_stop(&r);
}

TEST(disconnect_while_authenticating) {
  auth_never_answered(true);
}

TEST(endpoint_change_while_authenticating) {
  auth_never_answered(false);
}

/* The same against a real server: Disconnect right after the AUTH went out,
 * Shutdown before its reply is read. */
TEST(disconnect_with_auth_reply_unread) {
  tu_begin();
  redis_proc r;
  REQUIRE(redis_start(&r, "--requirepass pw") == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 2);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port, .password = "pw"};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  tu_wait_node w = {&mgr, "n1", "Authenticating"};
  CHECK(loop_run_until(&loop, tu_node_in_state, &w, 5000));
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n1"), REDIS_OK);
  teardown_checked();
  TU_CHECK_NO_LEAK();
  redis_stop(&r);
}

TEST(shutdown_twice_and_reinit) {
  tu_begin();
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 1);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Connected", 10000));
  MRConnManager_Shutdown(&mgr);
  /* A second Shutdown is harmless (logged). */
  host_log_clear();
  MRConnManager_Shutdown(&mgr);
  CHECK(host_log_count("warning", NULL) >= 1);
  /* The struct can be initialised again and used on the same loop. */
  MRConnManager_Init(&mgr, 1);
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Connected", 10000));
  teardown_checked();
  TU_CHECK_NO_LEAK();
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(commands_in_flight), HARNESS_TEST(commands_not_yet_written), HARNESS_TEST(loop_never_ran),
             HARNESS_TEST(every_state_at_once), HARNESS_TEST(disconnect_while_authenticating),
             HARNESS_TEST(endpoint_change_while_authenticating), HARNESS_TEST(disconnect_with_auth_reply_unread),
             HARNESS_TEST(shutdown_twice_and_reinit))
