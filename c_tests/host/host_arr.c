// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Growable arrays with their header before the elements.
#include <string.h>

#include "host_internal.h"
#include "util/arr/arr.h"

_Static_assert(sizeof(array_hdr_t) == 8, "array header layout");

static array_hdr_t *header_of(array_t arr) {
  return (array_hdr_t *)arr - 1;
}

array_t array_new_sz(uint16_t elem_sz, uint16_t remain_cap, uint32_t len) {
  array_hdr_t *hdr =
      RedisModule_Alloc(sizeof(*hdr) + ((size_t)len + remain_cap) * elem_sz);
  hdr->len = len;
  hdr->remain_cap = remain_cap;
  hdr->elem_sz = elem_sz;
  return hdr->buf;
}

array_t array_ensure_append_n_func(array_t arr, array_t src, uint16_t n, uint16_t elem_sz) {
  // Strict on purpose: the library must create arrays with array_new_sz.
  if (!arr) host_fatal("array_ensure_append_n_func: NULL array");
  array_hdr_t *hdr = header_of(arr);
  if (hdr->elem_sz != elem_sz)
    host_fatal("array_ensure_append_n_func: element size %u, array holds %u", elem_sz,
               hdr->elem_sz);
  if (hdr->remain_cap < n) {
    // Roughly double, within what the 16-bit spare count can describe.
    uint32_t spare = hdr->len > n ? hdr->len : n;
    if (spare > UINT16_MAX) spare = UINT16_MAX;
    hdr = RedisModule_Realloc(hdr, sizeof(*hdr) + ((size_t)hdr->len + spare) * elem_sz);
    hdr->remain_cap = (uint16_t)spare;
  }
  if (n) memcpy(hdr->buf + (size_t)hdr->len * elem_sz, src, (size_t)n * elem_sz);
  hdr->len += n;
  hdr->remain_cap -= n;
  return hdr->buf;
}

uint32_t array_len_func(array_t arr) {
  return array_len(arr);
}

void array_free(array_t arr) {
  if (arr) RedisModule_Free(header_of(arr));
}
