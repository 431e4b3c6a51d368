// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Re-entrancy matrix (issue 10 §3): from inside every kind of callback
// mrconn runs, call every operation of the API.
//
// Callback kinds (one TEST each), each on node "a" with a pool of 3 and two
// commands queued on every connection:
//   reply         a real reply (ECHO on a real redis-server);
//   drain reply   a real reply on a connection that Shrink 3 -> 2 sent
//                 draining (after it, the drain checks whether it is over);
//   deadline      the error reply of a drain forced at its deadline
//                 (SetDrainTimeout(50), Shrink 3 -> 2, a RESP server that
//                 never answers STALL);
//   shutdown      the error reply of Shutdown;
//   disconnected  the error reply of a drain of a Disconnected node, forced;
//   moved         the error reply of a drain after an endpoint change (Add
//                 with a new endpoint), forced;
//   broken        the NULL reply of a broken link (the RESP server resets
//                 every connection);
//   broken drain  the same, first on the connection Shrink 3 -> 2 sent
//                 draining.
// Operations, run by every callback of the kind from the first on (in the
// drain kinds, the first on the draining connection), so that they also
// meet what earlier ones left: Shrink, Expand (one more each time), Add of
// the node's current endpoint, Add of another endpoint (back and forth, so
// that a move back takes the drains of the move before), Disconnect of the
// other node "b", Disconnect of "a" (the callback's own node), Shutdown,
// SendCommand on the callback's own connection (accepted only by a pool
// connection: a draining or closing one refuses it), SendCommand on a
// connection of "b" (inside Shutdown: one taken just before it, and the
// first callback's connection, closed by then).
//
// Every cell ends with Shutdown, and checks: every callback ran exactly
// once (each command sent from a callback too, when its send was accepted),
// no NULL but from a broken link, every forced command got mrconn's error
// reply naming why, every log line names its connection's host, no libuv
// handle open after Shutdown, no leak; a sanitizer build adds "no memory
// error".
#include "config.h"
#include "drain_common.h"

enum kind { K_REPLY, K_DRAIN_REPLY, K_DEADLINE, K_SHUTDOWN, K_DISCONNECTED, K_MOVED, K_BROKEN, K_BROKEN_DRAIN };
static const char *const kind_names[] = {"reply", "drain reply", "deadline", "shutdown", "disconnected",
                                         "moved", "broken",      "broken drain"};

enum op {
  OP_SHRINK,
  OP_EXPAND,
  OP_ADD_EQUAL,
  OP_ADD_NEW,
  OP_DISCONNECT_OTHER,
  OP_DISCONNECT_OWN,
  OP_SHUTDOWN,
  OP_SEND_SAME,
  OP_SEND_OTHER,
  OP_COUNT
};
static const char *const op_names[] = {"Shrink",          "Expand",   "Add (equal)",
                                       "Add (new)",       "Disconnect (other)",
                                       "Disconnect (own)", "Shutdown", "Send (same conn)",
                                       "Send (other conn)"};

// The kinds whose callbacks get mrconn's error reply.
static bool forced_kind(enum kind k) { return k >= K_DEADLINE && k <= K_MOVED; }

#define POOL 3
#define PER_CONN 2
#define REQS (POOL * PER_CONN)
#define DEADLINE_MS 50

static uv_loop_t loop;
static MRConnManager mgr;
static redis_proc r1, r2;  // r1: "a" of the reply kind, and where "moved" moves it; r2: "b"
static resp_server *stuck;  // never answers STALL: "a" of every other kind

// The cell being run.
static struct {
  enum kind kind;
  enum op op;
  MREndpoint a_ep;     // the endpoint "a" has now
  MREndpoint other_ep; // another one, for Add (new), which toggles between them
  dc_req reqs[REQS];   // the kind's commands on "a"
  dc_req extra[2 * REQS];  // sent from inside the callbacks
  int extra_rc[2 * REQS];
  int nextra;
  MRConn *b_conn;      // taken from "b" before a Shutdown, in the same loop pass
  bool armed;          // callbacks of reqs run the operation from now on
  MRConn *armed_on;    // ... starting with one from this connection (NULL: any)
  dc_req *first;       // the request whose callback ran it first
  int runs;
} cell;

// A command sent from inside a callback, recorded in the next extra slot.
static void send_extra(MRConn *c, int want_rc) {
  int i = cell.nextra++;
  cell.extra[i].id = 1000 + i;
  cell.extra_rc[i] = dc_send_echo(c, &cell.extra[i]);
  if (want_rc != -2) CHECK_EQ_INT(cell.extra_rc[i], want_rc);
}

// The cell's operation, from inside the callback of q. Results are checked
// against what the manager looks like right now (callbacks before may have
// removed nodes or shut it down).
static void run_op(dc_req *q) {
  bool live = mgr.map != NULL;
  bool has_a = live && MRConnManager_GetNodeState(&mgr, "a") != NULL;
  bool has_b = live && MRConnManager_GetNodeState(&mgr, "b") != NULL;
  cell.runs++;
  switch (cell.op) {
    case OP_SHRINK:
      MRConnManager_Shrink(&mgr, 1);  // once; later calls are refused (1 -> 1)
      if (live) CHECK_EQ_INT(mgr.nodeConns, 1);
      break;
    case OP_EXPAND: {
      int to = live ? mgr.nodeConns + 1 : POOL + 1;
      MRConnManager_Expand(&mgr, to, &loop);
      if (live) CHECK_EQ_INT(mgr.nodeConns, to);
      break;
    }
    case OP_ADD_EQUAL:
      CHECK_EQ_INT(MRConnManager_Add(&mgr, &loop, "a", &cell.a_ep), live && !has_a);
      break;
    case OP_ADD_NEW: {
      // Back and forth: a move back takes the drains of the move before.
      MREndpoint to = cell.other_ep;
      CHECK_EQ_INT(MRConnManager_Add(&mgr, &loop, "a", &to), live);
      if (live) {
        cell.other_ep = cell.a_ep;
        cell.a_ep = to;
      }
      break;
    }
    case OP_DISCONNECT_OTHER:
      CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "b"), has_b ? REDIS_OK : REDIS_ERR);
      break;
    case OP_DISCONNECT_OWN:
      CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "a"), has_a ? REDIS_OK : REDIS_ERR);
      break;
    case OP_SHUTDOWN:
      MRConnManager_Shutdown(&mgr);
      CHECK(mgr.map == NULL);
      break;
    case OP_SEND_SAME:
      // Accepted by a pool connection only: the draining and the closing
      // ones refuse it.
      send_extra(q->conn, live && (cell.kind == K_REPLY || (cell.kind == K_DRAIN_REPLY && q->conn != cell.armed_on))
                              ? REDIS_OK
                              : REDIS_ERR);
      break;
    case OP_SEND_OTHER:
      if (live) {
        MRConn *c = MRConn_Get(&mgr, "b");
        if (c) send_extra(c, REDIS_OK);
      } else if (cell.b_conn) {
        // Inside Shutdown the manager hands out nothing: the connection of
        // "b" taken just before it, which may still be open or closed, and
        // that of the first callback, closed by now.
        send_extra(cell.b_conn, -2);
        if (cell.first->conn != q->conn) send_extra(cell.first->conn, REDIS_ERR);
      }
      break;
    case OP_COUNT:
      break;
  }
}

static void on_kind_reply(redisAsyncContext *ac, void *r, void *priv) {
  dc_on_reply(ac, r, priv);
  dc_req *q = priv;
  if (!cell.armed || (!cell.first && cell.armed_on && q->conn != cell.armed_on)) return;
  if (!cell.first) cell.first = q;
  run_op(q);
}

static bool extras_called(void) {
  for (int i = 0; i < cell.nextra; i++)
    if (cell.extra_rc[i] == REDIS_OK && cell.extra[i].calls == 0) return false;
  return true;
}

// The cell has settled: the operation ran, what was sent from inside got
// its callback, the drains it started are over, and in the kinds where
// every command of "a" ends (reply, broken link) all of them did.
static bool settled(void *arg) {
  (void)arg;
  if (!cell.first || !extras_called()) return false;
  if (!forced_kind(cell.kind))
    for (int i = 0; i < REQS; i++)
      if (cell.reqs[i].calls == 0) return false;
  dc_stat_arg none = {&mgr, 0};
  return dc_draining_is(&none);
}

static bool pools_ready(void *arg) {
  (void)arg;
  MRConn *seen[POOL];
  return dc_distinct(&mgr, "a", POOL, seen) == POOL && dc_distinct(&mgr, "b", POOL, seen) == POOL;
}

static MREndpoint ep_of(int port) { return (MREndpoint){.host = "127.0.0.1", .port = port}; }

// One cell: set up, trigger the kind, let the operation run, shut down, check.
static void run_cell(enum kind kind, enum op op) {
  memset(&cell, 0, sizeof cell);
  cell.kind = kind;
  cell.op = op;
  dc_reset_counts();
  host_log_clear();
  bool echo = kind == K_REPLY || kind == K_DRAIN_REPLY;
  // Only the forced kinds have a deadline: real replies and broken links
  // must come first even under valgrind.
  bool forced = forced_kind(kind);
  MRConnManager_SetDrainTimeout(forced ? DEADLINE_MS : 0);
  REQUIRE(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, POOL);
  cell.a_ep = echo ? ep_of(r1.port) : ep_of(resp_server_port(stuck));
  cell.other_ep = ep_of(r2.port);
  MREndpoint b_ep = ep_of(r2.port);
  CHECK(MRConnManager_Add(&mgr, &loop, "a", &cell.a_ep));
  CHECK(MRConnManager_Add(&mgr, &loop, "b", &b_ep));
  bool ready = loop_run_until(&loop, pools_ready, NULL, 10000);
  CHECK(ready);
  MRConn *conns[POOL];
  int n = dc_distinct(&mgr, "a", POOL, conns);

  // A real reply may come as soon as the loop runs: armed before sending.
  cell.armed = ready && n == POOL;
  const char *stall[] = {"STALL"};
  for (int j = 0; j < n; j++) {
    for (int i = 0; i < PER_CONN; i++) {
      dc_req *q = &cell.reqs[j * PER_CONN + i];
      q->id = j * PER_CONN + i;
      int rc;
      if (echo) {
        snprintf(q->echo, sizeof q->echo, "req-%d", q->id);
        const char *argv[] = {"ECHO", q->echo};
        rc = dc_send_argv_cb(conns[j], q, on_kind_reply, 2, argv);
      } else {
        rc = dc_send_argv_cb(conns[j], q, on_kind_reply, 1, stall);
      }
      CHECK_EQ_INT(rc, REDIS_OK);
    }
  }
  if (!echo) loop_run_for(&loop, 5);  // the STALLs reach the server

  switch (kind) {
    case K_REPLY:
      break;
    case K_DRAIN_REPLY:
    case K_BROKEN_DRAIN: {
      MRConnManager_Shrink(&mgr, POOL - 1);  // before any reply could come
      CHECK_EQ_INT(dc_stats(&mgr).draining, 1);
      MRConn *kept[POOL];
      int k = dc_distinct(&mgr, "a", POOL - 1, kept);
      for (int j = 0; j < n; j++)
        if (!dc_in(conns[j], kept, k)) cell.armed_on = conns[j];
      CHECK(cell.armed_on != NULL);
      if (kind == K_BROKEN_DRAIN) resp_server_drop_all(stuck);
      break;
    }
    case K_DEADLINE:
      MRConnManager_Shrink(&mgr, POOL - 1);
      CHECK_EQ_INT(dc_stats(&mgr).draining, 1);
      break;
    case K_SHUTDOWN:
      cell.b_conn = MRConn_Get(&mgr, "b");
      MRConnManager_Shutdown(&mgr);
      CHECK_EQ_INT(loop_count_open_handles(&loop), 0);
      break;
    case K_DISCONNECTED:
      CHECK_EQ_INT(MRConnManager_Disconnect(&mgr, "a"), REDIS_OK);
      CHECK_EQ_INT(dc_stats(&mgr).draining, POOL);
      break;
    case K_MOVED:
      cell.other_ep = cell.a_ep;  // moving back takes the drains back
      cell.a_ep = ep_of(r1.port);
      CHECK(MRConnManager_Add(&mgr, &loop, "a", &cell.a_ep));
      CHECK_EQ_INT(dc_stats(&mgr).draining, POOL);
      break;
    case K_BROKEN:
      resp_server_drop_all(stuck);
      break;
  }
  CHECK(loop_run_until(&loop, settled, NULL, 5000));
  dc_finish_loop(&loop, &mgr);  // Shutdown: no open handle, no leak

  int replies = 0, errors = 0, nulls = 0;
  for (int i = 0; i < REQS; i++) {
    dc_req *q = &cell.reqs[i];
    if (!CHECK_EQ_INT(q->calls, 1)) printf("  request %d: %d callbacks\n", i, q->calls);
    replies += q->calls - q->closed - q->nulls;
    errors += q->closed;
    nulls += q->nulls;
    if (forced) CHECK_EQ_INT(q->closed, 1);
  }
  // Shutdown from the first callback fails the rest with its error reply.
  int first_only = op == OP_SHUTDOWN ? 1 : REQS;
  if (kind == K_REPLY) CHECK_EQ_INT(replies, first_only);
  // (Replies on the pool may come before the draining connection's first.)
  if (kind == K_DRAIN_REPLY) CHECK(op == OP_SHUTDOWN ? replies >= 1 : replies == REQS);
  if (kind >= K_BROKEN) CHECK(op == OP_SHUTDOWN ? nulls >= 1 : nulls == REQS);
  if (kind < K_BROKEN) CHECK_EQ_INT(nulls, 0);
  static const char *const why[K_BROKEN_DRAIN + 1] = {
      [K_DEADLINE] = " closed: drain deadline of 50 ms reached",
      [K_SHUTDOWN] = " closed: connection manager shut down",
      [K_DISCONNECTED] = " closed: drain deadline of 50 ms reached",
      [K_MOVED] = " closed: drain deadline of 50 ms reached",
  };
  if (cell.first && why[kind] && !CHECK(strstr(cell.first->err, why[kind]) != NULL))
    printf("  error reply: \"%s\"\n", cell.first->err);
  // What the callbacks sent: a callback each when accepted, none when
  // refused; from a live manager, the real reply.
  int accepted = 0, answered = 0;
  for (int i = 0; i < cell.nextra; i++) {
    dc_req *x = &cell.extra[i];
    bool ok = cell.extra_rc[i] == REDIS_OK;
    accepted += ok;
    answered += x->calls - x->closed - x->nulls;
    CHECK_EQ_INT(x->calls, ok ? 1 : 0);
    CHECK_EQ_INT(x->nulls, 0);
    if (ok && kind != K_SHUTDOWN) CHECK_EQ_INT(x->closed, 0);
  }
  CHECK_EQ_INT(dc.duplicates + dc.bad, 0);
  CHECK(cell.runs >= 1);
  // Every log line names its connection, closing or not.
  if (!CHECK_EQ_INT(host_log_count(NULL, "(null)"), 0)) host_log_dump(stdout);
  printf("  %-12s x %-18s ran %d times; %d replies, %d errors, %d NULL; sent inside: %d of %d accepted, %d "
         "answered\n",
         kind_names[kind], op_names[op], cell.runs, replies, errors, nulls, accepted, cell.nextra, answered);
}

// The servers, shared by every cell; started by the first test that runs.
static void servers_start(void) {
  if (stuck) return;
  host_init();
  host_set_enterprise(true);
  REQUIRE(redis_start(&r1, NULL) == 0 && redis_start(&r2, NULL) == 0);
  struct resp_server_opts o = {.never_reply_to = "STALL"};
  stuck = resp_server_start(&o);
}

static void run_kind(enum kind kind) {
  servers_start();
  REQUIRE(stuck != NULL);
  for (int op = 0; op < OP_COUNT; op++) run_cell(kind, op);
  MRConnManager_SetDrainTimeout(MRCONN_DRAIN_TIMEOUT_DEFAULT);
}

TEST(inside_a_reply) { run_kind(K_REPLY); }
TEST(inside_a_reply_while_draining) { run_kind(K_DRAIN_REPLY); }
TEST(inside_a_deadline_error) { run_kind(K_DEADLINE); }
TEST(inside_a_shutdown_error) { run_kind(K_SHUTDOWN); }
TEST(inside_a_disconnected_drain_error) { run_kind(K_DISCONNECTED); }
TEST(inside_a_moved_drain_error) { run_kind(K_MOVED); }
TEST(inside_a_broken_link_null) { run_kind(K_BROKEN); }
TEST(inside_a_broken_drain_null) { run_kind(K_BROKEN_DRAIN); }


int main(int argc, char **argv) {
  static const struct harness_test tests[] = {
      HARNESS_TEST(inside_a_reply),
      HARNESS_TEST(inside_a_reply_while_draining),
      HARNESS_TEST(inside_a_deadline_error),
      HARNESS_TEST(inside_a_shutdown_error),
      HARNESS_TEST(inside_a_disconnected_drain_error),
      HARNESS_TEST(inside_a_moved_drain_error),
      HARNESS_TEST(inside_a_broken_link_null),
      HARNESS_TEST(inside_a_broken_drain_null),
  };
  int rc = harness_run(argc, argv, tests, sizeof tests / sizeof tests[0]);
  if (stuck) resp_server_stop(stuck);
  redis_stop(&r1);  // no-ops when never started
  redis_stop(&r2);
  return rc;
}
