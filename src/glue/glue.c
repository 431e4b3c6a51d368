// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The C side of mrconn, compiled against the host's real headers (RediSearch's
// inside RediSearch, the test host's standalone):
//  - the static-inline helpers Rust cannot call (the hot-path send: send.c);
//  - constants whose values only the C headers know;
//  - compile-time checks that every host declaration in src/host.rs and every
//    layout in src/host/types.rs agrees with those headers. A mismatch is a
//    compile error, never undefined behaviour at run time.
// Every symbol here is hidden (-fvisibility=hidden) and prefixed mrconn_.

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "hiredis/hiredis.h"
#include "hiredis/sds.h"
#include "redismodule.h"
#include "module.h"
#include "coord/config.h"
#include "rmr/command.h"
#include "rmr/endpoint.h"
#include "rmr/reply.h"
#include "util/arr/arr.h"
#include "util/dict.h"

#include "mrconn_layout_checks.h"

#include "hiredis/alloc.h"
#include "hiredis/async.h"

// Frees a callback record taken off a reply list: hiredis allocated it with
// hi_malloc, and hi_free is static inline.
void mrconn_free_callback(redisCallback *cb) {
  hi_free(cb);
}

// src/pending.rs takes callback records off ac->replies / ac->sub.replies
// itself, frees them here, and relies on REDIS_IN_CALLBACK deferring a free,
// as async.c does: build.rs checks async.c's content against
// src/glue/hiredis_verified.txt in every build, whichever send path.

// RediSearch's query timeout (search-timeout) in ms when RediSearch itself
// enforces it on a shard that does not answer, else 0. With the `return`
// policy (RediSearch's default, search-on-timeout) the coordinator waits for
// every shard, however late: measured in a 3-shard cluster with a shard in
// DEBUG SLEEP 8, stock RediSearch answered in full after 7.8 s at
// search-timeout 500. With `fail` and `return-strict` it answers at the
// timeout. Read without the GIL (Shrink may run on Redis's main thread,
// which holds it): relaxed atomic loads of the aligned fields CONFIG SET
// rewrites.
long long mrconn_enforced_query_timeout_ms(void) {
  RSTimeoutPolicy policy =
      __atomic_load_n(&RSGlobalConfig.requestConfigParams.timeoutPolicy, __ATOMIC_RELAXED);
  if (policy == TimeoutPolicy_Return) return 0;
  return __atomic_load_n(&RSGlobalConfig.requestConfigParams.queryTimeoutMS, __ATOMIC_RELAXED);
}

const uint64_t mrconn_ssl_ctx_options = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3;
const int mrconn_ssl_verify_peer = SSL_VERIFY_PEER;
const int mrconn_ssl_filetype_pem = SSL_FILETYPE_PEM;
const int mrconn_reply_error = REDIS_REPLY_ERROR;

#define SAME_TYPE(expr, type) \
  _Static_assert(__builtin_types_compatible_p(__typeof__(expr), type), \
                 #expr " is not declared as src/host.rs assumes")

// Host globals (CONTRACT §6), as src/host.rs declares them.
SAME_TYPE(RedisModule_Alloc, void *(*)(size_t));
SAME_TYPE(RedisModule_Calloc, void *(*)(size_t, size_t));
SAME_TYPE(RedisModule_Realloc, void *(*)(void *, size_t));
SAME_TYPE(RedisModule_Free, void (*)(void *));
SAME_TYPE(RedisModule_Strdup, char *(*)(const char *));
SAME_TYPE(RedisModule_Log, void (*)(RedisModuleCtx *, const char *, const char *, ...));
SAME_TYPE(RedisModule_ReplyWithMap, int (*)(RedisModuleCtx *, long));
SAME_TYPE(RedisModule_ReplyWithArray, int (*)(RedisModuleCtx *, long));
SAME_TYPE(RedisModule_ReplyWithCString, int (*)(RedisModuleCtx *, const char *));
SAME_TYPE(RedisModule_ThreadSafeContextLock, void (*)(RedisModuleCtx *));
SAME_TYPE(RedisModule_ThreadSafeContextUnlock, void (*)(RedisModuleCtx *));
SAME_TYPE(RedisModule_GetInternalSecret, const char *(*)(RedisModuleCtx *, size_t *));
SAME_TYPE(RedisModule_StringPtrLen, const char *(*)(const RedisModuleString *, size_t *));
SAME_TYPE(RedisModule_FreeString, void (*)(RedisModuleCtx *, RedisModuleString *));
SAME_TYPE(RSDummyContext, RedisModuleCtx *);
SAME_TYPE(clusterConfig, SearchClusterConfig);
SAME_TYPE(&IsEnterprise, bool (*)(void));
SAME_TYPE(&getRedisConfigValue, RedisModuleString *(*)(RedisModuleCtx *, const char *));
#ifndef MRCONN_ENDPOINT_HAS_TLS
SAME_TYPE(&getRedisConfigBool, bool (*)(RedisModuleCtx *, const char *, bool));
SAME_TYPE(&getRedisConfigNumeric, long long (*)(RedisModuleCtx *, const char *, long long));
#endif

// Host functions.
SAME_TYPE(&RS_dictCreate, dict *(*)(dictType *, void *));
SAME_TYPE(&RS_dictFind, dictEntry *(*)(dict *, const void *));
SAME_TYPE(&RS_dictReplace, int (*)(dict *, void *, void *));
SAME_TYPE(&RS_dictDelete, int (*)(dict *, const void *));
SAME_TYPE(&RS_dictRelease, void (*)(dict *));
SAME_TYPE(&RS_dictGetIterator, dictIterator *(*)(dict *));
SAME_TYPE(&RS_dictNext, dictEntry *(*)(dictIterator *));
SAME_TYPE(&RS_dictReleaseIterator, void (*)(dictIterator *));
SAME_TYPE(&RS_dictAddOrFind, dictEntry *(*)(dict *, void *));
SAME_TYPE(&stringsHashFunction, uint64_t (*)(const void *));
SAME_TYPE(&stringsKeyDup, void *(*)(void *, const void *));
SAME_TYPE(&stringsKeyCompare, int (*)(void *, const void *, const void *));
SAME_TYPE(&stringsKeyDestructor, void (*)(void *, void *));
SAME_TYPE(&array_new_sz, array_t (*)(uint16_t, uint16_t, uint32_t));
SAME_TYPE(&array_ensure_append_n_func, array_t (*)(array_t, array_t, uint16_t, uint16_t));
SAME_TYPE(&array_len_func, uint32_t (*)(array_t));
SAME_TYPE(&MREndpoint_Copy, void (*)(MREndpoint *, const MREndpoint *));
SAME_TYPE(&MREndpoint_Free, void (*)(MREndpoint *));
SAME_TYPE(&MREndpoint_Equal, bool (*)(const MREndpoint *, const MREndpoint *));
SAME_TYPE(&MRReply_Type, int (*)(const MRReply *));
SAME_TYPE(&MRReply_String, const char *(*)(const MRReply *, size_t *));
SAME_TYPE(&MRReply_Free, void (*)(MRReply *));
SAME_TYPE(&MRReply_CreateError, MRReply *(*)(const char *, size_t));
SAME_TYPE(RSGlobalConfig.requestConfigParams.queryTimeoutMS, long long);
SAME_TYPE(RSGlobalConfig.requestConfigParams.timeoutPolicy, RSTimeoutPolicy);

// Field types the library reads or writes, beyond their offsets.
SAME_TYPE(((MRCommand *)0)->cmd, sds);
SAME_TYPE(((MRCommand *)0)->protocol, unsigned char);
SAME_TYPE(((dict *)0)->privdata, void *);
_Static_assert(sizeof(((MRCommand *)0)->rootCommand) == sizeof(int), "MRRootCommand is not int-sized");
_Static_assert(sizeof(((SearchClusterConfig *)0)->type) == sizeof(int), "MRClusterType is not int-sized");
_Static_assert(sizeof(((dictEntry *)0)->v) == sizeof(void *), "dictEntry.v is not pointer-sized");
