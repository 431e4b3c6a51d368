// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * libFuzzer target: hostile sequences of API calls.
 *
 * Each input is a program: byte by byte it picks a call of conn.h (or of the
 * drain controls) and its arguments — NULL managers, loops, ids, endpoints,
 * commands and dicts; unknown and empty ids; pool sizes of 0, the current
 * size, one more, 4097 and 2^32-1; commands with no arguments, NULL
 * argument arrays, 100000 arguments or one argument of 1 MiB, commands
 * formatted earlier and reused; protocol bytes other than 0/2/3; NULL callbacks; Shutdown twice,
 * calls on a manager that was shut down, Init again. Between calls the loop
 * turns with UV_RUN_NOWAIT (and, on request, for a few milliseconds), so
 * connections really connect, answer, break and drain.
 *
 * Nodes point at a scriptable RESP server on 127.0.0.1 (which also cuts
 * replies in half, never answers STALL, and resets every connection on
 * request), at a port nothing listens on, at a listener that never accepts,
 * or at ports hiredis refuses to use. No traffic leaves 127.0.0.1.
 *
 * An input whose first byte has its top bit set never lets the loop run,
 * as when RediSearch frees an IO runtime whose thread never started.
 *
 * After each input: Shutdown, every library handle closing, the teardown
 * RediSearch does (in the order that fits), uv_loop_close() == 0, every callback of an accepted
 * command ran exactly once and none of a refused one, and the host's
 * counting allocator has nothing live. Any violation aborts (a crash for
 * libFuzzer), as does anything AddressSanitizer/UBSan see.
 *
 * Run (see scripts/sanitize.sh):
 *   build-asan/mrconn_fuzz_api -max_total_time=30 fuzz/corpus
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "coord/config.h"
#include "harness.h"
#include "module.h"
#include "mrconn_test_host.h"
#include "rmr/reply.h"
#include "util/arr/arr.h"

#define MAX_REQS 4096
#define MAX_PUMP_MS 30 /* loop time one input may ask for, in total */
#define MAX_VALID_POOL 12

static resp_server *resp;
static int resp_port, refused_port, blackhole_port;

/* ------------------------------------------------------------------------ */
/* Input reader                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
  const uint8_t *p;
  size_t n;
} input;

static uint8_t u8(input *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

static uint32_t u32(input *in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v = v << 8 | u8(in);
  return v;
}

/* ------------------------------------------------------------------------ */
/* Per-input state                                                            */
/* ------------------------------------------------------------------------ */

typedef struct {
  int calls;
  bool accepted;
} req;

static uv_loop_t loop;
static MRConnManager mgr;
static bool mgr_live;   /* Init ran and Shutdown did not */
static MRConn *cur;     /* from MRConn_Get, valid until the loop runs */
static req reqs[MAX_REQS];
static int nreqs;
static unsigned pumped_ms;
static bool never_runs; /* this input: the loop never runs (RediSearch's other teardown order) */

static void die(const char *why) {
  fprintf(stderr, "fuzz_api: %s\n", why);
  host_log_dump(stderr);
  abort();
}

/* What reply callbacks do besides counting (set by the input): call back
 * into the manager, as RediSearch's cursor callbacks send their next
 * command — from NULL-reply callbacks too, so also from inside a forced
 * close, a broken link and Shutdown. */
static uint8_t cb_action;
static int cb_depth;
static void callback_action(void);

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  req *q = priv;
  if (q < reqs || q >= reqs + MAX_REQS) die("callback with a privdata that is no request");
  if (!q->accepted) die("callback for a command SendCommand refused");
  if (++q->calls > 1) die("callback ran twice");
  MRReply_Free(r);
  if (cb_action && cb_depth == 0) {
    cb_depth++;
    callback_action();
    cb_depth--;
  }
}

/* Runs the loop once without blocking; a conn from MRConn_Get is stale after. */
static void pump_nowait(void) {
  if (never_runs) return;
  uv_run(&loop, UV_RUN_NOWAIT);
  cur = NULL;
}

static void pump_for(unsigned ms) {
  if (never_runs) return;
  if (pumped_ms + ms > MAX_PUMP_MS) ms = MAX_PUMP_MS - pumped_ms;
  pumped_ms += ms;
  loop_run_for(&loop, ms);
  cur = NULL;
}

/* ------------------------------------------------------------------------ */
/* Argument pickers                                                           */
/* ------------------------------------------------------------------------ */

static char long_id[300];

static const char *pick_id(input *in) {
  static const char *const ids[] = {"a", "b", "c", "a", "b", "", NULL, long_id, "shard:7", "\xff\xfe"};
  return ids[u8(in) % (sizeof ids / sizeof ids[0])];
}

static MRConnManager *pick_mgr(input *in) {
  return u8(in) % 16 == 0 ? NULL : &mgr;
}

static uv_loop_t *pick_loop(input *in) {
  return u8(in) % 16 == 0 ? NULL : &loop;
}

static MREndpoint *pick_endpoint(input *in, MREndpoint *ep) {
  uint8_t b = u8(in);
  if (b % 16 == 0) return NULL;
  /* Only numeric hosts and localhost: nothing may reach a resolver. */
  static const char *const hosts[] = {"127.0.0.1", "127.0.0.1", "127.0.0.1", "localhost", NULL, "127.0.0.2"};
  memset(ep, 0, sizeof *ep);
  ep->host = (char *)hosts[(b >> 4) % (sizeof hosts / sizeof hosts[0])];
  uint8_t p = u8(in);
  switch (p % 10) {
    case 0: case 1: case 2: case 3: ep->port = resp_port; break;
    case 4: case 5: ep->port = refused_port; break;
    case 6: ep->port = blackhole_port; break;
    case 7: ep->port = 0; break;
    case 8: ep->port = -1; break;
    default: ep->port = 70000; break;
  }
  uint8_t f = u8(in);
  ep->password = f & 1 ? "pw" : (f & 2 ? "" : NULL);
  ep->unixSock = f & 4 ? "/nonexistent/sock" : NULL;
#ifndef MRCONN_HOST_V880
  ep->isTls = (f & 0x38) == 0x38; /* TLS without any TLS config: must fail cleanly */
#endif
  return ep;
}

static unsigned pool_size(void) {
  return mgr_live && mgr.nodeConns > 0 ? (unsigned)mgr.nodeConns : 0;
}

static uint32_t pick_size(input *in, bool growing) {
  uint32_t n = pool_size();
  switch (u8(in) % 10) {
    case 8: return u32(in);
    case 0: return 0;
    case 1: return n;
    case 2: return n + 1;
    case 3: return n ? n - 1 : 0;
    case 4: return 4097;
    case 5: return UINT32_MAX;
    case 6: return (uint32_t)INT32_MAX + 1;
    case 7: return growing ? n + 3 : 1;
    default: return u8(in) % (MAX_VALID_POOL + 1);
  }
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                   */
/* ------------------------------------------------------------------------ */

static char big_arg[1 << 20];
static const char *many_strs[100000];
static size_t many_lens[100000];

static void send_command(input *in) {
  MRConn *c = u8(in) % 8 == 0 ? NULL : cur;
  uint8_t shape = u8(in);
  uint8_t proto = u8(in);
  uint8_t flags = u8(in);
  MRCommand cmd = {0};
  bool borrowed = false; /* strs/lens point at static arrays: do not free them */
  switch (shape % 12) {
    case 0: cmd = MR_NewCommand(1, "PING"); break;
    case 1: cmd = MR_NewCommand(2, "ECHO", "hello"); break;
    case 2: cmd = MR_NewCommand(1, "CUT"); break;
    case 3: cmd = MR_NewCommand(1, "STALL"); break;
    case 4: cmd = MR_NewCommand(2, "HELLO", "3"); break;
    case 5: /* no arguments at all */ break;
    case 6: /* arguments announced, arrays missing */
      cmd.num = 1u + u8(in);
      break;
    case 7: { /* one argument of 1 MiB (binary) */
      const char *argv[2] = {"ECHO", big_arg};
      size_t lens[2] = {4, sizeof big_arg};
      cmd = MR_NewCommandArgvLen(2, argv, lens);
      break;
    }
    case 8: /* 100000 arguments */
      cmd.strs = (char **)many_strs;
      cmd.lens = many_lens;
      cmd.num = 100000;
      borrowed = true;
      break;
    case 9: { /* formatted by an earlier send, reused (RediSearch's fan-out); a
               * forged cmd->cmd violates MRConn_SendCommand's precondition */
      const char *argv[3] = {"ECHO", "fan", "out"};
      size_t lens[3] = {4, 3, 3};
      if (redisFormatSdsCommandArgv(&cmd.cmd, 2 + (flags & 1), argv, lens) < 0) die("format failed");
      break;
    }
    case 10: { /* preformatted by hiredis, arguments left empty */
      const char *argv[2] = {"ECHO", "pre"};
      size_t lens[2] = {4, 3};
      if (redisFormatSdsCommandArgv(&cmd.cmd, 2, argv, lens) < 0) die("format failed");
      break;
    }
    default: { /* zero-length and binary arguments */
      const char *argv[3] = {"ECHO", "", "\0\r\n"};
      size_t lens[3] = {4, 0, 3};
      cmd = MR_NewCommandArgvLen(2 + (flags & 1), argv, lens);
      break;
    }
  }
  cmd.protocol = proto % 4 == 0 ? proto : proto % 4; /* mostly 1..3, sometimes anything */
  bool with_cb = (flags & 6) != 6;
  req *q = NULL;
  if (with_cb && nreqs < MAX_REQS) {
    q = &reqs[nreqs++];
    memset(q, 0, sizeof *q);
    q->accepted = true; /* until SendCommand says otherwise: a synchronous callback is fine */
  }
  MRCommand *arg = flags & 8 && flags & 16 ? NULL : &cmd;
  int rc = MRConn_SendCommand(c, arg, q ? on_reply : NULL, q);
  if (rc != REDIS_OK && rc != REDIS_ERR) die("SendCommand returned neither REDIS_OK nor REDIS_ERR");
  if (q && rc != REDIS_OK) {
    if (q->calls) die("a refused command got a callback");
    q->accepted = false;
  }
  if (rc == REDIS_OK && !c) die("SendCommand accepted a NULL connection");
  if (borrowed) {
    if (cmd.cmd) sdsfree(cmd.cmd);
    cmd.cmd = NULL;
    cmd.strs = NULL;
    cmd.lens = NULL;
    cmd.num = 0;
  } else if (shape % 12 == 6) {
    cmd.num = 0; /* the arrays were never there */
  }
  MRCommand_Free(&cmd);
}

/* ------------------------------------------------------------------------ */
/* State dicts                                                                */
/* ------------------------------------------------------------------------ */

static dictType state_type = {.hashFunction = stringsHashFunction, .keyDup = stringsKeyDup,
                              .keyCompare = stringsKeyCompare, .keyDestructor = stringsKeyDestructor};

static void free_state_dict(dict *d) {
  dictIterator *it = dictGetIterator(d);
  dictEntry *e;
  while ((e = dictNext(it))) {
    char **arr = dictGetVal(e);
    if (!arr) continue;
    for (uint32_t i = 0; i < array_len(arr); i++) RedisModule_Free(arr[i]);
    array_free(arr);
  }
  dictReleaseIterator(it);
  dictRelease(d);
}

static void fill_state(input *in) {
  uint8_t f = u8(in);
  if (f % 8 == 0) {
    MRConnManager_FillStateDict(pick_mgr(in), NULL);
    return;
  }
  dict *d = dictCreate(&state_type, NULL);
  if (f & 8) { /* an entry already there, with no array yet */
    dictSetVal(d, dictAddOrFind(d, "127.0.0.1:1"), NULL);
  }
  MRConnManager_FillStateDict(pick_mgr(in), d);
  if (f & 16) MRConnManager_FillStateDict(pick_mgr(in), d); /* accumulate */
  if (f & 32) {
    host_reply_reset();
    MRConnManager_ReplyState(d, f & 64 ? NULL : RSDummyContext);
  }
  free_state_dict(d);
}

/* ------------------------------------------------------------------------ */
/* One input                                                                  */
/* ------------------------------------------------------------------------ */

static void do_shutdown(MRConnManager *m) {
  MRConnManager_Shutdown(m);
  if (m == &mgr) {
    /* Every handle the library owns must be closing now. */
    if (mgr_live && loop_count_open_handles(&loop) != 0) die("a libuv handle is still open after Shutdown");
    mgr_live = false;
    /* RediSearch frees the conns' memory on the next loop turn: a conn from
     * Get is not used past Shutdown. */
    cur = NULL;
  }
}

/* Runs one operation; returns whether the loop may turn after it. It does
 * not after a Get (RediSearch sends right after it), nor after operations
 * coded 20..39, 60..79, ... (so a conn from Get meets Shrink, Disconnect,
 * Add and friends before it is used: valid until the loop runs). */
static bool run_op(input *in) {
  uint8_t op = u8(in);
  bool may_pump = (op / 20) % 2 == 0 && op % 20 != 4 && op % 20 != 5;
  switch (op % 20) {
    case 0: case 1: case 2: { /* Add */
      MREndpoint ep;
      MRConnManager *m = pick_mgr(in);
      uv_loop_t *l = pick_loop(in);
      const char *id = pick_id(in);
      MREndpoint *e = pick_endpoint(in, &ep);
      MRConnManager_Add(m, l, id, e);
      break;
    }
    case 3: { /* Disconnect */
      MRConnManager *m = pick_mgr(in);
      const char *id = pick_id(in);
      int rc = MRConnManager_Disconnect(m, id);
      if (rc != REDIS_OK && rc != REDIS_ERR) die("Disconnect returned neither REDIS_OK nor REDIS_ERR");
      break;
    }
    case 4: case 5: { /* Get */
      MRConnManager *m = pick_mgr(in);
      const char *id = pick_id(in);
      MRConn *c = MRConn_Get(m, id);
      if (c) cur = c;
      break;
    }
    case 6: case 7: case 8:
      send_command(in);
      break;
    case 9: { /* Shrink */
      MRConnManager *m = pick_mgr(in);
      uint32_t n = pick_size(in, false);
      int before = mgr.nodeConns;
      MRConnManager_Shrink(m, n);
      if (m && mgr_live) {
        bool valid = n > 0 && before > 0 && n < (uint32_t)before;
        if (mgr.nodeConns != (valid ? (int)n : before)) die("Shrink left a wrong nodeConns");
      }
      break;
    }
    case 10: { /* Expand */
      MRConnManager *m = pick_mgr(in);
      uint32_t n = pick_size(in, true);
      uv_loop_t *l = pick_loop(in);
      int before = mgr.nodeConns;
      if (n <= 4096 && n > MAX_VALID_POOL) n = MAX_VALID_POOL; /* keep the socket count sane */
      MRConnManager_Expand(m, n, l);
      if (m && l && mgr_live) {
        /* Above 4096 is clamped to 4096 (the pools then fill on the loop, in slices). */
        int64_t size = n > 4096 ? 4096 : (int64_t)n;
        bool valid = size > before;
        if (mgr.nodeConns != (valid ? (int)size : before)) die("Expand left a wrong nodeConns");
      }
      break;
    }
    case 11:
      fill_state(in);
      break;
    case 12: { /* GetNodeState */
      const char *s = MRConnManager_GetNodeState(pick_mgr(in), pick_id(in));
      if (s && strlen(s) > 32) die("GetNodeState returned a strange string");
      break;
    }
    case 13: { /* drain deadline */
      static const uint32_t ms[] = {0, 1, 5, 50, 1000, UINT32_MAX};
      MRConnManager_SetDrainTimeout(ms[u8(in) % 6]);
      break;
    }
    case 14: { /* drain stats */
      MRConnDrainStats st;
      uint8_t f = u8(in);
      int rc = MRConnManager_GetDrainStats(f & 1 ? NULL : &mgr, f & 2 ? NULL : &st);
      if (rc == REDIS_OK && (!mgr_live || (f & 3))) die("GetDrainStats succeeded on bad input");
      break;
    }
    case 15: case 16: /* let the loop turn */
      pump_for(u8(in) % 13);
      break;
    case 17: { /* Shutdown (also twice, or of NULL); Init again after it */
      uint8_t f = u8(in);
      if (f % 4 == 0) {
        MRConnManager_Shutdown(NULL);
      } else if (!mgr_live && f % 4 == 1) {
        MRConnManager_Init(&mgr, (int)(u8(in) % (MAX_VALID_POOL + 1)) - (f & 0x80 ? 3 : 0));
        mgr_live = true;
      } else {
        do_shutdown(&mgr);
      }
      break;
    }
    case 18: { /* the environment */
      uint8_t f = u8(in);
      switch (f % 5) {
        case 0: host_set_enterprise(f & 8); break;
        case 1: host_set_internal_secret("s\0cret", f & 8 ? 6 : 0); break;
        case 2: resp_server_drop_all(resp); break;
        case 3: {
          static const struct timeval tv[] = {{0, 0}, {0, 1000}, {0, 20000}};
          clusterConfig.connectTimeout = tv[(f >> 3) % 3];
          break;
        }
        default: MRConnManager_Init(NULL, f); break;
      }
      break;
    }
    default: { /* what callbacks do; or ReplyState of no dict */
      uint8_t f = u8(in);
      if (f & 0x80) {
        cb_action = f & 7;
      } else {
        host_reply_reset();
        MRConnManager_ReplyState(NULL, f & 1 ? NULL : RSDummyContext);
      }
      break;
    }
  }
  return may_pump;
}

static void callback_action(void) {
  static unsigned turn;
  turn++;
  switch (cb_action) {
    case 1: { /* the next command, on a connection of the same node */
      MRConn *c = MRConn_Get(&mgr, "a");
      if (!c || nreqs >= MAX_REQS) break;
      req *q = &reqs[nreqs++];
      memset(q, 0, sizeof *q);
      q->accepted = true;
      MRCommand cmd = MR_NewCommand(2, "ECHO", "again");
      if (MRConn_SendCommand(c, &cmd, on_reply, q) != REDIS_OK) {
        if (q->calls) die("a refused command got a callback");
        q->accepted = false;
      }
      MRCommand_Free(&cmd);
      break;
    }
    case 2: MRConnManager_Shrink(&mgr, 1); break;
    case 3: MRConnManager_Expand(&mgr, (uint32_t)mgr.nodeConns + 1 > MAX_VALID_POOL ? 0 : (uint32_t)mgr.nodeConns + 1, &loop); break;
    case 4: MRConnManager_Disconnect(&mgr, turn % 2 ? "a" : "b"); break;
    case 5: {
      MREndpoint ep = {.host = "127.0.0.1", .port = turn % 2 ? refused_port : resp_port};
      MRConnManager_Add(&mgr, &loop, "a", &ep);
      break;
    }
    case 6: MRConnManager_SetDrainTimeout(turn % 2 ? 0 : 5000); break;
    default: {
      dict *d = dictCreate(&state_type, NULL);
      MRConnManager_FillStateDict(&mgr, d);
      free_state_dict(d);
      break;
    }
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  host_init();
  struct resp_server_opts opts = {.never_reply_to = "STALL"};
  resp = resp_server_start(&opts);
  if (!resp) die("cannot start the RESP server");
  resp_port = resp_server_port(resp);
  refused_port = harness_free_port();
  if (blackhole_listener(&blackhole_port) < 0) die("cannot start the blackhole listener");
  memset(long_id, 'n', sizeof long_id - 1);
  memset(big_arg, 'z', sizeof big_arg);
  big_arg[7] = '\0';
  for (size_t i = 0; i < sizeof many_strs / sizeof many_strs[0]; i++) {
    many_strs[i] = i % 2 ? "x" : "";
    many_lens[i] = i % 2;
  }
  many_strs[0] = "ECHO";
  many_lens[0] = 4;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input in = {data, size};
  if (uv_loop_init(&loop) != 0) die("uv_loop_init");
  nreqs = 0;
  cb_action = 0;
  pumped_ms = 0;
  cur = NULL;
  host_set_enterprise(true);
  clusterConfig.connectTimeout = (struct timeval){0, 0};
  MRConnManager_SetDrainTimeout(5000);
  uint8_t first = u8(&in);
  never_runs = first & 0x80;
  MRConnManager_Init(&mgr, (int)((first & 0x7f) % 5));
  mgr_live = true;

  for (int steps = 0; in.n > 0 && steps < 256; steps++) {
    if (run_op(&in)) pump_nowait();
  }

  /* Teardown as RediSearch does it: when the loop ran, Shutdown, close
   * what is left with NULL callbacks, one UV_RUN_ONCE; when it never ran,
   * Shutdown and one UV_RUN_ONCE, nothing else. */
  if (mgr_live) do_shutdown(&mgr);
  for (int i = 0; i < nreqs; i++) {
    if (reqs[i].accepted && reqs[i].calls != 1) die("an accepted command's callback did not run exactly once");
  }
  if (never_runs)
    uv_run(&loop, UV_RUN_ONCE);
  else
    loop_close_all_handles(&loop);
  if (uv_loop_close(&loop) != 0) die("uv_loop_close failed: a handle outlived the teardown");
  if (host_alloc_live_count() != 0) {
    fprintf(stderr, "fuzz_api: %zu blocks live after teardown\n", host_alloc_live_count());
    die("leak");
  }
  host_log_clear();
  host_reply_reset();
  return 0;
}
