// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Network faults against a real redis-server and plain sockets: the server
 * is killed (a command in flight gets a NULL reply, exactly once; the pool
 * goes Reconnecting) and restarted on the same port (Connected again);
 * connection refused (a free port) → Reconnecting with a warning, retried
 * about every 250 ms; a connect that never completes (a loopback listener
 * whose accept backlog is full) stays Connecting without a connect timeout,
 * and with clusterConfig.connectTimeout = 200 ms is abandoned with a
 * warning, Reconnecting within about a second. Shutdown is exercised in each
 * of these states (Reconnecting, Connecting with a pending connect).
 */
#include <string.h>

#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

static void start(int conns) { tu_start1(&loop, &mgr, conns); }

static void finish(void) {
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
}

TEST(killed_then_restarted) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start(2);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 2, 10000));

  /* A command waiting on the server when it dies. */
  MRConn *c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);
  MRCommand cmd = MR_NewCommand(3, "BLPOP", "nosuchkey", "30");
  tu_reply pending = {0};
  CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, tu_on_reply, &pending), REDIS_OK);
  loop_run_for(&loop, 50);
  CHECK_EQ_INT(pending.calls, 0);

  redis_kill(&r);
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Reconnecting", 2, 5000));
  CHECK(tu_wait_reply(&loop, &pending, 1000));
  CHECK(host_log_count("warning", "Disconnected from node") >= 1);
  CHECK_EQ_INT(pending.calls, 1);
  CHECK_EQ_INT(pending.nulls, 1);
  CHECK(MRConn_Get(&mgr, "n1") == NULL);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n1"), "Reconnecting");
  /* Stays down while the server is: retries keep failing. */
  loop_run_for(&loop, 600);
  CHECK(MRConn_Get(&mgr, "n1") == NULL);

  REQUIRE(redis_restart(&r) == 0);
  uint64_t t0 = now_ms();
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 2, 5000));
  CHECK_MSG(now_ms() - t0 < 2000, "reconnected after %llu ms", (unsigned long long)(now_ms() - t0));
  tu_reply rep;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &rep, 1, (const char *[]){"PING"}), REDIS_OK);
  CHECK_EQ_STR(rep.text, "PONG");
  CHECK_EQ_INT(pending.calls, 1);
  MRCommand_Free(&cmd);
  finish();
  redis_stop(&r);
}

/* Warnings of failed connects: a refused loopback connect is reported in
 * the connect callback ("Error on connect: Connection refused"), or, if the
 * kernel refuses it inside connect() itself, at once ("Could not connect"). */
// Each failed attempt switches to Reconnecting (a debug line, as in conn.c);
// the warnings are summed per node.
static int connect_failures(void) { return host_log_count("debug", "Switching state to Reconnecting"); }

TEST(connection_refused) {
  start(1);
  int port = harness_free_port();
  REQUIRE(port > 0);
  MREndpoint ep = {.host = "127.0.0.1", .port = port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Reconnecting", 2000));
  CHECK(connect_failures() >= 1);
  char *line = host_log_find("warning", "onnect");
  CHECK(line != NULL);
  if (line) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "127.0.0.1:%d ", port);
    CHECK_MSG(line[0] == '[' && strstr(line, prefix) != NULL, "log: %s", line);
    CHECK_MSG(strstr(line, "refused") != NULL, "log: %s", line);
  }
  free(line);

  /* Retries every 250 ms: about 8 in 2 s. */
  int before = connect_failures();
  loop_run_for(&loop, 2000);
  int n = connect_failures() - before;
  CHECK_MSG(n >= 5 && n <= 10, "%d connect failures in 2 s", n);
  CHECK(MRConn_Get(&mgr, "n1") == NULL);
  finish();
}

TEST(no_connect_timeout_stays_connecting) {
  int port;
  int bh = blackhole_listener(&port);
  REQUIRE(bh >= 0);
  start(1);
  clusterConfig.connectTimeout = (struct timeval){0, 0};
  MREndpoint ep = {.host = "127.0.0.1", .port = port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  loop_run_for(&loop, 700);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n1"), "Connecting");
  CHECK_EQ_INT(connect_failures(), 0);
  /* Shutdown with the connect still pending. */
  finish();
  blackhole_close(bh);
}

TEST(connect_timeout) {
  int port;
  int bh = blackhole_listener(&port);
  REQUIRE(bh >= 0);
  /* After the (slowish) blackhole setup: libuv measures timers from the
   * loop's cached time, which uv_loop_init sets. */
  start(2);
  clusterConfig.connectTimeout = (struct timeval){0, 200000};
  MREndpoint ep = {.host = "127.0.0.1", .port = port};
  uint64_t t0 = now_ms();
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Reconnecting", 3000));
  uint64_t took = now_ms() - t0;
  CHECK_MSG(took >= 150 && took <= 1500, "Reconnecting after %llu ms", (unsigned long long)took);
  CHECK(connect_failures() >= 1);
  char *line = host_log_find("warning", "onnect");
  CHECK(line != NULL);
  if (line) CHECK_MSG(strstr(line, "imeout") || strstr(line, "timed out"), "log: %s", line);
  free(line);
  /* It keeps trying, each attempt timing out. */
  int before = connect_failures();
  loop_run_for(&loop, 1500);
  CHECK(connect_failures() - before >= 2);
  clusterConfig.connectTimeout = (struct timeval){0, 0};
  finish();
  blackhole_close(bh);
}

HARNESS_MAIN(HARNESS_TEST(killed_then_restarted), HARNESS_TEST(connection_refused),
             HARNESS_TEST(no_connect_timeout_stays_connecting), HARNESS_TEST(connect_timeout))
