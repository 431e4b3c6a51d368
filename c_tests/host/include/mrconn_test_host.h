// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Control and inspection API of the mrconn test host: the stand-in for what
// RediSearch offers the library at link time.
#ifndef MRCONN_TEST_HOST_H
#define MRCONN_TEST_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// Sets every RedisModule_* pointer to the host's implementation (they start
// out that way already) and routes hiredis's allocations through the counting
// allocator, as RediSearch does. Call it first, before anything allocates
// through hiredis: memory must be freed by the allocator that made it.
void host_init(void);

// Counting allocator behind RedisModule_Alloc & co. (and hiredis after
// host_init). Freeing a foreign pointer or freeing twice aborts.
size_t host_alloc_live_count(void);   // blocks allocated and not yet freed
size_t host_alloc_live_bytes(void);   // bytes in those blocks
uint64_t host_alloc_total_count(void);  // Alloc/Calloc/Strdup/Realloc calls that
                                        // returned memory, since start

// Log sink behind RedisModule_Log. Keeps the most recent HOST_LOG_CAPACITY
// lines. Lines logged with a level other than debug/verbose/notice/warning
// are stored under level "BADLEVEL". Setting MRCONN_TEST_LOG in the
// environment echoes every line to stderr as "[level] message".
#define HOST_LOG_CAPACITY 16384
void host_log_clear(void);
// Lines whose level equals level and whose message contains substr; NULL
// matches anything.
int host_log_count(const char *level, const char *substr);
// The oldest matching message as a malloc'd string (release with free()),
// or NULL.
char *host_log_find(const char *level, const char *substr);
void host_log_dump(FILE *f);
// When the oldest matching line was logged, in microseconds of
// CLOCK_MONOTONIC (the harness's now_us() clock); 0 if none matches.
uint64_t host_log_time_us(const char *level, const char *substr);

// IsEnterprise() result; false by default.
void host_set_enterprise(bool on);

// The secret RedisModule_GetInternalSecret returns (binary-safe; copied).
// Default: "test-internal-secret". Pointers returned earlier stay valid.
void host_set_internal_secret(const char *secret, size_t len);

// RedisModule_ThreadSafeContextLock/Unlock take a real mutex (the GIL).
// Calls to RedisModule_GetInternalSecret or getRedisConfig* from a thread not
// holding it, and unlocks without the lock, count as violations. Locking
// twice from one thread would deadlock in Redis: it aborts here.
int host_gil_violations(void);

// Redis config values read by getRedisConfigValue/Bool/Numeric.
void host_config_set(const char *name, const char *value /* NULL removes */);
void host_config_clear(void);

// Recorder behind RedisModule_ReplyWithMap/Array/CString. The text renders
// a map as {k:v,k:v}, an array as [a,b], a string as "text" (a quote or a
// backslash in it gets a backslash before it); successive top-level replies
// are concatenated.
void host_reply_reset(void);         // clears the text and the call count
const char *host_reply_text(void);   // valid until the next reply or reset
size_t host_reply_call_count(void);  // ReplyWith* calls since the last reset

#ifdef __cplusplus
}
#endif

#endif
