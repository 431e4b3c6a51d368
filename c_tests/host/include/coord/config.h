// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for the coordinator's cluster configuration.
#ifndef MRCONN_HOST_COORD_CONFIG_H
#define MRCONN_HOST_COORD_CONFIG_H

#include <stddef.h>
#include <sys/time.h>

// Like RediSearch's coord/config.h, this brings in the getRedisConfig* declarations.
#include "../config.h"
#include "../redismodule.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  ClusterType_RedisOSS = 0,
  ClusterType_RedisLabs = 1,
} MRClusterType;

typedef struct {
  MRClusterType type;
  int timeoutMS;
  size_t connPerShard;
  size_t cursorReplyThreshold;
  size_t coordinatorPoolSize;
  size_t coordinatorIOThreads;
  size_t topologyValidationTimeoutMS;
  struct timeval connectTimeout;
} SearchClusterConfig;

// Starts as OSS with connectTimeout {0, 0}; tests change it directly.
extern SearchClusterConfig clusterConfig;

#ifdef __cplusplus
}
#endif

#endif
