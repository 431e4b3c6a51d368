// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Shared helpers of the C tests (header only; every c_tests/test_*.c and
 * v880_*.c is its own program). They read connection states only through the
 * exported ABI (FillStateDict, GetNodeState, MRConn_Get), record reply
 * callbacks so tests can check each ran exactly once, and end a test the way
 * RediSearch tears an IO runtime down.
 */
#ifndef MRCONN_TUTIL_H
#define MRCONN_TUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "coord/config.h"
#include "module.h"
#include "harness.h"
#include "mrconn_test_host.h"
#include "rmr/command.h"
#include "rmr/reply.h"
#include "util/arr/arr.h"
#include "util/dict.h"

/* ---- the state dict RediSearch passes to FillStateDict ---- */

/* Values are arrays of rm_strdup'd strings: free each, then the array. */
static inline void tu_free_state_array(void *privdata, void *obj) {
  (void)privdata;
  char **arr = obj;
  for (uint32_t i = 0; i < array_len(arr); i++) RedisModule_Free(arr[i]);
  array_free(arr);
}

static dictType tu_state_dict_type = {
    .hashFunction = stringsHashFunction,
    .keyDup = stringsKeyDup,
    .valDup = NULL,
    .keyCompare = stringsKeyCompare,
    .keyDestructor = stringsKeyDestructor,
    .valDestructor = tu_free_state_array,
};

static inline dict *tu_state_dict_new(void) {
  return dictCreate(&tu_state_dict_type, NULL);
}

/*
 * The states of every connection of the pools of m whose first connection
 * is at host:port (key "host:port"), joined with ',' into out, e.g.
 * "Connected,Reconnecting". Returns how many there are (0: no such pool).
 */
static inline int tu_states(MRConnManager *m, const char *key, char *out, size_t outlen) {
  dict *d = tu_state_dict_new();
  MRConnManager_FillStateDict(m, d);
  out[0] = '\0';
  int n = 0;
  dictEntry *e = dictFind(d, key);
  if (e) {
    char **arr = dictGetVal(e);
    size_t used = 0;
    for (uint32_t i = 0; i < array_len(arr); i++, n++) {
      int w = snprintf(out + used, outlen - used, "%s%s", i ? "," : "", arr[i]);
      if (w < 0 || (size_t)w >= outlen - used) break;
      used += (size_t)w;
    }
  }
  dictRelease(d);
  return n;
}

/* How many connections at key are in state (a MRConnState_Str string). */
static inline int tu_count_state(MRConnManager *m, const char *key, const char *state) {
  dict *d = tu_state_dict_new();
  MRConnManager_FillStateDict(m, d);
  int n = 0;
  dictEntry *e = dictFind(d, key);
  if (e) {
    char **arr = dictGetVal(e);
    for (uint32_t i = 0; i < array_len(arr); i++) n += strcmp(arr[i], state) == 0;
  }
  dictRelease(d);
  return n;
}

static inline void tu_key(char *out, size_t outlen, int port) {
  snprintf(out, outlen, "127.0.0.1:%d", port);
}

/* Predicate for loop_run_until: exactly n connections at key are in state. */
typedef struct {
  MRConnManager *m;
  char key[64];
  const char *state;
  int n;
} tu_wait_states;

static inline bool tu_all_in_state(void *arg) {
  tu_wait_states *w = arg;
  return tu_count_state(w->m, w->key, w->state) == w->n;
}

/* Runs the loop until n connections to 127.0.0.1:port are in state. */
static inline bool tu_wait_state(uv_loop_t *loop, MRConnManager *m, int port, const char *state, int n,
                                 uint64_t timeout_ms) {
  tu_wait_states w = {.m = m, .state = state, .n = n};
  tu_key(w.key, sizeof w.key, port);
  bool ok = loop_run_until(loop, tu_all_in_state, &w, timeout_ms);
  if (!ok) {
    char buf[512];
    tu_states(m, w.key, buf, sizeof buf);
    fprintf(stderr, "tu_wait_state: wanted %d x %s at %s, have [%s]\n", n, state, w.key, buf);
  }
  return ok;
}

/* Predicate: GetNodeState(m, id) equals state. */
typedef struct {
  MRConnManager *m;
  const char *id;
  const char *state;
} tu_wait_node;

static inline bool tu_node_in_state(void *arg) {
  tu_wait_node *w = arg;
  const char *s = MRConnManager_GetNodeState(w->m, w->id);
  return s && strcmp(s, w->state) == 0;
}

static inline bool tu_wait_node_state(uv_loop_t *loop, MRConnManager *m, const char *id, const char *state,
                                      uint64_t timeout_ms) {
  tu_wait_node w = {m, id, state};
  bool ok = loop_run_until(loop, tu_node_in_state, &w, timeout_ms);
  if (!ok) {
    const char *s = MRConnManager_GetNodeState(m, id);
    fprintf(stderr, "tu_wait_node_state: wanted %s for %s, have %s\n", state, id, s ? s : "(null)");
  }
  return ok;
}

/* ---- reply callbacks ---- */

typedef struct {
  int calls;      /* times the callback ran: must end at exactly 1 */
  int nulls;      /* of which with a NULL reply */
  int type;       /* REDIS_REPLY_* of the last reply, 0 for NULL */
  long long integer;
  size_t elements;
  char text[1024]; /* string/status/error text of the last reply */
} tu_reply;

static inline void tu_on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  tu_reply *t = priv;
  redisReply *reply = r;
  t->calls++;
  t->type = MRReply_Type(reply);
  t->text[0] = '\0';
  if (!reply) {
    t->nulls++;
    return;
  }
  t->integer = reply->integer;
  t->elements = reply->elements;
  size_t len = 0;
  const char *s = MRReply_String(reply, &len);
  if (s) {
    if (len >= sizeof t->text) len = sizeof t->text - 1;
    memcpy(t->text, s, len);
    t->text[len] = '\0';
  }
  MRReply_Free(reply);
}

typedef struct {
  tu_reply *r;
  int n;
} tu_replies;

/* Predicate: every one of n recorders has been called at least once. */
static inline bool tu_all_called(void *arg) {
  tu_replies *rs = arg;
  for (int i = 0; i < rs->n; i++)
    if (rs->r[i].calls == 0) return false;
  return true;
}

static inline bool tu_wait_reply(uv_loop_t *loop, tu_reply *r, uint64_t timeout_ms) {
  tu_replies rs = {r, 1};
  return loop_run_until(loop, tu_all_called, &rs, timeout_ms);
}

/*
 * Sends argv on a connected connection of id and waits for the reply into
 * *out. protocol: 0, 2 or 3. Returns SendCommand's result (REDIS_ERR also if
 * no connection is connected).
 */
static inline int tu_roundtrip(uv_loop_t *loop, MRConnManager *m, const char *id, unsigned char protocol,
                               tu_reply *out, int argc, const char **argv) {
  memset(out, 0, sizeof *out);
  MRConn *c = MRConn_Get(m, id);
  if (!c) return REDIS_ERR;
  size_t lens[16];
  for (int i = 0; i < argc && i < 16; i++) lens[i] = strlen(argv[i]);
  MRCommand cmd = MR_NewCommandArgvLen(argc, argv, lens);
  cmd.protocol = protocol;
  int rc = MRConn_SendCommand(c, &cmd, tu_on_reply, out);
  if (rc == REDIS_OK) CHECK(tu_wait_reply(loop, out, 10000));
  MRCommand_Free(&cmd);
  return rc;
}

/* ---- teardown ---- */

/*
 * RediSearch's teardown of an IO runtime whose loop thread ran (CONTRACT §5):
 * uv_stop, one UV_RUN_NOWAIT pass, Shutdown of every manager, uv_close(NULL)
 * of every handle still open, one UV_RUN_ONCE, uv_loop_close. Checks that
 * uv_loop_close succeeds.
 */
static inline void tu_teardown(uv_loop_t *loop, MRConnManager **mgrs, int n) {
  uv_stop(loop);
  uv_run(loop, UV_RUN_NOWAIT);
  for (int i = 0; i < n; i++) MRConnManager_Shutdown(mgrs[i]);
  loop_close_all_handles(loop);
  CHECK_EQ_INT(uv_loop_close(loop), 0);
}

static inline void tu_teardown1(uv_loop_t *loop, MRConnManager *m) {
  tu_teardown(loop, &m, 1);
}

/* Checks that nothing allocated through the host allocator is left. */
#define TU_CHECK_NO_LEAK()                                                                                  \
  do {                                                                                                      \
    if (!CHECK_EQ_INT(host_alloc_live_count(), 0))                                                          \
      fprintf(stderr, "  %zu bytes still allocated\n", host_alloc_live_bytes());                          \
  } while (0)

/* Start of every test: host allocator for hiredis too, clean logs, defaults
 * (Enterprise without password: no AUTH against a plain redis-server; no
 * connect timeout). The Redis config is left alone: tests set it up. */
static inline void tu_begin(void) {
  host_init();
  host_log_clear();
  host_set_enterprise(true);
  clusterConfig.connectTimeout = (struct timeval){0, 0};
}

/* The start of a test with one manager, of `conns` connections per node, on
 * its own loop. */
static inline void tu_start1(uv_loop_t *loop, MRConnManager *m, int conns) {
  tu_begin();
  CHECK(uv_loop_init(loop) == 0);
  MRConnManager_Init(m, conns);
}

#endif
