// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Shared between the test host's translation units; not for tests.
#ifndef MRCONN_HOST_INTERNAL_H
#define MRCONN_HOST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "redismodule.h"

// Prints "mrconn test host: <message>" to stderr and aborts.
_Noreturn void host_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *host_rm_alloc(size_t bytes);
void *host_rm_calloc(size_t nmemb, size_t size);
void *host_rm_realloc(void *ptr, size_t bytes);
void host_rm_free(void *ptr);
char *host_rm_strdup(const char *str);

void host_rm_log(RedisModuleCtx *ctx, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int host_rm_reply_with_map(RedisModuleCtx *ctx, long len);
int host_rm_reply_with_array(RedisModuleCtx *ctx, long len);
int host_rm_reply_with_cstring(RedisModuleCtx *ctx, const char *str);

void host_rm_lock(RedisModuleCtx *ctx);
void host_rm_unlock(RedisModuleCtx *ctx);

const char *host_rm_get_internal_secret(RedisModuleCtx *ctx, size_t *len);
const char *host_rm_string_ptr_len(const RedisModuleString *str, size_t *len);
void host_rm_free_string(RedisModuleCtx *ctx, RedisModuleString *str);

#endif
