// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The send of the hot path (MRConn_SendCommand), compiled against the real
// hiredis headers, like glue.c (inside RediSearch: its deps/hiredis). Its own
// file so that c_tests/test_send_path.c can compile it beside hiredis's own
// path and compare the two.
//
// hiredis's redisAsyncFormattedCommand (__redisAsyncCommand in async.c)
// re-parses every command (strtol, strchr, strncasecmp) to spot
// (P)SUBSCRIBE, (P)UNSUBSCRIBE and MONITOR, which need bookkeeping; that
// parse costs about 270 of the ~850 instructions of a send
// (scripts/bench.sh). For any other command it does four things, which
// mrconn_send_formatted does itself:
//   1. refuses (REDIS_ERR) when the context is DISCONNECTING or FREEING;
//   2. pushes a heap callback record (hi_malloc) on ac->replies, or on
//      ac->sub.replies when the context is SUBSCRIBED;
//   3. appends the bytes with __redisAppendCommand (its result ignored);
//   4. schedules a write with _EL_ADD_WRITE (refreshTimeout, then addWrite).
// Commands whose name could be one of those (first letter s, u or m, after
// an optional p, in any case), malformed input, and a failed allocation go
// to hiredis's own path, so behaviour is identical for every input.
//
// Checked against async.c, async.h, async_private.h and alloc.h of hiredis
// 1.3.0 and of bd01f10 (RediSearch's deps/hiredis, 1.3.0 + 7 commits); the
// same files ship in 1.4.0 and 1.5.0. build.rs pins async.c, async_private.h
// and alloc.h by content (src/glue/hiredis_verified.txt); the
// _Static_asserts below pin the types and flags this file relies on.
//
// MRCONN_SEND_VIA_HIREDIS keeps hiredis's public path: build.rs defines it
// for MRCONN_SEND_PATH=hiredis (for comparison), and when async_private.h or
// alloc.h is not a verified content.

#include <stddef.h>

#include "hiredis/hiredis.h"
#include "hiredis/async.h"
#include "hiredis/sds.h"

int mrconn_send_formatted(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, const char *cmd);

#ifdef MRCONN_SEND_VIA_HIREDIS

int mrconn_send_formatted(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, const char *cmd) {
  return redisAsyncFormattedCommand(ac, fn, privdata, cmd, sdslen((sds)cmd));
}

#else

#include "hiredis/alloc.h"
// _EL_ADD_WRITE and refreshTimeout, exactly as async.c uses them.
#include "hiredis/async_private.h"

// Global in hiredis.c but in no header: async.c declares it the same way.
int __redisAppendCommand(redisContext *c, const char *cmd, size_t len);

#define SAME_TYPE(expr, type) \
  _Static_assert(__builtin_types_compatible_p(__typeof__(expr), type), #expr " differs from the hiredis send.c was checked against")

// The flags it reads, with hiredis 1.3.0's values.
_Static_assert(REDIS_CONNECTED == 0x2 && REDIS_DISCONNECTING == 0x4 && REDIS_FREEING == 0x8 &&
                   REDIS_SUBSCRIBED == 0x20,
               "hiredis context flags differ from hiredis 1.3.0");
SAME_TYPE(((redisContext *)0)->flags, int);
// redisCallback: exactly the five fields it initialises, nothing else.
SAME_TYPE(((redisCallback *)0)->next, struct redisCallback *);
SAME_TYPE(((redisCallback *)0)->fn, redisCallbackFn *);
SAME_TYPE(((redisCallback *)0)->pending_subs, int);
SAME_TYPE(((redisCallback *)0)->unsubscribe_sent, int);
SAME_TYPE(((redisCallback *)0)->privdata, void *);
_Static_assert(sizeof(redisCallback) == 3 * sizeof(void *) + 2 * sizeof(int),
               "redisCallback has fields hiredis 1.3.0 lacks");
// redisCallbackList: a head and a tail, both where it pushes.
SAME_TYPE(((redisCallbackList *)0)->head, redisCallback *);
SAME_TYPE(((redisCallbackList *)0)->tail, redisCallback *);
_Static_assert(sizeof(redisCallbackList) == 2 * sizeof(void *), "redisCallbackList differs from hiredis 1.3.0");
SAME_TYPE(((redisAsyncContext *)0)->replies, redisCallbackList);
SAME_TYPE(((redisAsyncContext *)0)->sub.replies, redisCallbackList);
// The allocator hi_malloc reads, and the write hook _EL_ADD_WRITE calls.
SAME_TYPE(hiredisAllocFns, hiredisAllocFuncs);
SAME_TYPE(hiredisAllocFns.mallocFn, void *(*)(size_t));
SAME_TYPE(((redisAsyncContext *)0)->ev.addWrite, void (*)(void *));
SAME_TYPE(((redisAsyncContext *)0)->ev.scheduleTimer, void (*)(void *, struct timeval));
SAME_TYPE(((redisContext *)0)->command_timeout, struct timeval *);
SAME_TYPE(((redisContext *)0)->connect_timeout, struct timeval *);
SAME_TYPE(((redisContext *)0)->obuf, sds);

// Whether hiredis would take its plain-command branch for `cmd`. Finds the
// command name as async.c's nextArgument does (the first '$', then the first
// '\r' from there), drops a leading p as async.c does (PSUBSCRIBE,
// PUNSUBSCRIBE), and rules out every name then starting with s, u or m: that
// covers every name async.c compares (strncasecmp, C locale). Malformed
// input is left to hiredis (which asserts).
static int plain_command(const char *cmd) {
  const char *p = cmd;
  while (*p != '$') {
    if (*p++ == '\0') return 0;
  }
  while (*p != '\r') {
    if (*p++ == '\0') return 0;
  }
  if (p[1] == '\0' || p[2] == '\0') return 0;
  const char *name = p + 2;
  // x | 0x20 maps exactly the upper- and lower-case letter to the latter.
  char first = (char)(name[0] | 0x20);
  if (first == 'p') first = (char)(name[1] | 0x20);
  return first != 's' && first != 'u' && first != 'm';
}

int mrconn_send_formatted(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, const char *cmd) {
  redisContext *c = &ac->c;
  size_t len = sdslen((sds)cmd);
  if (c->flags & (REDIS_DISCONNECTING | REDIS_FREEING)) return REDIS_ERR;
  if (!plain_command(cmd)) return redisAsyncFormattedCommand(ac, fn, privdata, cmd, len);
  redisCallback *cb = hi_malloc(sizeof *cb);
  // hiredis allocates again and reports the failure its own way.
  if (cb == NULL) return redisAsyncFormattedCommand(ac, fn, privdata, cmd, len);
  cb->next = NULL;
  cb->fn = fn;
  cb->pending_subs = 1; // as hiredis sets them; read only for subscriptions
  cb->unsubscribe_sent = 0;
  cb->privdata = privdata;
  redisCallbackList *list = (c->flags & REDIS_SUBSCRIBED) ? &ac->sub.replies : &ac->replies;
  if (list->head == NULL) list->head = cb;
  if (list->tail != NULL) list->tail->next = cb;
  list->tail = cb;
  __redisAppendCommand(c, cmd, len);
  _EL_ADD_WRITE(ac);
  return REDIS_OK;
}

#endif
