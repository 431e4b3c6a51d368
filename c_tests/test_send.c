// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * MRConn_SendCommand against a real redis-server: lazy formatting stores the
 * formatted sds in cmd->cmd and a second send reuses it (the arguments are
 * not formatted again); a caller-made cmd->cmd is sent as is; protocol 3
 * queues HELLO 3 once per connection (counted with INFO commandstats, seen
 * as RESP3 map replies and "resp=3" in CLIENT INFO), protocol 2 switches
 * back, protocol 0 leaves the connection as it is, and a reconnected
 * connection asks again; sending on a connection that is not Connected, or a
 * command with no arguments, returns REDIS_ERR with a warning and never calls
 * the callback.
 */
#include <stdlib.h>
#include <string.h>

#include "hiredis/sds.h"
#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;

/* calls= of cmdstat_hello in INFO commandstats (0 when absent). */
static long hello_calls(int port) {
  static char info[64 * 1024];
  if (redis_cmd(port, info, sizeof info, "INFO commandstats") != 0) return -1;
  const char *p = strstr(info, "cmdstat_hello:calls=");
  return p ? strtol(p + strlen("cmdstat_hello:calls="), NULL, 10) : 0;
}

static void start_one(redis_proc *r, int conns) {
  tu_begin();
  CHECK(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, conns);
  MREndpoint ep = {.host = "127.0.0.1", .port = r->port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, r->port, "Connected", conns, 10000));
}

static void finish(void) {
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
}

TEST(lazy_formatting) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start_one(&r, 1);
  MRConn *c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);

  MRCommand cmd = MR_NewCommand(2, "ECHO", "hello");
  CHECK(cmd.cmd == NULL);
  tu_reply r1 = {0}, r2 = {0};
  CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, tu_on_reply, &r1), REDIS_OK);
  /* Formatted at once, into the command, which owns it from now on. */
  REQUIRE(cmd.cmd != NULL);
  const char want[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
  CHECK_EQ_INT(sdslen(cmd.cmd), sizeof want - 1);
  CHECK(memcmp(cmd.cmd, want, sizeof want - 1) == 0);
  sds first = cmd.cmd;
  CHECK(tu_wait_reply(&loop, &r1, 5000));
  CHECK_EQ_STR(r1.text, "hello");

  /* Change the arguments: a second send must reuse the stored bytes. */
  memcpy(cmd.strs[1], "world", 5);
  CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, tu_on_reply, &r2), REDIS_OK);
  CHECK(cmd.cmd == first);
  CHECK(tu_wait_reply(&loop, &r2, 5000));
  CHECK_EQ_STR(r2.text, "hello");
  CHECK_EQ_INT(r1.calls, 1);
  CHECK_EQ_INT(r2.calls, 1);
  MRCommand_Free(&cmd);

  /* A command that comes with its bytes already formatted is sent as is. */
  MRCommand pre = MR_NewCommand(2, "ECHO", "ignored");
  pre.cmd = sdsnew("*2\r\n$4\r\nECHO\r\n$3\r\npre\r\n");
  sds mine = pre.cmd;
  tu_reply r3 = {0};
  CHECK_EQ_INT(MRConn_SendCommand(c, &pre, tu_on_reply, &r3), REDIS_OK);
  CHECK(pre.cmd == mine);
  CHECK(tu_wait_reply(&loop, &r3, 5000));
  CHECK_EQ_STR(r3.text, "pre");
  CHECK_EQ_INT(r3.calls, 1);
  MRCommand_Free(&pre);

  /* Binary-safe arguments. */
  const char *argv[] = {"ECHO", "a\0b"};
  size_t lens[] = {4, 3};
  MRCommand bin = MR_NewCommandArgvLen(2, argv, lens);
  tu_reply r4 = {0};
  CHECK_EQ_INT(MRConn_SendCommand(c, &bin, tu_on_reply, &r4), REDIS_OK);
  CHECK(tu_wait_reply(&loop, &r4, 5000));
  CHECK_EQ_INT(r4.type, REDIS_REPLY_STRING);
  CHECK(memcmp(r4.text, "a\0b", 3) == 0);
  MRCommand_Free(&bin);

  finish();
  redis_stop(&r);
}

/* Sends argv with protocol on c and waits; returns the reply type. */
static int send_wait(MRConn *c, unsigned char protocol, tu_reply *out, int argc, const char **argv) {
  memset(out, 0, sizeof *out);
  size_t lens[8];
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  MRCommand cmd = MR_NewCommandArgvLen(argc, argv, lens);
  cmd.protocol = protocol;
  int type = -1;
  if (CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, tu_on_reply, out), REDIS_OK) && CHECK(tu_wait_reply(&loop, out, 5000)))
    type = out->type;
  CHECK_EQ_INT(out->calls, 1);
  MRCommand_Free(&cmd);
  return type;
}

TEST(hello_switching) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  char out[256];
  CHECK_EQ_INT(redis_cmd(r.port, out, sizeof out, "HSET h f v"), 0);
  start_one(&r, 1);
  CHECK_EQ_INT(redis_cmd(r.port, out, sizeof out, "CONFIG RESETSTAT"), 0);
  MRConn *c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);
  const char *hgetall[] = {"HGETALL", "h"};
  const char *info[] = {"CLIENT", "INFO"};
  tu_reply rep;

  /* Protocol 0: the connection stays as it is (RESP2), no HELLO. */
  CHECK_EQ_INT(send_wait(c, 0, &rep, 2, hgetall), REDIS_REPLY_ARRAY);
  CHECK_EQ_INT(hello_calls(r.port), 0);

  /* Protocol 3: HELLO 3 first, once. */
  CHECK_EQ_INT(send_wait(c, 3, &rep, 2, hgetall), REDIS_REPLY_MAP);
  CHECK_EQ_INT(rep.elements, 2); /* one field and its value */
  CHECK_EQ_INT(hello_calls(r.port), 1);
  CHECK_EQ_INT(send_wait(c, 3, &rep, 2, hgetall), REDIS_REPLY_MAP);
  send_wait(c, 3, &rep, 2, info);
  CHECK_MSG(strstr(rep.text, " resp=3") != NULL, "CLIENT INFO: %s", rep.text);
  /* Protocol 0 keeps RESP3. */
  CHECK_EQ_INT(send_wait(c, 0, &rep, 2, hgetall), REDIS_REPLY_MAP);
  CHECK_EQ_INT(hello_calls(r.port), 1);

  /* Protocol 2 switches back, once. */
  CHECK_EQ_INT(send_wait(c, 2, &rep, 2, hgetall), REDIS_REPLY_ARRAY);
  CHECK_EQ_INT(send_wait(c, 2, &rep, 2, hgetall), REDIS_REPLY_ARRAY);
  send_wait(c, 0, &rep, 2, info);
  CHECK_MSG(strstr(rep.text, " resp=2") != NULL, "CLIENT INFO: %s", rep.text);
  CHECK_EQ_INT(hello_calls(r.port), 2);

  /* Pipelined without waiting: HELLO goes out only for the first. */
  tu_reply many[10];
  memset(many, 0, sizeof many);
  MRCommand cmds[10];
  for (int i = 0; i < 10; i++) {
    cmds[i] = MR_NewCommand(2, "HGETALL", "h");
    cmds[i].protocol = 3;
    CHECK_EQ_INT(MRConn_SendCommand(c, &cmds[i], tu_on_reply, &many[i]), REDIS_OK);
  }
  tu_replies all = {many, 10};
  CHECK(loop_run_until(&loop, tu_all_called, &all, 5000));
  for (int i = 0; i < 10; i++) {
    CHECK_EQ_INT(many[i].calls, 1);
    CHECK_EQ_INT(many[i].type, REDIS_REPLY_MAP);
    MRCommand_Free(&cmds[i]);
  }
  CHECK_EQ_INT(hello_calls(r.port), 3);

  /* A reconnected connection starts over on the server's default (RESP2):
   * the next protocol-3 command must ask again. */
  send_wait(c, 3, &rep, 2, (const char *[]){"CLIENT", "ID"});
  long long id = rep.integer;
  CHECK_EQ_INT(redis_cmd(r.port, out, sizeof out, "CLIENT KILL ID %lld", id), 0);
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Reconnecting", 5000));
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Connected", 5000));
  CHECK(MRConn_Get(&mgr, "n1") == c);
  CHECK_EQ_INT(send_wait(c, 3, &rep, 2, hgetall), REDIS_REPLY_MAP);
  CHECK_EQ_INT(hello_calls(r.port), 4);

  finish();
  redis_stop(&r);
}

TEST(not_connected) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start_one(&r, 1);
  MRConn *c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);
  redis_kill(&r);
  CHECK(tu_wait_node_state(&loop, &mgr, "n1", "Reconnecting", 5000));
  CHECK(MRConn_Get(&mgr, "n1") == NULL);

  /* The pointer from earlier is still the pool's connection: refused. */
  host_log_clear();
  MRCommand cmd = MR_NewCommand(1, "PING");
  tu_reply rep = {0};
  CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, tu_on_reply, &rep), REDIS_ERR);
  CHECK_EQ_INT(host_log_count("warning", "Tried to send command to node in state Reconnecting"), 1);
  CHECK(cmd.cmd == NULL); /* refused before formatting */
  loop_run_for(&loop, 100);
  CHECK_EQ_INT(rep.calls, 0);
  MRCommand_Free(&cmd);

  finish();
}

TEST(no_arguments) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  start_one(&r, 1);
  MRConn *c = MRConn_Get(&mgr, "n1");
  REQUIRE(c != NULL);

  host_log_clear();
  MRCommand cmd = MR_NewCommand(0);
  tu_reply rep = {0};
  CHECK_EQ_INT(MRConn_SendCommand(c, &cmd, tu_on_reply, &rep), REDIS_ERR);
  CHECK_EQ_INT(host_log_count("warning", "no arguments"), 1);
  CHECK(cmd.cmd == NULL);
  MRCommand_Free(&cmd);

  /* All-zero command (strs and lens NULL). */
  MRCommand zero = {0};
  CHECK_EQ_INT(MRConn_SendCommand(c, &zero, tu_on_reply, &rep), REDIS_ERR);
  CHECK_EQ_INT(host_log_count("warning", "no arguments"), 2);
  loop_run_for(&loop, 50);
  CHECK_EQ_INT(rep.calls, 0);

  /* The connection still works. */
  tu_reply ok;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &ok, 1, (const char *[]){"PING"}), REDIS_OK);
  CHECK_EQ_STR(ok.text, "PONG");
  CHECK_EQ_INT(ok.calls, 1);

  finish();
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(lazy_formatting), HARNESS_TEST(hello_switching), HARNESS_TEST(not_connected),
             HARNESS_TEST(no_arguments))
