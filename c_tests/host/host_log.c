// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The log sink behind RedisModule_Log: a ring of the most recent lines.

// For strdup under -std=c11.
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_internal.h"
#include "mrconn_test_host.h"

typedef struct {
  const char *level;  // one of known_levels or bad_level, never freed
  char *message;      // plain malloc: log storage stays out of the counts
  uint64_t at_us;     // CLOCK_MONOTONIC when it was logged
} log_line;

static const char *const known_levels[] = {"debug", "verbose", "notice", "warning"};
static const char bad_level[] = "BADLEVEL";

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static log_line ring[HOST_LOG_CAPACITY];
static size_t ring_start;  // index of the oldest line
static size_t ring_count;

static const char *canonical_level(const char *level) {
  for (size_t i = 0; level && i < sizeof(known_levels) / sizeof(known_levels[0]); i++)
    if (strcmp(level, known_levels[i]) == 0) return known_levels[i];
  return bad_level;
}

static char *format_message(const char *fmt, va_list ap) {
  va_list probe;
  va_copy(probe, ap);
  int len = vsnprintf(NULL, 0, fmt, probe);
  va_end(probe);
  if (len < 0) host_fatal("RedisModule_Log: cannot format \"%s\"", fmt);
  char *message = malloc((size_t)len + 1);
  if (!message) host_fatal("out of memory storing a log line");
  vsnprintf(message, (size_t)len + 1, fmt, ap);
  return message;
}

void host_rm_log(RedisModuleCtx *ctx, const char *level, const char *fmt, ...) {
  (void)ctx;
  va_list ap;
  va_start(ap, fmt);
  char *message = format_message(fmt, ap);
  va_end(ap);
  const char *stored_level = canonical_level(level);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t at_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;

  pthread_mutex_lock(&log_lock);
  if (stored_level == bad_level || getenv("MRCONN_TEST_LOG"))
    fprintf(stderr, "[%s] %s\n", level ? level : "(null)", message);
  if (ring_count == HOST_LOG_CAPACITY) {
    free(ring[ring_start].message);
    ring_start = (ring_start + 1) % HOST_LOG_CAPACITY;
    ring_count--;
  }
  ring[(ring_start + ring_count) % HOST_LOG_CAPACITY] = (log_line){stored_level, message, at_us};
  ring_count++;
  pthread_mutex_unlock(&log_lock);
}

static bool line_matches(const log_line *line, const char *level, const char *substr) {
  return (!level || strcmp(line->level, level) == 0) &&
         (!substr || strstr(line->message, substr));
}

void host_log_clear(void) {
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < ring_count; i++) free(ring[(ring_start + i) % HOST_LOG_CAPACITY].message);
  ring_start = 0;
  ring_count = 0;
  pthread_mutex_unlock(&log_lock);
}

int host_log_count(const char *level, const char *substr) {
  int count = 0;
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < ring_count; i++)
    count += line_matches(&ring[(ring_start + i) % HOST_LOG_CAPACITY], level, substr);
  pthread_mutex_unlock(&log_lock);
  return count;
}

char *host_log_find(const char *level, const char *substr) {
  char *found = NULL;
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < ring_count && !found; i++) {
    const log_line *line = &ring[(ring_start + i) % HOST_LOG_CAPACITY];
    if (line_matches(line, level, substr)) {
      found = strdup(line->message);
      if (!found) host_fatal("out of memory copying a log line");
    }
  }
  pthread_mutex_unlock(&log_lock);
  return found;
}

void host_log_dump(FILE *f) {
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < ring_count; i++) {
    const log_line *line = &ring[(ring_start + i) % HOST_LOG_CAPACITY];
    fprintf(f, "[%s] %s\n", line->level, line->message);
  }
  pthread_mutex_unlock(&log_lock);
}

uint64_t host_log_time_us(const char *level, const char *substr) {
  uint64_t at = 0;
  pthread_mutex_lock(&log_lock);
  for (size_t i = 0; i < ring_count && !at; i++) {
    const log_line *line = &ring[(ring_start + i) % HOST_LOG_CAPACITY];
    if (line_matches(line, level, substr)) at = line->at_us;
  }
  pthread_mutex_unlock(&log_lock);
  return at;
}
