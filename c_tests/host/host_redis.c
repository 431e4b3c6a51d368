// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The GIL, the internal secret, Redis config values and the reply recorder.

// For strcasecmp under -std=c11.
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "host_internal.h"
#include "mrconn_test_host.h"

// ---- GIL ----

static pthread_mutex_t gil = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool gil_held;
static atomic_int gil_violation_count;

static void gil_violation(const char *what) {
  atomic_fetch_add(&gil_violation_count, 1);
  fprintf(stderr, "mrconn test host: GIL violation: %s\n", what);
}

void host_rm_lock(RedisModuleCtx *ctx) {
  (void)ctx;
  if (gil_held)
    host_fatal("RedisModule_ThreadSafeContextLock: this thread already holds the GIL "
               "(Redis would deadlock)");
  pthread_mutex_lock(&gil);
  gil_held = true;
}

void host_rm_unlock(RedisModuleCtx *ctx) {
  (void)ctx;
  if (!gil_held) {
    gil_violation("RedisModule_ThreadSafeContextUnlock without the lock");
    return;
  }
  gil_held = false;
  pthread_mutex_unlock(&gil);
}

// Counts a violation unless the calling thread holds the GIL.
static void gil_check(const char *what) {
  if (!gil_held) gil_violation(what);
}

int host_gil_violations(void) {
  return atomic_load(&gil_violation_count);
}

// ---- internal secret ----

// Every secret ever set stays allocated (and reachable, for leak checkers):
// the library may still hold a pointer returned before a change.
typedef struct secret_node {
  struct secret_node *older;
  char bytes[];
} secret_node;

static const char default_secret[] = "test-internal-secret";
static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;
static secret_node *secret_history;
static const char *secret_ptr = default_secret;
static size_t secret_len = sizeof(default_secret) - 1;

void host_set_internal_secret(const char *secret, size_t len) {
  secret_node *node = malloc(sizeof(*node) + len + 1);
  if (!node) host_fatal("out of memory storing the internal secret");
  memcpy(node->bytes, secret, len);
  node->bytes[len] = '\0';
  pthread_mutex_lock(&secret_lock);
  node->older = secret_history;
  secret_history = node;
  secret_ptr = node->bytes;
  secret_len = len;
  pthread_mutex_unlock(&secret_lock);
}

const char *host_rm_get_internal_secret(RedisModuleCtx *ctx, size_t *len) {
  (void)ctx;
  gil_check("RedisModule_GetInternalSecret without the GIL");
  pthread_mutex_lock(&secret_lock);
  const char *ptr = secret_ptr;
  if (len) *len = secret_len;
  pthread_mutex_unlock(&secret_lock);
  return ptr;
}

// ---- module strings and Redis config ----

struct RedisModuleString {
  size_t len;
  char data[];  // NUL-terminated for convenience
};

const char *host_rm_string_ptr_len(const RedisModuleString *str, size_t *len) {
  if (!str) host_fatal("RedisModule_StringPtrLen(NULL)");
  if (len) *len = str->len;
  return str->data;
}

void host_rm_free_string(RedisModuleCtx *ctx, RedisModuleString *str) {
  (void)ctx;
  if (!str) host_fatal("RedisModule_FreeString(NULL)");
  host_rm_free(str);
}

typedef struct config_entry {
  struct config_entry *next;
  char *name;
  char *value;
} config_entry;

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static config_entry *config_entries;

static char *copy_string(const char *str) {
  size_t size = strlen(str) + 1;
  char *copy = malloc(size);
  if (!copy) host_fatal("out of memory storing a config value");
  return memcpy(copy, str, size);
}

static void free_config_entry(config_entry *entry) {
  free(entry->name);
  free(entry->value);
  free(entry);
}

static config_entry **config_slot(const char *name) {
  config_entry **slot = &config_entries;
  while (*slot && strcmp((*slot)->name, name) != 0) slot = &(*slot)->next;
  return slot;
}

void host_config_set(const char *name, const char *value) {
  pthread_mutex_lock(&config_lock);
  config_entry **slot = config_slot(name);
  if (*slot) {
    config_entry *old = *slot;
    *slot = old->next;
    free_config_entry(old);
  }
  if (value) {
    config_entry *entry = malloc(sizeof(*entry));
    if (!entry) host_fatal("out of memory storing a config value");
    *entry = (config_entry){config_entries, copy_string(name), copy_string(value)};
    config_entries = entry;
  }
  pthread_mutex_unlock(&config_lock);
}

void host_config_clear(void) {
  pthread_mutex_lock(&config_lock);
  while (config_entries) {
    config_entry *entry = config_entries;
    config_entries = entry->next;
    free_config_entry(entry);
  }
  pthread_mutex_unlock(&config_lock);
}

// The value as a new module string, or NULL. Does not check the GIL.
static RedisModuleString *config_lookup(const char *name) {
  RedisModuleString *str = NULL;
  pthread_mutex_lock(&config_lock);
  config_entry *entry = *config_slot(name);
  if (entry) {
    size_t len = strlen(entry->value);
    str = host_rm_alloc(sizeof(*str) + len + 1);
    str->len = len;
    memcpy(str->data, entry->value, len + 1);
  }
  pthread_mutex_unlock(&config_lock);
  return str;
}

RedisModuleString *getRedisConfigValue(RedisModuleCtx *ctx, const char *confName) {
  (void)ctx;
  gil_check("getRedisConfigValue without the GIL");
  return config_lookup(confName);
}

bool getRedisConfigBool(RedisModuleCtx *ctx, const char *confName, bool defaultValue) {
  (void)ctx;
  gil_check("getRedisConfigBool without the GIL");
  RedisModuleString *str = config_lookup(confName);
  if (!str) return defaultValue;
  bool result = defaultValue;
  if (strcasecmp(str->data, "yes") == 0) result = true;
  else if (strcasecmp(str->data, "no") == 0) result = false;
  host_rm_free(str);
  return result;
}

long long getRedisConfigNumeric(RedisModuleCtx *ctx, const char *confName,
                                long long defaultValue) {
  (void)ctx;
  gil_check("getRedisConfigNumeric without the GIL");
  RedisModuleString *str = config_lookup(confName);
  if (!str) return defaultValue;
  char *end;
  errno = 0;
  long long value = strtoll(str->data, &end, 10);
  bool valid = errno == 0 && end != str->data && *end == '\0';
  host_rm_free(str);
  return valid ? value : defaultValue;
}

// ---- reply recorder ----

#define REPLY_MAX_DEPTH 64

typedef struct {
  bool is_map;
  long total;  // elements (a map's keys and values each count)
  long done;
} reply_frame;

static pthread_mutex_t reply_lock = PTHREAD_MUTEX_INITIALIZER;
static char *reply_buf;
static size_t reply_len, reply_cap;
static reply_frame reply_stack[REPLY_MAX_DEPTH];
static int reply_depth;
static size_t reply_calls;

static void reply_append(const char *s, size_t n) {
  if (reply_len + n + 1 > reply_cap) {
    size_t cap = reply_cap ? reply_cap : 256;
    while (reply_len + n + 1 > cap) cap *= 2;
    reply_buf = realloc(reply_buf, cap);
    if (!reply_buf) host_fatal("out of memory recording a reply");
    reply_cap = cap;
  }
  memcpy(reply_buf + reply_len, s, n);
  reply_len += n;
  reply_buf[reply_len] = '\0';
}

// Writes the separator due before the next element of the open container.
static void reply_begin_element(void) {
  if (reply_depth == 0) return;
  const reply_frame *f = &reply_stack[reply_depth - 1];
  if (f->done > 0) reply_append(f->is_map && f->done % 2 ? ":" : ",", 1);
}

// Closes every container whose last element has been written.
static void reply_close_finished(void) {
  while (reply_depth > 0) {
    const reply_frame *top = &reply_stack[reply_depth - 1];
    if (top->done < top->total) return;
    reply_append(top->is_map ? "}" : "]", 1);
    if (--reply_depth > 0) reply_stack[reply_depth - 1].done++;
  }
}

static void reply_open(bool is_map, long len) {
  if (len < 0)
    host_fatal("ReplyWith%s: postponed lengths are not supported", is_map ? "Map" : "Array");
  pthread_mutex_lock(&reply_lock);
  if (reply_depth == REPLY_MAX_DEPTH) host_fatal("reply nested deeper than %d", REPLY_MAX_DEPTH);
  reply_calls++;
  reply_begin_element();
  reply_append(is_map ? "{" : "[", 1);
  reply_stack[reply_depth++] = (reply_frame){is_map, is_map ? 2 * len : len, 0};
  reply_close_finished();
  pthread_mutex_unlock(&reply_lock);
}

int host_rm_reply_with_map(RedisModuleCtx *ctx, long len) {
  (void)ctx;
  reply_open(true, len);
  return REDISMODULE_OK;
}

int host_rm_reply_with_array(RedisModuleCtx *ctx, long len) {
  (void)ctx;
  reply_open(false, len);
  return REDISMODULE_OK;
}

int host_rm_reply_with_cstring(RedisModuleCtx *ctx, const char *str) {
  (void)ctx;
  if (!str) host_fatal("RedisModule_ReplyWithCString(NULL)");
  pthread_mutex_lock(&reply_lock);
  reply_calls++;
  reply_begin_element();
  reply_append("\"", 1);
  for (const char *p = str; *p; p++) {
    if (*p == '"' || *p == '\\') reply_append("\\", 1);
    reply_append(p, 1);
  }
  reply_append("\"", 1);
  if (reply_depth > 0) reply_stack[reply_depth - 1].done++;
  reply_close_finished();
  pthread_mutex_unlock(&reply_lock);
  return REDISMODULE_OK;
}

void host_reply_reset(void) {
  pthread_mutex_lock(&reply_lock);
  free(reply_buf);
  reply_buf = NULL;
  reply_len = reply_cap = 0;
  reply_depth = 0;
  reply_calls = 0;
  pthread_mutex_unlock(&reply_lock);
}

const char *host_reply_text(void) {
  pthread_mutex_lock(&reply_lock);
  const char *text = reply_buf ? reply_buf : "";
  pthread_mutex_unlock(&reply_lock);
  return text;
}

size_t host_reply_call_count(void) {
  pthread_mutex_lock(&reply_lock);
  size_t calls = reply_calls;
  pthread_mutex_unlock(&reply_lock);
  return calls;
}
