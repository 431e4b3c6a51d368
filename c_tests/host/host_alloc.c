// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The counting allocator behind RedisModule_Alloc & co.
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host_internal.h"
#include "mrconn_test_host.h"

#define MAGIC_LIVE UINT64_C(0x6d72636f6e6e4c56)
#define MAGIC_FREED UINT64_C(0x6d72636f6e6e4644)

// glibc reuses the first 16 bytes of a freed chunk, which would hide a
// double free: the magic sits past them, right before the user's bytes.
typedef struct {
  size_t size;
  uint64_t reserved[2];  // pads the magic past glibc's bytes and keeps alignment
  uint64_t magic;
} block_header;

_Static_assert(sizeof(block_header) % _Alignof(max_align_t) == 0, "user pointer alignment");
_Static_assert(offsetof(block_header, magic) >= 16, "magic survives free");

static atomic_size_t live_count;
static atomic_size_t live_bytes;
static atomic_uint_least64_t total_count;

static void *track(block_header *hdr, size_t size) {
  if (!hdr) host_fatal("out of memory allocating %zu bytes", size);
  hdr->magic = MAGIC_LIVE;
  hdr->size = size;
  atomic_fetch_add(&live_count, 1);
  atomic_fetch_add(&live_bytes, size);
  atomic_fetch_add(&total_count, 1);
  return hdr + 1;
}

// Validates a user pointer and removes its block from the live counts.
static block_header *untrack(void *ptr, const char *caller) {
  block_header *hdr = (block_header *)ptr - 1;
  if (hdr->magic == MAGIC_FREED) host_fatal("%s(%p): double free", caller, ptr);
  if (hdr->magic != MAGIC_LIVE)
    host_fatal("%s(%p): not allocated by RedisModule_Alloc & co. (or header overwritten)",
               caller, ptr);
  hdr->magic = MAGIC_FREED;
  atomic_fetch_sub(&live_count, 1);
  atomic_fetch_sub(&live_bytes, hdr->size);
  return hdr;
}

static size_t block_size(size_t bytes) {
  if (bytes > SIZE_MAX - sizeof(block_header)) host_fatal("allocation of %zu bytes", bytes);
  return sizeof(block_header) + bytes;
}

void *host_rm_alloc(size_t bytes) {
  return track(malloc(block_size(bytes)), bytes);
}

void *host_rm_calloc(size_t nmemb, size_t size) {
  if (size && nmemb > SIZE_MAX / size) host_fatal("calloc(%zu, %zu) overflows", nmemb, size);
  return track(calloc(1, block_size(nmemb * size)), nmemb * size);
}

// As in Redis: realloc(NULL, n) allocates, realloc(p, 0) frees.
void *host_rm_realloc(void *ptr, size_t bytes) {
  if (!ptr) return host_rm_alloc(bytes);
  if (bytes == 0) {
    host_rm_free(ptr);
    return NULL;
  }
  block_header *hdr = untrack(ptr, "RedisModule_Realloc");
  block_header *moved = realloc(hdr, block_size(bytes));
  if (!moved) host_fatal("out of memory reallocating to %zu bytes", bytes);
  return track(moved, bytes);
}

void host_rm_free(void *ptr) {
  if (ptr) free(untrack(ptr, "RedisModule_Free"));
}

char *host_rm_strdup(const char *str) {
  size_t len = strlen(str) + 1;
  return memcpy(host_rm_alloc(len), str, len);
}

size_t host_alloc_live_count(void) {
  return atomic_load(&live_count);
}

size_t host_alloc_live_bytes(void) {
  return atomic_load(&live_bytes);
}

uint64_t host_alloc_total_count(void) {
  return atomic_load(&total_count);
}
