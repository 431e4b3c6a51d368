// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for the module-level globals mrconn uses.
#ifndef MRCONN_HOST_MODULE_H
#define MRCONN_HOST_MODULE_H

#include <stdbool.h>

#include "redismodule.h"

#ifdef __cplusplus
extern "C" {
#endif

// Whether the module runs on Redis Enterprise (see host_set_enterprise).
bool IsEnterprise(void);

// The context the module logs with; never NULL.
extern RedisModuleCtx *RSDummyContext;

#ifdef __cplusplus
}
#endif

#endif
