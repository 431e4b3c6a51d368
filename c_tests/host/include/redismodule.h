// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for the subset of the Redis module API that mrconn uses.
// As in the real API, every entry point is a global function pointer; the
// test host initializes them statically, and host_init() sets them again.
#ifndef MRCONN_HOST_REDISMODULE_H
#define MRCONN_HOST_REDISMODULE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REDISMODULE_OK 0
#define REDISMODULE_ERR 1

typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleString RedisModuleString;

extern void *(*RedisModule_Alloc)(size_t bytes);
extern void *(*RedisModule_Calloc)(size_t nmemb, size_t size);
extern void *(*RedisModule_Realloc)(void *ptr, size_t bytes);
extern void (*RedisModule_Free)(void *ptr);
extern char *(*RedisModule_Strdup)(const char *str);

extern void (*RedisModule_Log)(RedisModuleCtx *ctx, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

extern int (*RedisModule_ReplyWithMap)(RedisModuleCtx *ctx, long len);
extern int (*RedisModule_ReplyWithArray)(RedisModuleCtx *ctx, long len);
extern int (*RedisModule_ReplyWithCString)(RedisModuleCtx *ctx, const char *str);

extern void (*RedisModule_ThreadSafeContextLock)(RedisModuleCtx *ctx);
extern void (*RedisModule_ThreadSafeContextUnlock)(RedisModuleCtx *ctx);

extern const char *(*RedisModule_GetInternalSecret)(RedisModuleCtx *ctx, size_t *len);

extern const char *(*RedisModule_StringPtrLen)(const RedisModuleString *str, size_t *len);
extern void (*RedisModule_FreeString)(RedisModuleCtx *ctx, RedisModuleString *str);

#ifdef __cplusplus
}
#endif

#endif
