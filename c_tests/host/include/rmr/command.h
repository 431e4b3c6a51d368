// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for a coordinator command, plus constructors for tests.
#ifndef MRCONN_HOST_RMR_COMMAND_H
#define MRCONN_HOST_RMR_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hiredis/sds.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  C_READ = 0,
  C_DEL = 1,
  C_AGG = 2,
  C_PROFILE = 3,
} MRRootCommand;

typedef struct {
  char **strs;
  size_t *lens;
  uint32_t num;
  uint32_t slotsInfoArgIndex;
  uint32_t dispatchTimeArgIndex;
  char *targetShard;
  uint16_t targetShardIdx;
  unsigned char protocol;  // 0 (leave as is), 2 or 3
  bool forCursor;
  bool forProfiling;
  bool depleted;
  MRRootCommand rootCommand;
  sds cmd;  // the formatted command, owned by the command once set
  uint64_t coordStartTime;
} MRCommand;

// A command holding copies of argv (binary-safe), protocol 0, cmd NULL.
MRCommand MR_NewCommandArgvLen(int argc, const char **argv, const size_t *lens);
// Same, from argc C strings.
MRCommand MR_NewCommand(int argc, ...);
// Frees the arguments and cmd->cmd (sdsfree), then zeroes *cmd.
void MRCommand_Free(MRCommand *cmd);

#ifdef __cplusplus
}
#endif

#endif
