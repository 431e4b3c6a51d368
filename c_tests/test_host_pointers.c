// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Host-owned pointers, in every shape RediSearch legally passes them
 * (issue 10 §2). mrconn may read a caller's string, endpoint, command or
 * dict during the call only. Here the test scribbles over and frees that
 * memory as soon as the call returns, or hands mrconn memory that a host
 * call inside mrconn frees; ASan (build-asan) and valgrind report any later
 * read, and without them the scribbling shows up as wrong names and states.
 *
 * 1. Node ids that are the keys of m->map itself, found by walking the map
 *    as RediSearch does: MRConn_Get, GetNodeState, Add with an equal and
 *    with a new endpoint, and Disconnect, whose RS_dictDelete frees the very
 *    key it was given (the node's name must still reach its log line, also
 *    when the pool drains). Heap ids freed after each call work as well.
 * 2. An endpoint on the heap with heap host and password, freed as soon as
 *    Add returns: the pool connects with AUTH, grows, reconnects after a
 *    server restart, and FillStateDict still names it host:port.
 * 3. Commands freed as soon as SendCommand returns, and one command whose
 *    sds an earlier send formatted, sent again on another connection and
 *    under another protocol (RESP2 array, RESP3 map).
 * 4. A state dict whose keys the test allocates and frees: nothing of it
 *    stays with the manager.
 */
#include <stdlib.h>
#include <string.h>

#include "drain_common.h"
#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

#define CONNS 2

static void start(void) { tu_start1(&loop, &mgr, CONNS); }

static void finish(void) {
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
}

// A heap copy of s that the test owns (libc memory, as a caller's may be).
static char *own(const char *s) {
  char *p = strdup(s);
  if (!p) abort();
  return p;
}

// What a host may do with memory it is done with: overwrite it, free it.
static void scrap(char *s) {
  if (!s) return;
  memset(s, 'X', strlen(s));
  free(s);
}

// An endpoint as a host may hold one: all on the heap.
static MREndpoint *heap_endpoint(int port, const char *password) {
  MREndpoint *ep = calloc(1, sizeof *ep);
  if (!ep) abort();
  ep->host = own("127.0.0.1");
  ep->port = port;
  ep->password = own(password);
  return ep;
}

static void scrap_endpoint(MREndpoint *ep) {
  scrap(ep->host);
  scrap(ep->password);
  memset(ep, 0xA5, sizeof *ep);
  free(ep);
}

typedef struct {
  const char *id;
  int n;
} pool_wait;

static bool pool_connected(void *arg) {
  pool_wait *w = arg;
  MRConn *seen[DC_MAX_POOL];
  return dc_distinct(&mgr, w->id, w->n, seen) == w->n;
}

// Waits until all n connections of id are Connected.
static bool wait_pool(const char *id, int n) {
  pool_wait w = {id, n};
  return loop_run_until(&loop, pool_connected, &w, 10000);
}

// The map's own key for id (a pointer into the map), found by walking it.
static const char *map_key(const char *id) {
  const char *found = NULL;
  dictIterator *it = dictGetIterator(mgr.map);
  for (dictEntry *e; (e = dictNext(it));)
    if (strcmp(dictGetKey(e), id) == 0) found = dictGetKey(e);
  dictReleaseIterator(it);
  return found;
}

static bool req_called(void *arg) { return ((dc_req *)arg)->calls > 0; }

static int echo_roundtrip(const char *id, const char *text) {
  const char *argv[] = {"ECHO", text};
  tu_reply r;
  int rc = tu_roundtrip(&loop, &mgr, id, 0, &r, 2, argv);
  if (rc == REDIS_OK) CHECK_EQ_STR(r.text, text);
  return rc;
}

TEST(map_keys_as_node_ids) {
  redis_proc r1, r2;
  REQUIRE(redis_start(&r1, NULL) == 0);
  REQUIRE(redis_start(&r2, NULL) == 0);
  start();
  MREndpoint ep1 = {.host = "127.0.0.1", .port = r1.port};
  MREndpoint ep2 = {.host = "127.0.0.1", .port = r2.port};
  const char *names[] = {"n0", "n1", "n2"};
  for (int i = 0; i < 3; i++) {
    char *id = own(names[i]);  // freed right after: the map keeps a copy
    CHECK(MRConnManager_Add(&mgr, &loop, id, i == 2 ? &ep2 : &ep1));
    scrap(id);
  }
  for (int i = 0; i < 3; i++) REQUIRE(wait_pool(names[i], CONNS));

  // Every call with the map's own key, as a caller walking the map passes it.
  for (int i = 0; i < 3; i++) {
    const char *key = map_key(names[i]);
    REQUIRE(key != NULL);
    CHECK(MRConn_Get(&mgr, key) != NULL);
    CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, key), "Connected");
    CHECK(!MRConnManager_Add(&mgr, &loop, key, i == 2 ? &ep2 : &ep1));
  }
  // Heap ids freed after each call.
  char *id = own("n2");
  CHECK(MRConn_Get(&mgr, id) != NULL);
  scrap(id);
  id = own("n2");
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, id), "Connected");
  scrap(id);

  // A new endpoint under the map's key: the entry (and the key) stay.
  const char *k0 = map_key("n0");
  host_log_clear();
  CHECK(MRConnManager_Add(&mgr, &loop, k0, &ep2));
  char want[128];
  snprintf(want, sizeof want, "Node n0 endpoint changed from 127.0.0.1:%d to 127.0.0.1:%d", r1.port,
           r2.port);
  CHECK_EQ_INT(host_log_count("notice", want), 1);
  CHECK_EQ_INT(host_log_count("notice", "MRConnManager_Add: node n0: 2 connections closed idle"), 1);
  CHECK(map_key("n0") == k0);
  REQUIRE(wait_pool(k0, CONNS));
  CHECK_EQ_INT(echo_roundtrip(k0, "moved"), REDIS_OK);

  // Disconnect with the map's key, idle pool: RS_dictDelete frees the key.
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, map_key("n0")), REDIS_OK);
  CHECK_EQ_INT(host_log_count("notice", "MRConnManager_Disconnect: node n0: 2 connections closed idle"), 1);
  CHECK(MRConnManager_GetNodeState(&mgr, "n0") == NULL);

  // Disconnect with the map's key while a command is in flight: the pool
  // drains, and its log lines name the node from a copy.
  dc_reset_counts();
  dc_req q = {.id = 1};
  MRConn *c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);
  CHECK_EQ_INT(dc_send_echo(c, &q), REDIS_OK);
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, map_key("n1")), REDIS_OK);
  CHECK_EQ_INT(
      host_log_count("notice", "MRConnManager_Disconnect: node n1: 1 connections closed idle, 1 draining"), 1);
  CHECK(MRConnManager_GetNodeState(&mgr, "n1") == NULL);
  CHECK(loop_run_until(&loop, req_called, &q, 5000));
  CHECK_EQ_INT(q.calls, 1);
  CHECK_EQ_INT(q.bad + q.nulls + q.closed, 0);
  CHECK_EQ_INT(host_log_count("notice", "MRConnManager_Disconnect: drain of 1 connections finished"), 1);

  // A second Disconnect with a heap copy of a gone id; the rest still works.
  id = own("n1");
  CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, id), REDIS_ERR);
  scrap(id);
  CHECK_EQ_INT(echo_roundtrip(map_key("n2"), "still"), REDIS_OK);
  finish();
  redis_stop(&r1);
  redis_stop(&r2);
}

TEST(endpoint_freed_after_add) {
  redis_proc r;
  REQUIRE(redis_start(&r, "--requirepass heap-secret") == 0);
  start();  // Enterprise: AUTH <password> from the endpoint
  MREndpoint *ep = heap_endpoint(r.port, "heap-secret");
  char *id = own("n1");
  CHECK(MRConnManager_Add(&mgr, &loop, id, ep));
  scrap(id);
  scrap_endpoint(ep);

  REQUIRE(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS, 10000));
  CHECK_EQ_INT(echo_roundtrip("n1", "after-free"), REDIS_OK);
  // New connections copy the pool's endpoint, not the caller's.
  MRConnManager_Expand(&mgr, CONNS + 1, &loop);
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS + 1, 10000));
  // Reconnects (and their AUTH) use the pool's copy too.
  REQUIRE(redis_restart(&r) == 0);
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Reconnecting", CONNS + 1, 10000));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", CONNS + 1, 10000));
  CHECK_EQ_INT(echo_roundtrip("n1", "after-restart"), REDIS_OK);

  // An equal endpoint, also freed at once, changes nothing.
  ep = heap_endpoint(r.port, "heap-secret");
  CHECK(!MRConnManager_Add(&mgr, &loop, "n1", ep));
  scrap_endpoint(ep);

  char key[64], states[256];
  tu_key(key, sizeof key, r.port);
  CHECK_EQ_INT(tu_states(&mgr, key, states, sizeof states), CONNS + 1);
  CHECK_EQ_STR(states, "Connected,Connected,Connected");
  CHECK_EQ_INT(host_log_count("warning", "Error authenticating"), 0);
  finish();
  redis_stop(&r);
}

TEST(commands_freed_after_send) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start();
  char out[64];
  CHECK_EQ_INT(redis_cmd(r.port, out, sizeof out, "HSET h f v"), 0);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  REQUIRE(wait_pool("n1", CONNS));
  MRConn *c[CONNS];
  REQUIRE(dc_distinct(&mgr, "n1", CONNS, c) == CONNS);

  // A heap command freed (and its memory reused) as soon as the send returns.
  tu_reply echo;
  memset(&echo, 0, sizeof echo);
  MRCommand *cmd = malloc(sizeof *cmd);
  REQUIRE(cmd != NULL);
  const char *argv[] = {"ECHO", "freed-at-once"};
  size_t lens[] = {4, 13};
  *cmd = MR_NewCommandArgvLen(2, argv, lens);
  CHECK_EQ_INT(MRConn_SendCommand(c[0], cmd, tu_on_reply, &echo), REDIS_OK);
  MRCommand_Free(cmd);
  memset(cmd, 0xA5, sizeof *cmd);
  free(cmd);

  // One command, formatted by its first send, sent again on the other
  // connection and under the other protocol; freed before any reply.
  tu_reply got[3];
  memset(got, 0, sizeof got);
  const char *hargv[] = {"HGETALL", "h"};
  size_t hlens[] = {7, 1};
  MRCommand h = MR_NewCommandArgvLen(2, hargv, hlens);
  h.protocol = 2;
  CHECK_EQ_INT(MRConn_SendCommand(c[0], &h, tu_on_reply, &got[0]), REDIS_OK);
  CHECK(h.cmd != NULL);
  char *formatted = h.cmd;
  h.protocol = 3;
  CHECK_EQ_INT(MRConn_SendCommand(c[1], &h, tu_on_reply, &got[1]), REDIS_OK);
  CHECK_EQ_INT(MRConn_SendCommand(c[0], &h, tu_on_reply, &got[2]), REDIS_OK);
  CHECK(h.cmd == formatted);  // formatted once, reused as is
  MRCommand_Free(&h);

  tu_replies all = {got, 3};
  CHECK(loop_run_until(&loop, tu_all_called, &all, 5000));
  CHECK(tu_wait_reply(&loop, &echo, 5000));
  CHECK_EQ_INT(echo.calls, 1);
  CHECK_EQ_STR(echo.text, "freed-at-once");
  CHECK_EQ_INT(got[0].type, REDIS_REPLY_ARRAY);
  CHECK_EQ_INT(got[1].type, REDIS_REPLY_MAP);
  CHECK_EQ_INT(got[2].type, REDIS_REPLY_MAP);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(got[i].calls, 1);
    CHECK_EQ_INT(got[i].elements, 2);
  }
  finish();
  redis_stop(&r);
}

TEST(state_dict_keys_freed_by_the_host) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start();
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  REQUIRE(wait_pool("n1", CONNS));
  char key[64];
  tu_key(key, sizeof key, r.port);

  // The entry exists before the fill, with no array yet, under a key the
  // host made from its own (freed) buffer; the fill appends to it and keeps
  // nothing.
  for (int round = 0; round < 2; round++) {
    dict *d = tu_state_dict_new();
    char *k = own(key);
    dictEntry *e = dictAddOrFind(d, k);
    scrap(k);
    REQUIRE(e != NULL);
    dictSetVal(d, e, NULL);
    MRConnManager_FillStateDict(&mgr, d);
    MRConnManager_FillStateDict(&mgr, d);  // a second IO thread's manager
    e = dictFind(d, key);
    REQUIRE(e != NULL);
    char **arr = dictGetVal(e);
    CHECK_EQ_INT(array_len(arr), 2 * CONNS);
    for (uint32_t i = 0; i < array_len(arr); i++) CHECK_EQ_STR(arr[i], "Connected");
    host_reply_reset();
    MRConnManager_ReplyState(d, RSDummyContext);
    char want[256];
    snprintf(want, sizeof want, "{\"%s\":[\"Connected\",\"Connected\",\"Connected\",\"Connected\"]}", key);
    CHECK_EQ_STR(host_reply_text(), want);
    dictRelease(d);  // keys and state strings go; the manager goes on
    MRConnManager_Shrink(&mgr, 1);
    MRConnManager_Expand(&mgr, CONNS, &loop);
    REQUIRE(wait_pool("n1", CONNS));
  }
  finish();
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(map_keys_as_node_ids), HARNESS_TEST(endpoint_freed_after_add),
             HARNESS_TEST(commands_freed_after_send), HARNESS_TEST(state_dict_keys_freed_by_the_host))
