// SPDX-License-Identifier: MIT OR Apache-2.0
//
// Test-host stand-in for the module's chained hash table (the Redis dict API
// with RS_ prefixed symbols). The struct layout is ABI: callers read entries
// and sizes through the macros below. This implementation never rehashes
// incrementally: ht[1] stays empty and rehashidx stays -1.
#ifndef MRCONN_HOST_UTIL_DICT_H
#define MRCONN_HOST_UTIL_DICT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DICT_OK 0
#define DICT_ERR 1
// The value of an entry added by RS_dictAddOrFind and not set yet (a
// non-canonical address).
#define DICT_UNSET_VAL ((void *)(uintptr_t)0xdead00000000beefULL)

typedef struct dictEntry {
  void *key;
  union {
    void *val;
    uint64_t u64;
    int64_t s64;
    double d;
  } v;
  struct dictEntry *next;
} dictEntry;

typedef struct dictType {
  uint64_t (*hashFunction)(const void *key);
  void *(*keyDup)(void *privdata, const void *key);
  void *(*valDup)(void *privdata, const void *obj);
  // Non-zero when the keys are equal.
  int (*keyCompare)(void *privdata, const void *key1, const void *key2);
  void (*keyDestructor)(void *privdata, void *key);
  void (*valDestructor)(void *privdata, void *obj);
} dictType;

typedef struct dictht {
  dictEntry **table;
  unsigned long size;
  unsigned long sizemask;
  unsigned long used;
} dictht;

typedef struct dict {
  dictType *type;
  void *privdata;
  dictht ht[2];
  long rehashidx;
  int16_t pauserehash;
} dict;

// Only non-safe iterators exist: the dict must not change between
// GetIterator and ReleaseIterator (checked on release; violations abort).
typedef struct dictIterator {
  dict *d;
  long index;
  int table, safe;
  dictEntry *entry, *nextEntry;
  long long fingerprint;
} dictIterator;

dict *RS_dictCreate(dictType *type, void *privDataPtr);
// DICT_OK if added (key duplicated with keyDup when set), DICT_ERR if present.
int RS_dictAdd(dict *d, void *key, void *val);
// The entry for key, adding one if absent. As in RediSearch's dict, whose
// dictAddRaw takes the entry from rm_malloc and sets only its key, a new
// entry's value is unset: here it holds DICT_UNSET_VAL, which faults when
// used as a pointer, until the caller sets it.
dictEntry *RS_dictAddOrFind(dict *d, void *key);
// 1 if added, 0 if an existing value was replaced (its destructor runs after
// the new value is in place).
int RS_dictReplace(dict *d, void *key, void *val);
dictEntry *RS_dictFind(dict *d, const void *key);
// DICT_OK if found; the entry is unlinked before its destructors run.
int RS_dictDelete(dict *d, const void *key);
// Destroys every entry, then the dict.
void RS_dictRelease(dict *d);
dictIterator *RS_dictGetIterator(dict *d);
dictEntry *RS_dictNext(dictIterator *iter);
void RS_dictReleaseIterator(dictIterator *iter);

#define dictCreate RS_dictCreate
#define dictAdd RS_dictAdd
#define dictAddOrFind RS_dictAddOrFind
#define dictReplace RS_dictReplace
#define dictFind RS_dictFind
#define dictDelete RS_dictDelete
#define dictRelease RS_dictRelease
#define dictGetIterator RS_dictGetIterator
#define dictNext RS_dictNext
#define dictReleaseIterator RS_dictReleaseIterator

#define dictGetKey(he) ((he)->key)
#define dictGetVal(he) ((he)->v.val)
#define dictSetVal(d, entry, _val_)                                 \
  do {                                                              \
    if ((d)->type->valDup)                                          \
      (entry)->v.val = (d)->type->valDup((d)->privdata, (_val_));   \
    else                                                            \
      (entry)->v.val = (_val_);                                     \
  } while (0)
#define dictSize(d) ((d)->ht[0].used + (d)->ht[1].used)

// Ready-made dictType members for NUL-terminated string keys; keys are
// duplicated and freed through the RedisModule allocator.
uint64_t stringsHashFunction(const void *key);
void *stringsKeyDup(void *privdata, const void *key);
int stringsKeyCompare(void *privdata, const void *key1, const void *key2);
void stringsKeyDestructor(void *privdata, void *key);

#ifdef __cplusplus
}
#endif

#endif
