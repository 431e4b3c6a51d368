// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * MRConn_Get's pick (issue 19) against a real redis-server, pool of 8, with
 * uniform replies (PING): the per-connection send counts stay within ±10 %
 * of an even split, as round-robin's do, whether each command is answered
 * before the next (every connection idle: exact rotation), a few are in
 * flight (some idle, some busy), or bursts are sent with no reply read in
 * between (every connection busy). And a connection blocked behind a slow
 * reply (BLPOP) gets no command while another is idle.
 */
#include <string.h>

#include "tutil.h"

#define CONNS 8
#define SENDS 8000

static MRConnManager mgr;
static uv_loop_t loop;
static MRConn *known[CONNS];
static int sent[CONNS];
static int outstanding, replied;

static int index_of(MRConn *c) {
  for (int i = 0; i < CONNS; i++) {
    if (known[i] == c) return i;
    if (!known[i]) {
      known[i] = c;
      return i;
    }
  }
  return -1;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  (void)priv;
  outstanding--;
  replied += r != NULL;
  MRReply_Free(r);
}

static bool fewer_than(void *arg) { return outstanding < *(int *)arg; }

/* Sends one PING on MRConn_Get's pick and counts it for that connection. */
static bool send_ping(MRCommand *cmd) {
  MRConn *c = MRConn_Get(&mgr, "node");
  int i = c ? index_of(c) : -1;
  if (!CHECK(i >= 0)) return false;
  sent[i]++;
  outstanding++;
  return CHECK_EQ_INT(MRConn_SendCommand(c, cmd, on_reply, NULL), REDIS_OK);
}

/* Each count within ±10 % of an even split of `total`. */
static void check_spread(const char *how, int total) {
  int even = total / CONNS;
  for (int i = 0; i < CONNS; i++)
    CHECK_MSG(sent[i] >= even * 9 / 10 && sent[i] <= even * 11 / 10, "%s: connection %d got %d sends of %d (even: %d)",
              how, i, sent[i], total, even);
  memset(sent, 0, sizeof sent);
}

/* Sends SENDS PINGs, keeping at most `window` in flight (a window of
 * SENDS: bursts of `burst`, the loop runs only between bursts). */
static void run(MRCommand *cmd, int window, int burst) {
  int one = 1;
  for (int i = 0; i < SENDS; i += burst) {
    int room = window - burst + 1;
    if (!CHECK(loop_run_until(&loop, fewer_than, &room, 10000))) return;
    for (int k = 0; k < burst; k++)
      if (!send_ping(cmd)) return;
  }
  CHECK(loop_run_until(&loop, fewer_than, &one, 10000));
}

TEST(uniform_replies_spread_evenly) {
  tu_start1(&loop, &mgr, CONNS);
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "node", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS, 10000));
  MRCommand ping = MR_NewCommand(1, "PING");

  /* One at a time: every pick finds the cursor's connection idle. */
  run(&ping, 1, 1);
  for (int i = 0; i < CONNS; i++) CHECK_EQ_INT(sent[i], SENDS / CONNS);
  check_spread("one at a time", SENDS);
  /* A few in flight: the pick passes over busy ones. */
  run(&ping, 5, 1);
  check_spread("5 in flight", SENDS);
  run(&ping, 12, 4);
  check_spread("12 in flight, bursts of 4", SENDS);
  /* Bursts with no reply read in between: all busy, one probe per call. */
  run(&ping, 100, 100);
  check_spread("bursts of 100", SENDS);
  CHECK_EQ_INT(replied, 4 * SENDS);

  /* A connection blocked behind BLPOP gets nothing while others are idle. */
  MRCommand blpop = MR_NewCommand(3, "BLPOP", "mrconn:test:empty", "0.3");
  MRConn *blocked = MRConn_Get(&mgr, "node");
  REQUIRE(blocked != NULL);
  outstanding++;
  CHECK_EQ_INT(MRConn_SendCommand(blocked, &blpop, on_reply, NULL), REDIS_OK);
  for (int i = 0; i < 40; i++) {
    MRConn *c = MRConn_Get(&mgr, "node");
    CHECK(c != blocked);
    outstanding++;
    CHECK_EQ_INT(MRConn_SendCommand(c, &ping, on_reply, NULL), REDIS_OK);
    int just_blpop = 2;
    CHECK(loop_run_until(&loop, fewer_than, &just_blpop, 5000));
  }
  int none = 1;
  CHECK(loop_run_until(&loop, fewer_than, &none, 5000));

  MRCommand_Free(&ping);
  MRCommand_Free(&blpop);
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(uniform_replies_spread_evenly))
