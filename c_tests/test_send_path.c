// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Differential test of the hot-path send (src/glue/send.c, compiled into
 * this test) against hiredis's own redisAsyncFormattedCommand.
 *
 * Two real hiredis async contexts run side by side, one sending through
 * mrconn_send_formatted, the other through redisAsyncFormattedCommand, and
 * receive the very same treatment from one seeded random script: thousands
 * of commands (random argv with binary and empty arguments; plain names and
 * every name hiredis treats specially: (P)SUBSCRIBE, (P)UNSUBSCRIBE, MONITOR,
 * SSUBSCRIBE), HELLO 2/3 protocol switches queued as mrconn queues them,
 * commands sent before the connection completes and from inside callbacks,
 * replies in RESP2 and RESP3 (pushes, cut mid-way), and every way a context
 * ends: redisAsyncFree, redisAsyncDisconnect, a command timeout, the peer
 * closing. Asserted: the peers received byte-identical streams, and both
 * sides saw the same sequence of events: every callback (which one, its
 * privdata, its reply or NULL), every send's return code, connect,
 * disconnect and push callbacks, and every event-loop hook hiredis called
 * (addRead/addWrite/delRead/delWrite/cleanup, scheduleTimer with its
 * timeout).
 *
 * The peer is this test's own socket, not a redis-server nor the harness's
 * RESP server: it must record every byte and answer at moments the script
 * chooses, identically on both connections, with no event loop, so that
 * the two runs are deterministic. It models a server only as far as hiredis
 * needs to stay out of its asserts (one reply per command, subscribe
 * confirmations, no arrays where a subscribed context would read a message).
 *
 * MRCONN_SEND_PATH_SEED replays a run (the seed is printed).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "hiredis/async.h"
#include "hiredis/hiredis.h"

int mrconn_send_formatted(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, const char *cmd);

static int hiredis_send(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, const char *cmd) {
  return redisAsyncFormattedCommand(ac, fn, privdata, cmd, sdslen((sds)cmd));
}

#define COMMANDS 6000          /* top-level commands per side */
#define SESSION_OPS 300        /* a session is freed after this many steps */
#define FOLLOW_UP_BASE 1000000 /* privdata of commands sent from callbacks */

// ---- buffers and the random script ------------------------------------------

typedef struct {
  char *p;
  size_t len, cap;
} buf;

static void buf_add(buf *b, const void *d, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_vaddf(buf *b, const char *fmt, va_list ap) HARNESS_PRINTF(2, 0);
static void buf_vaddf(buf *b, const char *fmt, va_list ap) {
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void buf_addf(buf *b, const char *fmt, ...) HARNESS_PRINTF(2, 3);
static void buf_addf(buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vaddf(b, fmt, ap);
  va_end(ap);
}

static void buf_free(buf *b) {
  free(b->p);
  *b = (buf){0};
}

static uint64_t rng;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static unsigned below(unsigned n) { return (unsigned)(rnd() % n); }
static bool chance(unsigned percent) { return below(100) < percent; }

static void random_bytes(buf *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = chance(30) ? "$\r\n*\0:+-"[below(9)] : (char)below(256);
    buf_add(b, &c, 1);
  }
}

// ---- the two sides --------------------------------------------------------------

typedef struct side {
  const char *name;
  int (*send)(redisAsyncContext *, redisCallbackFn *, void *, const char *);
  redisAsyncContext *ac; /* NULL once hiredis freed it */
  int listen_fd, port, peer_fd;
  buf wire;   /* every byte the peer received */
  buf events; /* one line per event */
  size_t nevents, checked_events, checked_wire;
  size_t sends, follow_ups;
  /* Sends in each state send.c tells apart. */
  size_t refused, subscribed, unconnected;
} side;

static side sides[2] = {{.name = "send.c", .send = mrconn_send_formatted},
                        {.name = "hiredis", .send = hiredis_send}};

static void event(side *s, const char *fmt, ...) HARNESS_PRINTF(2, 3);
static void event(side *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vaddf(&s->events, fmt, ap);
  va_end(ap);
  buf_add(&s->events, "\n", 1);
  s->nevents++;
}

/* The reply, whole and binary-safe, on the current event line. */
static void describe(buf *b, const redisReply *r) {
  if (!r) {
    buf_add(b, "NULL", 4);
    return;
  }
  buf_addf(b, "(t%d i%lld l%zu:", r->type, r->integer, r->len);
  if (r->str) buf_add(b, r->str, r->len);
  buf_addf(b, " n%zu", r->elements);
  for (size_t i = 0; i < r->elements; i++) {
    buf_add(b, " ", 1);
    describe(b, r->element[i]);
  }
  buf_add(b, ")", 1);
}

static void count_send(side *s, int rc, size_t priv) {
  s->sends++;
  s->refused += rc != REDIS_OK;
  if (s->ac && rc == REDIS_OK) {
    s->subscribed += (s->ac->c.flags & REDIS_SUBSCRIBED) != 0;
    s->unconnected += (s->ac->c.flags & REDIS_CONNECTED) == 0;
  }
  event(s, "send priv=%zu rc=%d", priv, rc);
}

static void event_reply(side *s, const char *what, void *priv, const redisReply *r) {
  buf_addf(&s->events, "%s priv=%zu ", what, (size_t)(uintptr_t)priv);
  describe(&s->events, r);
  event(s, "%s", "");
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) { event_reply(ac->data, "reply", priv, r); }

/* A callback that sends again, from inside hiredis's callback loop. */
static void on_reply_send_again(redisAsyncContext *ac, void *r, void *priv) {
  side *s = ac->data;
  event_reply(s, "reply+send", priv, r);
  static const char *names[] = {"ECHO", "PUBLISH", "GET", "MGET", "_FT.SEARCH"};
  size_t n = (size_t)(uintptr_t)priv;
  char arg[32];
  snprintf(arg, sizeof arg, "%zu", n);
  const char *argv[] = {names[n % 5], arg};
  sds cmd;
  CHECK(redisFormatSdsCommandArgv(&cmd, 2, argv, NULL) > 0);
  void *next = (void *)(uintptr_t)(n + FOLLOW_UP_BASE);
  count_send(s, s->send(ac, on_reply, next, cmd), (size_t)(uintptr_t)next);
  s->follow_ups++;
  sdsfree(cmd);
}

static void on_push(redisAsyncContext *ac, void *r) { event_reply(ac->data, "push", NULL, r); }

static void on_connect(const redisAsyncContext *ac, int status) {
  event(ac->data, "connect status=%d", status);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  side *s = ac->data;
  event(s, "disconnect status=%d err=%d %s", status, ac->err, ac->errstr ? ac->errstr : "");
  s->ac = NULL; /* hiredis frees it on return */
}

static void hook_add_read(void *d) { event(d, "addRead"); }
static void hook_del_read(void *d) { event(d, "delRead"); }
static void hook_add_write(void *d) { event(d, "addWrite"); }
static void hook_del_write(void *d) { event(d, "delWrite"); }
static void hook_cleanup(void *d) { event(d, "cleanup"); }
static void hook_timer(void *d, struct timeval tv) { event(d, "timer %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec); }

// ---- sockets ------------------------------------------------------------------------

static int listen_local(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

/* Waits until `fd` has `n` bytes queued (or its peer closed, n == 0). */
static bool wait_queued(int fd, size_t n) {
  uint64_t until = now_ms() + 5000;
  for (;;) {
    int queued = 0;
    if (n > 0 && ioctl(fd, FIONREAD, &queued) == 0 && (size_t)queued >= n) return true;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (n == 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP))) return true;
    if (now_ms() > until) return false;
    poll(NULL, 0, 1);
  }
}

/* The peer takes exactly the `n` bytes hiredis just wrote. */
static void peer_read(side *s, size_t n) {
  char tmp[4096];
  while (n > 0) {
    if (!CHECK_MSG(wait_queued(s->peer_fd, 1), "%s: the peer never got %zu bytes", s->name, n)) return;
    ssize_t got = recv(s->peer_fd, tmp, n < sizeof tmp ? n : sizeof tmp, 0);
    if (!CHECK(got > 0)) return;
    buf_add(&s->wire, tmp, (size_t)got);
    n -= (size_t)got;
  }
}

// ---- steps, applied to both sides ---------------------------------------------------

static void open_session(side *s) {
  static struct timeval connect_tv = {7, 250000}, command_tv = {3, 500000};
  redisOptions o = {0};
  REDIS_OPTIONS_SET_TCP(&o, "127.0.0.1", s->port);
  o.connect_timeout = &connect_tv;
  o.command_timeout = &command_tv;
  s->ac = redisAsyncConnectWithOptions(&o);
  REQUIRE(s->ac && !s->ac->err);
  s->ac->data = s;
  s->ac->ev.data = s;
  s->ac->ev.addRead = hook_add_read;
  s->ac->ev.delRead = hook_del_read;
  s->ac->ev.addWrite = hook_add_write;
  s->ac->ev.delWrite = hook_del_write;
  s->ac->ev.cleanup = hook_cleanup;
  s->ac->ev.scheduleTimer = hook_timer;
  redisAsyncSetConnectCallback(s->ac, on_connect);
  redisAsyncSetDisconnectCallback(s->ac, on_disconnect);
  redisAsyncSetPushCallback(s->ac, on_push);
}

/* Accepts the connection, then the first write event completes it. */
static void complete_connect(side *s) {
  s->peer_fd = accept(s->listen_fd, NULL, NULL);
  REQUIRE(s->peer_fd >= 0);
  size_t before = sdslen(s->ac->c.obuf);
  redisAsyncHandleWrite(s->ac);
  REQUIRE(s->ac && (s->ac->c.flags & REDIS_CONNECTED));
  peer_read(s, before - sdslen(s->ac->c.obuf));
}

static void flush(side *s) {
  if (!s->ac) return;
  size_t before = sdslen(s->ac->c.obuf);
  redisAsyncHandleWrite(s->ac);
  if (s->ac) peer_read(s, before - sdslen(s->ac->c.obuf));
}

static void send_cmd(side *s, int argc, const char **argv, const size_t *lens, redisCallbackFn *fn, size_t priv) {
  if (!s->ac) return;
  sds cmd;
  REQUIRE(redisFormatSdsCommandArgv(&cmd, argc, argv, lens) > 0);
  count_send(s, s->send(s->ac, fn, (void *)(uintptr_t)priv, cmd), priv);
  sdsfree(cmd);
}

/* As mrconn switches protocols: HELLO through redisAsyncCommandArgv, no callback. */
static void send_hello(side *s, const char *proto) {
  if (!s->ac) return;
  const char *argv[] = {"HELLO", proto};
  int rc = redisAsyncCommandArgv(s->ac, NULL, NULL, 2, argv, NULL);
  event(s, "hello %s rc=%d", proto, rc);
}

/* The peer's bytes reach hiredis in one read: all are queued first. */
static void deliver(side *s, const char *bytes, size_t n) {
  if (!s->ac) return;
  REQUIRE(send(s->peer_fd, bytes, n, 0) == (ssize_t)n);
  REQUIRE(wait_queued(s->ac->c.fd, n));
  redisAsyncHandleRead(s->ac);
}

static void peer_close(side *s) {
  close(s->peer_fd);
  s->peer_fd = -1;
  if (!s->ac) return;
  REQUIRE(wait_queued(s->ac->c.fd, 0));
  redisAsyncHandleRead(s->ac);
}

// ---- the peer's model of a server ---------------------------------------------------

typedef struct {
  size_t parsed;       /* offset in the reference wire */
  bool resp3, monitor; /* as the server would see the connection */
  bool subscribed;     /* ever, this session: plain replies stay simple */
  buf channels[2];     /* subscribed channels, patterns: NUL-separated */
  buf out;             /* answers not sent yet */
} model;

static model m;

static void model_reset(size_t wire_len) {
  buf_free(&m.channels[0]);
  buf_free(&m.channels[1]);
  buf_free(&m.out);
  m = (model){.parsed = wire_len};
}

static size_t subscriptions(void) {
  size_t n = 0;
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < m.channels[k].len; i += strlen(m.channels[k].p + i) + 1) n++;
  }
  return n;
}

static bool unsubscribe_one(int kind, const char *name) {
  buf *b = &m.channels[kind];
  for (size_t i = 0; i < b->len; i += strlen(b->p + i) + 1) {
    if (!name || strcmp(b->p + i, name) == 0) {
      size_t n = strlen(b->p + i) + 1;
      memmove(b->p + i, b->p + i + n, b->len - i - n);
      b->len -= n;
      return true;
    }
  }
  return false;
}

static void out(const char *s) { buf_add(&m.out, s, strlen(s)); }

static void out_bulk(const char *s, size_t n) {
  buf_addf(&m.out, "$%zu\r\n", n);
  buf_add(&m.out, s, n);
  buf_add(&m.out, "\r\n", 2);
}

static void out_random(int depth) {
  unsigned kinds = m.subscribed ? 4 : m.resp3 ? 16 : 9;
  switch (below(kinds)) {
    case 0: buf_addf(&m.out, "+OK%u\r\n", below(100)); break;
    case 1: buf_addf(&m.out, ":%d\r\n", (int)below(2000) - 1000); break;
    case 2: {
      buf b = {0};
      random_bytes(&b, below(40));
      out_bulk(b.p ? b.p : "", b.len);
      buf_free(&b);
      break;
    }
    case 3:
      /* Subscribed, an error nobody waits for closes the connection. */
      if (m.subscribed && !chance(5)) out("+QUEUED\r\n");
      else buf_addf(&m.out, "-ERR wrong %u\r\n", below(10));
      break;
    case 4: out("$-1\r\n"); break;
    case 5: out("*-1\r\n"); break;
    case 6:
    case 7:
    case 8: {
      unsigned n = depth < 2 ? below(4) : 0;
      buf_addf(&m.out, "*%u\r\n", n);
      for (unsigned i = 0; i < n; i++) out_random(depth + 1);
      break;
    }
    case 9: out("_\r\n"); break;
    case 10: out(",3.25\r\n"); break;
    case 11: out(chance(50) ? "#t\r\n" : "#f\r\n"); break;
    case 12: out("(123456789012345678901234567890\r\n"); break;
    case 13: out("=9\r\ntxt:hello\r\n"); break;
    case 14:
    case 15: {
      unsigned n = depth < 2 ? below(3) : 0;
      bool map = chance(50);
      buf_addf(&m.out, "%c%u\r\n", map ? '%' : '~', n);
      for (unsigned i = 0; i < n * (map ? 2 : 1); i++) out_random(depth + 1);
      break;
    }
  }
}

static void out_pubsub(const char *kind, const char *name, size_t count) {
  buf_addf(&m.out, "%c3\r\n", m.resp3 ? '>' : '*');
  out_bulk(kind, strlen(kind));
  if (name) out_bulk(name, strlen(name));
  else out(m.resp3 ? "_\r\n" : "$-1\r\n");
  buf_addf(&m.out, ":%zu\r\n", count);
}

/* The answer to one command, as a server would give it. */
static void answer(int argc, char **argv) {
  const char *name = argv[0];
  if (strcasecmp(name, "hello") == 0 && argc == 2 && (strcmp(argv[1], "2") == 0 || strcmp(argv[1], "3") == 0)) {
    m.resp3 = argv[1][0] == '3';
    out(m.resp3 ? "%1\r\n$5\r\nproto\r\n:3\r\n" : "*2\r\n$5\r\nproto\r\n:2\r\n");
  } else if ((strcasecmp(name, "subscribe") == 0 || strcasecmp(name, "psubscribe") == 0) && argc > 1) {
    int kind = name[0] == 'p' || name[0] == 'P';
    m.subscribed = true;
    for (int i = 1; i < argc; i++) {
      unsubscribe_one(kind, argv[i]);
      buf_add(&m.channels[kind], argv[i], strlen(argv[i]) + 1);
      out_pubsub(kind ? "psubscribe" : "subscribe", argv[i], subscriptions());
    }
  } else if (strcasecmp(name, "unsubscribe") == 0 || strcasecmp(name, "punsubscribe") == 0) {
    int kind = name[0] == 'p' || name[0] == 'P';
    const char *what = kind ? "punsubscribe" : "unsubscribe";
    if (argc == 1 && m.channels[kind].len == 0) out_pubsub(what, NULL, subscriptions());
    while (argc == 1 && m.channels[kind].len > 0) {
      char first[64];
      snprintf(first, sizeof first, "%s", m.channels[kind].p);
      unsubscribe_one(kind, first);
      out_pubsub(what, first, subscriptions());
    }
    for (int i = 1; i < argc; i++) {
      unsubscribe_one(kind, argv[i]);
      out_pubsub(what, argv[i], subscriptions());
    }
  } else if (strcasecmp(name, "monitor") == 0 && argc == 1) {
    m.monitor = true;
    out("+OK\r\n");
  } else {
    /* SSUBSCRIBE included: hiredis 1.3 handles it as a plain command. */
    out_random(0);
  }
}

/* Reads the commands the reference peer received since the last call. */
static void parse_commands(void) {
  const buf *w = &sides[1].wire;
  while (m.parsed < w->len) {
    const char *p = w->p + m.parsed, *end = w->p + w->len;
    char *e;
    long argc = strtol(p + 1, &e, 10);
    REQUIRE(*p == '*' && argc > 0 && argc < 64);
    p = e + 2;
    char *argv[64] = {0};
    int got = 0;
    for (; got < argc && p < end; got++) {
      size_t len = strtoul(p + 1, &e, 10);
      p = e + 2;
      if (p + len + 2 > end) break;
      argv[got] = strndup(p, len); /* names and channels have no NUL; a cut is fine elsewhere */
      p += len + 2;
    }
    if (got == argc) {
      answer((int)argc, argv);
      m.parsed = (size_t)(p - w->p);
    }
    for (int i = 0; i < got; i++) free(argv[i]);
    if (got < argc) return;
  }
}

/* The peer answers some of what it has, possibly cutting a reply in two. */
static void reply_step(void) {
  parse_commands();
  /* Spontaneous: an invalidation push, a MONITOR line. */
  if (m.resp3 && chance(10)) out(">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n");
  if (m.monitor && chance(20)) out("+1700000000.123456 [0 127.0.0.1:1] \"PING\"\r\n");
  size_t n = chance(70) ? m.out.len : below((unsigned)m.out.len + 1);
  if (n > 8192) n = 8192; /* one read of hiredis's 16 KB buffer takes it all */
  if (n == 0) return;
  for (int i = 0; i < 2; i++) deliver(&sides[i], m.out.p, n);
  memmove(m.out.p, m.out.p + n, m.out.len - n);
  m.out.len -= n;
}

// ---- the script ------------------------------------------------------------------------

static const char *const plain_names[] = {
    "PING", "ping", "GET", "SET", "ECHO", "_FT.SEARCH", "FT.AGGREGATE", "hgetall", "", "HELLO",
};
/* Names hiredis treats specially, and others that start the same way. */
static const char *const special_names[] = {
    "SUBSCRIBE", "subscribe", "PSUBSCRIBE", "pSubScribe", "SSUBSCRIBE", "UNSUBSCRIBE", "punsubscribe",
    "MONITOR", "monitor", "MGET", "UNLINK", "PUBLISH", "PFADD", "P", "S", "M", "U", "SCAN", "Punsubscribed",
};
static const char *const channels[] = {"news", "ch1", "a", "news.*", "h?llo"};

static void random_command(size_t priv) {
  const char *argv[8];
  size_t lens[8];
  buf args[8] = {{0}};
  int argc = 1 + (int)below(5);
  bool random_name = chance(10);
  if (random_name) {
    random_bytes(&args[0], below(8));
    argv[0] = args[0].p ? args[0].p : "";
    lens[0] = args[0].len;
  } else if (chance(70)) {
    argv[0] = plain_names[below(sizeof plain_names / sizeof *plain_names)];
    lens[0] = strlen(argv[0]);
  } else {
    argv[0] = special_names[below(sizeof special_names / sizeof *special_names)];
    lens[0] = strlen(argv[0]);
  }
  /* Special names take channels, so that unsubscribes find them. */
  bool special = !random_name && argv[0][0] && strchr("sSuUpPmM", argv[0][0]);
  for (int i = 1; i < argc; i++) {
    /* Always channels: the peer's model reads them as C strings. */
    if (special) {
      argv[i] = channels[below(sizeof channels / sizeof *channels)];
      lens[i] = strlen(argv[i]);
    } else {
      random_bytes(&args[i], chance(20) ? 0 : below(24));
      argv[i] = args[i].p ? args[i].p : "";
      lens[i] = args[i].len;
    }
  }
  /* Sometimes no arguments at all: "SUBSCRIBE" alone is a plain command. */
  if (special && chance(15)) argc = 1;
  unsigned which = below(10);
  redisCallbackFn *fn = which < 2 ? NULL : which < 4 ? on_reply_send_again : on_reply;
  for (int i = 0; i < 2; i++) send_cmd(&sides[i], argc, argv, lens, fn, priv);
  for (int i = 0; i < argc; i++) buf_free(&args[i]);
}

/* Whether two buffers are equal from `from` on (both are equal before it). */
static bool same_from(const buf *a, const buf *b, size_t from) {
  return a->len == b->len && (a->len == from || memcmp(a->p + from, b->p + from, a->len - from) == 0);
}

/* Both sides agree so far: same events, same bytes on the wire. */
static bool compare(const char *step) {
  side *a = &sides[0], *b = &sides[1];
  bool ok = CHECK_MSG((a->ac == NULL) == (b->ac == NULL), "after %s: %s context %s, %s context %s", step, a->name,
                      a->ac ? "live" : "gone", b->name, b->ac ? "live" : "gone");
  ok &= CHECK_MSG(same_from(&a->wire, &b->wire, a->checked_wire),
                  "after %s: the peers received different bytes (%zu vs %zu)", step, a->wire.len, b->wire.len);
  bool same = a->nevents == b->nevents && same_from(&a->events, &b->events, a->checked_events);
  if (!CHECK_MSG(same, "after %s: the events differ", step)) {
    for (int i = 0; i < 2; i++) {
      size_t from = sides[i].checked_events;
      printf("--- %s, events since the last step:\n%.*s", sides[i].name, (int)(sides[i].events.len - from),
             sides[i].events.p + from);
    }
    ok = false;
  }
  a->checked_wire = b->checked_wire = a->wire.len;
  a->checked_events = b->checked_events = a->events.len;
  return ok;
}

TEST(send_path_matches_hiredis) {
  const char *env = getenv("MRCONN_SEND_PATH_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)now_us();
  printf("seed %llu (MRCONN_SEND_PATH_SEED to replay)\n", (unsigned long long)seed);
  rng = seed * 2654435761u + 1;
  for (int i = 0; i < 2; i++) {
    sides[i].listen_fd = listen_local(&sides[i].port);
    REQUIRE(sides[i].listen_fd >= 0);
  }
  size_t priv = 0, sessions = 0, steps = 0;
  while (priv < COMMANDS && harness_failures() == 0) {
    model_reset(sides[1].wire.len);
    sessions++;
    for (int i = 0; i < 2; i++) open_session(&sides[i]);
    for (unsigned early = below(4); early > 0; early--) random_command(priv++);
    for (int i = 0; i < 2; i++) complete_connect(&sides[i]);
    if (!compare("connecting")) return;
    for (int op = 0; sides[1].ac && harness_failures() == 0; op++, steps++) {
      const char *step;
      unsigned r = below(100);
      if (op >= SESSION_OPS) {
        step = "free (session long enough)";
        for (int i = 0; i < 2; i++) redisAsyncFree(sides[i].ac), sides[i].ac = NULL;
      } else if (r < 45) {
        step = "send";
        for (unsigned n = 1 + below(4); n > 0; n--) random_command(priv++);
      } else if (r < 50) {
        step = "hello";
        const char *proto = chance(50) ? "3" : "2";
        for (int i = 0; i < 2; i++) send_hello(&sides[i], proto);
      } else if (r < 70) {
        step = "flush";
        for (int i = 0; i < 2; i++) flush(&sides[i]);
      } else if (r < 95) {
        step = "reply";
        reply_step();
      } else if (r < 96) {
        step = "redisAsyncFree";
        for (int i = 0; i < 2; i++) redisAsyncFree(sides[i].ac), sides[i].ac = NULL;
      } else if (r < 97) {
        step = "redisAsyncDisconnect";
        for (int i = 0; i < 2; i++) redisAsyncDisconnect(sides[i].ac);
      } else if (r < 98) {
        step = "timeout";
        for (int i = 0; i < 2; i++) redisAsyncHandleTimeout(sides[i].ac);
      } else if (r < 99) {
        step = "peer close";
        for (int i = 0; i < 2; i++) peer_close(&sides[i]);
      } else {
        step = "flush and reply";
        for (int i = 0; i < 2; i++) flush(&sides[i]);
        reply_step();
      }
      if (!compare(step)) return;
    }
    for (int i = 0; i < 2; i++) {
      if (sides[i].peer_fd >= 0) close(sides[i].peer_fd);
      sides[i].peer_fd = -1;
    }
  }
  CHECK_EQ_INT(sides[0].sends, sides[1].sends);
  CHECK_EQ_INT(sides[0].nevents, sides[1].nevents);
  CHECK(same_from(&sides[0].wire, &sides[1].wire, 0));
  CHECK(same_from(&sides[0].events, &sides[1].events, 0));
  printf("%zu sessions, %zu steps: %zu commands sent per side (%zu from callbacks), %zu events and %zu wire bytes "
         "identical\n",
         sessions, steps, sides[0].sends, sides[0].follow_ups, sides[0].nevents, sides[0].wire.len);
  printf("sends refused: %zu, queued while subscribed: %zu, queued before the connection completed: %zu\n",
         sides[0].refused, sides[0].subscribed, sides[0].unconnected);
  /* The script reached every branch of send.c. */
  CHECK(sides[0].refused > 0 && sides[0].subscribed > 0 && sides[0].unconnected > 0);
  for (int i = 0; i < 2; i++) {
    close(sides[i].listen_fd);
    buf_free(&sides[i].wire);
    buf_free(&sides[i].events);
  }
  model_reset(0);
}

HARNESS_MAIN(HARNESS_TEST(send_path_matches_hiredis))
