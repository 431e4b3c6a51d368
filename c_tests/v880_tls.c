// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * TLS with RediSearch v8.8.0 semantics (built against the v8.8.0 variant:
 * MREndpoint has no isTls). TLS is chosen from the Redis config: used when
 * tls-cluster is "yes" or tls-port is non-zero, and then only if
 * tls-cert-file, tls-key-file and tls-ca-cert-file are all set; a missing
 * one means plain TCP, not an error. Against real redis-servers: tls-cluster
 * yes + files → TLS, Connected to a TLS-only port; tls-port non-zero + files
 * → TLS too; neither → plain TCP to a plain server; tls-cluster yes without
 * the files → plain TCP to a plain server.
 */
#include <string.h>

#include "tutil.h"

static MRConnManager mgr;
static uv_loop_t loop;
static char certdir[256];

static bool certs(void) {
  if (certdir[0]) return true;
  char dir[256];
  if (harness_mkdtemp(dir, sizeof dir) != 0 || tls_make_certs(dir) != 0) return false;
  memcpy(certdir, dir, sizeof dir);
  return true;
}

static void set_file(const char *setting, const char *file) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", certdir, file);
  host_config_set(setting, path);
}

static void client_files(void) {
  set_file("tls-cert-file", "client.crt");
  set_file("tls-key-file", "client.key");
  set_file("tls-ca-cert-file", "ca.crt");
}

/* Opens a pool of 2 to port, waits for Connected, and checks an ECHO. */
static void connect_and_echo(int port) {
  tu_begin();
  CHECK(uv_loop_init(&loop) == 0);
  MRConnManager_Init(&mgr, 2);
  MREndpoint ep = {.host = "127.0.0.1", .port = port};
  CHECK(MRConnManager_Add(&mgr, &loop, "n1", &ep));
  CHECK(tu_wait_state(&loop, &mgr, port, "Connected", 2, 10000));
  tu_reply rep;
  CHECK_EQ_INT(tu_roundtrip(&loop, &mgr, "n1", 0, &rep, 2, (const char *[]){"ECHO", "v880"}), REDIS_OK);
  CHECK_EQ_STR(rep.text, "v880");
  CHECK_EQ_INT(rep.calls, 1);
  CHECK_EQ_INT(host_log_count("warning", NULL), 0);
  tu_teardown1(&loop, &mgr);
  TU_CHECK_NO_LEAK();
  CHECK_EQ_INT(host_gil_violations(), 0);
  CHECK_EQ_INT(host_log_count("BADLEVEL", NULL), 0);
}

TEST(endpoint_has_no_tls_field) {
  CHECK_EQ_INT(sizeof(MREndpoint), 32);
}

TEST(tls_cluster_yes_uses_tls) {
  REQUIRE(certs());
  redis_proc r;
  REQUIRE(redis_start_tls(&r, certdir, "--tls-auth-clients yes") == 0);
  host_config_clear();
  host_config_set("tls-cluster", "yes");
  client_files();
  connect_and_echo(r.port);
  host_config_clear();
  redis_stop(&r);
}

TEST(tls_port_uses_tls) {
  REQUIRE(certs());
  redis_proc r;
  REQUIRE(redis_start_tls(&r, certdir, "--tls-auth-clients yes") == 0);
  host_config_clear();
  host_config_set("tls-cluster", "no");
  host_config_set("tls-port", "6380");
  client_files();
  connect_and_echo(r.port);
  host_config_clear();
  redis_stop(&r);
}

TEST(no_tls_config_is_plain) {
  REQUIRE(certs());
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  host_config_clear();
  host_config_set("tls-port", "0");
  client_files(); /* files alone do not turn TLS on */
  connect_and_echo(r.port);
  host_config_clear();
  redis_stop(&r);
}

TEST(tls_cluster_without_files_is_plain) {
  redis_proc r;
  REQUIRE(redis_start(&r, NULL) == 0);
  host_config_clear();
  host_config_set("tls-cluster", "yes");
  connect_and_echo(r.port);
  /* Only some of the files: still plain. */
  REQUIRE(certs());
  host_config_set("tls-cluster", "yes");
  set_file("tls-cert-file", "client.crt");
  set_file("tls-key-file", "client.key");
  connect_and_echo(r.port);
  host_config_clear();
  redis_stop(&r);
}

HARNESS_MAIN(HARNESS_TEST(endpoint_has_no_tls_field), HARNESS_TEST(tls_cluster_yes_uses_tls),
             HARNESS_TEST(tls_port_uses_tls), HARNESS_TEST(no_tls_config_is_plain),
             HARNESS_TEST(tls_cluster_without_files_is_plain))
