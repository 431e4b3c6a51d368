// SPDX-License-Identifier: MIT OR Apache-2.0
//
// A chained hash table with the Redis dict layout. One table (ht[0]) that
// doubles when full; no incremental rehashing.
#include <string.h>

#include "host_internal.h"
#include "util/dict.h"

#define INITIAL_SIZE 4

_Static_assert(sizeof(dictEntry) == 24, "dictEntry layout");
_Static_assert(sizeof(dictType) == 6 * sizeof(void *), "dictType layout");

static void reset_table(dictht *ht) {
  *ht = (dictht){NULL, 0, 0, 0};
}

static unsigned long bucket_of(const dict *d, const dictht *ht, const void *key) {
  return (unsigned long)d->type->hashFunction(key) & ht->sizemask;
}

static int keys_equal(const dict *d, const void *a, const void *b) {
  return d->type->keyCompare ? d->type->keyCompare(d->privdata, a, b) : a == b;
}

static void destroy_entry(dict *d, dictEntry *entry) {
  if (d->type->keyDestructor) d->type->keyDestructor(d->privdata, entry->key);
  if (d->type->valDestructor) d->type->valDestructor(d->privdata, entry->v.val);
  RedisModule_Free(entry);
}

static void grow(dict *d) {
  dictht *ht = &d->ht[0];
  unsigned long size = ht->size ? ht->size * 2 : INITIAL_SIZE;
  dictht bigger = {RedisModule_Calloc(size, sizeof(dictEntry *)), size, size - 1, ht->used};
  for (unsigned long i = 0; i < ht->size; i++) {
    dictEntry *entry = ht->table[i];
    while (entry) {
      dictEntry *next = entry->next;
      unsigned long b = bucket_of(d, &bigger, entry->key);
      entry->next = bigger.table[b];
      bigger.table[b] = entry;
      entry = next;
    }
  }
  RedisModule_Free(ht->table);
  *ht = bigger;
}

// The link that points at key's entry (or the bucket's end) in ht[0].
static dictEntry **find_link(dict *d, const void *key) {
  dictht *ht = &d->ht[0];
  if (ht->size == 0) return NULL;
  dictEntry **link = &ht->table[bucket_of(d, ht, key)];
  while (*link && !keys_equal(d, (*link)->key, key)) link = &(*link)->next;
  return link;
}

// Adds key (duplicated when the type says so) with its value unset
// (DICT_UNSET_VAL); NULL if the key is present, with *existing set to its
// entry.
static dictEntry *add_raw(dict *d, void *key, dictEntry **existing) {
  dictEntry **link = find_link(d, key);
  if (link && *link) {
    *existing = *link;
    return NULL;
  }
  dictht *ht = &d->ht[0];
  if (ht->used >= ht->size) grow(d);
  dictEntry *entry = RedisModule_Alloc(sizeof(*entry));
  unsigned long b = bucket_of(d, ht, key);
  entry->key = d->type->keyDup ? d->type->keyDup(d->privdata, key) : key;
  entry->v.val = DICT_UNSET_VAL;
  entry->next = ht->table[b];
  ht->table[b] = entry;
  ht->used++;
  return entry;
}

dict *RS_dictCreate(dictType *type, void *privDataPtr) {
  dict *d = RedisModule_Alloc(sizeof(*d));
  d->type = type;
  d->privdata = privDataPtr;
  reset_table(&d->ht[0]);
  reset_table(&d->ht[1]);
  d->rehashidx = -1;
  d->pauserehash = 0;
  return d;
}

int RS_dictAdd(dict *d, void *key, void *val) {
  dictEntry *existing;
  dictEntry *entry = add_raw(d, key, &existing);
  if (!entry) return DICT_ERR;
  dictSetVal(d, entry, val);
  return DICT_OK;
}

dictEntry *RS_dictAddOrFind(dict *d, void *key) {
  dictEntry *existing;
  dictEntry *entry = add_raw(d, key, &existing);
  return entry ? entry : existing;
}

int RS_dictReplace(dict *d, void *key, void *val) {
  dictEntry *existing;
  dictEntry *entry = add_raw(d, key, &existing);
  if (entry) {
    dictSetVal(d, entry, val);
    return 1;
  }
  // The new value goes in first: the old one may be the same object.
  void *old = existing->v.val;
  dictSetVal(d, existing, val);
  if (d->type->valDestructor) d->type->valDestructor(d->privdata, old);
  return 0;
}

dictEntry *RS_dictFind(dict *d, const void *key) {
  dictEntry **link = find_link(d, key);
  return link ? *link : NULL;
}

int RS_dictDelete(dict *d, const void *key) {
  dictEntry **link = find_link(d, key);
  if (!link || !*link) return DICT_ERR;
  dictEntry *entry = *link;
  *link = entry->next;
  d->ht[0].used--;
  destroy_entry(d, entry);
  return DICT_OK;
}

void RS_dictRelease(dict *d) {
  // Detach the table before running destructors, so that they see a
  // consistent (empty) dict; repeat if one of them added entries.
  while (d->ht[0].size) {
    dictht detached = d->ht[0];
    reset_table(&d->ht[0]);
    for (unsigned long i = 0; i < detached.size; i++) {
      dictEntry *entry = detached.table[i];
      while (entry) {
        dictEntry *next = entry->next;
        destroy_entry(d, entry);
        entry = next;
      }
    }
    RedisModule_Free(detached.table);
  }
  RedisModule_Free(d);
}

// Changes whenever the dict's tables are resized or gain or lose entries.
static long long fingerprint(const dict *d) {
  const unsigned long long parts[] = {
      (unsigned long long)(uintptr_t)d->ht[0].table, d->ht[0].size, d->ht[0].used,
      (unsigned long long)(uintptr_t)d->ht[1].table, d->ht[1].size, d->ht[1].used,
  };
  unsigned long long hash = 0;
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
    hash = (hash ^ parts[i]) * 0x100000001b3ULL;
    hash ^= hash >> 29;
  }
  return (long long)hash;
}

dictIterator *RS_dictGetIterator(dict *d) {
  dictIterator *iter = RedisModule_Alloc(sizeof(*iter));
  *iter = (dictIterator){.d = d, .index = -1, .table = 0, .safe = 0};
  return iter;
}

dictEntry *RS_dictNext(dictIterator *iter) {
  const dictht *ht = &iter->d->ht[0];
  if (iter->index == -1 && !iter->entry) iter->fingerprint = fingerprint(iter->d);
  iter->entry = iter->nextEntry;
  while (!iter->entry) {
    if ((unsigned long)(iter->index + 1) >= ht->size) {
      iter->index = (long)ht->size;
      return NULL;
    }
    iter->entry = ht->table[++iter->index];
  }
  iter->nextEntry = iter->entry->next;
  return iter->entry;
}

void RS_dictReleaseIterator(dictIterator *iter) {
  bool started = iter->index != -1;
  if (started && iter->fingerprint != fingerprint(iter->d))
    host_fatal("dict %p changed while a (non-safe) iterator was open", (void *)iter->d);
  RedisModule_Free(iter);
}

// FNV-1a.
uint64_t stringsHashFunction(const void *key) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = key; *p; p++) hash = (hash ^ *p) * 0x100000001b3ULL;
  return hash;
}

void *stringsKeyDup(void *privdata, const void *key) {
  (void)privdata;
  return RedisModule_Strdup(key);
}

int stringsKeyCompare(void *privdata, const void *key1, const void *key2) {
  (void)privdata;
  return strcmp(key1, key2) == 0;
}

void stringsKeyDestructor(void *privdata, void *key) {
  (void)privdata;
  RedisModule_Free(key);
}
