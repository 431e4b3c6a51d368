// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Self-test of the mrconn test host.
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "coord/config.h"
#include "hiredis/hiredis.h"
#include "module.h"
#include "mrconn_test_host.h"
#include "redismodule.h"
#include "rmr/command.h"
#include "rmr/endpoint.h"
#include "rmr/reply.h"
#include "util/arr/arr.h"
#include "util/dict.h"

static int passed, failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

// Whether fn dies (abort, or a sanitizer's exit) in a child process.
static bool dies(void (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    fn();
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// ---- allocator ----

static void test_alloc(void) {
  size_t count0 = host_alloc_live_count(), bytes0 = host_alloc_live_bytes();
  uint64_t total0 = host_alloc_total_count();

  char *a = RedisModule_Alloc(10);
  int *b = RedisModule_Calloc(4, sizeof(int));
  char *c = RedisModule_Strdup("hello");
  CHECK(host_alloc_live_count() == count0 + 3);
  CHECK(host_alloc_live_bytes() == bytes0 + 10 + 4 * sizeof(int) + 6);
  CHECK(b[0] == 0 && b[3] == 0);
  CHECK(strcmp(c, "hello") == 0);
  CHECK(((uintptr_t)a % _Alignof(max_align_t)) == 0);

  a = RedisModule_Realloc(a, 1000);
  CHECK(host_alloc_live_count() == count0 + 3);
  CHECK(host_alloc_live_bytes() == bytes0 + 1000 + 4 * sizeof(int) + 6);
  CHECK(RedisModule_Realloc(b, 0) == NULL);
  char *d = RedisModule_Realloc(NULL, 3);
  CHECK(host_alloc_live_count() == count0 + 3);

  RedisModule_Free(a);
  RedisModule_Free(c);
  RedisModule_Free(d);
  RedisModule_Free(NULL);
  CHECK(host_alloc_live_count() == count0);
  CHECK(host_alloc_live_bytes() == bytes0);
  CHECK(host_alloc_total_count() == total0 + 5);  // Realloc(b, 0) only frees
}

static void free_twice(void) {
  void *p = RedisModule_Alloc(8);
  RedisModule_Free(p);
  RedisModule_Free(p);
}

static void free_foreign(void) {
  char *p = malloc(256);
  RedisModule_Free(p + 128);
}

static void test_alloc_misuse(void) {
  CHECK(dies(free_twice));
  CHECK(dies(free_foreign));
}

static void *alloc_and_log_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 2000; i++) {
    void *p = RedisModule_Alloc((size_t)i % 64);
    RedisModule_Log(RSDummyContext, "debug", "worker line %d", i);
    RedisModule_Free(p);
  }
  return NULL;
}

static void test_threads(void) {
  size_t count0 = host_alloc_live_count();
  host_log_clear();
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, alloc_and_log_worker, NULL);
  for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
  CHECK(host_alloc_live_count() == count0);
  CHECK(host_log_count("debug", "worker line") == 8000);
  CHECK(host_log_count("debug", "worker line 1999") == 4);
  host_log_clear();
}

// ---- dict ----

static int val_destroyed;
static dict *replace_dict;
static bool replace_saw_new_value;

static void count_val_destructor(void *privdata, void *obj) {
  (void)privdata;
  val_destroyed++;
  // Replace must have stored the new value before destroying the old one.
  if (replace_dict && obj == (void *)1) {
    dictEntry *e = dictFind(replace_dict, "replaced");
    replace_saw_new_value = e && dictGetVal(e) == (void *)2;
  }
}

static dictType string_keys = {
    .hashFunction = stringsHashFunction,
    .keyDup = stringsKeyDup,
    .keyCompare = stringsKeyCompare,
    .keyDestructor = stringsKeyDestructor,
    .valDestructor = count_val_destructor,
};

static void test_dict(void) {
  size_t count0 = host_alloc_live_count();
  val_destroyed = 0;
  dict *d = dictCreate(&string_keys, NULL);
  CHECK(dictSize(d) == 0);
  CHECK(dictFind(d, "absent") == NULL);
  CHECK(dictDelete(d, "absent") == DICT_ERR);

  char key[32];
  int added = 0;
  for (long i = 0; i < 1000; i++) {
    snprintf(key, sizeof(key), "key-%ld", i);
    added += dictAdd(d, key, (void *)(i + 100)) == DICT_OK;
  }
  CHECK(added == 1000);
  CHECK(dictSize(d) == 1000);
  CHECK(d->ht[1].used == 0 && d->rehashidx == -1);
  CHECK(dictAdd(d, "key-5", NULL) == DICT_ERR);

  int found = 0;
  for (long i = 0; i < 1000; i++) {
    snprintf(key, sizeof(key), "key-%ld", i);
    dictEntry *e = dictFind(d, key);
    found += e && dictGetVal(e) == (void *)(i + 100) && strcmp(dictGetKey(e), key) == 0 &&
             dictGetKey(e) != (void *)key;
  }
  CHECK(found == 1000);

  int deleted = 0;
  for (long i = 0; i < 1000; i += 2) {
    snprintf(key, sizeof(key), "key-%ld", i);
    deleted += dictDelete(d, key) == DICT_OK;
  }
  CHECK(deleted == 500);
  CHECK(dictSize(d) == 500);
  CHECK(val_destroyed == 500);
  CHECK(dictFind(d, "key-2") == NULL);
  CHECK(dictFind(d, "key-3") != NULL);

  // Iteration visits every entry once.
  long sum = 0;
  int visited = 0;
  dictIterator *it = dictGetIterator(d);
  dictEntry *e;
  while ((e = dictNext(it))) {
    visited++;
    sum += (long)dictGetVal(e);
  }
  dictReleaseIterator(it);
  CHECK(visited == 500);
  CHECK(sum == 500 * 100 + 500 * 500);  // vals 100 + odd i

  // Replace: 1 when added, 0 when replaced; the old value is destroyed after.
  val_destroyed = 0;
  replace_dict = d;
  CHECK(dictReplace(d, "replaced", (void *)1) == 1);
  CHECK(val_destroyed == 0);
  CHECK(dictReplace(d, "replaced", (void *)2) == 0);
  CHECK(val_destroyed == 1);
  CHECK(replace_saw_new_value);
  replace_dict = NULL;

  // AddOrFind: a new entry's value is unset (as in RediSearch); an existing
  // one is returned.
  dictEntry *fresh = dictAddOrFind(d, "fresh");
  CHECK(fresh && dictGetVal(fresh) == DICT_UNSET_VAL);
  dictSetVal(d, fresh, (void *)7);
  CHECK(dictAddOrFind(d, "fresh") == fresh);
  CHECK(dictGetVal(dictFind(d, "fresh")) == (void *)7);
  CHECK(dictSize(d) == 502);

  val_destroyed = 0;
  dictRelease(d);
  CHECK(val_destroyed == 502);
  CHECK(host_alloc_live_count() == count0);

  // An empty dict iterates to nothing.
  d = dictCreate(&string_keys, NULL);
  it = dictGetIterator(d);
  CHECK(dictNext(it) == NULL);
  dictReleaseIterator(it);
  dictRelease(d);
  CHECK(host_alloc_live_count() == count0);
}

static void add_while_iterating(void) {
  dict *d = dictCreate(&string_keys, NULL);
  dictAdd(d, "a", NULL);
  dictIterator *it = dictGetIterator(d);
  dictNext(it);
  dictAdd(d, "b", NULL);
  dictReleaseIterator(it);
}

static void test_dict_misuse(void) {
  CHECK(dies(add_while_iterating));
}

// ---- arr ----

static void test_arr(void) {
  size_t count0 = host_alloc_live_count();
  char **arr = array_new_sz(sizeof(char *), 1, 0);
  CHECK(array_len(arr) == 0);
  CHECK(array_len(NULL) == 0 && array_len_func(NULL) == 0);
  for (int i = 0; i < 300; i++) {
    char *s = RedisModule_Strdup(i % 2 ? "Connected" : "Connecting");
    arr = array_ensure_append_n_func(arr, &s, 1, sizeof(char *));
  }
  CHECK(array_len(arr) == 300 && array_len_func(arr) == 300);
  CHECK(strcmp(arr[0], "Connecting") == 0 && strcmp(arr[299], "Connected") == 0);

  int batch[5] = {1, 2, 3, 4, 5};
  int *ints = array_new_sz(sizeof(int), 0, 2);
  ints[0] = -1;
  ints[1] = -2;
  ints = array_ensure_append_n_func(ints, batch, 5, sizeof(int));
  CHECK(array_len(ints) == 7 && ints[1] == -2 && ints[6] == 5);
  array_free(ints);

  for (uint32_t i = 0; i < array_len(arr); i++) RedisModule_Free(arr[i]);
  array_free(arr);
  array_free(NULL);
  CHECK(host_alloc_live_count() == count0);
}

static void append_wrong_size(void) {
  int *ints = array_new_sz(sizeof(int), 4, 0);
  long value = 1;
  array_ensure_append_n_func(ints, &value, 1, sizeof(long));
}

static void append_to_null(void) {
  int value = 1;
  array_ensure_append_n_func(NULL, &value, 1, sizeof(int));
}

static void test_arr_misuse(void) {
  CHECK(dies(append_wrong_size));
  CHECK(dies(append_to_null));
}

// ---- log ----

static void test_log(void) {
  host_log_clear();
  RedisModule_Log(RSDummyContext, "warning", "[%p %s:%d %s] Switching state", (void *)0, "h",
                  1, "Connected");
  RedisModule_Log(RSDummyContext, "notice", "replaced %s", "endpoint");
  RedisModule_Log(RSDummyContext, "debug", "d");
  RedisModule_Log(RSDummyContext, "verbose", "v");
  CHECK(host_log_count(NULL, NULL) == 4);
  CHECK(host_log_count("warning", NULL) == 1);
  CHECK(host_log_count(NULL, "Switching") == 1);
  CHECK(host_log_count("notice", "Switching") == 0);
  CHECK(host_log_count("BADLEVEL", NULL) == 0);

  char *msg = host_log_find("notice", NULL);
  CHECK(msg && strcmp(msg, "replaced endpoint") == 0);
  free(msg);
  CHECK(host_log_find("debug", "nothing like this") == NULL);

  char big[5000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  RedisModule_Log(RSDummyContext, "debug", "%s!", big);
  msg = host_log_find(NULL, "x!");
  CHECK(msg && strlen(msg) == sizeof(big));
  free(msg);

  fprintf(stderr, "(an expected complaint about a bad level follows)\n");
  RedisModule_Log(RSDummyContext, "warn", "bad level");
  CHECK(host_log_count("BADLEVEL", "bad level") == 1);

  for (int i = 0; i < HOST_LOG_CAPACITY + 10; i++) RedisModule_Log(NULL, "debug", "n%d", i);
  CHECK(host_log_count(NULL, NULL) == HOST_LOG_CAPACITY);
  CHECK(host_log_count(NULL, "bad level") == 0);

  host_log_clear();
  CHECK(host_log_count(NULL, NULL) == 0);
}

// ---- GIL, secret, config, module globals ----

static void test_config(void) {
  size_t count0 = host_alloc_live_count();
  CHECK(RSDummyContext != NULL);
  CHECK(!IsEnterprise());
  host_set_enterprise(true);
  CHECK(IsEnterprise());
  host_set_enterprise(false);
  CHECK(clusterConfig.type == ClusterType_RedisOSS);
  CHECK(clusterConfig.connectTimeout.tv_sec == 0 && clusterConfig.connectTimeout.tv_usec == 0);

  int violations0 = host_gil_violations();
  RedisModule_ThreadSafeContextLock(RSDummyContext);
  size_t len = 0;
  const char *secret = RedisModule_GetInternalSecret(RSDummyContext, &len);
  CHECK(len == strlen("test-internal-secret") && memcmp(secret, "test-internal-secret", len) == 0);
  host_set_internal_secret("a\0b", 3);
  secret = RedisModule_GetInternalSecret(RSDummyContext, &len);
  CHECK(len == 3 && memcmp(secret, "a\0b", 3) == 0);

  host_config_set("tls-cert-file", "/tmp/cert.pem");
  host_config_set("tls-cluster", "yes");
  host_config_set("tls-port", "6380");
  host_config_set("bogus-number", "12x");
  RedisModuleString *value = getRedisConfigValue(RSDummyContext, "tls-cert-file");
  CHECK(value != NULL);
  const char *text = RedisModule_StringPtrLen(value, &len);
  CHECK(len == strlen("/tmp/cert.pem") && strcmp(text, "/tmp/cert.pem") == 0);
  RedisModule_FreeString(NULL, value);
  CHECK(getRedisConfigValue(RSDummyContext, "tls-key-file") == NULL);
  CHECK(getRedisConfigBool(RSDummyContext, "tls-cluster", false));
  CHECK(!getRedisConfigBool(RSDummyContext, "absent", false));
  CHECK(getRedisConfigNumeric(RSDummyContext, "tls-port", 0) == 6380);
  CHECK(getRedisConfigNumeric(RSDummyContext, "absent", -3) == -3);
  CHECK(getRedisConfigNumeric(RSDummyContext, "bogus-number", 9) == 9);
  host_config_set("tls-cluster", "no");
  CHECK(!getRedisConfigBool(RSDummyContext, "tls-cluster", true));
  host_config_set("tls-cluster", NULL);
  CHECK(getRedisConfigBool(RSDummyContext, "tls-cluster", true));
  RedisModule_ThreadSafeContextUnlock(RSDummyContext);
  CHECK(host_gil_violations() == violations0);

  fprintf(stderr, "(two expected GIL violations follow)\n");
  RedisModule_GetInternalSecret(RSDummyContext, &len);
  CHECK(getRedisConfigNumeric(RSDummyContext, "tls-port", 0) == 6380);
  CHECK(host_gil_violations() == violations0 + 2);

  host_config_clear();
  RedisModule_ThreadSafeContextLock(RSDummyContext);
  CHECK(getRedisConfigValue(RSDummyContext, "tls-cert-file") == NULL);
  RedisModule_ThreadSafeContextUnlock(RSDummyContext);
  CHECK(host_alloc_live_count() == count0);
}

static void lock_twice(void) {
  RedisModule_ThreadSafeContextLock(RSDummyContext);
  RedisModule_ThreadSafeContextLock(RSDummyContext);
}

static void test_gil_misuse(void) {
  CHECK(dies(lock_twice));
  int violations0 = host_gil_violations();
  fprintf(stderr, "(an expected GIL violation follows)\n");
  RedisModule_ThreadSafeContextUnlock(RSDummyContext);
  CHECK(host_gil_violations() == violations0 + 1);
}

// ---- reply recorder ----

static void test_reply(void) {
  host_reply_reset();
  CHECK(strcmp(host_reply_text(), "") == 0);
  RedisModule_ReplyWithMap(RSDummyContext, 2);
  RedisModule_ReplyWithCString(RSDummyContext, "127.0.0.1:6379");
  RedisModule_ReplyWithArray(RSDummyContext, 2);
  RedisModule_ReplyWithCString(RSDummyContext, "Connected");
  RedisModule_ReplyWithCString(RSDummyContext, "Connected");
  RedisModule_ReplyWithCString(RSDummyContext, "127.0.0.1:6380");
  RedisModule_ReplyWithArray(RSDummyContext, 1);
  RedisModule_ReplyWithCString(RSDummyContext, "Connecting");
  CHECK(strcmp(host_reply_text(), "{\"127.0.0.1:6379\":[\"Connected\",\"Connected\"],"
                                  "\"127.0.0.1:6380\":[\"Connecting\"]}") == 0);
  CHECK(host_reply_call_count() == 8);

  host_reply_reset();
  RedisModule_ReplyWithMap(RSDummyContext, 0);
  RedisModule_ReplyWithArray(RSDummyContext, 3);
  RedisModule_ReplyWithArray(RSDummyContext, 0);
  RedisModule_ReplyWithCString(RSDummyContext, "a\"b\\");
  RedisModule_ReplyWithMap(RSDummyContext, 1);
  RedisModule_ReplyWithCString(RSDummyContext, "k");
  RedisModule_ReplyWithArray(RSDummyContext, 0);
  CHECK(strcmp(host_reply_text(), "{}[[],\"a\\\"b\\\\\",{\"k\":[]}]") == 0);
  CHECK(host_reply_call_count() == 7);
  host_reply_reset();
  CHECK(host_reply_call_count() == 0);
}

// ---- endpoint, command, reply ----

static void test_rmr(void) {
  size_t count0 = host_alloc_live_count();
  MREndpoint ep = {.host = "127.0.0.1", .port = 6379, .password = "pw"};
  MREndpoint copy;
  MREndpoint_Copy(&copy, &ep);
  CHECK(copy.host != ep.host && strcmp(copy.host, "127.0.0.1") == 0);
  CHECK(copy.unixSock == NULL && strcmp(copy.password, "pw") == 0);
  CHECK(MREndpoint_Equal(&ep, &copy));
  copy.port = 6380;
  CHECK(!MREndpoint_Equal(&ep, &copy));
  copy.port = 6379;
#ifndef MRCONN_HOST_V880
  copy.isTls = true;
  CHECK(!MREndpoint_Equal(&ep, &copy));
  copy.isTls = false;
#endif
  ep.password = NULL;
  CHECK(!MREndpoint_Equal(&ep, &copy));
  ep.password = "pw";
  MREndpoint_Free(&copy);
  CHECK(copy.host == NULL && copy.password == NULL);

  MRCommand cmd = MR_NewCommand(3, "FT.SEARCH", "idx", "*");
  CHECK(cmd.num == 3 && cmd.protocol == 0 && cmd.cmd == NULL);
  CHECK(cmd.lens[0] == 9 && strcmp(cmd.strs[2], "*") == 0);
  cmd.cmd = sdsnew("formatted");
  MRCommand_Free(&cmd);
  CHECK(cmd.strs == NULL && cmd.cmd == NULL);
  const char *argv[] = {"a\0b", "c"};
  size_t lens[] = {3, 1};
  cmd = MR_NewCommandArgvLen(2, argv, lens);
  CHECK(cmd.lens[0] == 3 && memcmp(cmd.strs[0], "a\0b", 3) == 0);
  MRCommand_Free(&cmd);

  redisReader *reader = redisReaderCreate();
  // hiredis allocates through the host after host_init.
  CHECK(host_alloc_live_count() > count0);
  const char wire[] = "-ERR denied\r\n+OK\r\n:5\r\n";
  redisReaderFeed(reader, wire, sizeof(wire) - 1);
  void *replies[3];
  for (int i = 0; i < 3; i++) redisReaderGetReply(reader, &replies[i]);
  size_t len;
  CHECK(MRReply_Type(replies[0]) == REDIS_REPLY_ERROR);
  CHECK(strcmp(MRReply_String(replies[0], &len), "ERR denied") == 0 && len == 10);
  CHECK(MRReply_Type(replies[1]) == REDIS_REPLY_STATUS);
  CHECK(MRReply_String(replies[2], &len) == NULL && len == 0);
  CHECK(MRReply_Type(NULL) == 0);
  for (int i = 0; i < 3; i++) MRReply_Free(replies[i]);
  MRReply_Free(NULL);
  redisReaderFree(reader);
  CHECK(host_alloc_live_count() == count0);
}

int main(void) {
  host_init();
  test_alloc();
  test_alloc_misuse();
  test_threads();
  test_dict();
  test_dict_misuse();
  test_arr();
  test_arr_misuse();
  test_log();
  test_config();
  test_gil_misuse();
  test_reply();
  test_rmr();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
