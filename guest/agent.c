/*
 * jitsu-agent: the guest half of clone safety for memory snapshots (src/backends/qemu/agent.ts is
 * the host half). Every copy restored from one template starts with the template's kernel RNG
 * state and its wall clock; the host therefore sends, right after each restore, fresh entropy and
 * the time over a virtio-serial port, and the guest must not answer anyone before it has used them.
 *
 * One line per request on the port, one line per reply, each starting with the request's nonce
 * (the host matches replies to requests by it, so a reply left over from an earlier request is
 * never taken for the answer to this one):
 *   <nonce> ping                      -> <nonce> pong <boot_id>
 *   <nonce> restore <unix_ns> <hex>   -> <nonce> ok <16 random bytes, hex, drawn after the reseed>
 *   <nonce> warm <port>               -> <nonce> ok <bytes read>
 * `warm` makes one HTTP request to the guest's own 127.0.0.1:<port> and reads the answer (bounded:
 * 1 MiB, 2 s). A copy restored ahead of its summon (prespawn=warm) is warmed this way: under TCG
 * every code path a new QEMU runs is translated the first time, and this runs the server's
 * accept, fork and answer once before any client comes.
 * `hex` is 64 bytes of host randomness: credited to the input pool (RNDADDENTROPY), then the CRNG
 * is reseeded from it (RNDRESEEDCRNG), so the next random byte differs between copies. Anything
 * else gets `<nonce> error <why>`. The host side is a pipe chardev that is always open, so read()
 * blocks until a request comes: nothing polls, in the template or in a copy.
 *
 * Static and libc-only, so the initramfs needs nothing else; started by guest/init.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SEED_BYTES 64

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static char nonce[32];

static void reply(int fd, const char *what) {
  char line[160];
  snprintf(line, sizeof line, "%s %s", nonce, what);
  size_t len = strlen(line), off = 0;
  while (off < len) {
    ssize_t n = write(fd, line + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* the host went away: it asks again */
    off += (size_t)n;
  }
}

static void restore(int port, const char *args) {
  char *end;
  unsigned long long ns = strtoull(args, &end, 10);
  if (end == args || *end != ' ') return reply(port, "error bad time\n");
  const char *hex = end + 1;
  struct {
    struct rand_pool_info info;
    unsigned char buf[SEED_BYTES];
  } seed;
  for (int i = 0; i < SEED_BYTES; i++) {
    int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
    if (lo < 0) return reply(port, "error bad seed\n");
    seed.buf[i] = (unsigned char)(hi << 4 | lo);
  }
  int rnd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (rnd < 0) return reply(port, "error cannot open /dev/urandom\n");
  seed.info.entropy_count = SEED_BYTES * 8;
  seed.info.buf_size = SEED_BYTES;
  int added = ioctl(rnd, RNDADDENTROPY, &seed.info);
  int reseeded = added == 0 ? ioctl(rnd, RNDRESEEDCRNG) : -1;
  close(rnd);
  if (added != 0 || reseeded != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "error reseed failed: %s\n", strerror(errno));
    return reply(port, msg);
  }
  struct timespec now = {.tv_sec = (time_t)(ns / 1000000000ULL), .tv_nsec = (long)(ns % 1000000000ULL)};
  if (clock_settime(CLOCK_REALTIME, &now) != 0) return reply(port, "error cannot set the clock\n");
  unsigned char fresh[16];
  if (getrandom(fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh) return reply(port, "error getrandom failed\n");
  char out[8 + 2 * sizeof fresh + 2] = "ok ";
  for (size_t i = 0; i < sizeof fresh; i++) snprintf(out + 3 + 2 * i, 3, "%02x", fresh[i]);
  strcat(out, "\n");
  reply(port, out);
}

static void warm(int port, const char *args) {
  char *end;
  unsigned long tcp = strtoul(args, &end, 10);
  if (end == args || *end != '\0' || tcp == 0 || tcp > 65535) return reply(port, "error bad port\n");
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return reply(port, "error socket failed\n");
  struct timeval limit = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp), .sin_addr = {htonl(INADDR_LOOPBACK)}};
  static const char get[] = "GET / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: jitsu-agent warm-up\r\n\r\n";
  if (connect(s, (struct sockaddr *)&to, sizeof to) != 0 || write(s, get, sizeof get - 1) != (ssize_t)(sizeof get - 1)) {
    char msg[96];
    snprintf(msg, sizeof msg, "error cannot reach 127.0.0.1:%lu: %s\n", tcp, strerror(errno));
    close(s);
    return reply(port, msg);
  }
  char buf[4096];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(s, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || (total += (size_t)n) >= (1u << 20)) break;
  }
  close(s);
  char out[48];
  snprintf(out, sizeof out, "ok %zu\n", total);
  reply(port, out);
}

static void ping(int port) {
  char id[64] = "unknown";
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, id, sizeof id - 1);
    id[n > 0 ? n : 0] = '\0';
    close(fd);
    id[strcspn(id, "\n")] = '\0';
  }
  char out[96];
  snprintf(out, sizeof out, "pong %s\n", id);
  reply(port, out);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: jitsu-agent /dev/vportNpM\n");
    return 2;
  }
  for (;;) {
    int port = open(argv[1], O_RDWR | O_CLOEXEC);
    if (port < 0) {
      usleep(100000);
      continue;
    }
    char line[256];
    size_t used = 0;
    for (;;) {
      ssize_t n = read(port, line + used, sizeof line - 1 - used);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      used += (size_t)n;
      line[used] = '\0';
      char *nl;
      while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        char *req = strchr(line, ' ');
        size_t nlen = req == NULL ? 0 : (size_t)(req - line);
        if (nlen == 0 || nlen >= sizeof nonce) {
          snprintf(nonce, sizeof nonce, "-");
          reply(port, "error no nonce\n");
        } else {
          memcpy(nonce, line, nlen);
          nonce[nlen] = '\0';
          req++;
          if (strcmp(req, "ping") == 0) ping(port);
          else if (strncmp(req, "restore ", 8) == 0) restore(port, req + 8);
          else if (strncmp(req, "warm ", 5) == 0) warm(port, req + 5);
          else reply(port, "error unknown request\n");
        }
        used -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, used + 1);
      }
      if (used == sizeof line - 1) used = 0; /* an overlong line: drop it */
    }
    close(port);
    usleep(20000); /* the port went away (never with a pipe chardev): do not spin */
  }
}
