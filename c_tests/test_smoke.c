// SPDX-License-Identifier: MIT OR Apache-2.0
// Smoke: one node, a pool of 2 reaches Connected and answers a PING.
#include <string.h>

#include "conn.h"
#include "rmr/reply.h"
#include "harness.h"
#include "mrconn_test_host.h"

static MRConnManager mgr;
static uv_loop_t loop;

static bool connected(void *arg) {
  const char *s = MRConnManager_GetNodeState(&mgr, arg);
  return s && strcmp(s, "Connected") == 0;
}

static int replies;
static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac; (void)priv;
  if (r) replies++;
  MRReply_Free(r);
}
static bool got_reply(void *arg) { (void)arg; return replies == 1; }

TEST(ping) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  uv_loop_init(&loop);
  MRConnManager_Init(&mgr, 2);
  host_set_enterprise(true);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(loop_run_until(&loop, connected, "n1", 5000));
  MRConn *c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);
  MRCommand cmd = MR_NewCommand(1, "PING");
  CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, on_reply, NULL), REDIS_OK);
  CHECK(loop_run_until(&loop, got_reply, NULL, 5000));
  MRCommand_Free(&cmd);
  MRConnManager_Shutdown(&mgr);
  loop_close_all_handles(&loop);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  CHECK_EQ_INT((int)host_alloc_live_count(), 0);
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(ping))
