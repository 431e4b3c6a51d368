// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Pools against three real redis-server nodes: Add opens nodeConns
 * connections per node that all reach Connected; GetNodeState reports the
 * first connection's state string ("Connecting" before the loop ran,
 * "Connected", "Reconnecting" when its server is gone); MRConn_Get walks a
 * pool round-robin (distinct connections, wrapping) and skips connections
 * that are not Connected (one connection killed with CLIENT KILL ID, or a
 * whole node killed); Get and GetNodeState of an unknown id return NULL.
 * Also checks the MRConnState_Str strings of the generated header.
 */
#include <string.h>

#include "tutil.h"

#define NODES 3
#define CONNS 3

static MRConnManager mgr;
static uv_loop_t loop;

TEST(state_strings) {
  CHECK_EQ_STR(MRConnState_Str(MRConn_Connecting), "Connecting");
  CHECK_EQ_STR(MRConnState_Str(MRConn_Reconnecting), "Reconnecting");
  CHECK_EQ_STR(MRConnState_Str(MRConn_Authenticating), "Authenticating");
  CHECK_EQ_STR(MRConnState_Str(MRConn_ReAuth), "Re-Authenticating");
  CHECK_EQ_STR(MRConnState_Str(MRConn_Connected), "Connected");
  CHECK_EQ_STR(MRConnState_Str(MRConn_Freeing), "Freeing");
  CHECK_EQ_STR(MRConnState_Str((MRConnState)42), "<UNKNOWN STATE (CRASHES AHEAD!!!!)");
  CHECK_EQ_INT(MRConn_Protocol_RESP2, 2);
  CHECK_EQ_INT(MRConn_Protocol_RESP3, 3);
  CHECK_EQ_INT(sizeof(MRConnManager), 16);
}

/* The client id the server gave connection c (CLIENT ID sent on c). */
static long long client_id_of(MRConn *c) {
  MRCommand cmd = MR_NewCommand(2, "CLIENT", "ID");
  tu_reply r = {0};
  long long id = -1;
  if (CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, tu_on_reply, &r), REDIS_OK) &&
      CHECK(tu_wait_reply(&loop, &r, 5000)) && CHECK_EQ_INT(r.type, REDIS_REPLY_INTEGER))
    id = r.integer;
  CHECK_EQ_INT(r.calls, 1);
  MRCommand_Free(&cmd);
  return id;
}

TEST(three_nodes_round_robin) {
  tu_begin();
  redis_proc r[NODES];
  const char *ids[NODES] = {"node-a", "node-b", "node-c"};
  for (int i = 0; i < NODES; i++) REQUIRE(redis_start(&r[i], NULL) == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, CONNS);
  CHECK_EQ_INT(mgr.nodeConns, CONNS);

  for (int i = 0; i < NODES; i++) {
    MREndpoint ep = {.host = "127.0.0.1", .port = r[i].port};
    CHECK(MRConnManager_Add(&mgr, &loop, ids[i], &ep));
  }
  /* The map is RediSearch's dict: one entry per node. */
  CHECK_EQ_INT(dictSize(mgr.map), NODES);
  /* Nothing ran yet: connecting, and nothing to hand out. */
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "node-a"), "Connecting");
  CHECK(MRConn_Get(&mgr, "node-a") == NULL);

  for (int i = 0; i < NODES; i++) CHECK(tu_wait_state(&loop, &mgr, r[i].port, "Connected", CONNS, 10000));
  for (int i = 0; i < NODES; i++) {
    CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, ids[i]), "Connected");
    char buf[256], key[64];
    tu_key(key, sizeof key, r[i].port);
    CHECK_EQ_INT(tu_states(&mgr, key, buf, sizeof buf), CONNS);
    CHECK_EQ_STR(buf, "Connected,Connected,Connected");
    CHECK_EQ_INT(redis_client_count(r[i].port), CONNS);
  }

  /* Round-robin: CONNS distinct connections in order, then it wraps. */
  MRConn *c[CONNS];
  for (int i = 0; i < CONNS; i++) {
    c[i] = MRConn_Get(&mgr, "node-a");
    CHECK(c[i] != NULL);
    for (int j = 0; j < i; j++) CHECK_MSG(c[i] != c[j], "Get %d returned the connection of Get %d", i, j);
  }
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < CONNS; i++) CHECK(MRConn_Get(&mgr, "node-a") == c[i]);
  /* Each pool has its own connections. */
  MRConn *b = MRConn_Get(&mgr, "node-b");
  CHECK(b != NULL);
  for (int i = 0; i < CONNS; i++) CHECK(b != c[i]);

  /* Kill the server side of c[1]: the pool skips it until it reconnects. */
  long long cid[CONNS];
  for (int i = 0; i < CONNS; i++) cid[i] = client_id_of(c[i]);
  CHECK(cid[0] != cid[1] && cid[1] != cid[2] && cid[0] != cid[2]);
  char out[256];
  CHECK_EQ_INT(redis_cmd(r[0].port, out, sizeof out, "CLIENT KILL ID %lld", cid[1]), 0);
  char key0[64];
  tu_key(key0, sizeof key0, r[0].port);
  tu_wait_states two = {.m = &mgr, .state = "Connected", .n = CONNS - 1};
  memcpy(two.key, key0, sizeof key0);
  CHECK(loop_run_until(&loop, tu_all_in_state, &two, 5000));
  /* The loop does not run now, so c[1] stays down (250 ms back-off). */
  CHECK_EQ_INT(tu_count_state(&mgr, key0, "Reconnecting"), 1);
  MRConn *prev = NULL;
  int seen0 = 0, seen2 = 0;
  for (int i = 0; i < 6; i++) {
    MRConn *got = MRConn_Get(&mgr, "node-a");
    CHECK(got == c[0] || got == c[2]);
    CHECK_MSG(got != prev, "round-robin returned the same connection twice in a row");
    seen0 += got == c[0];
    seen2 += got == c[2];
    prev = got;
  }
  CHECK_EQ_INT(seen0, 3);
  CHECK_EQ_INT(seen2, 3);
  /* It comes back, as the same MRConn. */
  CHECK(tu_wait_state(&loop, &mgr, r[0].port, "Connected", CONNS, 5000));
  MRConn *back[CONNS];
  for (int i = 0; i < CONNS; i++) back[i] = MRConn_Get(&mgr, "node-a");
  for (int i = 0; i < CONNS; i++) {
    int found = 0;
    for (int j = 0; j < CONNS; j++) found += back[j] == c[i];
    CHECK_MSG(found == 1, "connection %d found %d times after reconnect", i, found);
  }
  CHECK(client_id_of(c[1]) != cid[1]); /* a new server-side client */

  /* A whole node down: its pool shows Reconnecting and hands out nothing;
   * the other nodes are unaffected. */
  redis_kill(&r[2]);
  CHECK(tu_wait_node_state(&loop, &mgr, "node-c", "Reconnecting", 5000));
  char key2[64];
  tu_key(key2, sizeof key2, r[2].port);
  CHECK_EQ_INT(tu_count_state(&mgr, key2, "Connected"), 0);
  CHECK(MRConn_Get(&mgr, "node-c") == NULL);
  CHECK(MRConn_Get(&mgr, "node-a") != NULL);
  CHECK(MRConn_Get(&mgr, "node-b") != NULL);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "node-b"), "Connected");

  /* Unknown ids. */
  CHECK(MRConn_Get(&mgr, "no-such-node") == NULL);
  CHECK(MRConnManager_GetNodeState(&mgr, "no-such-node") == NULL);

  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
  for (int i = 0; i < NODES; i++) redis_stop(&r[i]);
}

/* A single-connection pool: Get returns the same connection every time. */
TEST(pool_of_one) {
  tu_begin();
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 1);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "solo", &ep));
  CHECK(tu_wait_node_state(&loop, &mgr, "solo", "Connected", 10000));
  MRConn *c = MRConn_Get(&mgr, "solo");
  CHECK(c != NULL);
  for (int i = 0; i < 5; i++) CHECK(MRConn_Get(&mgr, "solo") == c);
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(state_strings), HARNESS_TEST(three_nodes_round_robin), HARNESS_TEST(pool_of_one))
