// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The ABI of conn.h, as CONTRACT.md states it, checked by the C compiler.
// Standalone it compiles against mrconn's generated include/conn.h; inside
// RediSearch (cmake/redisearch.cmake) against RediSearch's own
// src/coord/rmr/conn.h. Both must match the types written here, so the two
// headers agree, and any drift breaks the build.
#include <stddef.h>
#include <stdint.h>

#ifndef MRCONN_CONN_HEADER
#define MRCONN_CONN_HEADER "conn.h"
#endif
#include MRCONN_CONN_HEADER

_Static_assert(sizeof(MRConnManager) == 16, "MRConnManager is 16 bytes");
_Static_assert(offsetof(MRConnManager, map) == 0, "MRConnManager.map at 0");
_Static_assert(offsetof(MRConnManager, nodeConns) == 8, "MRConnManager.nodeConns at 8");
_Static_assert(__builtin_types_compatible_p(__typeof__(((MRConnManager *)0)->map), dict *), "map is a dict *");
_Static_assert(__builtin_types_compatible_p(__typeof__(((MRConnManager *)0)->nodeConns), int), "nodeConns is int");

_Static_assert(MRConn_Connecting == 0 && MRConn_Reconnecting == 1 && MRConn_Authenticating == 2 &&
                   MRConn_ReAuth == 3 && MRConn_Connected == 4 && MRConn_Freeing == 5,
               "MRConnState values");
_Static_assert(MRConn_Protocol_Undetermined == 0 && MRConn_Protocol_RESP2 == 2 && MRConn_Protocol_RESP3 == 3,
               "MRConnProtocol values");
_Static_assert(sizeof(MRConnState) == sizeof(int), "MRConnState is an int-sized enum");

// Every function, assigned to a pointer of the contract's exact type
// (-Werror=incompatible-pointer-types turns a mismatch into an error).
void (*const mrconn_abi_init)(MRConnManager *, int) = MRConnManager_Init;
void (*const mrconn_abi_reply_state)(dict *, RedisModuleCtx *) = MRConnManager_ReplyState;
void (*const mrconn_abi_fill_state)(MRConnManager *, dict *) = MRConnManager_FillStateDict;
MRConn *(*const mrconn_abi_get)(MRConnManager *, const char *) = MRConn_Get;
const char *(*const mrconn_abi_node_state)(MRConnManager *, const char *) = MRConnManager_GetNodeState;
int (*const mrconn_abi_send)(MRConn *, MRCommand *, redisCallbackFn *, void *) = MRConn_SendCommand;
bool (*const mrconn_abi_add)(MRConnManager *, uv_loop_t *, const char *, MREndpoint *) = MRConnManager_Add;
int (*const mrconn_abi_disconnect)(MRConnManager *, const char *) = MRConnManager_Disconnect;
void (*const mrconn_abi_shrink)(MRConnManager *, uint32_t) = MRConnManager_Shrink;
void (*const mrconn_abi_expand)(MRConnManager *, uint32_t, uv_loop_t *) = MRConnManager_Expand;
void (*const mrconn_abi_shutdown)(MRConnManager *) = MRConnManager_Shutdown;
const char *(*const mrconn_abi_state_str)(MRConnState) = MRConnState_Str;

#define SAME_TYPE(a, b) _Static_assert(__builtin_types_compatible_p(__typeof__(a), __typeof__(b)), #a " type")
SAME_TYPE(&MRConnManager_Init, mrconn_abi_init);
SAME_TYPE(&MRConnManager_ReplyState, mrconn_abi_reply_state);
SAME_TYPE(&MRConnManager_FillStateDict, mrconn_abi_fill_state);
SAME_TYPE(&MRConn_Get, mrconn_abi_get);
SAME_TYPE(&MRConnManager_GetNodeState, mrconn_abi_node_state);
SAME_TYPE(&MRConn_SendCommand, mrconn_abi_send);
SAME_TYPE(&MRConnManager_Add, mrconn_abi_add);
SAME_TYPE(&MRConnManager_Disconnect, mrconn_abi_disconnect);
SAME_TYPE(&MRConnManager_Shrink, mrconn_abi_shrink);
SAME_TYPE(&MRConnManager_Expand, mrconn_abi_expand);
SAME_TYPE(&MRConnManager_Shutdown, mrconn_abi_shutdown);
