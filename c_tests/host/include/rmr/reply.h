// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for the coordinator's reply accessors over hiredis.
#ifndef MRCONN_HOST_RMR_REPLY_H
#define MRCONN_HOST_RMR_REPLY_H

#include <stddef.h>

#include "hiredis/hiredis.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct redisReply MRReply;

// freeReplyObject; NULL is ignored.
void MRReply_Free(MRReply *reply);
// The REDIS_REPLY_* type; 0 for NULL.
int MRReply_Type(const MRReply *reply);
// The text of a string, status, error or verbatim reply, else NULL.
// len (if not NULL) receives the length, 0 when NULL is returned.
const char *MRReply_String(const MRReply *reply, size_t *len);
// A new error reply holding a copy of msg[0..len) (len > 0, else fatal), to
// be freed with MRReply_Free; allocated as hiredis allocates replies.
MRReply *MRReply_CreateError(const char *msg, size_t len);

#ifdef __cplusplus
}
#endif

#endif
