// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for the module's growable arrays: a header sits just
// before the elements, and an array is handled by its element pointer.
#ifndef MRCONN_HOST_UTIL_ARR_H
#define MRCONN_HOST_UTIL_ARR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *array_t;

typedef struct {
  uint32_t len;
  uint16_t remain_cap;  // free element slots after the last one
  uint16_t elem_sz;
  char buf[];
} array_hdr_t;

// An array of len (uninitialized) elements with room for remain_cap more.
array_t array_new_sz(uint16_t elem_sz, uint16_t remain_cap, uint32_t len);
// Appends n elements copied from src, growing arr if needed; returns the
// possibly moved array. arr must not be NULL and must hold elem_sz elements.
array_t array_ensure_append_n_func(array_t arr, array_t src, uint16_t n, uint16_t elem_sz);
// The element count; 0 for NULL.
uint32_t array_len_func(array_t arr);
// Frees the array; NULL is ignored.
void array_free(array_t arr);

static inline uint32_t array_len(array_t arr) {
  return arr ? ((const array_hdr_t *)arr - 1)->len : 0;
}

#ifdef __cplusplus
}
#endif

#endif
