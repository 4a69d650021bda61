/*
 * udp-rtt: UDP round-trip times, one datagram in flight at a time.
 *
 *   udp-rtt echo <bind-addr> <port>
 *   udp-rtt ping <addr> <port> --count N --payload BYTES [--warmup W] [--timeout-ms T]
 *                [--interval-us I] [--bind ADDR[:PORT]]
 *
 * Exit codes: 0 ok, 1 system error, 2 too many lost probes, 64 usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXIT_LOST 2
#define EXIT_USAGE 64

/* Every probe starts with a token: a per-run nonce in the high half, the sequence number in the low half. */
#define TOKEN_BYTES 8
#define MAX_PAYLOAD 65507
#define MAX_CONSECUTIVE_LOST 10

#define ECHO_BATCH 32
#define ECHO_BUF 65536

static const char *prog = "udp-rtt";

static void print_usage(FILE *f) {
  fprintf(f,
          "usage: %s echo <bind-addr> <port>\n"
          "       %s ping <addr> <port> --count N --payload BYTES [--warmup W] [--timeout-ms T]\n"
          "                [--interval-us I] [--bind ADDR[:PORT]]\n"
          "  --payload is %d..%d bytes; --warmup defaults to 100, --timeout-ms to 1000, --interval-us to 0\n",
          prog, prog, TOKEN_BYTES, MAX_PAYLOAD);
}

__attribute__((format(printf, 1, 2), noreturn)) static void usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  print_usage(stderr);
  exit(EXIT_USAGE);
}

__attribute__((noreturn)) static void die_errno(const char *what) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
  exit(1);
}

static uint64_t parse_uint(const char *name, const char *text, uint64_t min, uint64_t max) {
  if (!text || !*text || *text == '-' || *text == '+') usage("%s: expected a number, got '%s'", name, text ? text : "");
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || *end) usage("%s: expected a number, got '%s'", name, text);
  if (v < min || v > max) usage("%s: %s is out of range %" PRIu64 "..%" PRIu64, name, text, min, max);
  return (uint64_t)v;
}

/* A numeric address only: a name lookup would make the tool's start time depend on DNS. */
static void resolve(const char *host, const char *port, int passive, struct sockaddr_storage *out, socklen_t *outlen) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0 || !res) usage("bad address '%s' port '%s': %s", host ? host : "", port, gai_strerror(rc));
  memcpy(out, res->ai_addr, res->ai_addrlen);
  *outlen = res->ai_addrlen;
  freeaddrinfo(res);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- echo ---- */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int run_echo(int argc, char **argv) {
  if (argc != 2) usage("echo takes exactly <bind-addr> <port>");
  parse_uint("port", argv[1], 1, 65535);
  struct sockaddr_storage addr;
  socklen_t addrlen;
  resolve(argv[0], argv[1], 1, &addr, &addrlen);

  int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die_errno("socket");
  if (bind(fd, (struct sockaddr *)&addr, addrlen) < 0) die_errno("bind");

  /*
   * Signals stay blocked except inside ppoll, which unblocks them atomically: a signal arriving
   * between the flag check and the wait then interrupts the wait instead of being missed.
   */
  sigset_t block, waitmask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  if (sigprocmask(SIG_BLOCK, &block, &waitmask) < 0) die_errno("sigprocmask");
  sigdelset(&waitmask, SIGTERM);
  sigdelset(&waitmask, SIGINT);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) die_errno("sigaction");

  static char bufs[ECHO_BATCH][ECHO_BUF];
  static struct iovec iov[ECHO_BATCH];
  static struct sockaddr_storage peers[ECHO_BATCH];
  static struct mmsghdr msgs[ECHO_BATCH];

  printf("ready\n");
  if (fflush(stdout) != 0) die_errno("stdout");

  while (!stop_requested) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (ppoll(&pfd, 1, NULL, &waitmask) < 0) {
      if (errno == EINTR) continue;
      die_errno("ppoll");
    }
    /* Drain whatever is queued before waiting again, so a burst costs one wakeup. */
    for (;;) {
      for (int i = 0; i < ECHO_BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = ECHO_BUF;
        memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
        msgs[i].msg_hdr.msg_name = &peers[i];
        msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(fd, msgs, ECHO_BATCH, MSG_DONTWAIT, NULL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        /* A pending ICMP error or a transient shortage must not end the echo. */
        if (errno == ECONNREFUSED || errno == ENOBUFS || errno == ENOMEM) continue;
        die_errno("recvmmsg");
      }
      for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
      int sent = 0;
      while (sent < n) {
        int m = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), 0);
        if (m < 0) {
          if (errno == EINTR) continue;
          /* One reply that cannot be sent (unreachable peer, full queue) must not hold up the rest. */
          sent++;
          continue;
        }
        sent += m;
      }
      if (n < ECHO_BATCH) break;
    }
  }
  close(fd);
  return 0;
}

/* ---- ping ---- */

struct ping_opts {
  const char *host;
  const char *port;
  uint64_t count;
  uint64_t payload;
  uint64_t warmup;
  uint64_t timeout_ms;
  uint64_t interval_us;
  const char *bind;
};

static const char *option_value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) usage("%s needs a value", argv[*i]);
  *i += 1;
  return argv[*i];
}

static void parse_ping(int argc, char **argv, struct ping_opts *o) {
  int have_count = 0, have_payload = 0;
  const char *positional[2];
  int npos = 0;
  o->warmup = 100;
  o->timeout_ms = 1000;
  o->interval_us = 0;
  o->bind = NULL;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--count") == 0) {
      o->count = parse_uint("--count", option_value(argc, argv, &i), 1, 100000000);
      have_count = 1;
    } else if (strcmp(a, "--payload") == 0) {
      o->payload = parse_uint("--payload", option_value(argc, argv, &i), TOKEN_BYTES, MAX_PAYLOAD);
      have_payload = 1;
    } else if (strcmp(a, "--warmup") == 0) {
      o->warmup = parse_uint("--warmup", option_value(argc, argv, &i), 0, 100000000);
    } else if (strcmp(a, "--timeout-ms") == 0) {
      o->timeout_ms = parse_uint("--timeout-ms", option_value(argc, argv, &i), 1, 600000);
    } else if (strcmp(a, "--interval-us") == 0) {
      o->interval_us = parse_uint("--interval-us", option_value(argc, argv, &i), 0, 60000000);
    } else if (strcmp(a, "--bind") == 0) {
      o->bind = option_value(argc, argv, &i);
    } else if (a[0] == '-' && a[1] != '\0') {
      usage("unknown option '%s'", a);
    } else {
      if (npos >= 2) usage("unexpected argument '%s'", a);
      positional[npos++] = a;
    }
  }
  if (npos != 2) usage("ping needs <addr> <port>");
  o->host = positional[0];
  o->port = positional[1];
  parse_uint("port", o->port, 1, 65535);
  if (!have_count) usage("ping needs --count");
  if (!have_payload) usage("ping needs --payload");
}

/* ADDR, ADDR:PORT, [V6ADDR] or [V6ADDR]:PORT; a bare IPv6 address has more than one colon. */
static void resolve_bind(const char *spec, struct sockaddr_storage *out, socklen_t *outlen) {
  char host[256];
  const char *port = "0";
  size_t len = strlen(spec);
  if (len == 0 || len >= sizeof host) usage("--bind: bad address '%s'", spec);
  if (spec[0] == '[') {
    const char *close_br = strchr(spec, ']');
    if (!close_br) usage("--bind: missing ']' in '%s'", spec);
    size_t hl = (size_t)(close_br - spec - 1);
    memcpy(host, spec + 1, hl);
    host[hl] = '\0';
    if (close_br[1] == ':') port = close_br + 2;
    else if (close_br[1] != '\0') usage("--bind: bad address '%s'", spec);
  } else {
    const char *colon = strchr(spec, ':');
    if (colon && !strchr(colon + 1, ':')) {
      size_t hl = (size_t)(colon - spec);
      memcpy(host, spec, hl);
      host[hl] = '\0';
      port = colon + 1;
    } else {
      memcpy(host, spec, len + 1);
    }
  }
  parse_uint("--bind port", port, 0, 65535);
  resolve(host, port, 0, out, outlen);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest rank in integer arithmetic: floating point would round 0.99 * 100 up to rank 100. */
static double pct_us(const uint64_t *sorted, uint64_t n, unsigned permille) {
  uint64_t rank = (n * permille + 999) / 1000;
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return (double)sorted[rank - 1] / 1000.0;
}

static void put_token(unsigned char *p, uint64_t token) {
  for (int i = 0; i < TOKEN_BYTES; i++) p[i] = (unsigned char)(token >> (8 * (TOKEN_BYTES - 1 - i)));
}

static uint64_t get_token(const unsigned char *p) {
  uint64_t t = 0;
  for (int i = 0; i < TOKEN_BYTES; i++) t = (t << 8) | p[i];
  return t;
}

/* Errors the kernel reports for a datagram that did not arrive (ICMP, failed ARP, no route): a lost probe. */
static int is_network_error(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN || err == ENETDOWN;
}

static void sleep_until(uint64_t deadline_ns) {
  struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u), .tv_nsec = (long)(deadline_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static int run_ping(int argc, char **argv) {
  struct ping_opts o;
  memset(&o, 0, sizeof o);
  parse_ping(argc, argv, &o);

  struct sockaddr_storage dst;
  socklen_t dstlen;
  resolve(o.host, o.port, 0, &dst, &dstlen);

  int fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die_errno("socket");
  if (o.bind) {
    struct sockaddr_storage src;
    socklen_t srclen;
    resolve_bind(o.bind, &src, &srclen);
    if (src.ss_family != dst.ss_family) usage("--bind %s is not of the target's address family", o.bind);
    if (bind(fd, (struct sockaddr *)&src, srclen) < 0) die_errno("bind");
  }
  /* Connected: the kernel drops datagrams from anyone but the target and reports ICMP errors. */
  if (connect(fd, (struct sockaddr *)&dst, dstlen) < 0) die_errno("connect");

  unsigned char *out = calloc(1, o.payload);
  unsigned char *in = malloc(MAX_PAYLOAD + 1);
  uint64_t *samples = malloc(o.count * sizeof *samples);
  if (!out || !in || !samples) die_errno("malloc");
  for (uint64_t i = TOKEN_BYTES; i < o.payload; i++) out[i] = (unsigned char)i;

  /* The nonce tells this run's replies from those of an earlier run that reused the same port. */
  uint64_t nonce = ((uint64_t)getpid() * 2654435761u) ^ now_ns();
  nonce = (nonce & 0xffffffffu) << 32;

  uint64_t total = o.warmup + o.count;
  uint64_t received = 0, lost = 0, consecutive = 0;
  int last_err = 0;
  uint64_t timeout_ns = o.timeout_ms * 1000000u;
  uint64_t next_send = now_ns();

  for (uint64_t seq = 0; seq < total; seq++) {
    if (o.interval_us > 0) {
      sleep_until(next_send);
      uint64_t now = now_ns();
      /* After a slow exchange, keep the spacing instead of sending a burst to catch up. */
      next_send = (next_send + o.interval_us * 1000u > now ? next_send : now) + o.interval_us * 1000u;
    }
    uint64_t token = nonce | (seq & 0xffffffffu);
    put_token(out, token);

    uint64_t t0 = now_ns();
    ssize_t s = send(fd, out, o.payload, 0);
    /* A send can report the ICMP error of an earlier probe, already counted; the retry is this probe's own. */
    if (s < 0 && is_network_error(errno)) {
      last_err = errno;
      t0 = now_ns();
      s = send(fd, out, o.payload, 0);
    }
    if (s < 0) {
      if (!is_network_error(errno) && errno != ENOBUFS && errno != EAGAIN) die_errno("send");
      last_err = errno;
    }

    uint64_t deadline = t0 + timeout_ns;
    uint64_t rtt = 0;
    int answered = 0;
    /* A probe that never left cannot be answered; waiting out its timeout would only slow the failure down. */
    while (s >= 0 && !answered) {
      uint64_t now = now_ns();
      if (now >= deadline) break;
      uint64_t left_ns = deadline - now;
      int wait_ms = (int)((left_ns + 999999u) / 1000000u);
      struct pollfd pfd = {.fd = fd, .events = POLLIN};
      int pr = poll(&pfd, 1, wait_ms);
      if (pr < 0) {
        if (errno == EINTR) continue;
        die_errno("poll");
      }
      if (pr == 0) continue;
      for (;;) {
        ssize_t r = recv(fd, in, MAX_PAYLOAD + 1, MSG_DONTWAIT);
        uint64_t t1 = now_ns();
        if (r < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
          /* The ICMP error may belong to an earlier probe: keep waiting for this one's reply. */
          if (is_network_error(errno)) {
            last_err = errno;
            continue;
          }
          die_errno("recv");
        }
        /* Stale replies (an earlier probe, answered after its timeout) and foreign datagrams. */
        if ((uint64_t)r != o.payload || get_token(in) != token) continue;
        /* Seen only after the deadline (a late wakeup): lost, so that no recorded time exceeds the timeout. */
        if (t1 > deadline) break;
        rtt = t1 - t0;
        answered = 1;
        break;
      }
    }

    if (answered) {
      consecutive = 0;
      if (seq >= o.warmup) samples[received++] = rtt;
    } else {
      consecutive++;
      if (seq >= o.warmup) lost++;
      if (consecutive > MAX_CONSECUTIVE_LOST) {
        fprintf(stderr, "%s: no reply from %s port %s to %" PRIu64 " probes in a row (timeout %" PRIu64 " ms each)", prog,
                o.host, o.port, consecutive, o.timeout_ms);
        if (last_err) fprintf(stderr, "; last error: %s", strerror(last_err));
        fputc('\n', stderr);
        return EXIT_LOST;
      }
    }
  }

  if (received == 0) {
    fprintf(stderr, "%s: no reply from %s port %s to any of %" PRIu64 " probes", prog, o.host, o.port, o.count);
    if (last_err) fprintf(stderr, "; last error: %s", strerror(last_err));
    fputc('\n', stderr);
    return EXIT_LOST;
  }
  qsort(samples, received, sizeof *samples, cmp_u64);
  double sum = 0;
  for (uint64_t i = 0; i < received; i++) sum += (double)samples[i];
  printf("{\"count\":%" PRIu64 ",\"lost\":%" PRIu64
         ",\"minUs\":%.3f,\"p50Us\":%.3f,\"p90Us\":%.3f,\"p99Us\":%.3f,\"p999Us\":%.3f,\"maxUs\":%.3f,\"meanUs\":%.3f}\n",
         o.count, lost, (double)samples[0] / 1000.0, pct_us(samples, received, 500), pct_us(samples, received, 900),
         pct_us(samples, received, 990), pct_us(samples, received, 999), (double)samples[received - 1] / 1000.0,
         sum / (double)received / 1000.0);
  if (fflush(stdout) != 0) die_errno("stdout");
  free(samples);
  free(in);
  free(out);
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) usage("missing mode");
  if (strcmp(argv[1], "echo") == 0) return run_echo(argc - 2, argv + 2);
  if (strcmp(argv[1], "ping") == 0) return run_ping(argc - 2, argv + 2);
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    print_usage(stdout);
    return 0;
  }
  usage("unknown mode '%s'", argv[1]);
  return EXIT_USAGE;
}
