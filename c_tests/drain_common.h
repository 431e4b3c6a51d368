// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Shared helpers of the drain tests (test_drain_*.c; the benchmarks in bench/
// use their predicates): a small cluster of redis-server nodes behind one
// manager, requests that record every callback they get, and the teardown
// every test ends with. Header-only (static inline), since every test is
// built from its own single source file.
//
// The tests drive the ABI as RediSearch does: the test's main thread owns the
// uv loop and is the loop thread; every manager call happens on it.
#ifndef MRCONN_DRAIN_COMMON_H
#define MRCONN_DRAIN_COMMON_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "harness.h"
#include "mrconn_test_host.h"
#include "rmr/reply.h"

#define DC_MAX_NODES 3
#define DC_MAX_POOL 16

// One request: what it expects, and what its callback received.
typedef struct dc_req {
  int id;
  MRConn *conn;          // where it was sent
  char echo[24];         // expected ECHO payload; empty: expects a nil (BLPOP timeout)
  int calls;             // callback invocations (must end at exactly 1)
  int nulls;             // of which with a NULL reply (the link broke)
  int closed;            // of which with mrconn's error reply (it closed the connection)
  int bad;               // of which with a reply other than the expected one
  char err[112];         // the text of the last error reply from mrconn
  uint64_t reply_us;     // now_us() at the (first) callback
} dc_req;

// Counters shared by every dc_req callback of a test.
typedef struct dc_counts {
  int replies;     // callbacks with a reply
  int nulls;       // callbacks with NULL
  int closed;      // callbacks with mrconn's error reply ("ERR connection to ...")
  int duplicates;  // callbacks beyond the first for a request
  int bad;         // replies that were not the expected one
  uint64_t last_reply_us;
} dc_counts;

static dc_counts dc;

static inline void dc_reset_counts(void) { memset(&dc, 0, sizeof dc); }

static inline void dc_on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  dc_req *q = priv;
  q->calls++;
  if (q->calls > 1) dc.duplicates++;
  if (q->calls == 1) q->reply_us = now_us();
  if (!r) {
    q->nulls++;
    dc.nulls++;
    return;
  }
  MRReply *reply = r;
  size_t elen = 0;
  const char *etext = MRReply_Type(reply) == REDIS_REPLY_ERROR ? MRReply_String(reply, &elen) : NULL;
  if (etext && elen >= 18 && memcmp(etext, "ERR connection to ", 18) == 0) {
    q->closed++;
    dc.closed++;
    snprintf(q->err, sizeof q->err, "%.*s", (int)elen, etext);
    MRReply_Free(reply);
    return;
  }
  dc.replies++;
  dc.last_reply_us = now_us();
  bool ok;
  if (q->echo[0]) {
    size_t len = 0;
    const char *s = MRReply_String(reply, &len);
    ok = s && len == strlen(q->echo) && memcmp(s, q->echo, len) == 0;
  } else {
    ok = MRReply_Type(reply) == REDIS_REPLY_NIL;
  }
  if (!ok) {
    q->bad++;
    dc.bad++;
  }
  MRReply_Free(reply);
}

// Sends argv on c for q, with callback fn (which records through
// dc_on_reply); REDIS_OK or REDIS_ERR. The command is freed at once (hiredis
// copies the formatted bytes).
static inline int dc_send_argv_cb(MRConn *c, dc_req *q, redisCallbackFn *fn, int argc, const char **argv) {
  size_t lens[8];
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  MRCommand cmd = MR_NewCommandArgvLen(argc, argv, lens);
  q->conn = c;
  int rc = MRConn_SendCommand(c, &cmd, fn, q);
  MRCommand_Free(&cmd);
  return rc;
}

static inline int dc_send_argv(MRConn *c, dc_req *q, int argc, const char **argv) {
  return dc_send_argv_cb(c, q, dc_on_reply, argc, argv);
}

// ECHO <id>: answered at once (unless something ahead of it blocks).
static inline int dc_send_echo(MRConn *c, dc_req *q) {
  snprintf(q->echo, sizeof q->echo, "req-%d", q->id);
  const char *argv[] = {"ECHO", q->echo};
  return dc_send_argv(c, q, 2, argv);
}

// BLPOP <a key nobody pushes to> <seconds>: answered with a nil after
// `seconds`, and blocks the commands behind it on that connection meanwhile.
static inline int dc_send_blpop(MRConn *c, dc_req *q, const char *seconds) {
  char key[40];
  snprintf(key, sizeof key, "drain-test-key-%d", q->id);
  q->echo[0] = '\0';
  const char *argv[] = {"BLPOP", key, seconds};
  return dc_send_argv(c, q, 3, argv);
}

// Collects, from n calls to MRConn_Get, the distinct connections returned;
// returns how many there were. n calls give n distinct connections exactly
// when all n connections of a pool of n are Connected (round-robin).
static inline int dc_distinct(MRConnManager *mgr, const char *id, int n, MRConn **out) {
  int found = 0;
  for (int i = 0; i < n; i++) {
    MRConn *c = MRConn_Get(mgr, id);
    if (!c) continue;
    bool seen = false;
    for (int j = 0; j < found; j++) seen |= out[j] == c;
    if (!seen && found < DC_MAX_POOL) out[found++] = c;
  }
  return found;
}

static inline bool dc_in(MRConn *c, MRConn **set, int n) {
  for (int i = 0; i < n; i++)
    if (set[i] == c) return true;
  return false;
}

// A manager over real redis-server nodes n0, n1, ...
typedef struct dc_cluster {
  uv_loop_t loop;
  MRConnManager mgr;
  int nodes;
  int pool;  // connections per node, as last set by the test
  redis_proc redis[DC_MAX_NODES];
  char id[DC_MAX_NODES][16];
  MREndpoint ep[DC_MAX_NODES];
} dc_cluster;

typedef struct {
  dc_cluster *cl;
  int n;
} dc_pool_arg;

static inline bool dc_all_connected_pred(void *arg) {
  dc_pool_arg *a = arg;
  MRConn *seen[DC_MAX_POOL];
  for (int i = 0; i < a->cl->nodes; i++)
    if (dc_distinct(&a->cl->mgr, a->cl->id[i], a->n, seen) != a->n) return false;
  return true;
}

// Waits until every node's pool of n is Connected.
static inline bool dc_wait_connected(dc_cluster *cl, int n, uint64_t timeout_ms) {
  dc_pool_arg a = {cl, n};
  return loop_run_until(&cl->loop, dc_all_connected_pred, &a, timeout_ms);
}

// Starts `nodes` redis-servers, a manager of `pool` connections per node on
// a fresh loop, adds every node, and waits for all connections. Enterprise
// mode, no password: no AUTH needed.
static inline bool dc_cluster_start(dc_cluster *cl, int nodes, int pool) {
  memset(cl, 0, sizeof *cl);
  host_init();
  host_set_enterprise(true);
  host_log_clear();
  cl->nodes = nodes;
  cl->pool = pool;
  for (int i = 0; i < nodes; i++) {
    if (redis_start(&cl->redis[i], NULL) != 0) return false;
    snprintf(cl->id[i], sizeof cl->id[i], "n%d", i);
    cl->ep[i] = (MREndpoint){.host = "127.0.0.1", .port = cl->redis[i].port};
  }
  if (uv_loop_init(&cl->loop) != 0) return false;
  MRConnManager_Init(&cl->mgr, pool);
  for (int i = 0; i < nodes; i++)
    if (!MRConnManager_Add(&cl->mgr, &cl->loop, cl->id[i], &cl->ep[i])) return false;
  return dc_wait_connected(cl, pool, 10000);
}

static inline MRConnDrainStats dc_stats(MRConnManager *mgr) {
  MRConnDrainStats s;
  memset(&s, 0, sizeof s);
  CHECK_EQ_INT(MRConnManager_GetDrainStats(mgr, &s), REDIS_OK);
  return s;
}

static inline void dc_print_stats(const char *when, MRConnDrainStats s) {
  printf("  stats %s: draining=%" PRIu64 " graceful=%" PRIu64 " forced=%" PRIu64 " broken=%" PRIu64
         " reclaimed=%" PRIu64 " failedCallbacks=%" PRIu64 "\n",
         when, s.draining, s.graceful, s.forced, s.broken, s.reclaimed, s.failedCallbacks);
}

typedef struct {
  MRConnManager *mgr;
  uint64_t value;
} dc_stat_arg;

static inline bool dc_nothing_queued(void *arg) {
  MRConnDrainStats s;
  memset(&s, 0, sizeof s);
  MRConnManager_GetDrainStats(arg, &s);
  return s.queued == 0;
}

// Runs the loop until the manager has opened and closed everything a resize
// queued (it does so in slices of at most 250 us per loop iteration).
static inline bool dc_settle(uv_loop_t *loop, MRConnManager *mgr) {
  return loop_run_until(loop, dc_nothing_queued, mgr, 5000);
}

static inline bool dc_draining_is(void *arg) {
  dc_stat_arg *a = arg;
  MRConnDrainStats s;
  memset(&s, 0, sizeof s);
  MRConnManager_GetDrainStats(a->mgr, &s);
  return s.draining == a->value;
}

// Waits (running the loop) until redis node i reports `want` clients.
static inline bool dc_wait_clients(dc_cluster *cl, int i, int want, uint64_t timeout_ms) {
  uint64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int n = redis_client_count(cl->redis[i].admin_port);
    if (n == want) return true;
    if (now_ms() >= deadline) {
      printf("  node %d: %d clients, wanted %d\n", i, n, want);
      return false;
    }
    loop_run_for(&cl->loop, 5);
  }
}

// The end of every test: Shutdown (after which no handle of the library may
// be open), RediSearch's handle sweep, uv_loop_close, no leak.
static inline void dc_finish_loop(uv_loop_t *loop, MRConnManager *mgr) {
  MRConnManager_Shutdown(mgr);
  CHECK_EQ_INT(loop_count_open_handles(loop), 0);
  loop_close_all_handles(loop);
  CHECK_EQ_INT(uv_loop_close(loop), 0);
  CHECK_EQ_INT((long long)host_alloc_live_count(), 0);
}

static inline void dc_cluster_stop(dc_cluster *cl) {
  dc_finish_loop(&cl->loop, &cl->mgr);
  for (int i = 0; i < cl->nodes; i++) redis_stop(&cl->redis[i]);
}

// "... in 123 ms" -> 123 from the first log line (level, containing
// substr), or -1.
static inline long dc_log_number_after(const char *level, const char *substr, const char *marker) {
  char *line = host_log_find(level, substr);
  if (!line) return -1;
  const char *p = strstr(line, marker);
  long v = p ? strtol(p + strlen(marker), NULL, 10) : -1;
  free(line);
  return v;
}

// Log lines of `level` that contain both a and b.
static inline int dc_log_count_both(const char *level, const char *a, const char *b) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return -1;
  host_log_dump(f);
  fclose(f);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "[%s] ", level);
  int n = 0;
  for (char *line = buf, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = '\0';
    if (strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, a) && strstr(line, b)) n++;
  }
  free(buf);
  return n;
}

#endif
