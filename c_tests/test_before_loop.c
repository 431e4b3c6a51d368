// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Resizes before the loop first runs (issue 18 item 6). RediSearch's
// MR_UpdateConnPoolSize calls Shrink/Expand from its main thread when the
// cluster has a single shard, before the IO thread's loop has run. The sizes
// set then must hold once the loop runs, with nothing opened twice (the
// redis-server sees exactly the pool's connections) and nothing leaked.
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "harness.h"
#include "mrconn_test_host.h"
#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

// The clients the redis-server has, this test's own query included.
static int server_clients(int port) {
  char out[4096];
  if (redis_cmd(port, out, sizeof out, "INFO clients") != 0) return -1;
  const char *p = strstr(out, "connected_clients:");
  return p ? atoi(p + strlen("connected_clients:")) : -1;
}

typedef struct {
  int port;
  int want;
} clients_wait;

static bool clients_are(void *arg) {
  clients_wait *w = arg;
  return server_clients(w->port) == w->want;
}

TEST(sizes_set_before_the_loop_runs_hold) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  tu_start1(&loop, &mgr, 2);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  // Up and down and up again, all before the first iteration.
  MRConnManager_Expand(&mgr, 6, &loop);
  MRConnManager_Shrink(&mgr, 3);
  MRConnManager_Expand(&mgr, 5, &loop);
  MRConnManager_Shrink(&mgr, 4);
  CHECK_EQ_INT(mgr.nodeConns, 4);
  char key[64];
  tu_key(key, sizeof key, r.port);
  CHECK_EQ_INT(tu_count_state(&mgr, key, "Connecting"), 4);

  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 4, 5000));
  // Four of ours and the query's: nothing was opened twice, or left open.
  clients_wait w = {r.port, 5};
  CHECK(loop_run_until(&loop, clients_are, &w, 2000));
  // And it stays so: no late connect from an earlier size.
  uint64_t until = now_ms() + 300;
  while (now_ms() < until) uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_EQ_INT(server_clients(r.port), 5);
  CHECK_EQ_INT(tu_count_state(&mgr, key, "Connected"), 4);
  MRConnDrainStats stats;
  CHECK_EQ_INT(MRConnManager_GetDrainStats(&mgr, &stats), REDIS_OK);
  CHECK_EQ_INT((int)stats.queued, 0);
  CHECK_EQ_INT((int)stats.draining, 0);

  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  redis_stop(&r);
}

// One fill per node (issue 18 item 5): a node removed and added again
// before its connections were opened gets one fill, not two. Pools take
// turns a connection each, so with a second fill n1 would get two
// connections for each of n2's.
TEST(one_fill_per_node) {
  redis_proc r1, r2;
  REQUIRE(redis_start(&r1, NULL) == 0);
  REQUIRE(redis_start(&r2, NULL) == 0);
  tu_start1(&loop, &mgr, 256);
  MREndpoint e1 = {.host = "127.0.0.1", .port = r1.port};
  MREndpoint e2 = {.host = "127.0.0.1", .port = r2.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &e1));
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "n1"), REDIS_OK);
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &e1));
  CHECK(MRConnManager_Add(&mgr, &loop, "n2", &e2));
  // A few slices' worth (each opens a few connections), far from all 512.
  int c1 = 0, c2 = 0;
  for (int i = 0; i < 50 && c1 + c2 < 24; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    sleep_ms(20);  // the servers accept meanwhile; the loop opens nothing
    c1 = server_clients(r1.port) - 1;
    c2 = server_clients(r2.port) - 1;
  }
  CHECK(c1 + c2 >= 24);
  CHECK(c1 + c2 < 512);
  if (!CHECK(abs(c1 - c2) <= 2)) fprintf(stderr, "  n1 has %d connections, n2 %d\n", c1, c2);

  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  redis_stop(&r1);
  redis_stop(&r2);
}

// A node removed while its fill is queued: the fill holds its pool, which
// the dict does not free then. The slices end that fill without opening
// anything, or Shutdown does; either way the pool is freed once.
TEST(fill_of_a_removed_node) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  for (int shutdown_first = 0; shutdown_first < 2; shutdown_first++) {
    tu_start1(&loop, &mgr, 8);
    CHECK(MRConnManager_Add(&mgr, &loop, "gone", &ep));
    CHECK(MRConnManager_Add(&mgr, &loop, "kept", &ep));
    CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "gone"), REDIS_OK);
    CHECK(MRConnManager_GetNodeState(&mgr, "gone") == NULL);
    if (!shutdown_first) {
      char key[64];
      tu_key(key, sizeof key, r.port);
      CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 8, 5000));
      // Only "kept"'s 8 and the query: nothing was opened for "gone".
      clients_wait w = {r.port, 9};
      CHECK(loop_run_until(&loop, clients_are, &w, 2000));
      CHECK_EQ_INT(tu_count_state(&mgr, key, "Connected"), 8);
    }
    tu_teardown1(&loop, &mgr);
    TU_CHECK_NO_LEAK();
  }
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(sizes_set_before_the_loop_runs_hold), HARNESS_TEST(one_fill_per_node),
             HARNESS_TEST(fill_of_a_removed_node))
