// SPDX-License-Identifier: MIT OR Apache-2.0
//
// A partition does not flood the log (issue 18 item 4). conn.c logs "Error
// on connect: Connection refused" for every connection at every 250 ms
// back-off: with 64 connections, 256 lines a second per node and IO thread.
// mrconn logs a node's first warning as conn.c does, then sums the repeats
// from any of its connections: at most one line per node and kind per 10 s,
// with the count and the connections affected; the node's recovery is
// logged once.
//   - 3 nodes x 64 connections, the third refusing connections for 60 s,
//     then reachable again: at most 10 warning lines name it, the first in
//     conn.c's text; one recovery notice; the other nodes log nothing;
//   - a redis-server killed under 64 connections: one "Disconnected from
//     node" line, not 64.
#include <stdio.h>
#include <string.h>

#include "tutil.h"

#define NODES 3
#define POOL 64
#define PARTITION_MS 60000

static MRConnManager mgr;
static uv_loop_t loop;
static redis_proc r[NODES];
static const char *ids[NODES] = {"n0", "n1", "n2"};

static void finish(void) {
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
}

// The log lines that name the node on `port` ("[0x… 127.0.0.1:port State]").
static int lines_for(const char *level, int port) {
  char tag[32];
  snprintf(tag, sizeof tag, " 127.0.0.1:%d ", port);
  return host_log_count(level, tag);
}

TEST(a_refusing_node_logs_a_few_lines_not_thousands) {
  tu_start1(&loop, &mgr, POOL);
  for (int i = 0; i < NODES; i++) REQUIRE(redis_start(&r[i], NULL) == 0);
  // The third node's server is stopped before it is added: its port refuses
  // connections from the first attempt.
  redis_stop(&r[2]);
  for (int i = 0; i < NODES; i++) {
    MREndpoint ep = {.host = "127.0.0.1", .port = r[i].port};
    CHECK(MRConnManager_Add(&mgr, &loop, ids[i], &ep));
  }
  // Tallied a second at a time: the test host keeps the last 16,384 lines,
  // and every failed attempt logs conn.c's debug state switches.
  char tag[32];
  snprintf(tag, sizeof tag, " 127.0.0.1:%d ", r[2].port);
  int attempts = 0, warned = 0, others = 0, summaries = 0;
  char *first = NULL;
  for (int s = 0; s < PARTITION_MS / 1000; s++) {
    loop_run_for(&loop, 1000);
    attempts += host_log_count("debug", "Switching state to Reconnecting");
    warned += lines_for("warning", r[2].port);
    others += lines_for("warning", r[0].port) + lines_for("warning", r[1].port);
    summaries += host_log_count("warning", " connections of this node in the last ");
    if (!first) first = host_log_find("warning", tag);
    host_log_clear();
  }
  for (int i = 0; i < 2; i++) CHECK(tu_wait_state(&loop, &mgr, r[i].port, "Connected", POOL, 5000));
  printf("  %d connections refused for %d s: %d failed attempts, %d warning lines (conn.c: one per "
         "attempt)\n",
         POOL, PARTITION_MS / 1000, attempts, warned);
  CHECK(attempts >= POOL * 4 * (PARTITION_MS / 1000) / 2);
  CHECK_MSG(warned >= 1 && warned <= 10, "%d warning lines", warned);
  CHECK(summaries >= 1);
  CHECK_EQ_INT(others, 0);
  // The node's first warning is conn.c's line, exactly (a refused loopback
  // connect fails in the connect callback, or at once inside connect()).
  const char *text = first ? strstr(first, "] ") : NULL;
  CHECK(text && (strcmp(text, "] Error on connect: Connection refused") == 0 ||
                 strcmp(text, "] Could not connect to node: Connection refused") == 0));
  if (first) printf("  first: %s\n", first);
  free(first);

  // Reachable again: one notice, whichever connection gets there first.
  REQUIRE(redis_restart(&r[2]) == 0);
  CHECK(tu_wait_state(&loop, &mgr, r[2].port, "Connected", POOL, 10000));
  CHECK_EQ_INT(host_log_count("notice", "Node reachable again after "), 1);
  char *back = host_log_find("notice", "Node reachable again after ");
  if (back) printf("  then:  %s\n", back);
  CHECK(back && strstr(back, " on 64 connections over "));
  free(back);
  finish();
  for (int i = 0; i < NODES; i++) redis_stop(&r[i]);
}

TEST(a_killed_server_is_reported_once_not_per_connection) {
  tu_start1(&loop, &mgr, POOL);
  REQUIRE(redis_start(&r[0], NULL) == 0);
  MREndpoint ep = {.host = "127.0.0.1", .port = r[0].port};
  CHECK(MRConnManager_Add(&mgr, &loop, ids[0], &ep));
  CHECK(tu_wait_state(&loop, &mgr, r[0].port, "Connected", POOL, 10000));
  redis_kill(&r[0]);
  CHECK(tu_wait_state(&loop, &mgr, r[0].port, "Reconnecting", POOL, 5000));
  loop_run_for(&loop, 1000);
  int disconnected = host_log_count("warning", "Disconnected from node");
  printf("  %d connections lost their server: %d 'Disconnected from node' lines, %d warnings in all\n", POOL,
         disconnected, host_log_count("warning", NULL));
  CHECK_EQ_INT(disconnected, 1);
  CHECK(host_log_count("warning", NULL) <= 3);  // and the first refused reconnect(s)
  REQUIRE(redis_restart(&r[0]) == 0);
  CHECK(tu_wait_state(&loop, &mgr, r[0].port, "Connected", POOL, 10000));
  CHECK_EQ_INT(host_log_count("notice", "Node reachable again after "), 1);
  finish();
  redis_stop(&r[0]);
}

HARNESS_MAIN(HARNESS_TEST(a_refusing_node_logs_a_few_lines_not_thousands),
             HARNESS_TEST(a_killed_server_is_reported_once_not_per_connection))
