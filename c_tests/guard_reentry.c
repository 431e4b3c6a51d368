// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The re-entrancy guard (src/reentry.rs), built into the C tests' and the
// sanitizer builds only (CMakeLists.txt registers this test there).
//
// mrconn never runs a user callback while it borrows a manager, so no test
// of the API can make the guard fire: the 72-cell matrix of test_reentry
// passes with it armed. This negative control makes the host re-enter
// instead: its RedisModule_Log, which mrconn calls while MRConnManager_Add
// holds the manager (the "endpoint changed" notice), calls an export. The
// child running that must abort, naming both calls; the same run with a
// host that does not re-enter must finish.
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn.h"
#include "harness.h"
#include "mrconn_test_host.h"

extern void (*RedisModule_Log)(RedisModuleCtx *, const char *, const char *, ...);

static MRConnManager mgr;
static bool reenter;
static void (*host_log)(RedisModuleCtx *, const char *, const char *, ...);

// mrconn logs with "%s" and one string.
static void hooked_log(RedisModuleCtx *ctx, const char *level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *msg = va_arg(ap, const char *);
  va_end(ap);
  host_log(ctx, level, "%s", msg);
  if (reenter && strstr(msg, "endpoint changed")) {
    MRConnDrainStats stats;
    MRConnManager_GetDrainStats(&mgr, &stats);
  }
}

// Adds node n1 at one endpoint, then at another, in a child whose stderr
// goes to `err`; `*st` is the child's wait status.
static void add_twice(bool with_reentry, char *err, size_t errlen, int *st) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    uv_loop_t loop;
    uv_loop_init(&loop);
    MRConnManager_Init(&mgr, 2);
    host_log = RedisModule_Log;
    RedisModule_Log = hooked_log;
    reenter = with_reentry;
    MREndpoint a = {.host = "127.0.0.1", .port = 1};
    MREndpoint b = {.host = "127.0.0.1", .port = 2};
    MRConnManager_Add(&mgr, &loop, "n1", &a);
    MRConnManager_Add(&mgr, &loop, "n1", &b);
    MRConnManager_Shutdown(&mgr);
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < errlen && (n = read(fds[0], err + len, errlen - 1 - len)) > 0) len += (size_t)n;
  err[len] = '\0';
  close(fds[0]);
  REQUIRE(waitpid(pid, st, 0) == pid);
}

TEST(guard_fires_on_reentry) {
  char err[4096];
  int st = 0;
  add_twice(true, err, sizeof err, &st);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  CHECK(strstr(err, "mrconn: re-entrancy guard: MRConnManager_GetDrainStats inside MRConnManager_Add") != NULL);
  if (!strstr(err, "re-entrancy guard")) fprintf(stderr, "child stderr: %s\n", err);
}

TEST(quiet_without_reentry) {
  char err[4096];
  int st = 0;
  add_twice(false, err, sizeof err, &st);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(strstr(err, "re-entrancy guard") == NULL);
}

HARNESS_MAIN(HARNESS_TEST(guard_fires_on_reentry), HARNESS_TEST(quiet_without_reentry))
