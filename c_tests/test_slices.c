// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Opening and closing connections on the loop, in slices (issue 11): with a
// pool of 300 connections to a real redis-server,
//   - Expand(1 -> 300) and an idle Shrink(300 -> 1) return at once, having
//     queued the work (MRConnDrainStats.queued); the loop does it in slices,
//     and no loop iteration is long (busy time per iteration, measured with
//     uv_metrics_idle_time, and CPU time, printed; the bound is generous for
//     sanitizer builds and busy machines: scripts/bench.sh measures);
//   - the pool changes at once: after the Shrink, MRConn_Get returns only the
//     remaining connection, never one queued to close; after the Expand,
//     FillStateDict shows the new size at once, with conn.c's state strings
//     (the connections still to open are Connecting, as conn.c's new ones
//     are), and the Connected ones grow in number as the loop opens them;
//   - Expand while closes are pending takes the idle connections waiting to
//     close back (in the same loop iteration: all of them; one iteration
//     later: all but those closed by then, and only those are reopened);
//     Shrink while a fill is pending, and Shutdown in the middle of both end
//     with the right pool, every socket closed, no handle open and nothing
//     leaked;
//   - with 6,000 busy connections leaving at once, the call sorts none and
//     the loop sorts them all (idle or draining): none of
//     them is handed out or takes a command meanwhile, the Shrink notice
//     counts them all once sorted, every callback runs once, and Shutdown in
//     the middle of the sorting fails each pending callback once.
#include <sys/resource.h>

#include "drain_common.h"
#include "util/arr/arr.h"

#define BIG 300

static uv_loop_t loop;
static MRConnManager mgr;
static redis_proc r;
static loop_meter meter;

static void start_with(int pool, const char *redis_args) {
  host_init();
  host_log_clear();
  host_set_enterprise(true);
  REQUIRE(uv_loop_init(&loop) == 0);
  REQUIRE(loop_meter_configure(&loop) == 0);
  loop_meter_start(&meter, &loop);
  REQUIRE(redis_start(&r, redis_args) == 0);
  MRConnManager_Init(&mgr, pool);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n0", &ep));
}

static void start(int pool) { start_with(pool, NULL); }

typedef struct {
  int n;
} want_pool;

// The pool holds n connections, all Connected: n round-robin picks give n
// distinct connections.
static bool pool_connected(void *arg) {
  int n = ((want_pool *)arg)->n;
  static MRConn *seen[BIG];
  for (int i = 0; i < n; i++) {
    MRConn *c = MRConn_Get(&mgr, "n0");
    for (int j = 0; j < i && c; j++)
      if (seen[j] == c) c = NULL;
    if (!c) return false;
    seen[i] = c;
  }
  return dc_nothing_queued(&mgr);
}

static bool wait_pool(int n) {
  want_pool w = {n};
  return loop_run_until(&loop, pool_connected, &w, 20000);
}

// The server sees n clients (the loop need not run: sockets close inside
// the calls and slices that close them).
static bool wait_clients(int n) {
  uint64_t end = now_ms() + 5000;
  while (redis_client_count(r.port) != n && now_ms() < end) sleep_ms(5);
  return redis_client_count(r.port) == n;
}

// The states FillStateDict shows for the node: how many, and how many of
// them Connected.
static int states_shown(bool *all_known, int *connected) {
  dictType t = {.hashFunction = stringsHashFunction,
                .keyDup = stringsKeyDup,
                .keyCompare = stringsKeyCompare,
                .keyDestructor = stringsKeyDestructor};
  dict *d = dictCreate(&t, NULL);
  MRConnManager_FillStateDict(&mgr, d);
  int n = 0;
  *all_known = true;
  *connected = 0;
  dictIterator *it = dictGetIterator(d);
  dictEntry *e;
  while ((e = dictNext(it))) {
    char **states = dictGetVal(e);
    n = (int)array_len(states);
    for (int i = 0; i < n; i++) {
      *all_known &= strcmp(states[i], "Connecting") == 0 || strcmp(states[i], "Connected") == 0;
      *connected += strcmp(states[i], "Connected") == 0;
      RedisModule_Free(states[i]);
    }
    array_free(states);
  }
  dictReleaseIterator(it);
  dictRelease(d);
  return n;
}

// After a Shutdown: no handle open, the loop closes, nothing leaked, every
// socket closed.
static void after_shutdown(void) {
  loop_meter_stop(&meter);
  CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
  loop_close_all_handles(&loop);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  CHECK_EQ_INT((long long)host_alloc_live_count(), 0);
  CHECK(wait_clients(0));
  redis_stop(&r);
}

static void finish(void) {
  loop_meter_stop(&meter);
  dc_finish_loop(&loop, &mgr);
  CHECK(wait_clients(0));
  redis_stop(&r);
}

TEST(large_pool_opens_and_closes_in_slices) {
  start(1);
  REQUIRE(wait_pool(1));
  MRConn *first = MRConn_Get(&mgr, "n0");

  loop_meter_reset(&meter);
  uint64_t t0 = now_us();
  MRConnManager_Expand(&mgr, BIG, &loop);
  uint64_t expand_us = now_us() - t0;
  CHECK_EQ_INT(dc_stats(&mgr).queued, BIG - 1);
  CHECK_EQ_INT(mgr.nodeConns, BIG);
  // The pool has its new size at once; its connections open as the loop
  // runs, a slice per iteration.
  int seen_sizes = 0, last = 1, shown_min = BIG, shown_max = 0;
  bool known = true;
  while (!dc_nothing_queued(&mgr)) {
    uv_run(&loop, UV_RUN_NOWAIT);
    bool all_known;
    int connected, n = states_shown(&all_known, &connected);
    known &= all_known;
    shown_min = n < shown_min ? n : shown_min;
    shown_max = n > shown_max ? n : shown_max;
    CHECK(connected >= last);
    seen_sizes += connected > last;
    last = connected;
  }
  CHECK_EQ_INT(shown_min, BIG);
  CHECK_EQ_INT(shown_max, BIG);
  CHECK(known);
  CHECK(wait_pool(BIG));
  double fill_ms = meter.max_busy_ns / 1e6;
  printf("  Expand(1 -> %d) returned in %" PRIu64 " us; its connections opened over %d iterations; longest "
         "iteration %.2f ms (%.2f ms of CPU)\n",
         BIG, expand_us, seen_sizes, fill_ms, meter.max_cpu_ns / 1e6);
  CHECK(seen_sizes >= 2);
  CHECK_MSG(expand_us < 5000, "Expand took %" PRIu64 " us", expand_us);
  CHECK_MSG(fill_ms < 500, "an iteration took %.2f ms", fill_ms);
  CHECK(MRConn_Get(&mgr, "n0") != NULL);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n0"), "Connected");
  CHECK(wait_clients(BIG));

  // An idle Shrink queues 299 closes; the pool is one connection at once.
  loop_meter_reset(&meter);
  t0 = now_us();
  MRConnManager_Shrink(&mgr, 1);
  uint64_t shrink_us = now_us() - t0;
  CHECK_EQ_INT(dc_stats(&mgr).queued, BIG - 1);
  for (int k = 0; k < BIG; k++) CHECK(MRConn_Get(&mgr, "n0") == first);
  CHECK(dc_settle(&loop, &mgr));
  double close_ms = meter.max_busy_ns / 1e6;
  printf("  Shrink(%d -> 1) returned in %" PRIu64 " us; longest iteration while closing %.2f ms "
         "(%.2f ms of CPU)\n",
         BIG, shrink_us, close_ms, meter.max_cpu_ns / 1e6);
  CHECK_MSG(shrink_us < 5000, "Shrink took %" PRIu64 " us", shrink_us);
  CHECK_MSG(close_ms < 500, "an iteration took %.2f ms", close_ms);
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Freeing"), BIG - 1);
  CHECK(wait_clients(1));
  CHECK(MRConn_Get(&mgr, "n0") == first);
  finish();
}

// Idle connections leaving a pool are parked until a slice closes their
// socket; an Expand that comes first takes them back (issue 18 item 3).
TEST(expand_in_the_same_iteration_reconnects_nothing) {
  start(64);
  REQUIRE(wait_pool(64));
  host_log_clear();
  MRConnManager_Shrink(&mgr, 1);
  CHECK_EQ_INT(dc_stats(&mgr).queued, 63);  // parked, to close
  MRConnManager_Expand(&mgr, 64, &loop);
  CHECK(wait_pool(64));
  int closed = host_log_count("debug", "Switching state to Freeing");
  int opened = host_log_count("debug", "Switching state to Connecting");
  printf("  Shrink(64 -> 1) and Expand(1 -> 64) in one iteration: %d closed, %d opened anew\n", closed,
         opened);
  CHECK_EQ_INT(closed, 0);
  CHECK_EQ_INT(opened, 0);
  CHECK(wait_clients(64));
  finish();
}

TEST(expand_an_iteration_later_reopens_only_what_closed) {
  start(64);
  REQUIRE(wait_pool(64));
  host_log_clear();
  MRConnManager_Shrink(&mgr, 1);
  uv_run(&loop, UV_RUN_NOWAIT);  // one slice of closes
  int closed = host_log_count("debug", "Switching state to Freeing");
  MRConnManager_Expand(&mgr, 64, &loop);
  CHECK(wait_pool(64));
  int opened = host_log_count("debug", "Switching state to Connecting");
  printf("  Shrink(64 -> 1), one loop iteration, Expand(1 -> 64): %d closed, %d opened anew\n", closed,
         opened);
  CHECK(closed > 0 && closed < 63);
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Freeing"), closed);
  CHECK_EQ_INT(opened, closed);
  CHECK(wait_clients(64));
  finish();
}

TEST(shrink_while_a_fill_is_pending) {
  start(1);
  REQUIRE(wait_pool(1));
  MRConnManager_Expand(&mgr, 100, &loop);
  uv_run(&loop, UV_RUN_NOWAIT);  // a slice or so of the fill
  MRConnManager_Shrink(&mgr, 2);
  CHECK(dc_settle(&loop, &mgr));
  CHECK(wait_pool(2));
  bool known;
  int connected;
  CHECK_EQ_INT(states_shown(&known, &connected), 2);
  CHECK(known);
  CHECK(wait_clients(2));
  finish();
}

TEST(shutdown_in_the_middle_of_slices) {
  start(200);
  REQUIRE(wait_pool(200));
  MRConnManager_Shrink(&mgr, 1);
  uv_run(&loop, UV_RUN_NOWAIT);  // some of the 199 closes
  MRConnManager_Expand(&mgr, 150, &loop);
  uint64_t queued = dc_stats(&mgr).queued;
  printf("  Shutdown with %" PRIu64 " connections still to open or close\n", queued);
  CHECK(queued > 0);
  uint64_t t0 = now_us();
  MRConnManager_Shutdown(&mgr);
  printf("  Shutdown took %" PRIu64 " us\n", now_us() - t0);
  after_shutdown();
}

#define PER_NODE 3000
#define HUGE (2 * PER_NODE)  // two nodes on the one server

static dc_req huge_reqs[HUGE];
static MRConn *huge_conns[HUGE];

static bool huge_pool_connected(void *arg) {
  (void)arg;
  bool known;
  int connected;
  return dc_nothing_queued(&mgr) && states_shown(&known, &connected) == HUGE && connected == HUGE;
}

static MRConn *huge_kept[2];  // the connections the pools keep when they shrink to 1

// A pool of HUGE Connected connections, each with a BLPOP of `seconds` in
// flight (huge_kept is set once it is).
static void huge_busy_pool(const char *seconds) {
  huge_kept[0] = huge_kept[1] = NULL;
  struct rlimit rl;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= HUGE + 512);
  start_with(1, "--maxclients 20000");
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  REQUIRE(wait_pool(1));
  MRConn *kept0 = MRConn_Get(&mgr, "n0");
  MRConn *kept1 = MRConn_Get(&mgr, "n1");
  REQUIRE(kept0 && kept1);
  MRConnManager_Expand(&mgr, PER_NODE, &loop);
  REQUIRE(loop_run_until(&loop, huge_pool_connected, NULL, 60000));
  dc_reset_counts();
  for (int i = 0; i < HUGE; i++) {
    huge_conns[i] = MRConn_Get(&mgr, i < PER_NODE ? "n0" : "n1");
    huge_reqs[i] = (dc_req){.id = i};
    REQUIRE(dc_send_blpop(huge_conns[i], &huge_reqs[i], seconds) == REDIS_OK);
  }
  loop_run_for(&loop, 20);
  host_log_clear();
  huge_kept[0] = kept0;
  huge_kept[1] = kept1;
}

static bool huge_drain_over(void *arg) {
  (void)arg;
  MRConnDrainStats s = dc_stats(&mgr);
  return s.draining == 0 && s.queued == 0 && dc.replies + dc.nulls + dc.closed >= HUGE;
}

TEST(thousands_leaving_are_sorted_in_slices) {
  huge_busy_pool("0.3");
  REQUIRE(huge_kept[0]);
  uint64_t t0 = now_us();
  MRConnManager_Shrink(&mgr, 1);
  uint64_t shrink_us = now_us() - t0;
  MRConnDrainStats s = dc_stats(&mgr);
  printf("  Shrink(%d -> 1) of 2 nodes' busy connections returned in %" PRIu64 " us, %" PRIu64
         " sorted (draining), %" PRIu64 " left to sort\n",
         PER_NODE, shrink_us, s.draining, s.queued);
  // Over 256 leave: the call sorts none, the loop sorts them all (every one
  // busy, so every one drains).
  CHECK_EQ_INT(s.draining, 0);
  CHECK(s.queued > 0);
  CHECK_EQ_INT(s.queued + s.draining, HUGE - 2);
  CHECK_EQ_INT(host_log_count("notice", "MRConnManager_Shrink: 3000 -> 1"), 0);
  // Sorted or not, no leaving connection is handed out or takes a command.
  for (int k = 0; k < 100; k++) {
    CHECK(MRConn_Get(&mgr, "n0") == huge_kept[0]);
    CHECK(MRConn_Get(&mgr, "n1") == huge_kept[1]);
  }
  dc_req extra = {.id = HUGE};
  int refused = 0;
  for (int i = 0; i < HUGE; i++)
    if (huge_conns[i] != huge_kept[0] && huge_conns[i] != huge_kept[1])
      refused += dc_send_echo(huge_conns[i], &extra) == REDIS_ERR;
  CHECK_EQ_INT(refused, HUGE - 2);
  CHECK_EQ_INT(extra.calls, 0);

  loop_meter_reset(&meter);
  CHECK(loop_run_until(&loop, huge_drain_over, NULL, 20000));
  printf("  longest iteration while sorting and draining: %.2f ms (%.2f ms of CPU)\n",
         meter.max_busy_ns / 1e6, meter.max_cpu_ns / 1e6);
  CHECK(host_log_count("notice", "MRConnManager_Shrink: 3000 -> 1 connections per node: 0 closed "
                                 "idle, 5998 draining with 5998 commands pending") == 1);
  char *line = host_log_find("notice", "MRConnManager_Shrink: drain of 5998 connections finished in");
  CHECK(line && strstr(line, "5998 graceful, 0 forced, 0 lost their link, 0 reclaimed"));
  free(line);
  int once = 0;
  for (int i = 0; i < HUGE; i++) once += huge_reqs[i].calls == 1 && !huge_reqs[i].nulls && !huge_reqs[i].bad;
  CHECK_EQ_INT(once, HUGE);
  CHECK_EQ_INT(dc.duplicates, 0);
  finish();
}

TEST(shutdown_while_leaving_connections_are_sorted) {
  huge_busy_pool("5");
  REQUIRE(huge_kept[0]);
  MRConnManager_Shrink(&mgr, 1);
  uv_run(&loop, UV_RUN_NOWAIT);  // a slice sorts some
  MRConnDrainStats s = dc_stats(&mgr);
  printf("  Shutdown with %" PRIu64 " leaving connections draining, %" PRIu64 " still to sort\n", s.draining,
         s.queued);
  CHECK(s.queued > 0);
  CHECK(s.draining > 0);
  MRConnManager_Shutdown(&mgr);
  // The connections sorted before it drained, and Shutdown forced them: their
  // batch reports once.
  char *line = host_log_find("notice", "MRConnManager_Shrink: drain of ");
  CHECK(line && strstr(line, " 0 graceful, ") && strstr(line, " forced, 0 lost their link"));
  if (line) printf("  log: %s\n", line);
  free(line);
  CHECK_EQ_INT(host_log_count("notice", "MRConnManager_Shrink: drain of "), 1);
  // Every BLPOP, on a sorted, unsorted or kept connection, got one error reply.
  int once = 0;
  for (int i = 0; i < HUGE; i++) once += huge_reqs[i].calls == 1 && huge_reqs[i].closed == 1;
  CHECK_EQ_INT(once, HUGE);
  CHECK_EQ_INT(dc.duplicates, 0);
  after_shutdown();
}

// 256 leaving connections are sorted inside the call on any machine and
// build: the call's notice is logged when it returns.
TEST(a_shrink_of_256_is_sorted_in_the_call) {
  start(257);
  REQUIRE(wait_pool(257));
  host_log_clear();
  MRConnManager_Shrink(&mgr, 1);
  CHECK(host_log_count("notice", "MRConnManager_Shrink: 257 -> 1 connections per node: 256 closed "
                                 "idle, 0 draining with 0 commands pending") == 1);
  CHECK_EQ_INT(dc_stats(&mgr).queued, 256);  // their closes
  CHECK(dc_settle(&loop, &mgr));
  CHECK(wait_clients(1));
  finish();
}

HARNESS_MAIN(HARNESS_TEST(large_pool_opens_and_closes_in_slices),
             HARNESS_TEST(a_shrink_of_256_is_sorted_in_the_call),
             HARNESS_TEST(expand_in_the_same_iteration_reconnects_nothing),
             HARNESS_TEST(expand_an_iteration_later_reopens_only_what_closed),
             HARNESS_TEST(shrink_while_a_fill_is_pending),
             HARNESS_TEST(shutdown_in_the_middle_of_slices),
             HARNESS_TEST(thousands_leaving_are_sorted_in_slices),
             HARNESS_TEST(shutdown_while_leaving_connections_are_sorted))
