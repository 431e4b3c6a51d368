// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for the Redis config readers. All three must be called
// with the GIL held; values come from host_config_set().
#ifndef MRCONN_HOST_CONFIG_H
#define MRCONN_HOST_CONFIG_H

#include <stdbool.h>

#include "redismodule.h"

#ifdef __cplusplus
extern "C" {
#endif

// A new string the caller frees with RedisModule_FreeString, or NULL if unset.
RedisModuleString *getRedisConfigValue(RedisModuleCtx *ctx, const char *confName);
// "yes" / "no" (case-insensitive); defaultValue when unset or anything else.
bool getRedisConfigBool(RedisModuleCtx *ctx, const char *confName, bool defaultValue);
// A base-10 integer; defaultValue when unset or not a number.
long long getRedisConfigNumeric(RedisModuleCtx *ctx, const char *confName,
                                long long defaultValue);

#ifdef __cplusplus
}
#endif

#endif
