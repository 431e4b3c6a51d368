// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Bad input to every exported function: NULL manager, id, endpoint (or one
 * without a host), loop, command, state dict or reply context; an
 * uninitialised or already shut down manager; unknown ids; Disconnect of an
 * unknown id; Shrink to 0 or to at least the current size; Expand to at most
 * the current size, or to something huge (clamped to 4096); SendCommand on
 * NULL, with no arguments or an unknown protocol. Each gets the defined
 * result written next to it below and one warning line (except Get,
 * GetNodeState and Disconnect of an unknown id: ordinary misses, answered
 * silently as upstream does); nothing crashes, nothing leaks, nothing is logged
 * with an invalid level, and a live pool next to all this keeps working
 * (against a real redis-server).
 */
#include <string.h>

#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

/* Runs stmt and checks it logged exactly one warning. */
#define ONE_WARNING(stmt)                                                                                   \
  do {                                                                                                      \
    host_log_clear();                                                                                       \
    stmt;                                                                                                   \
    CHECK_MSG(host_log_count("warning", NULL) == 1, "%s: %d warnings", #stmt, host_log_count("warning", NULL)); \
  } while (0)

/* stmt logs no warning: a legal call that conn.c answers silently too. */
#define NO_WARNING(stmt)                                                                                    \
  do {                                                                                                      \
    host_log_clear();                                                                                       \
    stmt;                                                                                                   \
    CHECK_MSG(host_log_count("warning", NULL) == 0, "%s: %d warnings", #stmt, host_log_count("warning", NULL)); \
  } while (0)

TEST(bad_input) {
  tu_begin();
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  MREndpoint no_host = {.host = NULL, .port = r.port};
  MRConn *c = NULL;
  MRCommand ping = MR_NewCommand(1, "PING");
  tu_reply rep = {0};
  dict *d = tu_state_dict_new();

  /* ---- before Init: a zeroed manager is not a live one ---- */
  memset(&mgr, 0, sizeof mgr);
  ONE_WARNING(CHECK(!MRConnManager_Add(&mgr, &loop, "n1", &ep)));       /* false */
  ONE_WARNING(CHECK(MRConn_Get(&mgr, "n1") == NULL));                   /* NULL */
  ONE_WARNING(CHECK(MRConnManager_GetNodeState(&mgr, "n1") == NULL));   /* NULL */
  ONE_WARNING(CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n1"), REDIS_ERR));
  ONE_WARNING(MRConnManager_Shutdown(&mgr));                            /* nothing */

  /* ---- Init ---- */
  ONE_WARNING(MRConnManager_Init(NULL, 2)); /* nothing */
  ONE_WARNING(MRConnManager_Init(&mgr, -3)); /* a manager of 0 connections per node */
  CHECK_EQ_INT(mgr.nodeConns, 0);
  CHECK(mgr.map != NULL);
  MRConnManager_Shutdown(&mgr);
  CHECK(mgr.map == NULL);

  host_log_clear();
  MRConnManager_Init(&mgr, 2);
  CHECK_EQ_INT(host_log_count("warning", NULL), 0);
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 2, 10000));
  c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);

  /* ---- Add: false ---- */
  ONE_WARNING(CHECK(!MRConnManager_Add(NULL, &loop, "n2", &ep)));
  ONE_WARNING(CHECK(!MRConnManager_Add(&mgr, NULL, "n2", &ep)));
  ONE_WARNING(CHECK(!MRConnManager_Add(&mgr, &loop, NULL, &ep)));
  ONE_WARNING(CHECK(!MRConnManager_Add(&mgr, &loop, "n2", NULL)));
  ONE_WARNING(CHECK(!MRConnManager_Add(&mgr, &loop, "n2", &no_host)));
  CHECK(MRConnManager_GetNodeState(&mgr, "n2") == NULL); /* nothing was added */
  CHECK_EQ_INT(dictSize(mgr.map), 1);

  /* ---- Disconnect: REDIS_ERR ---- */
  ONE_WARNING(CHECK_EQ_INT(MRConnManager_Disconnect(NULL, "n1"), REDIS_ERR));
  ONE_WARNING(CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, NULL), REDIS_ERR));
  /* An unknown node is the caller's business; its return code says it. */
  NO_WARNING(CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "unknown"), REDIS_ERR));

  /* ---- Get / GetNodeState: NULL ---- */
  ONE_WARNING(CHECK(MRConn_Get(NULL, "n1") == NULL));
  ONE_WARNING(CHECK(MRConn_Get(&mgr, NULL) == NULL));
  ONE_WARNING(CHECK(MRConnManager_GetNodeState(NULL, "n1") == NULL));
  ONE_WARNING(CHECK(MRConnManager_GetNodeState(&mgr, NULL) == NULL));
  /* Unknown id: NULL, a miss, not a warning. */
  host_log_clear();
  CHECK(MRConn_Get(&mgr, "unknown") == NULL);
  CHECK(MRConnManager_GetNodeState(&mgr, "unknown") == NULL);
  CHECK_EQ_INT(host_log_count("warning", NULL), 0);

  /* ---- SendCommand: REDIS_ERR, the callback never runs ---- */
  ONE_WARNING(CHECK_EQ_INT(MRConn_SendCommand(NULL, &ping, tu_on_reply, &rep), REDIS_ERR));
  ONE_WARNING(CHECK_EQ_INT(MRConn_SendCommand(c, NULL, tu_on_reply, &rep), REDIS_ERR));
  MRCommand empty = MR_NewCommand(0);
  ONE_WARNING(CHECK_EQ_INT(MRConn_SendCommand(c, &empty, tu_on_reply, &rep), REDIS_ERR));
  MRCommand_Free(&empty);
  MRCommand zero = {0};
  ONE_WARNING(CHECK_EQ_INT(MRConn_SendCommand(c, &zero, tu_on_reply, &rep), REDIS_ERR));
  MRCommand odd = MR_NewCommand(1, "PING");
  odd.protocol = 7;
  ONE_WARNING(CHECK_EQ_INT(MRConn_SendCommand(c, &odd, tu_on_reply, &rep), REDIS_ERR));
  MRCommand_Free(&odd);
  loop_run_for(&loop, 50);
  CHECK_EQ_INT(rep.calls, 0);
  /* No callback at all is allowed: fire and forget, REDIS_OK. */
  host_log_clear();
  CHECK_EQ_INT(MRConn_SendCommand(c, &ping, NULL, NULL), REDIS_OK);
  loop_run_for(&loop, 50);
  CHECK_EQ_INT(host_log_count("warning", NULL), 0);

  /* ---- Shrink: ignored, nodeConns unchanged ---- */
  ONE_WARNING(MRConnManager_Shrink(NULL, 1));
  ONE_WARNING(MRConnManager_Shrink(&mgr, 0));
  ONE_WARNING(MRConnManager_Shrink(&mgr, 2)); /* == current */
  ONE_WARNING(MRConnManager_Shrink(&mgr, 3)); /* > current */
  CHECK_EQ_INT(mgr.nodeConns, 2);

  /* ---- Expand: ignored, nodeConns unchanged ---- */
  ONE_WARNING(MRConnManager_Expand(NULL, 4, &loop));
  ONE_WARNING(MRConnManager_Expand(&mgr, 4, NULL));
  ONE_WARNING(MRConnManager_Expand(&mgr, 2, &loop)); /* == current */
  ONE_WARNING(MRConnManager_Expand(&mgr, 1, &loop)); /* < current */
  CHECK_EQ_INT(mgr.nodeConns, 2);
  {
    /* Above 4096: clamped with a warning, as in Init (on a manager with no
       node, so that no socket opens). */
    MRConnManager empty;
    MRConnManager_Init(&empty, 2);
    ONE_WARNING(MRConnManager_Expand(&empty, 1000000, &loop));
    CHECK_EQ_INT(host_log_count("warning", "pool size 1000000 out of 0..=4096, using 4096"), 1);
    CHECK_EQ_INT(empty.nodeConns, 4096);
    ONE_WARNING(MRConnManager_Expand(&empty, 5000, &loop)); /* == current once clamped */
    CHECK_EQ_INT(empty.nodeConns, 4096);
    MRConnManager_Shutdown(&empty);
  }
  char key[64], states[256];
  tu_key(key, sizeof key, r.port);
  CHECK_EQ_INT(tu_states(&mgr, key, states, sizeof states), 2);

  /* ---- FillStateDict / ReplyState ---- */
  ONE_WARNING(MRConnManager_FillStateDict(NULL, d)); /* dict untouched */
  ONE_WARNING(MRConnManager_FillStateDict(&mgr, NULL));
  CHECK_EQ_INT(dictSize(d), 0);
  host_reply_reset();
  ONE_WARNING(MRConnManager_ReplyState(NULL, RSDummyContext)); /* an empty map */
  CHECK_EQ_STR(host_reply_text(), "{}");
  host_reply_reset();
  MRConnManager_FillStateDict(&mgr, d);
  ONE_WARNING(MRConnManager_ReplyState(d, NULL)); /* no reply */
  CHECK_EQ_INT(host_reply_call_count(), 0);

  /* ---- Drain controls beyond conn.h ---- */
  MRConnDrainStats st;
  ONE_WARNING(CHECK_EQ_INT(MRConnManager_GetDrainStats(NULL, &st), REDIS_ERR));
  ONE_WARNING(CHECK_EQ_INT(MRConnManager_GetDrainStats(&mgr, NULL), REDIS_ERR));

  /* ---- the pool is unharmed ---- */
  tu_reply ok;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &ok, 1, (const char *[]){"PING"}), REDIS_OK);
  CHECK_EQ_STR(ok.text, "PONG");
  CHECK_EQ_INT(ok.calls, 1);
  CHECK_EQ_INT(mgr.nodeConns, 2);

  /* ---- after Shutdown: like before Init ---- */
  tu_teardown1(&loop, &mgr);
  CHECK(mgr.map == NULL);
  ONE_WARNING(CHECK(!MRConnManager_Add(&mgr, &loop, "n1", &ep)));
  ONE_WARNING(CHECK(MRConn_Get(&mgr, "n1") == NULL));
  ONE_WARNING(CHECK(MRConnManager_GetNodeState(&mgr, "n1") == NULL));
  ONE_WARNING(CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n1"), REDIS_ERR));
  ONE_WARNING(MRConnManager_Shrink(&mgr, 1));
  ONE_WARNING(MRConnManager_Expand(&mgr, 3, &loop));
  ONE_WARNING(MRConnManager_FillStateDict(&mgr, d));
  ONE_WARNING(MRConnManager_Shutdown(&mgr));

  dictRelease(d);
  MRCommand_Free(&ping);
  CHECK_EQ_INT(rep.calls, 0);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
  redis_stop(&r);
}

/* A pool size of 0 (Init with a negative size is turned into 0): Add makes
 * a pool of size 0, which answers like one with no connected connection, and
 * which Expand grows (conn.c reads connection 0 of it, which does not
 * exist). */
TEST(zero_sized_pool) {
  tu_begin();
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 0);
  MREndpoint ep = {.host = "127.0.0.1", .port = 1};
  host_log_clear();
  MRConnManager_Add(&mgr, &loop, "n1", &ep);
  CHECK(MRConn_Get(&mgr, "n1") == NULL);
  /* No first connection to report. */
  CHECK(MRConnManager_GetNodeState(&mgr, "n1") == NULL);
  dict *d = tu_state_dict_new();
  MRConnManager_FillStateDict(&mgr, d);
  host_reply_reset();
  MRConnManager_ReplyState(d, RSDummyContext);
  dictRelease(d);
  CHECK_EQ_STR(host_reply_text(), "{}");
  /* The pool keeps the node's endpoint: Expand grows it. */
  MRConnManager_Expand(&mgr, 1, &loop);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n1"), "Connecting");
  loop_run_for(&loop, 50);
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
}

HARNESS_MAIN(HARNESS_TEST(bad_input), HARNESS_TEST(zero_sized_pool))
