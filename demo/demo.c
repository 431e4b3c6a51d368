// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The demo: mrconn doing its job against three local redis-servers, driven
// through the C ABI the way RediSearch's coordinator drives conn.c.
//
//  1. pools of 8 connections to each node connect; their states are printed
//     as FT.DEBUG would show them (FillStateDict + ReplyState);
//  2. 240 commands that each take ~300 ms are put in flight, then the pools
//     shrink 8 -> 1: the timeline shows the shrink call returning at once,
//     every command completing with its real reply, and the surplus
//     connections closing right after their last reply;
//  3. the pools grow back to 8 while connections drain (they are reclaimed),
//     then a node is paused past a 300 ms drain deadline: its commands fail
//     cleanly with an error reply that names the deadline (RediSearch shows
//     it to the client) instead of hanging, or of a NULL that RediSearch
//     would read as "shard gone" and answer with fewer results.
//
// The RediSearch side is played by the test host (c_tests/host), whose log
// sink prints the library's notices and warnings.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "harness.h"
#include "module.h"
#include "mrconn_test_host.h"
#include "rmr/reply.h"
#include "util/arr/arr.h"

enum { NODES = 3, POOL = 8, INFLIGHT = 240 };

static uv_loop_t loop;
static MRConnManager mgr;
static redis_proc nodes[NODES];
static const char *ids[NODES] = {"shard-a", "shard-b", "shard-c"};
static int total_sent, done, ok, null_replies, error_replies, duplicates;
static char last_error[128];
static unsigned char seen[INFLIGHT * 4];

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  size_t i = (size_t)(uintptr_t)priv;
  if (seen[i]++) duplicates++;
  done++;
  size_t len = 0;
  if (!r) {
    null_replies++;
  } else if (MRReply_Type(r) == REDIS_REPLY_ERROR) {
    error_replies++;
    const char *s = MRReply_String(r, &len);
    snprintf(last_error, sizeof last_error, "%.*s", (int)len, s);
  } else {
    ok++;
  }
  MRReply_Free(r);
}

static bool forced_once(void *arg) {
  (void)arg;
  MRConnDrainStats st;
  MRConnManager_GetDrainStats(&mgr, &st);
  return st.forced > 0;
}

// Every pool whole and every connection Connected: POOL round-robin picks
// give POOL distinct connections.
static bool all_connected(void *arg) {
  (void)arg;
  for (int i = 0; i < NODES; i++) {
    MRConn *seen[POOL];
    int n = 0;
    for (int k = 0; k < POOL; k++) {
      MRConn *c = MRConn_Get(&mgr, ids[i]);
      bool dup = !c;
      for (int j = 0; j < n && !dup; j++) dup = seen[j] == c;
      if (dup) return false;
      seen[n++] = c;
    }
  }
  return true;
}

static bool finished(void *arg) { return done >= *(int *)arg; }

static bool nothing_queued(void *arg) {
  (void)arg;
  MRConnDrainStats st;
  MRConnManager_GetDrainStats(&mgr, &st);
  return st.queued == 0;
}

// Prints the library's notices and warnings logged since the last call.
static void print_logs(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  host_log_dump(f);
  fclose(f);
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "[debug]", 7) != 0) printf("    log %s\n", line);
  }
  free(buf);
  host_log_clear();
}

static void print_states(const char *when) {
  dictType type = {.hashFunction = stringsHashFunction, .keyDup = stringsKeyDup,
                   .keyCompare = stringsKeyCompare, .keyDestructor = stringsKeyDestructor};
  dict *states = dictCreate(&type, NULL);
  MRConnManager_FillStateDict(&mgr, states);
  host_reply_reset();
  MRConnManager_ReplyState(states, RSDummyContext);
  printf("  %-26s %s\n", when, host_reply_text());
  dictIterator *it = dictGetIterator(states);
  dictEntry *e;
  while ((e = dictNext(it))) {
    char **arr = dictGetVal(e);
    for (uint32_t i = 0; i < array_len(arr); i++) RedisModule_Free(arr[i]);
    array_free(arr);
  }
  dictReleaseIterator(it);
  dictRelease(states);
}

// Sends `n` BLPOPs that each time out after `secs`, spread over the pools.
static int send_slow(int n, const char *secs) {
  int sent = 0;
  for (int i = total_sent; i < total_sent + n; i++) {
    MRConn *c = MRConn_Get(&mgr, ids[i % NODES]);
    if (!c) continue;
    char key[32];
    snprintf(key, sizeof key, "demo:none:%d", i);
    MRCommand cmd = MR_NewCommand(3, "BLPOP", key, secs);
    if (MRConn_SendCommand(c, &cmd, on_reply, (void *)(uintptr_t)i) == REDIS_OK) sent++;
    MRCommand_Free(&cmd);
  }
  total_sent += sent;
  return sent;
}

static void print_clients(const char *label, uint64_t t0) {
  printf("  t=%5.0f ms  %-22s replies %3d/%d  NULL %d  connections per node:", (now_us() - t0) / 1000.0,
         label, ok, done, null_replies);
  for (int i = 0; i < NODES; i++) printf(" %d", redis_client_count(nodes[i].port));
  MRConnDrainStats st;
  MRConnManager_GetDrainStats(&mgr, &st);
  printf("  draining %" PRIu64 "\n", st.draining);
}

int main(void) {
  host_init();
  host_set_enterprise(true);  // plain redis-servers: no internal AUTH
  uv_loop_init(&loop);
  printf("mrconn demo: 3 redis-server nodes, pools of %d per node\n\n", POOL);
  for (int i = 0; i < NODES; i++) {
    if (redis_start(&nodes[i], NULL) != 0) {
      fprintf(stderr, "cannot start redis-server\n");
      return 1;
    }
  }
  MRConnManager_Init(&mgr, POOL);
  for (int i = 0; i < NODES; i++) {
    MREndpoint ep = {.host = "127.0.0.1", .port = nodes[i].port};
    MRConnManager_Add(&mgr, &loop, ids[i], &ep);
  }
  print_states("just added:");
  loop_run_until(&loop, all_connected, NULL, 10000);
  print_states("after connecting:");
  host_log_clear();

  printf("\n1. Shrink 8 -> 1 with %d commands in flight (each BLPOP holds its connection 100 ms)\n", INFLIGHT);
  int sent = send_slow(INFLIGHT, "0.1");
  loop_run_for(&loop, 50);
  uint64_t t0 = now_us();
  MRConnManager_Shrink(&mgr, 1);
  uint64_t shrink_us = now_us() - t0;
  printf("  Shrink returned after %" PRIu64 " us\n", shrink_us);
  print_clients("after Shrink:", t0);
  for (int step = 0; step < 40 && done < sent; step++) {
    loop_run_for(&loop, 100);
    print_clients("", t0);
  }
  loop_run_until(&loop, finished, &sent, 5000);
  loop_run_for(&loop, 20);
  print_clients("drained:", t0);
  print_logs();
  MRConnDrainStats st;
  MRConnManager_GetDrainStats(&mgr, &st);
  printf("  => %d sent, %d real replies, %d errors, %d NULL, %d lost, %d duplicated; drains: %" PRIu64
         " graceful, %" PRIu64 " forced\n",
         sent, ok, error_replies, null_replies, sent - done, duplicates, st.graceful, st.forced);

  printf("\n2. Flap 1 -> 8 -> 1 -> 8 under load: draining connections are taken back\n");
  MRConnManager_Expand(&mgr, POOL, &loop);
  loop_run_until(&loop, all_connected, NULL, 5000);
  loop_run_for(&loop, 100);
  int before = done;
  int more = send_slow(INFLIGHT / 2, "0.1");
  MRConnManager_Shrink(&mgr, 1);
  uint64_t t_expand = now_us();
  MRConnManager_Expand(&mgr, POOL, &loop);
  uint64_t expand_us = now_us() - t_expand;
  loop_run_until(&loop, nothing_queued, NULL, 5000);
  MRConnManager_GetDrainStats(&mgr, &st);
  printf("  Expand returned in %" PRIu64 " us; on the loop's next iteration the pools took back %" PRIu64
         " draining connections instead of opening new ones\n",
         expand_us, st.reclaimed);
  int target = before + more;
  loop_run_until(&loop, finished, &target, 5000);
  printf("  => %d more sent, all %d answered\n", more, done - before);
  print_logs();

  printf("\n3. Drain deadline: node %s paused for 2 s, deadline 300 ms\n", ids[0]);
  MRConnManager_SetDrainTimeout(300);
  char out[128];
  before = done;
  int errors_before = error_replies;
  more = send_slow(48, "0.1");
  redis_cmd(nodes[0].port, out, sizeof out, "CLIENT PAUSE 2000 ALL");
  loop_run_for(&loop, 150);
  t0 = now_us();
  MRConnManager_Shrink(&mgr, 1);
  loop_run_until(&loop, forced_once, NULL, 5000);
  printf("  t=%5.0f ms  the paused node's surplus closed by force: %d callbacks got the error reply\n"
         "             \"%s\"\n",
         (now_us() - t0) / 1000.0, error_replies - errors_before, last_error);
  target = before + more;
  loop_run_until(&loop, finished, &target, 5000);
  printf("  t=%5.0f ms  the pause ended; the kept connections answered the rest: %d real replies\n",
         (now_us() - t0) / 1000.0, done - before - (error_replies - errors_before));
  print_logs();

  MRConnManager_Shutdown(&mgr);
  loop_close_all_handles(&loop);
  int rc = uv_loop_close(&loop);
  for (int i = 0; i < NODES; i++) redis_stop(&nodes[i]);
  printf("\nSummary: %d commands sent, %d real replies, %d error replies (forced), %d NULL, callbacks lost "
         "%d, duplicated %d\n",
         total_sent, ok, error_replies, null_replies, total_sent - done, duplicates);
  printf("Shutdown: loop closed %s, %zu bytes still allocated\n", rc == 0 ? "cleanly" : "with handles open",
         host_alloc_live_bytes());
  return (rc == 0 && total_sent == done && duplicates == 0 && null_replies == 0) ? 0 : 1;
}
