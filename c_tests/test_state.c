// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * FillStateDict and ReplyState, as RediSearch's connection-state debug
 * command uses them: one dict (string keys it copies, values arrays of
 * rm_strdup'd strings freed by the dict's value destructor) filled by every
 * IO runtime's manager in turn, then replied as a map from "host:port" to
 * the state strings of every connection. Two managers on two loops (like two
 * IO threads) pointing at the same real redis-server accumulate into one
 * entry; other nodes, including a dead one (Reconnecting), get their own
 * keys. The reply text is checked exactly through the host's reply
 * recorder, and the dict frees everything it was given.
 */
#include <string.h>

#include "tutil.h"

static MRConnManager m1, m2;
static uv_loop_t loop1, loop2;

static void start(int conns1, int conns2) {
  tu_begin();
  host_reply_reset();
  CHECK(uv_loop_init(&loop1) == 0);
  CHECK(uv_loop_init(&loop2) == 0);
  MRConnManager_Init(&m1, conns1);
  MRConnManager_Init(&m2, conns2);
}

static void finish(void) {
  tu_teardown1(&loop1, &m1);
  tu_teardown1(&loop2, &m2);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
}

/* Fills a fresh dict from both managers and replies it; returns the text. */
static const char *reply_both(void) {
  dict *d = tu_state_dict_new();
  MRConnManager_FillStateDict(&m1, d);
  MRConnManager_FillStateDict(&m2, d);
  host_reply_reset();
  MRConnManager_ReplyState(d, RSDummyContext);
  dictRelease(d);
  return host_reply_text();
}

TEST(two_managers_one_node) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start(2, 2);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&m1, &loop1, "n1", &ep));
  CHECK(MRConnManager_Add(&m2, &loop2, "n1", &ep));

  /* Before the loops ran: each pool shows its first connection, Connecting;
     the others open on the loop. */
  char want[512];
  snprintf(want, sizeof want, "{\"127.0.0.1:%d\":[\"Connecting\",\"Connecting\"]}", r.port);
  CHECK_EQ_STR(reply_both(), want);

  CHECK(tu_wait_state(&loop1, &m1, r.port, "Connected", 2, 10000));
  CHECK(tu_wait_state(&loop2, &m2, r.port, "Connected", 2, 10000));
  snprintf(want, sizeof want, "{\"127.0.0.1:%d\":[\"Connected\",\"Connected\",\"Connected\",\"Connected\"]}",
           r.port);
  CHECK_EQ_STR(reply_both(), want);
  /* A map of one entry, an array of four, four strings. */
  CHECK_EQ_INT(host_reply_call_count(), 1 + 1 + 1 + 4);
  finish();
  redis_stop(&r);
}

/* The exact "key":[...] text of one entry. */
static void entry(char *out, size_t len, int port, const char *states) {
  snprintf(out, len, "\"127.0.0.1:%d\":[%s]", port, states);
}

static int occurrences(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

TEST(several_nodes) {
  redis_proc r1, r2;
  REQUIRE(redis_start(&r1, NULL) == 0);
  REQUIRE(redis_start(&r2, NULL) == 0);
  int dead = harness_free_port();
  start(2, 3);
  MREndpoint ep1 = {.host = "127.0.0.1", .port = r1.port};
  MREndpoint ep2 = {.host = "127.0.0.1", .port = r2.port};
  MREndpoint ep3 = {.host = "127.0.0.1", .port = dead};
  /* m1: n1 → r1 (2), n2 → r2 (2); m2: n1 → r1 (3), n3 → dead (3). */
  CHECK(MRConnManager_Add(&m1, &loop1, "n1", &ep1));
  CHECK(MRConnManager_Add(&m1, &loop1, "n2", &ep2));
  CHECK(MRConnManager_Add(&m2, &loop2, "n1", &ep1));
  CHECK(MRConnManager_Add(&m2, &loop2, "n3", &ep3));
  CHECK(tu_wait_state(&loop1, &m1, r1.port, "Connected", 2, 10000));
  CHECK(tu_wait_state(&loop1, &m1, r2.port, "Connected", 2, 10000));
  CHECK(tu_wait_state(&loop2, &m2, r1.port, "Connected", 3, 10000));
  CHECK(tu_wait_state(&loop2, &m2, dead, "Reconnecting", 3, 10000));

  const char *text = reply_both();
  char e1[256], e2[256], e3[256];
  entry(e1, sizeof e1, r1.port, "\"Connected\",\"Connected\",\"Connected\",\"Connected\",\"Connected\"");
  entry(e2, sizeof e2, r2.port, "\"Connected\",\"Connected\"");
  entry(e3, sizeof e3, dead, "\"Reconnecting\",\"Reconnecting\",\"Reconnecting\"");
  /* Three entries in dict order (unspecified): exactly these, each once,
   * separated by commas, inside one map. */
  CHECK_EQ_INT(strlen(text), 2 + strlen(e1) + strlen(e2) + strlen(e3) + 2);
  CHECK(text[0] == '{' && text[strlen(text) - 1] == '}');
  CHECK_EQ_INT(occurrences(text, e1), 1);
  CHECK_EQ_INT(occurrences(text, e2), 1);
  CHECK_EQ_INT(occurrences(text, e3), 1);
  CHECK_EQ_INT(occurrences(text, "],\""), 2);
  if (harness_failures()) printf("reply: %s\n", text);
  /* map + 3 keys + 3 arrays + 10 states */
  CHECK_EQ_INT(host_reply_call_count(), 1 + 3 + 3 + 10);

  /* Filling the same dict twice from one manager appends again. */
  dict *d = tu_state_dict_new();
  MRConnManager_FillStateDict(&m1, d);
  MRConnManager_FillStateDict(&m1, d);
  char key[64];
  tu_key(key, sizeof key, r2.port);
  dictEntry *de = dictFind(d, key);
  CHECK(de != NULL);
  if (de) CHECK_EQ_INT(array_len(dictGetVal(de)), 4);
  CHECK_EQ_INT(dictSize(d), 2);
  dictRelease(d);
  finish();
  redis_stop(&r1);
  redis_stop(&r2);
}

TEST(empty) {
  start(2, 2);
  CHECK_EQ_STR(reply_both(), "{}");
  finish();
}

HARNESS_MAIN(HARNESS_TEST(two_managers_one_node), HARNESS_TEST(several_nodes), HARNESS_TEST(empty))
