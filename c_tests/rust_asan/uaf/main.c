// SPDX-License-Identifier: MIT OR Apache-2.0
// Calls the broken fixture; under ASan the process dies with a report.
#include <stdint.h>
#include <stdio.h>

uint64_t mrconn_asan_uaf(void);

int main(void) {
  printf("read %llu after free: AddressSanitizer missed it\n",
         (unsigned long long)mrconn_asan_uaf());
  return 0;
}
