// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for a shard endpoint. Define MRCONN_HOST_V880 for the
// v8.8.0 layout, which lacks isTls (the field sits in what is otherwise
// padding, so no other offset moves).
#ifndef MRCONN_HOST_RMR_ENDPOINT_H
#define MRCONN_HOST_RMR_ENDPOINT_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct MREndpoint {
  char *host;
  int port;
#ifndef MRCONN_HOST_V880
  bool isTls;
#endif
  char *unixSock;
  char *password;
} MREndpoint;

// Deep copy into dst (strings through RedisModule_Strdup; NULL stays NULL).
void MREndpoint_Copy(MREndpoint *dst, const MREndpoint *src);
// Frees the strings (not ep itself) and sets them to NULL.
void MREndpoint_Free(MREndpoint *ep);
// Field-wise equality; NULL strings equal only NULL.
bool MREndpoint_Equal(const MREndpoint *a, const MREndpoint *b);

#ifdef __cplusplus
}
#endif

#endif
