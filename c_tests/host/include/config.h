// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for RediSearch's src/config.h: the module configuration
// and the Redis config readers. The readers must be called with the GIL held;
// their values come from host_config_set().
#ifndef MRCONN_HOST_CONFIG_H
#define MRCONN_HOST_CONFIG_H

#include <stdbool.h>

#include "redismodule.h"

#ifdef __cplusplus
extern "C" {
#endif

// RediSearch's module configuration, reduced to what the library reads: the
// query timeout (search-timeout) in ms, 0 meaning unlimited, and what a query
// does when it expires (search-on-timeout). The real RSConfig has many more
// fields; code reaches these by name only.
typedef enum {
  TimeoutPolicy_Return,
  TimeoutPolicy_Fail,
  TimeoutPolicy_ReturnStrict,
  TimeoutPolicy_Invalid
} RSTimeoutPolicy;

typedef struct {
  long long queryTimeoutMS;
  RSTimeoutPolicy timeoutPolicy;
} RequestConfig;

typedef struct {
  RequestConfig requestConfigParams;
} RSConfig;

// Starts with RediSearch's defaults, 500 ms and TimeoutPolicy_Return; tests
// change it directly.
extern RSConfig RSGlobalConfig;

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
