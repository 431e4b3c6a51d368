// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The module API function pointers, module globals and host_init.
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "coord/config.h"
#include "hiredis/alloc.h"
#include "host_internal.h"
#include "module.h"
#include "mrconn_test_host.h"

// Statically initialized so that a test that forgets host_init still works.
void *(*RedisModule_Alloc)(size_t) = host_rm_alloc;
void *(*RedisModule_Calloc)(size_t, size_t) = host_rm_calloc;
void *(*RedisModule_Realloc)(void *, size_t) = host_rm_realloc;
void (*RedisModule_Free)(void *) = host_rm_free;
char *(*RedisModule_Strdup)(const char *) = host_rm_strdup;
void (*RedisModule_Log)(RedisModuleCtx *, const char *, const char *, ...) = host_rm_log;
int (*RedisModule_ReplyWithMap)(RedisModuleCtx *, long) = host_rm_reply_with_map;
int (*RedisModule_ReplyWithArray)(RedisModuleCtx *, long) = host_rm_reply_with_array;
int (*RedisModule_ReplyWithCString)(RedisModuleCtx *, const char *) = host_rm_reply_with_cstring;
void (*RedisModule_ThreadSafeContextLock)(RedisModuleCtx *) = host_rm_lock;
void (*RedisModule_ThreadSafeContextUnlock)(RedisModuleCtx *) = host_rm_unlock;
const char *(*RedisModule_GetInternalSecret)(RedisModuleCtx *, size_t *) =
    host_rm_get_internal_secret;
const char *(*RedisModule_StringPtrLen)(const RedisModuleString *, size_t *) =
    host_rm_string_ptr_len;
void (*RedisModule_FreeString)(RedisModuleCtx *, RedisModuleString *) = host_rm_free_string;

// Never dereferenced by the host; only its address matters.
static char dummy_context;
RedisModuleCtx *RSDummyContext = (RedisModuleCtx *)&dummy_context;

SearchClusterConfig clusterConfig = {
    .type = ClusterType_RedisOSS,
    .connectTimeout = {0, 0},
};

RSConfig RSGlobalConfig = {
    .requestConfigParams.queryTimeoutMS = 500,
    .requestConfigParams.timeoutPolicy = TimeoutPolicy_Return,
};

static atomic_bool enterprise;

bool IsEnterprise(void) {
  return atomic_load(&enterprise);
}

void host_set_enterprise(bool on) {
  atomic_store(&enterprise, on);
}

void host_fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("mrconn test host: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

void host_init(void) {
  RedisModule_Alloc = host_rm_alloc;
  RedisModule_Calloc = host_rm_calloc;
  RedisModule_Realloc = host_rm_realloc;
  RedisModule_Free = host_rm_free;
  RedisModule_Strdup = host_rm_strdup;
  RedisModule_Log = host_rm_log;
  RedisModule_ReplyWithMap = host_rm_reply_with_map;
  RedisModule_ReplyWithArray = host_rm_reply_with_array;
  RedisModule_ReplyWithCString = host_rm_reply_with_cstring;
  RedisModule_ThreadSafeContextLock = host_rm_lock;
  RedisModule_ThreadSafeContextUnlock = host_rm_unlock;
  RedisModule_GetInternalSecret = host_rm_get_internal_secret;
  RedisModule_StringPtrLen = host_rm_string_ptr_len;
  RedisModule_FreeString = host_rm_free_string;

  hiredisAllocFuncs funcs = {
      .mallocFn = host_rm_alloc,
      .callocFn = host_rm_calloc,
      .reallocFn = host_rm_realloc,
      .strdupFn = host_rm_strdup,
      .freeFn = host_rm_free,
  };
  hiredisSetAllocators(&funcs);
}
