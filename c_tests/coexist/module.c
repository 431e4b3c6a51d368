// SPDX-License-Identifier: MIT OR Apache-2.0
//
// A stand-in for the RediSearch module in the coexistence test: a shared
// object linked like RediSearch's (-shared -Wl,-Bsymbolic,-Bsymbolic-functions)
// from libmrconn_c.a and a second, unrelated Rust staticlib.
#include <stdint.h>
#include <string.h>

#include "conn.h"
#include "mrconn_test_host.h"

uint64_t coexist_other_sum(uint32_t n);

// Uses both Rust libraries; returns 0 when both work and nothing leaked.
int coexist_module_run(void) {
  host_init();
  if (coexist_other_sum(100) != 5050) return 1;
  uv_loop_t loop;
  uv_loop_init(&loop);
  MRConnManager mgr;
  MRConnManager_Init(&mgr, 2);
  // Port 1 refuses: the pool exists and reports its state either way.
  MREndpoint ep = {.host = "127.0.0.1", .port = 1};
  if (!MRConnManager_Add(&mgr, &loop, "n1", &ep)) return 2;
  const char *state = MRConnManager_GetNodeState(&mgr, "n1");
  if (!state || (strcmp(state, "Connecting") != 0 && strcmp(state, "Reconnecting") != 0)) return 3;
  if (coexist_other_sum(10) != 55) return 4;
  MRConnManager_Shutdown(&mgr);
  uv_run(&loop, UV_RUN_ONCE);
  if (uv_loop_close(&loop) != 0) return 5;
  return host_alloc_live_count() == 0 ? 0 : 6;
}
