// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Authentication. Enterprise (IsEnterprise() true) against a real
 * redis-server with requirepass: the endpoint's password → Connected; a wrong
 * one → "Re-Authenticating", AUTH retried about once a second, and Connected
 * soon after the server's password is changed to it with CONFIG SET; no
 * password on the endpoint → Connected without any AUTH. OSS (IsEnterprise()
 * false): AUTH "internal connection" <internal secret>, read under the GIL,
 * binary-safe. That part runs against the harness's hand-written RESP server
 * because a real redis-server has no user named "internal connection" and
 * cannot accept an arbitrary binary secret for it (the internal-secret
 * mechanism lives in a cluster-mode Redis module API, not in a plain server);
 * the hand-written server also lets the test read back the exact AUTH bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

#define PASSWORD "s3cr3t-pw"

static long cmdstat_calls(int port, const char *pass, const char *cmd) {
  static char info[64 * 1024];
  int rc = pass ? redis_cmd_auth(port, NULL, pass, info, sizeof info, "INFO commandstats")
                : redis_cmd(port, info, sizeof info, "INFO commandstats");
  if (rc != 0) return -1;
  char needle[64];
  snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
  const char *p = strstr(info, needle);
  return p ? strtol(p + strlen(needle), NULL, 10) : 0;
}

static void start(int conns) { tu_start1(&loop, &mgr, conns); }

static void finish(void) {
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_gil_violations(), 0);
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
}

TEST(enterprise_right_password) {
  redis_proc r;
  REQUIRE(redis_start(&r, "--requirepass " PASSWORD) == 0);
  start(2);
  host_set_enterprise(true);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port, .password = PASSWORD};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 2, 10000));
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Authenticating"), 2);
  CHECK_EQ_INT(host_log_count("warning", "Error authenticating"), 0);
  /* Our two, plus the one the INFO query itself authenticates with. */
  CHECK_EQ_INT(cmdstat_calls(r.port, PASSWORD, "auth"), 2 + 1);
  /* Authenticated for real: a command that needs it succeeds. */
  tu_reply rep;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &rep, 3, (const char *[]){"SET", "k", "v"}), REDIS_OK);
  CHECK_EQ_INT(rep.type, REDIS_REPLY_STATUS);
  CHECK_EQ_STR(rep.text, "OK");
  finish();
  redis_stop(&r);
}

typedef struct {
  const char *level, *substr;
  int n;
} log_wait;

static bool log_reached(void *arg) {
  log_wait *w = arg;
  return host_log_count(w->level, w->substr) >= w->n;
}

TEST(enterprise_wrong_password_then_fixed) {
  redis_proc r;
  REQUIRE(redis_start(&r, "--requirepass " PASSWORD) == 0);
  start(1);
  host_set_enterprise(true);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port, .password = "new-password"};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Re-Authenticating", 5000));
  CHECK(MRConn_Get(&mgr, "n1") == NULL);
  char *line = host_log_find("warning", "Error authenticating");
  CHECK(line != NULL);
  if (line) {
    CHECK_MSG(strstr(line, "WRONGPASS") != NULL, "log: %s", line);
    CHECK_MSG(strstr(line, "Re-Authenticating]") || strstr(line, "Authenticating]"), "log prefix: %s", line);
  }
  free(line);

  /* The retry comes about a second later (each failure switches to
     Re-Authenticating; the warnings are summed per node). */
  uint64_t t0 = now_ms();
  log_wait second = {"debug", "Switching state to Re-Authenticating", 2};
  CHECK(loop_run_until(&loop, log_reached, &second, 5000));
  uint64_t gap = now_ms() - t0;
  CHECK_MSG(gap >= 800 && gap <= 2500, "second AUTH after %llu ms", (unsigned long long)gap);

  /* Over ~2.5 s more: two or three more attempts (one a second). */
  int before = host_log_count("debug", "Switching state to Re-Authenticating");
  loop_run_for(&loop, 2500);
  int more = host_log_count("debug", "Switching state to Re-Authenticating") - before;
  CHECK_EQ_INT(host_log_count("warning", "Error authenticating"), 1);  // the node's first
  CHECK_MSG(more >= 2 && more <= 4, "%d AUTH failures in 2.5 s", more);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n1"), "Re-Authenticating");
  /* Never reconnected: re-auth reuses the link. */
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Reconnecting"), 0);

  /* The server's password changes to ours: the next retry succeeds. */
  char out[256];
  CHECK_EQ_INT(redis_cmd_auth(r.port, NULL, PASSWORD, out, sizeof out, "CONFIG SET requirepass new-password"), 0);
  uint64_t t1 = now_ms();
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Connected", 5000));
  CHECK_MSG(now_ms() - t1 <= 2500, "Connected %llu ms after the fix", (unsigned long long)(now_ms() - t1));
  tu_reply rep;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &rep, 3, (const char *[]){"SET", "k", "v"}), REDIS_OK);
  CHECK_EQ_STR(rep.text, "OK");
  finish();
  redis_stop(&r);
}

TEST(enterprise_no_password) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start(2);
  host_set_enterprise(true);
  MREndpoint ep = {.host = "127.0.0.1", .port = r.port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r.port, "Connected", 2, 10000));
  CHECK_EQ_INT(host_log_count("debug", "Switching state to Authenticating"), 0);
  CHECK_EQ_INT(cmdstat_calls(r.port, NULL, "auth"), 0);
  finish();
  redis_stop(&r);
}

/* A secret with a NUL byte and high bytes: it must arrive byte for byte. */
static const char secret[] = "int\0ernal-\xff\x01secret";
#define SECRET_LEN (sizeof secret - 1)

TEST(oss_internal_auth) {
  struct resp_server_opts o = {
      .auth_user = "internal connection",
      .auth_pass = secret,
      .auth_pass_len = SECRET_LEN,
      .require_auth = true,
  };
  resp_server *s = resp_server_start(&o);
  REQUIRE(s != NULL);
  start(2);
  host_set_enterprise(false);
  host_set_internal_secret(secret, SECRET_LEN);
  /* On OSS the endpoint's password plays no part. */
  MREndpoint ep = {.host = "127.0.0.1", .port = resp_server_port(s), .password = "not-this"};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, resp_server_port(s), "Connected", 2, 10000));
  CHECK_EQ_INT(resp_server_auth_count(s), 2);

  char user[64], pass[64];
  size_t ulen = sizeof user, plen = sizeof pass;
  CHECK_EQ_INT(resp_server_last_auth(s, user, &ulen, pass, &plen), 2);
  CHECK_EQ_INT(ulen, strlen("internal connection"));
  CHECK_EQ_STR(user, "internal connection");
  CHECK_EQ_INT(plen, SECRET_LEN);
  CHECK(memcmp(pass, secret, SECRET_LEN) == 0);

  /* The server requires AUTH for anything else: this works only if it passed. */
  tu_reply rep;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &rep, 1, (const char *[]){"PING"}), REDIS_OK);
  CHECK_EQ_STR(rep.text, "PONG");
  finish();
  resp_server_stop(s);
}

TEST(oss_wrong_secret_then_fixed) {
  struct resp_server_opts o = {
      .auth_user = "internal connection",
      .auth_pass = secret,
      .auth_pass_len = SECRET_LEN,
      .require_auth = true,
  };
  resp_server *s = resp_server_start(&o);
  REQUIRE(s != NULL);
  start(1);
  host_set_enterprise(false);
  /* The same bytes up to the NUL: a C-string comparison would accept it. */
  host_set_internal_secret(secret, 3);
  MREndpoint ep = {.host = "127.0.0.1", .port = resp_server_port(s)};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Re-Authenticating", 5000));
  CHECK(MRConn_Get(&mgr, "n1") == NULL);
  unsigned long first = resp_server_auth_count(s);
  CHECK(first >= 1);
  loop_run_for(&loop, 2500);
  unsigned long more = resp_server_auth_count(s) - first;
  CHECK_MSG(more >= 2 && more <= 4, "%lu AUTH retries in 2.5 s", more);
  CHECK_EQ_STR(MRConnManager_GetNodeState(&mgr, "n1"), "Re-Authenticating");
  CHECK_EQ_INT(resp_server_connections(s), 1); /* re-auth keeps the link */

  /* The secret is read again for every attempt. */
  host_set_internal_secret(secret, SECRET_LEN);
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Connected", 3000));
  finish();
  resp_server_stop(s);
}

HARNESS_MAIN(HARNESS_TEST(enterprise_right_password), HARNESS_TEST(enterprise_wrong_password_then_fixed),
             HARNESS_TEST(enterprise_no_password), HARNESS_TEST(oss_internal_auth),
             HARNESS_TEST(oss_wrong_secret_then_fixed))
