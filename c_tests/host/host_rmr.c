// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Endpoints, commands and replies of the coordinator.
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "hiredis/alloc.h"
#include "host_internal.h"
#include "rmr/command.h"
#include "rmr/endpoint.h"
#include "rmr/reply.h"

// The contract's offsets, identical with and without isTls.
_Static_assert(offsetof(MREndpoint, host) == 0, "MREndpoint.host");
_Static_assert(offsetof(MREndpoint, port) == 8, "MREndpoint.port");
#ifndef MRCONN_HOST_V880
_Static_assert(offsetof(MREndpoint, isTls) == 12, "MREndpoint.isTls");
#endif
_Static_assert(offsetof(MREndpoint, unixSock) == 16, "MREndpoint.unixSock");
_Static_assert(offsetof(MREndpoint, password) == 24, "MREndpoint.password");
_Static_assert(sizeof(MREndpoint) == 32, "MREndpoint size");

static char *dup_or_null(const char *str) {
  return str ? RedisModule_Strdup(str) : NULL;
}

static bool strings_equal(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

void MREndpoint_Copy(MREndpoint *dst, const MREndpoint *src) {
  *dst = *src;
  dst->host = dup_or_null(src->host);
  dst->unixSock = dup_or_null(src->unixSock);
  dst->password = dup_or_null(src->password);
}

void MREndpoint_Free(MREndpoint *ep) {
  RedisModule_Free(ep->host);
  RedisModule_Free(ep->unixSock);
  RedisModule_Free(ep->password);
  ep->host = ep->unixSock = ep->password = NULL;
}

bool MREndpoint_Equal(const MREndpoint *a, const MREndpoint *b) {
  return strings_equal(a->host, b->host) && a->port == b->port &&
#ifndef MRCONN_HOST_V880
         a->isTls == b->isTls &&
#endif
         strings_equal(a->unixSock, b->unixSock) && strings_equal(a->password, b->password);
}

MRCommand MR_NewCommandArgvLen(int argc, const char **argv, const size_t *lens) {
  if (argc < 0) host_fatal("MR_NewCommandArgvLen: argc %d", argc);
  MRCommand cmd = {0};
  cmd.num = (uint32_t)argc;
  cmd.strs = RedisModule_Alloc(sizeof(*cmd.strs) * cmd.num);
  cmd.lens = RedisModule_Alloc(sizeof(*cmd.lens) * cmd.num);
  for (uint32_t i = 0; i < cmd.num; i++) {
    cmd.lens[i] = lens[i];
    cmd.strs[i] = RedisModule_Alloc(lens[i] + 1);
    memcpy(cmd.strs[i], argv[i], lens[i]);
    cmd.strs[i][lens[i]] = '\0';
  }
  return cmd;
}

MRCommand MR_NewCommand(int argc, ...) {
  if (argc < 0) host_fatal("MR_NewCommand: argc %d", argc);
  const char **argv = RedisModule_Alloc(sizeof(*argv) * (size_t)argc);
  size_t *lens = RedisModule_Alloc(sizeof(*lens) * (size_t)argc);
  va_list ap;
  va_start(ap, argc);
  for (int i = 0; i < argc; i++) {
    argv[i] = va_arg(ap, const char *);
    lens[i] = strlen(argv[i]);
  }
  va_end(ap);
  MRCommand cmd = MR_NewCommandArgvLen(argc, argv, lens);
  RedisModule_Free(argv);
  RedisModule_Free(lens);
  return cmd;
}

void MRCommand_Free(MRCommand *cmd) {
  for (uint32_t i = 0; i < cmd->num; i++) RedisModule_Free(cmd->strs[i]);
  RedisModule_Free(cmd->strs);
  RedisModule_Free(cmd->lens);
  if (cmd->cmd) sdsfree(cmd->cmd);
  *cmd = (MRCommand){0};
}

MRReply *MRReply_CreateError(const char *msg, size_t len) {
  if (!msg || len == 0) host_fatal("MRReply_CreateError: empty message");
  MRReply *reply = hi_calloc(1, sizeof *reply);
  char *str = hi_malloc(len + 1);
  if (!reply || !str) host_fatal("MRReply_CreateError: out of memory");
  memcpy(str, msg, len);
  str[len] = '\0';
  reply->type = REDIS_REPLY_ERROR;
  reply->len = len;
  reply->str = str;
  return reply;
}

void MRReply_Free(MRReply *reply) {
  if (reply) freeReplyObject(reply);
}

int MRReply_Type(const MRReply *reply) {
  return reply ? reply->type : 0;
}

const char *MRReply_String(const MRReply *reply, size_t *len) {
  bool textual = reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
                           reply->type == REDIS_REPLY_ERROR || reply->type == REDIS_REPLY_VERB);
  if (len) *len = textual ? reply->len : 0;
  return textual ? reply->str : NULL;
}
