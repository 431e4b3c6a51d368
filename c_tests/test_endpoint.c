// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Add and Disconnect against real redis-servers. Add with an endpoint equal
 * to the pool's (MREndpoint_Equal) changes nothing and returns false: the
 * very same MRConn pointers come back from Get. A changed port rebuilds the
 * pool (returns true, a notice "endpoint changed from 127.0.0.1:P1 to
 * 127.0.0.1:P2"), the new connections go to the new server and the old ones
 * close (a command in flight on them still gets its reply, once); a rotated
 * password (Enterprise) and a changed isTls rebuild it too; the caller's
 * endpoint strings are copied, not kept. Disconnect of a known id returns
 * REDIS_OK and removes the pool (GetNodeState NULL, server connections
 * closed); of an unknown id, or a second time, REDIS_ERR.
 */
#include <string.h>

#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

#define CONNS 3

static void start(void) { tu_start1(&loop, &mgr, CONNS); }

static void finish(void) {
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
}

typedef struct {
  int port, n;
} clients_wait;

static bool clients_are(void *arg) {
  clients_wait *w = arg;
  return redis_client_count(w->port) == w->n;
}

static bool wait_clients(int port, int n) {
  clients_wait w = {port, n};
  return loop_run_until(&loop, clients_are, &w, 5000);
}

static void get_all(const char *id, MRConn **out) {
  for (int i = 0; i < CONNS; i++) out[i] = MRConn_Get(&mgr, id);
}

TEST(same_endpoint_keeps_pool) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start();
  /* Strings the caller owns and changes afterwards: the pool keeps copies. */
  char host[] = "127.0.0.1";
  MREndpoint ep = {.host = host, .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS, 10000));
  MRConn *before[CONNS], *after[CONNS];
  get_all("n1", before);

  host_log_clear();
  MREndpoint same = {.host = strdup("127.0.0.1"), .port = r.port};
  CHECK(!MRConnManager_Add(&mgr, &loop, "n1", &same));
  free(same.host);
  memcpy(host, "999.9.9.9", sizeof host);
  get_all("n1", after);
  for (int i = 0; i < CONNS; i++) CHECK(after[i] == before[i]);
  CHECK_EQ_INT(host_log_count("notice", "endpoint changed"), 0);
  loop_run_for(&loop, 100);
  CHECK_EQ_INT(redis_client_count(r.port), CONNS);
  CHECK_EQ_INT(dictSize(mgr.map), 1);
  finish();
  redis_stop(&r);
}

TEST(changed_port_rebuilds) {
  redis_proc r1, r2;
  REQUIRE(redis_start(&r1, NULL) == 0);
  REQUIRE(redis_start(&r2, NULL) == 0);
  start();
  MREndpoint ep1 = {.host = "127.0.0.1", .port = r1.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep1));
  CHECK(tu_wait_state(&loop, &mgr, r1.port, "Connected", CONNS, 10000));

  /* A command still running on the old pool when it is replaced. */
  MRConn *old = MRConn_Get(&mgr, "n1");
  MRCommand sleep_cmd = MR_NewCommand(3, "DEBUG", "SLEEP", "0.3");
  tu_reply slept = {0};
  CHECK_EQ_INT(MRConn_SendCommand(old, &sleep_cmd, tu_on_reply, &slept), REDIS_OK);
  loop_run_for(&loop, 20);

  host_log_clear();
  MREndpoint ep2 = {.host = "127.0.0.1", .port = r2.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep2));
  char want[128];
  snprintf(want, sizeof want, "endpoint changed from 127.0.0.1:%d to 127.0.0.1:%d", r1.port, r2.port);
  CHECK_EQ_INT(host_log_count("notice", want), 1);
  char *line = host_log_find("notice", want);
  if (line) {
    CHECK_MSG(strstr(line, "n1") != NULL, "notice does not name the node: %s", line);
    CHECK_MSG(strstr(line, "Connected") != NULL, "notice does not give the old state: %s", line);
  }
  free(line);
  CHECK_EQ_INT(dictSize(mgr.map), 1);

  /* The new pool goes to r2; the old connections close (the busy one after
   * its reply). */
  CHECK(tu_wait_state(&loop, &mgr, r2.port, "Connected", CONNS, 10000));
  char key1[64];
  tu_key(key1, sizeof key1, r1.port);
  char buf[256];
  CHECK_EQ_INT(tu_states(&mgr, key1, buf, sizeof buf), 0);
  CHECK(tu_wait_reply(&loop, &slept, 5000));
  CHECK_EQ_INT(slept.calls, 1);
  CHECK_EQ_STR(slept.text, "OK");
  CHECK(wait_clients(r1.port, 0));
  CHECK(wait_clients(r2.port, CONNS));
  MRConn *now[CONNS];
  get_all("n1", now);
  for (int i = 0; i < CONNS; i++) CHECK(now[i] != NULL && now[i] != old);
  tu_reply rep;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &rep, 1, (const char *[]){"PING"}), REDIS_OK);
  CHECK_EQ_STR(rep.text, "PONG");
  MRCommand_Free(&sleep_cmd);
  finish();
  redis_stop(&r1);
  redis_stop(&r2);
}

TEST(rotated_password_rebuilds) {
  redis_proc r;
  REQUIRE(redis_start(&r, "--requirepass pw-one") == 0);
  start();
  host_set_enterprise(true);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port, .password = "pw-one"};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS, 10000));
  /* Same password: kept. */
  MREndpoint same = {.host = "127.0.0.1", .port = r.port, .password = "pw-one"};
  CHECK(!MRConnManager_Add(&mgr, &loop, "n1", &same));

  char out[256];
  CHECK_EQ_INT(redis_cmd_auth(r.port, NULL, "pw-one", out, sizeof out, "CONFIG SET requirepass pw-two"), 0);
  host_log_clear();
  MREndpoint rotated = {.host = "127.0.0.1", .port = r.port, .password = "pw-two"};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &rotated));
  char want[128];
  snprintf(want, sizeof want, "endpoint changed from 127.0.0.1:%d to 127.0.0.1:%d", r.port, r.port);
  CHECK_EQ_INT(host_log_count("notice", want), 1);
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS, 10000));
  CHECK_EQ_INT(host_log_count("warning", "Error authenticating"), 0);
  /* Only the new pool's connections remain. */
  uint64_t deadline = now_ms() + 5000;
  while (redis_client_count_auth(r.port, NULL, "pw-two") != CONNS && now_ms() < deadline) loop_run_for(&loop, 20);
  CHECK_EQ_INT(redis_client_count_auth(r.port, NULL, "pw-two"), CONNS);
  tu_reply rep;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &rep, 3, (const char *[]){"SET", "k", "v"}), REDIS_OK);
  CHECK_EQ_STR(rep.text, "OK");
  finish();
  redis_stop(&r);
}

TEST(changed_tls_flag_rebuilds) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start();
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS, 10000));
  MREndpoint tls = {.host = "127.0.0.1", .port = r.port, .isTls = true};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &tls));
  CHECK(!MRConnManager_Add(&mgr, &loop, "n1", &tls));
  MREndpoint back = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &back));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS, 10000));
  finish();
  redis_stop(&r);
}

TEST(disconnect) {
  redis_proc r1, r2;
  REQUIRE(redis_start(&r1, NULL) == 0);
  REQUIRE(redis_start(&r2, NULL) == 0);
  start();
  MREndpoint ep1 = {.host = "127.0.0.1", .port = r1.port};
  MREndpoint ep2 = {.host = "127.0.0.1", .port = r2.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep1));
  CHECK(MRConnManager_Add(&mgr, &loop, "n2", &ep2));
  CHECK(tu_wait_state(&loop, &mgr, r1.port, "Connected", CONNS, 10000));
  CHECK(tu_wait_state(&loop, &mgr, r2.port, "Connected", CONNS, 10000));
  CHECK_EQ_INT(dictSize(mgr.map), 2);

  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n1"), REDIS_OK);
  CHECK(MRConnManager_GetNodeState(&mgr, "n1") == NULL);
  CHECK(MRConn_Get(&mgr, "n1") == NULL);
  CHECK_EQ_INT(dictSize(mgr.map), 1);
  CHECK(wait_clients(r1.port, 0));
  /* The other node is untouched. */
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n2"), "Connected");
  CHECK_EQ_INT(redis_client_count(r2.port), CONNS);

  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n1"), REDIS_ERR);
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "never-added"), REDIS_ERR);

  /* The id can be added again. */
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep1));
  CHECK(tu_wait_state(&loop, &mgr, r1.port, "Connected", CONNS, 10000));

  /* Disconnect of a pool still connecting. */
  int dead = harness_free_port();
  MREndpoint ep3 = {.host = "127.0.0.1", .port = dead};
  CHECK(MRConnManager_Add(&mgr, &loop, "n3", &ep3));
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n3"), REDIS_OK);
  CHECK(MRConnManager_Add(&mgr, &loop, "n3", &ep3));
  loop_run_for(&loop, 100);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n3"), "Reconnecting");
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n3"), REDIS_OK);
  loop_run_for(&loop, 50);
  finish();
  redis_stop(&r1);
  redis_stop(&r2);
}

HARNESS_MAIN(HARNESS_TEST(same_endpoint_keeps_pool), HARNESS_TEST(changed_port_rebuilds),
             HARNESS_TEST(rotated_password_rebuilds), HARNESS_TEST(changed_tls_flag_rebuilds),
             HARNESS_TEST(disconnect))
