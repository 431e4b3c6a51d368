// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Soak: the connection manager under load, pool churn and injected faults,
 * for a bounded time, checking that nothing is lost, duplicated or leaked and
 * that the loop never stalls.
 *
 *   mrconn_soak [--seconds N] [--seed S] [--inflight N] [--max-stall-ms N]
 *               [--min-sent-pct N] [--min-faults-per-min N]
 *   (or MRCONN_SOAK_SECONDS / MRCONN_SOAK_SEED / MRCONN_SOAK_INFLIGHT /
 *    MRCONN_SOAK_MAX_STALL_MS / MRCONN_SOAK_MIN_SENT_PCT /
 *    MRCONN_SOAK_MIN_FAULTS; flags win). Defaults: 60 s, a seed from the
 *   clock (printed, so that a failure can be replayed), 300 commands in
 *   flight, 250 ms, 80 %, 500. --max-stall-ms 0 turns the stall bound off
 *   (valgrind); the two floors fail a run that mostly exercised refusals
 *   (under 80 % of the issued commands really sent: MRConn_SendCommand
 *   returned REDIS_OK) or a calm network (under 500 faults a minute).
 *
 * Threads, as in RediSearch's coordinator:
 *   - the loop thread owns the uv loop and the manager; every manager call
 *     but Init happens there. It takes requests from a queue (woken by a
 *     uv_async_t), does MRConn_Get + MRConn_SendCommand, and applies a random
 *     sequence of Shrink, Expand, Add with a changed endpoint, Disconnect,
 *     re-Add, drain-deadline changes, state reads and calls with keys of the
 *     manager's own map (a uv timer); a removed node comes back 30 ms later
 *     (another timer), as a topology refresh would bring it;
 *   - a submitter thread keeps --inflight requests queued or in flight, at
 *     most --inflight/16 new ones every 2 ms; one in 16 is a fan-out;
 *   - the main thread is the fault thread: it pauses redis nodes (CLIENT
 *     PAUSE) past the drain deadline, now and then kills one (restarted
 *     20-150 ms later) or resets every connection of the RESP server. It
 *     started the servers, so their PR_SET_PDEATHSIG stays tied to a thread
 *     that lives to the end.
 *   Requests that land on the RESP server sometimes are CUT (half a reply,
 *   then a reset) or STALL (never answered).
 *
 * What RediSearch legally does with pointers it owns, done here too:
 *   - commands are heap-allocated and freed as soon as MRConn_SendCommand
 *     returned, endpoints and node ids as soon as Add / Disconnect returned;
 *   - a fan-out formats one command by its first send (cmd->cmd) and sends
 *     that sds again to the other nodes before freeing it;
 *   - ids that are keys of m->map itself (found by walking the map) are
 *     passed to Disconnect, Add (same or new endpoint), MRConn_Get and
 *     GetNodeState;
 *   - reply callbacks (NULL ones too) sometimes send the next command, as
 *     RediSearch's cursors do, and now and then call into the manager:
 *     Shrink, Expand, Add with the same or a new endpoint, Disconnect of the
 *     node whose connection delivers the reply, a fan-out to the other
 *     nodes, a map-key call.
 *   At the end 200 commands are queued and the manager is shut down at
 *   once: their failed callbacks call back into the manager being torn
 *   down, which must act shut down.
 *
 * A callback may get a real reply, an error reply the manager made when it
 * closed the connection itself ("ERR connection to …", drain deadline or
 * Shutdown), or NULL (a broken link): each is counted, none changes the
 * accounting.
 *
 * Nodes n0..n3 start on redis A, B, C and the RESP server; "Add with a
 * changed endpoint" moves a node to another of the four servers.
 *
 * Invariants, checked as they happen and at the end:
 *   - every request's callback ran exactly once (a request the manager
 *     refused, MRConn_Get NULL or MRConn_SendCommand REDIS_ERR, completes at
 *     once as failed and must never get a callback);
 *   - replies go to the right request (ECHO payloads carry the request id);
 *   - no callback after MRConnManager_Shutdown returned; inside it, the
 *     manager hands out no connection and takes no new pool;
 *   - no libuv handle left open once Shutdown returned, uv_loop_close == 0;
 *   - host_alloc_live_count() == 0 after teardown (and the sanitizer's own
 *     leak check when built with MRCONN_SANITIZE);
 *   - the loop never stalls longer than the bound (a 1 ms repeating timer
 *     measures the longest gap between its runs);
 *   - pool sizes follow Shrink/Expand, out-of-range sizes are ignored,
 *     Add/Disconnect return what conn.h says, GetNodeState is NULL exactly
 *     for absent nodes, FillStateDict shows 1..nodeConns states per node.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "harness.h"
#include "mrconn_test_host.h"
#include "rmr/reply.h"
#include "util/arr/arr.h"

/* ------------------------------------------------------------------------ */
/* Configuration                                                              */
/* ------------------------------------------------------------------------ */

static unsigned cfg_seconds = 60;
static uint64_t cfg_seed;
static unsigned cfg_inflight = 300;
static unsigned cfg_max_stall_ms = 250;
static unsigned cfg_min_sent_pct = 80;
static unsigned cfg_min_faults_per_min = 500;

#define NODES 4
#define REDIS_NODES 3
#define RESP_SERVER 3 /* server index of the RESP server */
#define MAX_POOL 8
#define QUEUE_CAP 8192
#define GRACE_MS 4000 /* after the run: time for in-flight work to finish */
#define ABSENT_MS 30 /* a removed node is back this long after */

static const char *const node_ids[NODES] = {"n0", "n1", "n2", "n3"};

/* ------------------------------------------------------------------------ */
/* Random numbers (splitmix64: one stream per thread, all from the seed)      */
/* ------------------------------------------------------------------------ */

typedef struct {
  uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
  uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static unsigned rng_below(rng *r, unsigned n) {
  return n ? (unsigned)(rng_next(r) % n) : 0;
}

/* ------------------------------------------------------------------------ */
/* Servers                                                                    */
/* ------------------------------------------------------------------------ */

static redis_proc redis[REDIS_NODES];
static resp_server *resp;
static int server_port[NODES]; /* fixed: restarts reuse the port */

/* ------------------------------------------------------------------------ */
/* Requests                                                                   */
/* ------------------------------------------------------------------------ */

enum kind { K_ECHO = 0, K_PING = 1, K_CUT = 2, K_STALL = 3 };
static const size_t pad_sizes[8] = {0, 0, 0, 0, 16, 1500, 9000, 70000};
static char pad[70000];

/* What a request was, packed: its kind; the padding of an ECHO; for a
 * fan-out, how many ids after the one its payload names it is (the payload
 * was formatted once, for the first); the node it was sent to. */
#define META(kind, padi, offset, node) \
  ((uint16_t)((kind) | (padi) << 3 | (offset) << 6 | (node) << 8))
#define META_KIND(m) ((m) & 7u)
#define META_PADI(m) ((m) >> 3 & 7u)
#define META_OFFSET(m) ((m) >> 6 & 3u)
#define META_NODE(m) ((m) >> 8 & 3u)

/* Indexed by request id (1-based); only the loop thread writes them while it
 * runs, the main thread reads them after joining it. */
static uint8_t *calls; /* callbacks (or refusals) seen, saturating */
static uint16_t *kinds; /* META() */
static uint64_t max_ids;

struct job {
  uint64_t id; /* the first of `fan` consecutive ids */
  uint32_t rnd;
  uint8_t node;
  uint8_t fan; /* 1, or a fan-out to that many nodes */
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct job queue[QUEUE_CAP];
static size_t q_head, q_len;

/* Counters: written by the loop thread (except `submitted`), read by all. */
static atomic_uint_fast64_t submitted, completed;
static atomic_uint_fast64_t sent, refused_absent, refused_noconn, refused_send;
static atomic_uint_fast64_t replies_ok, replies_err, replies_connerr, replies_null;
static atomic_uint_fast64_t duplicates, misrouted, late_callbacks, bogus_ids;
static atomic_uint_fast64_t pool_ops, invalid_ops, fanouts, map_key_ops;
static atomic_uint_fast64_t callbacks_inside_calls;
static atomic_uint_fast64_t f_kills, f_restarts, f_pauses, f_resets, f_cuts_sent, f_stalls_sent;

static atomic_bool stop_submit, finishing;
static atomic_int want_drain = -1; /* a server just paused: drain something now */
static atomic_bool shutdown_returned;

/* ------------------------------------------------------------------------ */
/* Loop thread state                                                          */
/* ------------------------------------------------------------------------ */

static uv_loop_t loop;
static MRConnManager mgr;
static uv_async_t async_jobs, async_ctl;
static uv_timer_t tick_timer, op_timer, topology_timer;
static rng loop_rng;

static bool present[NODES];
static uint64_t absent_since_ms[NODES];
static int ep_of[NODES]; /* server index each node's pool points at */
static uint64_t last_tick_us, max_gap_us, max_gap_at_ms, t0_ms;
static uint64_t max_call_us;
static const char *max_call_name = "-";
static uint64_t finish_started_ms;
static const char *last_op = "-";

/* Results of the teardown (loop thread), checked by the main thread. */
static uint64_t completed_when_shutdown_returned;
static int open_handles_after_shutdown = -1;
static int loop_close_rc = -1;
static MRConnDrainStats final_drain_stats;
static uint64_t draining_at_shutdown;

static atomic_uint_fast64_t bounds_violations;

static void fail_note(const char *what, uint64_t id) {
  printf("soak: FAILURE %s (request %" PRIu64 ", seed %" PRIu64 ")\n", what, id, cfg_seed);
  fflush(stdout);
}

/* Out of memory in the soak itself: nothing to test any more. */
static void *must(void *p) {
  if (!p) {
    fprintf(stderr, "soak: out of memory\n");
    abort();
  }
  return p;
}

static void violation(const char *what) {
  atomic_fetch_add(&bounds_violations, 1);
  printf("soak: %s\n", what);
}

/* A block of `n` fresh, consecutive request ids (submitter and loop thread
 * alike); the first is returned. */
static uint64_t new_ids(unsigned n) {
  return atomic_fetch_add(&submitted, n) + 1;
}

static atomic_uint_fast64_t followups, resends;
static bool in_shutdown;   /* inside MRConnManager_Shutdown */
static unsigned in_manager; /* depth of soak calls into the manager that may close connections */
static unsigned shutdown_followups;

/* Counts the one completion `id` may have: a callback, or a refusal. */
static void count_completion(uint64_t id, const char *twice) {
  if (calls[id] < UINT8_MAX) calls[id]++;
  if (calls[id] > 1) {
    atomic_fetch_add(&duplicates, 1);
    fail_note(twice, id);
  } else {
    atomic_fetch_add(&completed, 1);
  }
}

/* A request the manager refused: it completes now, as failed. */
static void refuse(uint64_t id, atomic_uint_fast64_t *why) {
  atomic_fetch_add(why, 1);
  count_completion(id, "refused request had a callback already");
}

static void note_call(const char *name, uint64_t start_us) {
  uint64_t d = now_us() - start_us;
  if (d > max_call_us) {
    max_call_us = d;
    max_call_name = name;
  }
}

/* --- sending -------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *r, void *priv);

/* A heap command, as RediSearch's are; the caller frees it as soon as its
 * sends returned. An ECHO's payload names `payload_id`. */
static MRCommand *new_command(unsigned kind, unsigned padi, uint64_t payload_id, uint32_t rnd) {
  static char buf[32 + sizeof pad]; /* MR_NewCommandArgvLen copies it */
  static const unsigned char protocols[8] = {0, 0, 0, 0, 0, 2, 3, 3};
  static const char *const names[] = {"ECHO", "PING", "CUT", "STALL"};
  const char *argv[2] = {names[kind], buf};
  size_t lens[2] = {strlen(names[kind]), 0};
  int argc = 1;
  if (kind == K_ECHO) {
    int n = snprintf(buf, 32, "e%" PRIu64 ":", payload_id);
    memcpy(buf + n, pad, pad_sizes[padi]);
    lens[1] = (size_t)n + pad_sizes[padi];
    argc = 2;
  }
  MRCommand *cmd = must(malloc(sizeof *cmd));
  *cmd = MR_NewCommandArgvLen(argc, argv, lens);
  cmd->protocol = protocols[(rnd >> 20) % 8];
  return cmd;
}

static void free_command(MRCommand *cmd) {
  MRCommand_Free(cmd);
  free(cmd);
}

/* MRConn_Get of `id_str` (node `node`'s name, or a key of the map), then
 * MRConn_SendCommand of `cmd` as request `id`; a refusal completes it. */
static void send_on(uint64_t id, unsigned node, const char *id_str, MRCommand *cmd) {
  uint64_t t = now_us();
  MRConn *c = MRConn_Get(&mgr, id_str);
  note_call("MRConn_Get", t);
  if (!c) {
    refuse(id, present[node] ? &refused_noconn : &refused_absent);
    return;
  }
  bool formatted = cmd->cmd != NULL;
  t = now_us();
  in_manager++;
  int rc = MRConn_SendCommand(c, cmd, on_reply, (void *)(uintptr_t)id);
  in_manager--;
  note_call("MRConn_SendCommand", t);
  if (rc == REDIS_OK) {
    atomic_fetch_add(&sent, 1);
    if (formatted) atomic_fetch_add(&resends, 1);
  } else {
    refuse(id, &refused_send);
  }
}

static unsigned pick_padi(uint32_t r) {
  return (r >> 10) % 64 == 0 ? 5 + (r >> 16) % 3 : (r >> 10) % 5;
}

/* One request to node j->node, looked up by `id_str`. */
static void dispatch_as(const struct job *j, const char *id_str) {
  unsigned r = j->rnd;
  unsigned kind = K_ECHO;
  /* A cut costs the node that connection for the reconnect back-off (all of
   * it when its pool is down to one); a stall only blocks that connection. */
  if (ep_of[j->node] == RESP_SERVER && r % 2000 < 5)
    kind = K_CUT;
  else if (ep_of[j->node] == RESP_SERVER && r % 2000 < 25)
    kind = K_STALL;
  else if (r % 10 == 9)
    kind = K_PING;
  unsigned padi = pick_padi(r);
  kinds[j->id] = META(kind, padi, 0, j->node);
  MRCommand *cmd = new_command(kind, padi, j->id, r);
  send_on(j->id, j->node, id_str, cmd);
  free_command(cmd);
  if (kind == K_CUT) atomic_fetch_add(&f_cuts_sent, 1);
  if (kind == K_STALL) atomic_fetch_add(&f_stalls_sent, 1);
}

static void dispatch(const struct job *j) {
  dispatch_as(j, node_ids[j->node]);
}

/* RediSearch's fan-out: one command for `n` shards, formatted by its first
 * send (MRConn_SendCommand keeps the sds in cmd->cmd), sent as is to the
 * others, freed as soon as the last send returns, its replies pending.
 * Requests first .. first+n-1 all echo first's payload. */
static void fan_out(uint64_t first, unsigned n, uint32_t rnd, unsigned node0) {
  unsigned padi = pick_padi(rnd);
  MRCommand *cmd = new_command(K_ECHO, padi, first, rnd);
  atomic_fetch_add(&fanouts, 1);
  for (unsigned i = 0; i < n; i++) {
    unsigned node = (node0 + i) % NODES;
    kinds[first + i] = META(K_ECHO, padi, i, node);
    send_on(first + i, node, node_ids[node], cmd);
  }
  free_command(cmd);
}

static void on_jobs(uv_async_t *h) {
  (void)h;
  for (;;) {
    struct job batch[256];
    size_t n = 0;
    pthread_mutex_lock(&q_mu);
    while (q_len > 0 && n < 256) {
      batch[n++] = queue[q_head];
      q_head = (q_head + 1) % QUEUE_CAP;
      q_len--;
    }
    pthread_mutex_unlock(&q_mu);
    if (n == 0) return;
    for (size_t i = 0; i < n; i++) {
      if (batch[i].fan > 1)
        fan_out(batch[i].id, batch[i].fan, batch[i].rnd, batch[i].node);
      else
        dispatch(&batch[i]);
    }
  }
}

static void on_tick(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_us();
  if (last_tick_us && now - last_tick_us > max_gap_us) {
    max_gap_us = now - last_tick_us;
    max_gap_at_ms = now / 1000 - t0_ms;
    if (cfg_max_stall_ms && max_gap_us > (uint64_t)cfg_max_stall_ms * 1000)
      printf("soak: loop stalled %.1f ms at t=%" PRIu64 " ms (last pool op: %s)\n", max_gap_us / 1000.0,
             max_gap_at_ms, last_op);
  }
  last_tick_us = now;
}

/* --- pool operations ---------------------------------------------------- */

static void check_node_states(void) {
  for (int i = 0; i < NODES; i++) {
    const char *s = MRConnManager_GetNodeState(&mgr, node_ids[i]);
    if ((s != NULL) != present[i]) {
      atomic_fetch_add(&bounds_violations, 1);
      printf("soak: node %s state %s but it is %s\n", node_ids[i], s ? s : "NULL",
             present[i] ? "present" : "absent");
    }
  }
}

static void check_state_dict(void) {
  dictType type = {.hashFunction = stringsHashFunction, .keyDup = stringsKeyDup,
                   .keyCompare = stringsKeyCompare, .keyDestructor = stringsKeyDestructor};
  dict *states = dictCreate(&type, NULL);
  uint64_t t = now_us();
  MRConnManager_FillStateDict(&mgr, states);
  note_call("MRConnManager_FillStateDict", t);
  size_t total = 0;
  dictIterator *it = dictGetIterator(states);
  dictEntry *e;
  while ((e = dictNext(it))) {
    char **arr = dictGetVal(e);
    total += array_len(arr);
    for (uint32_t i = 0; i < array_len(arr); i++) RedisModule_Free(arr[i]);
    array_free(arr);
  }
  dictReleaseIterator(it);
  dictRelease(states);
  /* A pool shows its first connection at once, the others as the loop
   * opens them (in slices): between one per node and nodeConns per node. */
  size_t least = 0, most = 0;
  for (int i = 0; i < NODES; i++) {
    least += present[i];
    most += present[i] ? (size_t)mgr.nodeConns : 0;
  }
  if (total < least || total > most) {
    atomic_fetch_add(&bounds_violations, 1);
    printf("soak: FillStateDict shows %zu states, expected %zu..%zu\n", total, least, most);
  }
  MRConnDrainStats st;
  if (MRConnManager_GetDrainStats(&mgr, &st) != REDIS_OK) atomic_fetch_add(&bounds_violations, 1);
}

static void op_shrink(unsigned num) {
  int before = mgr.nodeConns;
  uint64_t t = now_us();
  in_manager++;
  MRConnManager_Shrink(&mgr, num);
  in_manager--;
  note_call("MRConnManager_Shrink", t);
  bool valid = num > 0 && (int)num < before;
  int want = valid ? (int)num : before;
  if (!valid) atomic_fetch_add(&invalid_ops, 1);
  if (mgr.nodeConns != want) {
    atomic_fetch_add(&bounds_violations, 1);
    printf("soak: Shrink(%u) from %d left nodeConns %d\n", num, before, mgr.nodeConns);
  }
}

static void op_expand(unsigned num) {
  int before = mgr.nodeConns;
  uint64_t t = now_us();
  in_manager++;
  MRConnManager_Expand(&mgr, num, &loop);
  in_manager--;
  note_call("MRConnManager_Expand", t);
  /* above 4096: clamped to 4096 */
  bool valid = (int)num > before;
  int want = valid ? (int)(num < 4096 ? num : 4096) : before;
  if (!valid) atomic_fetch_add(&invalid_ops, 1);
  if (mgr.nodeConns != want) {
    atomic_fetch_add(&bounds_violations, 1);
    printf("soak: Expand(%u) from %d left nodeConns %d\n", num, before, mgr.nodeConns);
  }
}

/* Node ids and endpoints are the caller's (conn.h): the manager gets heap
 * copies freed the moment the call returns, or a key of its own map. */
static char *heap_id(int node) {
  return must(strdup(node_ids[node]));
}

static void op_add(int node, int server, const char *map_key) {
  MREndpoint *ep = must(calloc(1, sizeof *ep));
  ep->host = must(strdup("127.0.0.1"));
  ep->port = server_port[server];
  char *id = map_key ? NULL : heap_id(node);
  bool expect = !present[node] || ep_of[node] != server;
  uint64_t t = now_us();
  in_manager++;
  bool got = MRConnManager_Add(&mgr, &loop, map_key ? map_key : id, ep);
  in_manager--;
  note_call("MRConnManager_Add", t);
  free(id);
  free(ep->host);
  free(ep);
  if (got != expect) {
    atomic_fetch_add(&bounds_violations, 1);
    printf("soak: Add(%s -> server %d) returned %d, expected %d\n", node_ids[node], server, got, expect);
  }
  present[node] = true;
  ep_of[node] = server;
}

static void op_disconnect(int node, const char *map_key) {
  char *id = map_key ? NULL : heap_id(node);
  uint64_t t = now_us();
  in_manager++;
  int rc = MRConnManager_Disconnect(&mgr, map_key ? map_key : id);
  in_manager--;
  note_call("MRConnManager_Disconnect", t);
  free(id);
  int expect = present[node] ? REDIS_OK : REDIS_ERR;
  if (rc != expect) {
    atomic_fetch_add(&bounds_violations, 1);
    printf("soak: Disconnect(%s) returned %d, expected %d\n", node_ids[node], rc, expect);
  }
  if (present[node]) absent_since_ms[node] = now_ms();
  present[node] = false;
}

/* A server other than the one `node` points at (any, if it is absent). */
static int other_server(int node) {
  rng *r = &loop_rng;
  return present[node] ? (ep_of[node] + 1 + (int)rng_below(r, NODES - 1)) % NODES : (int)rng_below(r, NODES);
}

/* RediSearch hands the manager keys of m->map itself (it walks the map): the
 * id then lives in the very entry that the call may replace or delete. */
static void op_map_key(void) {
  rng *r = &loop_rng;
  unsigned size = (unsigned)dictSize(mgr.map);
  if (size == 0) return;
  unsigned pick = rng_below(r, size);
  const char *key = NULL;
  dictIterator *it = dictGetIterator(mgr.map);
  dictEntry *e;
  for (unsigned i = 0; (e = dictNext(it)); i++) {
    if (i == pick) {
      key = dictGetKey(e);
      break;
    }
  }
  dictReleaseIterator(it);
  int node = -1;
  for (int i = 0; key && i < NODES; i++)
    if (strcmp(key, node_ids[i]) == 0) node = i;
  if (node < 0 || !present[node]) {
    violation("the map holds a key the soak never added (or lost)");
    return;
  }
  atomic_fetch_add(&map_key_ops, 1);
  switch (rng_below(r, 5)) {
    case 0:
      last_op = "Disconnect (map key)";
      op_disconnect(node, key); /* frees `key` */
      break;
    case 1:
      last_op = "Add (map key, same endpoint)";
      op_add(node, ep_of[node], key);
      break;
    case 2:
      last_op = "Add (map key, new endpoint)";
      op_add(node, other_server(node), key);
      break;
    case 3:
      last_op = "GetNodeState (map key)";
      if (!MRConnManager_GetNodeState(&mgr, key)) violation("GetNodeState of a key of the map is NULL");
      break;
    default: {
      last_op = "MRConn_Get (map key)";
      if (atomic_load(&submitted) + 1000 >= max_ids) break;
      struct job j = {.id = new_ids(1), .rnd = (uint32_t)rng_next(r), .node = (uint8_t)node};
      dispatch_as(&j, key);
      break;
    }
  }
}

/* Never 0, which means "no deadline". Short: a server is paused past
 * the deadline, and a long pause starves every node on it. */
static const uint32_t deadlines[] = {1, 20, 50, 100, 100, 250, 250, 500};

static void apply_random_op(void) {
  rng *r = &loop_rng;
  int paused = atomic_exchange(&want_drain, -1);
  if (paused >= 0) {
    /* A server was just paused: drain connections that have work on it. */
    last_op = "drain-after-pause";
    if (mgr.nodeConns > 1) {
      op_shrink((unsigned)mgr.nodeConns - 1);
    } else {
      for (int i = 0; i < NODES; i++) {
        if (present[i] && ep_of[i] == paused) {
          op_add(i, (paused + 1 + (int)rng_below(r, NODES - 1)) % NODES, NULL);
          break;
        }
      }
    }
    atomic_fetch_add(&pool_ops, 1);
    return;
  }
  unsigned w = rng_below(r, 100);
  int node = (int)rng_below(r, NODES);
  int absent = -1;
  for (int i = 0; i < NODES; i++)
    if (!present[(node + i) % NODES]) absent = (node + i) % NODES;
  if (w < 20) {
    last_op = "Shrink";
    if (mgr.nodeConns > 1)
      op_shrink(1 + rng_below(r, (unsigned)mgr.nodeConns - 1));
    else
      op_shrink(rng_below(r, 2) ? 0 : 1); /* invalid: must be ignored */
  } else if (w < 40) {
    last_op = "Expand";
    if (mgr.nodeConns < MAX_POOL)
      op_expand((unsigned)mgr.nodeConns + 1 + rng_below(r, MAX_POOL - (unsigned)mgr.nodeConns));
    else
      op_expand((unsigned)mgr.nodeConns - rng_below(r, 2)); /* invalid: not a growth */
  } else if (w < 52) {
    last_op = "Add (changed endpoint)";
    op_add(node, other_server(node), NULL);
  } else if (w < 58) {
    last_op = "Disconnect";
    op_disconnect(node, NULL); /* of an absent node: must answer REDIS_ERR */
  } else if (w < 75) {
    last_op = "re-Add";
    /* an absent node comes back; else an Add of the same endpoint, which
     * must change nothing */
    if (absent >= 0) node = absent;
    op_add(node, ep_of[node], NULL);
  } else if (w < 82) {
    last_op = "SetDrainTimeout";
    uint32_t ms = deadlines[rng_below(r, sizeof deadlines / sizeof deadlines[0])];
    MRConnManager_SetDrainTimeout(ms);
    if (MRConnManager_GetDrainTimeout() != ms) atomic_fetch_add(&bounds_violations, 1);
  } else if (w < 90) {
    last_op = "FillStateDict";
    check_state_dict();
  } else {
    op_map_key();
  }
  check_node_states();
  atomic_fetch_add(&pool_ops, 1);
}

/* --- reply callbacks ---------------------------------------------------- */

enum { CB_SHRINK, CB_EXPAND, CB_ADD_SAME, CB_ADD_NEW, CB_DISCONNECT_OWN, CB_FAN_OUT, CB_MAP_KEY, CB_ANY, CB_OPS };
static atomic_uint_fast64_t callback_ops[CB_OPS];
static const char *const callback_op_names[CB_OPS] = {
    "Shrink", "Expand", "Add (same endpoint)", "Add (new endpoint)", "Disconnect of its own node",
    "fan-out to other nodes", "map-key op", "other"};

/* A pool operation from inside the reply callback of request `id`, as
 * RediSearch's topology and config changes land between replies: possibly
 * on the node whose connection is delivering this very reply. */
static void callback_op(uint64_t id) {
  rng *r = &loop_rng;
  int node = (int)META_NODE(kinds[id]);
  unsigned w = rng_below(r, CB_OPS);
  atomic_fetch_add(&callback_ops[w], 1);
  switch (w) {
    case CB_SHRINK:
      last_op = "Shrink (in a callback)";
      if (mgr.nodeConns > 1) op_shrink(1 + rng_below(r, (unsigned)mgr.nodeConns - 1));
      break;
    case CB_EXPAND:
      last_op = "Expand (in a callback)";
      if (mgr.nodeConns < MAX_POOL)
        op_expand((unsigned)mgr.nodeConns + 1 + rng_below(r, MAX_POOL - (unsigned)mgr.nodeConns));
      break;
    case CB_ADD_SAME:
      last_op = "Add, same endpoint (in a callback)";
      op_add(node, present[node] ? ep_of[node] : node, NULL);
      break;
    case CB_ADD_NEW:
      last_op = "Add, new endpoint (in a callback)";
      op_add(node, other_server(node), NULL);
      break;
    case CB_DISCONNECT_OWN:
      last_op = "Disconnect of its own node (in a callback)";
      op_disconnect(node, NULL);
      break;
    case CB_FAN_OUT:
      last_op = "fan-out (in a callback)";
      fan_out(new_ids(NODES - 1), NODES - 1, (uint32_t)rng_next(r), (unsigned)node + 1);
      break;
    case CB_MAP_KEY:
      op_map_key();
      break;
    default:
      apply_random_op();
      break;
  }
  check_node_states();
}

/* As RediSearch does for cursors, a reply callback sometimes sends the next
 * command itself — here also from failed callbacks (an error reply or NULL),
 * i.e. from inside a forced close, a broken link or Shutdown (where it must
 * be refused, not crash or outlive Shutdown). */
static void maybe_follow_up(uint64_t id) {
  uint64_t h = id * UINT64_C(0x9e3779b97f4a7c15);
  if (atomic_load(&submitted) + 1000 >= max_ids) return;
  if (in_shutdown) {
    if (++shutdown_followups > 2000) return; /* every NULL reply of Shutdown, within reason */
    /* The manager is being shut down: it must act shut down, not hand out
     * connections or take new pools into a dict being released. */
    MREndpoint ep = {.host = "127.0.0.1", .port = server_port[shutdown_followups % NODES]};
    if (MRConn_Get(&mgr, node_ids[shutdown_followups % NODES]) != NULL ||
        MRConnManager_Add(&mgr, &loop, "late", &ep))
      violation("the manager took a call from inside Shutdown as if it were live");
  } else if ((h >> 60) != 0) {
    return; /* 1 in 16 */
  } else if ((h >> 56) % 32 == 0 && !atomic_load(&finishing) && in_manager == 0) {
    callback_op(id); /* 1 in 512 */
  }
  struct job j = {.id = new_ids(1), .rnd = (uint32_t)(h >> 8), .node = (uint8_t)((h >> 40) % NODES)};
  atomic_fetch_add(&followups, 1);
  dispatch(&j);
}

/* "ERR connection to …": the manager closed the connection itself (drain
 * deadline, Shutdown) and failed the callback with an error reply. */
static bool is_connection_error(MRReply *reply) {
  static const char prefix[] = "ERR connection to";
  size_t len = 0;
  const char *s = MRReply_String(reply, &len);
  return MRReply_Type(reply) == REDIS_REPLY_ERROR && s && len >= sizeof prefix - 1 &&
         memcmp(s, prefix, sizeof prefix - 1) == 0;
}

/* Every callback counts once, whatever it got: a reply, an error reply from
 * the manager, or NULL. */
static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  uint64_t id = (uintptr_t)priv;
  if (atomic_load(&shutdown_returned)) {
    atomic_fetch_add(&late_callbacks, 1);
    fail_note("callback after Shutdown returned", id);
  }
  if (id == 0 || id >= max_ids) {
    atomic_fetch_add(&bogus_ids, 1);
    fail_note("callback with an unknown privdata", id);
    MRReply_Free(r);
    return;
  }
  if (in_manager && !in_shutdown) atomic_fetch_add(&callbacks_inside_calls, 1);
  count_completion(id, "callback ran twice");
  if (!r) {
    atomic_fetch_add(&replies_null, 1);
    maybe_follow_up(id);
    return;
  }
  MRReply *reply = r;
  if (is_connection_error(reply)) {
    atomic_fetch_add(&replies_connerr, 1);
    MRReply_Free(reply);
    maybe_follow_up(id);
    return;
  }
  unsigned kind = META_KIND(kinds[id]);
  size_t len = 0;
  const char *s = MRReply_String(reply, &len);
  bool ok;
  switch (kind) {
    case K_ECHO: {
      char prefix[32];
      int n = snprintf(prefix, sizeof prefix, "e%" PRIu64 ":", id - META_OFFSET(kinds[id]));
      size_t want = (size_t)n + pad_sizes[META_PADI(kinds[id])];
      ok = MRReply_Type(reply) == REDIS_REPLY_STRING && s && len == want &&
           memcmp(s, prefix, (size_t)n) == 0 && (want == (size_t)n || s[want - 1] == 'x');
      break;
    }
    case K_PING:
      ok = MRReply_Type(reply) == REDIS_REPLY_STATUS && s && len == 4 && memcmp(s, "PONG", 4) == 0;
      break;
    default: /* CUT / STALL on a real Redis: an unknown-command error */
      ok = MRReply_Type(reply) == REDIS_REPLY_ERROR;
      break;
  }
  if (ok) {
    atomic_fetch_add(MRReply_Type(reply) == REDIS_REPLY_ERROR ? &replies_err : &replies_ok, 1);
  } else {
    atomic_fetch_add(&misrouted, 1);
    printf("soak: unexpected reply to request %" PRIu64 " (kind %u): type %d \"%.40s\"\n", id, kind,
           MRReply_Type(reply), s ? s : "");
    fail_note("reply does not match its request", id);
  }
  MRReply_Free(reply);
  maybe_follow_up(id);
}

static bool all_done(void) {
  return atomic_load(&completed) == atomic_load(&submitted);
}

static void on_op_timer(uv_timer_t *t) {
  if (atomic_load(&finishing)) {
    /* Wind-down: no more pool changes; wait for what is in flight. */
    if (all_done() || now_ms() - finish_started_ms > GRACE_MS) {
      uv_stop(&loop);
      return;
    }
    uv_timer_start(t, on_op_timer, 10, 0);
    return;
  }
  apply_random_op();
  uv_timer_start(t, on_op_timer, 5 + rng_below(&loop_rng, 120), 0);
}

/* As a topology refresh would, a removed node comes back, to the server it
 * left (taking back its draining connections), ABSENT_MS later. */
static void on_topology(uv_timer_t *t) {
  (void)t;
  if (atomic_load(&finishing)) return;
  for (int i = 0; i < NODES; i++) {
    if (!present[i] && now_ms() - absent_since_ms[i] >= ABSENT_MS) {
      last_op = "re-Add (topology)";
      op_add(i, ep_of[i], NULL);
    }
  }
}

static void on_ctl(uv_async_t *h) {
  (void)h;
  if (atomic_load(&finishing) && !finish_started_ms) {
    finish_started_ms = now_ms();
    /* Let every node come back, so that what can finish does. */
    for (int i = 0; i < NODES; i++)
      if (!present[i]) op_add(i, i, NULL);
    on_jobs(&async_jobs);
  }
}

static void *loop_main(void *arg) {
  (void)arg;
  uv_timer_start(&tick_timer, on_tick, 1, 1);
  uv_timer_start(&topology_timer, on_topology, 10, 10);
  uv_timer_start(&op_timer, on_op_timer, 50, 0);
  for (int i = 0; i < NODES; i++) op_add(i, i, NULL);

  uv_run(&loop, UV_RUN_DEFAULT); /* until on_op_timer calls uv_stop */

  /* RediSearch's teardown on the loop thread: one NOWAIT pass, Shutdown,
   * close what is left, one more iteration, close the loop. */
  uv_run(&loop, UV_RUN_NOWAIT);
  if (MRConnManager_GetDrainStats(&mgr, &final_drain_stats) != REDIS_OK)
    atomic_fetch_add(&bounds_violations, 1);
  uv_close((uv_handle_t *)&async_jobs, NULL);
  uv_close((uv_handle_t *)&async_ctl, NULL);
  uv_close((uv_handle_t *)&tick_timer, NULL);
  uv_close((uv_handle_t *)&op_timer, NULL);
  uv_close((uv_handle_t *)&topology_timer, NULL);
  /* Commands in flight at teardown: queued, never written (the loop does not
   * run again), failed by Shutdown — whose callbacks call back into the
   * manager being torn down. */
  for (int i = 0; i < 200; i++) {
    struct job j = {.id = new_ids(1), .rnd = (uint32_t)rng_next(&loop_rng), .node = (uint8_t)(i % NODES)};
    dispatch(&j);
  }
  /* ... and drains in progress: the connections holding them leave. */
  if (mgr.nodeConns > 1)
    op_shrink(1);
  else
    op_add(0, (ep_of[0] + 1) % NODES, NULL);
  MRConnDrainStats at_shutdown;
  if (MRConnManager_GetDrainStats(&mgr, &at_shutdown) == REDIS_OK) draining_at_shutdown = at_shutdown.draining;
  uint64_t t = now_us();
  in_shutdown = true;
  MRConnManager_Shutdown(&mgr);
  in_shutdown = false;
  note_call("MRConnManager_Shutdown", t);
  atomic_store(&shutdown_returned, true);
  completed_when_shutdown_returned = atomic_load(&completed);
  open_handles_after_shutdown = loop_count_open_handles(&loop);
  loop_close_all_handles(&loop);
  loop_close_rc = uv_loop_close(&loop);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Submitter thread                                                           */
/* ------------------------------------------------------------------------ */

/* A refused request completes at once, and its slot is free again. Were
 * every free slot refilled each tick, an outage would fill the run with
 * refusals: with every node refusing, the whole budget comes back each tick.
 * At most cfg_inflight / 16 new requests a tick (well above what the loop
 * sends) keeps refusals in proportion to the time nodes cannot take a
 * command. */
#define TICK_MS 2

static void *submitter_main(void *arg) {
  rng r = {.s = cfg_seed ^ UINT64_C(0x5ab317735ab31773)};
  bool capped = false;
  size_t per_tick = cfg_inflight / 16 ? cfg_inflight / 16 : 1;
  (void)arg;
  while (!atomic_load(&stop_submit)) {
    uint64_t sub = atomic_load(&submitted);
    uint64_t inflight = sub - atomic_load(&completed);
    if (inflight < cfg_inflight && sub + cfg_inflight + 1000 < max_ids) {
      size_t n = cfg_inflight - inflight < per_tick ? cfg_inflight - inflight : per_tick, used = 0;
      pthread_mutex_lock(&q_mu);
      while (used < n && q_len < QUEUE_CAP) {
        uint64_t v = rng_next(&r);
        /* 1 in 16: a fan-out to 2..4 nodes */
        unsigned fan = (v >> 36) % 16 == 0 ? 2 + (unsigned)((v >> 40) % 3) : 1;
        if (fan > n - used) fan = (unsigned)(n - used);
        struct job j = {.id = new_ids(fan), .rnd = (uint32_t)v, .node = (uint8_t)((v >> 32) % NODES),
                        .fan = (uint8_t)fan};
        queue[(q_head + q_len) % QUEUE_CAP] = j;
        q_len++;
        used += fan;
      }
      pthread_mutex_unlock(&q_mu);
      if (used) uv_async_send(&async_jobs);
    } else if (sub + cfg_inflight + 1000 >= max_ids && !capped) {
      capped = true;
      printf("soak: request table full (%" PRIu64 " ids): no more submissions\n", max_ids);
    }
    usleep(TICK_MS * 1000);
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Fault thread (the main thread)                                             */
/* ------------------------------------------------------------------------ */

static bool redis_up[REDIS_NODES];
static uint64_t restart_at[REDIS_NODES];

static void restart_due(bool all) {
  for (int i = 0; i < REDIS_NODES; i++) {
    if (redis_up[i] || (!all && now_ms() < restart_at[i])) continue;
    for (int attempt = 0; attempt < 5 && !redis_up[i]; attempt++) {
      if (redis_restart(&redis[i]) == 0) {
        redis_up[i] = true;
        atomic_fetch_add(&f_restarts, 1);
      } else {
        sleep_ms(200);
      }
    }
    CHECK_MSG(redis_up[i], "redis node %d did not restart", i);
  }
}

static void inject_faults(void) {
  rng r = {.s = cfg_seed ^ UINT64_C(0xfa017fa017fa017f)};
  uint64_t end = now_ms() + (uint64_t)cfg_seconds * 1000;
  uint64_t next_report = now_ms() + 10000, next_fault = 0;
  while (now_ms() < end && harness_failures() == 0) {
    /* Mostly pauses, which hold sent commands past the drain deadline. Kills
     * and resets make nodes refuse commands until they are back and the
     * 250 ms reconnect back-off has run: rarer, and the servers restart
     * soon (checked every 10 ms). */
    sleep_ms(10);
    restart_due(false);
    if (now_ms() < next_fault) continue;
    next_fault = now_ms() + 40 + rng_below(&r, 100);
    unsigned w = rng_below(&r, 50);
    int s = (int)rng_below(&r, REDIS_NODES);
    if (w < 2) {
      if (redis_up[s]) {
        redis_kill(&redis[s]);
        redis_up[s] = false;
        restart_at[s] = now_ms() + 20 + rng_below(&r, 130);
        atomic_fetch_add(&f_kills, 1);
      }
    } else if (w < 49) {
      if (redis_up[s]) {
        unsigned ms = MRConnManager_GetDrainTimeout() + 10 + rng_below(&r, 50);
        if (redis_cmd(redis[s].port, NULL, 0, "CLIENT PAUSE %u", ms) == 0) {
          atomic_fetch_add(&f_pauses, 1);
          /* one in three: more would keep every pool at one connection */
          if (rng_below(&r, 3) == 0) atomic_store(&want_drain, s);
        }
      }
    } else {
      resp_server_drop_all(resp);
      atomic_fetch_add(&f_resets, 1);
    }
    if (now_ms() >= next_report) {
      next_report += 10000;
      printf("soak: t=%" PRIu64 " s: %" PRIu64 " issued, %" PRIu64 " completed, %" PRIu64
             " faults, longest stall so far %.1f ms\n",
             (now_ms() - t0_ms) / 1000, (uint64_t)atomic_load(&submitted), (uint64_t)atomic_load(&completed),
             (uint64_t)(atomic_load(&f_kills) + atomic_load(&f_pauses) + atomic_load(&f_resets)),
             max_gap_us / 1000.0);
      fflush(stdout);
    }
  }
  /* Heal: every node up and unpaused. */
  restart_due(true);
  for (int i = 0; i < REDIS_NODES; i++) redis_cmd(redis[i].port, NULL, 0, "CLIENT UNPAUSE");
}

/* ------------------------------------------------------------------------ */
/* The test                                                                   */
/* ------------------------------------------------------------------------ */

TEST(soak) {
  host_init();
  for (size_t i = 0; i < sizeof pad; i++) pad[i] = 'x';
  max_ids = (uint64_t)cfg_seconds * 300000 + 1000000;
  calls = calloc(max_ids, 1);
  kinds = calloc(max_ids, sizeof *kinds);
  REQUIRE(calls && kinds);

  for (int i = 0; i < REDIS_NODES; i++) {
    REQUIRE(redis_start(&redis[i], NULL) == 0);
    redis_up[i] = true;
    server_port[i] = redis[i].port;
  }
  struct resp_server_opts opts = {.never_reply_to = "STALL"};
  resp = resp_server_start(&opts);
  REQUIRE(resp != NULL);
  server_port[RESP_SERVER] = resp_server_port(resp);

  loop_rng.s = cfg_seed;
  host_set_enterprise(true); /* no AUTH: the servers run without passwords */
  MRConnManager_SetDrainTimeout(250);
  REQUIRE(uv_loop_init(&loop) == 0);
  /* Init on the creating thread, before the loop thread exists (as RediSearch). */
  MRConnManager_Init(&mgr, 4);
  /* The handles other threads signal exist before those threads do. */
  uv_async_init(&loop, &async_jobs, on_jobs);
  uv_async_init(&loop, &async_ctl, on_ctl);
  uv_timer_init(&loop, &tick_timer);
  uv_timer_init(&loop, &op_timer);
  uv_timer_init(&loop, &topology_timer);
  t0_ms = now_ms();

  pthread_t loop_thread, submitter;
  REQUIRE(pthread_create(&loop_thread, NULL, loop_main, NULL) == 0);
  REQUIRE(pthread_create(&submitter, NULL, submitter_main, NULL) == 0);

  inject_faults();

  atomic_store(&stop_submit, true);
  pthread_join(submitter, NULL);
  atomic_store(&finishing, true);
  uv_async_send(&async_ctl);
  pthread_join(loop_thread, NULL);
  uint64_t elapsed_ms = now_ms() - t0_ms;

  /* Exactly once, for every request. */
  uint64_t n = atomic_load(&submitted);
  uint64_t lost = 0, dup = 0;
  for (uint64_t id = 1; id <= n; id++) {
    if (calls[id] == 0) {
      if (lost < 5) printf("soak: request %" PRIu64 " never completed (kind %u)\n", id, kinds[id] & 7);
      lost++;
    } else if (calls[id] > 1) {
      dup++;
    }
  }
  size_t leaked = host_alloc_live_count();
  uint64_t faults = atomic_load(&f_kills) + atomic_load(&f_pauses) + atomic_load(&f_resets) +
                    resp_server_count(resp, "CUT") + resp_server_count(resp, "STALL");

  uint64_t n_sent = atomic_load(&sent);
  double sent_pct = n ? 100.0 * (double)n_sent / (double)n : 0;
  double faults_per_min = 60.0 * (double)faults / cfg_seconds;
  printf("soak: seed %" PRIu64 ", %u s asked, %.1f s run, %u in flight\n", cfg_seed, cfg_seconds,
         elapsed_ms / 1000.0, cfg_inflight);
  printf("soak: commands issued %" PRIu64 ": really sent %" PRIu64 " (%.1f %%, floor %u %%); refused: node absent "
         "%" PRIu64 ", no connected connection %" PRIu64 ", by SendCommand %" PRIu64 "\n",
         n, n_sent, sent_pct, cfg_min_sent_pct, (uint64_t)atomic_load(&refused_absent),
         (uint64_t)atomic_load(&refused_noconn), (uint64_t)atomic_load(&refused_send));
  printf("soak: of those, %" PRIu64 " from inside reply callbacks, %" PRIu64 " fan-outs whose formatted command was "
         "sent again %" PRIu64 " times, %" PRIu64 " ops with keys of the map itself\n",
         (uint64_t)atomic_load(&followups), (uint64_t)atomic_load(&fanouts), (uint64_t)atomic_load(&resends),
         (uint64_t)atomic_load(&map_key_ops));
  printf("soak: callbacks: real replies %" PRIu64 " (+%" PRIu64 " errors of a real server), connection-error "
         "replies %" PRIu64 ", NULL %" PRIu64 "; %" PRIu64 " ran inside a pool call\n",
         (uint64_t)atomic_load(&replies_ok), (uint64_t)atomic_load(&replies_err),
         (uint64_t)atomic_load(&replies_connerr), (uint64_t)atomic_load(&replies_null),
         (uint64_t)atomic_load(&callbacks_inside_calls));
  printf("soak: faults injected %" PRIu64 " (%.0f/min, floor %u): %" PRIu64 " kills (%" PRIu64 " restarts), %" PRIu64
         " pauses past the deadline, %" PRIu64 " resets of every RESP connection, %lu cut replies, %lu stalled "
         "requests\n",
         faults, faults_per_min, cfg_min_faults_per_min, (uint64_t)atomic_load(&f_kills),
         (uint64_t)atomic_load(&f_restarts), (uint64_t)atomic_load(&f_pauses), (uint64_t)atomic_load(&f_resets),
         resp_server_count(resp, "CUT"), resp_server_count(resp, "STALL"));
  printf("soak: pool operations from inside reply callbacks:");
  for (int i = 0; i < CB_OPS; i++)
    printf("%s %" PRIu64 " %s", i ? "," : "", (uint64_t)atomic_load(&callback_ops[i]), callback_op_names[i]);
  printf("; Shutdown with %" PRIu64 " connections draining and %u callbacks calling back into the manager\n",
         draining_at_shutdown, shutdown_followups);
  printf("soak: pool operations %" PRIu64 " (%" PRIu64 " deliberately out of range); drains: %" PRIu64
         " graceful, %" PRIu64 " forced, %" PRIu64 " link lost, %" PRIu64 " reclaimed, %" PRIu64
         " callbacks failed\n",
         (uint64_t)atomic_load(&pool_ops), (uint64_t)atomic_load(&invalid_ops), final_drain_stats.graceful,
         final_drain_stats.forced, final_drain_stats.broken, final_drain_stats.reclaimed,
         final_drain_stats.failedCallbacks);
  printf("soak: callbacks lost %" PRIu64 ", duplicated %" PRIu64 ", after Shutdown %" PRIu64 ", misrouted %" PRIu64
         "; leaks %zu blocks; handles open after Shutdown %d; uv_loop_close %d\n",
         lost, dup, (uint64_t)atomic_load(&late_callbacks), (uint64_t)atomic_load(&misrouted), leaked,
         open_handles_after_shutdown, loop_close_rc);
  printf("soak: longest stall %.1f ms at t=%" PRIu64 " ms (bound %u ms%s); longest API call %.1f ms (%s)\n",
         max_gap_us / 1000.0, max_gap_at_ms, cfg_max_stall_ms, cfg_max_stall_ms ? "" : ": off",
         max_call_us / 1000.0, max_call_name);
  fflush(stdout);

  CHECK(n > 0);
  CHECK_EQ_INT(lost, 0);
  CHECK_EQ_INT(dup, 0);
  CHECK_EQ_INT(atomic_load(&duplicates), 0);
  CHECK_EQ_INT(atomic_load(&late_callbacks), 0);
  CHECK_EQ_INT(atomic_load(&misrouted), 0);
  CHECK_EQ_INT(atomic_load(&bogus_ids), 0);
  CHECK_EQ_INT(atomic_load(&bounds_violations), 0);
  CHECK_EQ_INT(completed_when_shutdown_returned, n);
  CHECK_EQ_INT(open_handles_after_shutdown, 0);
  CHECK_EQ_INT(loop_close_rc, 0);
  CHECK_EQ_INT(leaked, 0);
  if (cfg_max_stall_ms) CHECK(max_gap_us <= (uint64_t)cfg_max_stall_ms * 1000);
  /* A soak of refusals or of a calm network proves little. */
  CHECK_MSG(sent_pct >= cfg_min_sent_pct, "%.1f %% of the commands really sent, floor %u %%", sent_pct,
            cfg_min_sent_pct);
  CHECK_MSG(faults_per_min >= cfg_min_faults_per_min, "%.0f faults a minute, floor %u", faults_per_min,
            cfg_min_faults_per_min);
  if (harness_failures()) {
    printf("soak: replay with --seed %" PRIu64 " --seconds %u\n", cfg_seed, cfg_seconds);
    host_log_dump(stdout);
  }

  for (int i = 0; i < REDIS_NODES; i++) redis_stop(&redis[i]);
  resp_server_stop(resp);
  free(calls);
  free(kinds);
}

static uint64_t parse_u64(const char *s, const char *what) {
  char *end;
  unsigned long long v = strtoull(s, &end, 0);
  if (!*s || *end) {
    fprintf(stderr, "soak: bad %s: %s\n", what, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  cfg_seed = now_us() ^ ((uint64_t)getpid() << 32);
  const char *env;
  if ((env = getenv("MRCONN_SOAK_SECONDS"))) cfg_seconds = (unsigned)parse_u64(env, "seconds");
  if ((env = getenv("MRCONN_SOAK_SEED"))) cfg_seed = parse_u64(env, "seed");
  if ((env = getenv("MRCONN_SOAK_INFLIGHT"))) cfg_inflight = (unsigned)parse_u64(env, "in-flight count");
  if ((env = getenv("MRCONN_SOAK_MAX_STALL_MS"))) cfg_max_stall_ms = (unsigned)parse_u64(env, "stall bound");
  if ((env = getenv("MRCONN_SOAK_MIN_SENT_PCT"))) cfg_min_sent_pct = (unsigned)parse_u64(env, "sent floor");
  if ((env = getenv("MRCONN_SOAK_MIN_FAULTS"))) cfg_min_faults_per_min = (unsigned)parse_u64(env, "fault floor");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 < argc && strcmp(a, "--seconds") == 0)
      cfg_seconds = (unsigned)parse_u64(argv[++i], "seconds");
    else if (i + 1 < argc && strcmp(a, "--seed") == 0)
      cfg_seed = parse_u64(argv[++i], "seed");
    else if (i + 1 < argc && strcmp(a, "--inflight") == 0)
      cfg_inflight = (unsigned)parse_u64(argv[++i], "in-flight count");
    else if (i + 1 < argc && strcmp(a, "--max-stall-ms") == 0)
      cfg_max_stall_ms = (unsigned)parse_u64(argv[++i], "stall bound");
    else if (i + 1 < argc && strcmp(a, "--min-sent-pct") == 0)
      cfg_min_sent_pct = (unsigned)parse_u64(argv[++i], "sent floor");
    else if (i + 1 < argc && strcmp(a, "--min-faults-per-min") == 0)
      cfg_min_faults_per_min = (unsigned)parse_u64(argv[++i], "fault floor");
    else {
      fprintf(stderr,
              "usage: %s [--seconds N] [--seed S] [--inflight N] [--max-stall-ms N (0: off)]\n"
              "          [--min-sent-pct N] [--min-faults-per-min N]\n",
              argv[0]);
      return 2;
    }
  }
  if (cfg_inflight == 0 || cfg_inflight > QUEUE_CAP) cfg_inflight = 300;
  printf("soak: seed %" PRIu64 " (replay: --seed %" PRIu64 "), %u s, %u in flight, stall bound %u ms\n", cfg_seed,
         cfg_seed, cfg_seconds, cfg_inflight, cfg_max_stall_ms);
  fflush(stdout);
  /* The runner's per-test timeout must outlast the soak. */
  if (!getenv("HARNESS_TIMEOUT")) {
    char t[32];
    snprintf(t, sizeof t, "%u", cfg_seconds + 180);
    setenv("HARNESS_TIMEOUT", t, 1);
  }
  static const struct harness_test tests[] = {HARNESS_TEST(soak)};
  char *args[] = {argv[0], NULL};
  return harness_run(1, args, tests, 1);
}
