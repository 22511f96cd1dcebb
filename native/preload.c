/*
 * jitsu-preload.so: socket activation for servers that bind their own port (LD_PRELOAD).
 *
 * jitsu-activate binds a service's TCP ports inside its netns before the command starts and passes
 * them as fds 3.. (LISTEN_FDS). A server that knows nothing of that binds the port itself and gets
 * EADDRINUSE. Loaded into such a server, this library turns its own bind() on an activated port
 * into the inherited socket (dup3 over the server's fd, so the kernel queue that has been
 * collecting SYNs since the boot began is the one it accepts from), and makes its listen() on it a
 * no-op (the inherited socket already listens, with the deep backlog the daemon asked for).
 *
 * It also tells the daemon when the server is actually serving: the first listen(), accept(),
 * accept4(), poll() or epoll_ctl() of the program on an activated socket (its own redirected fd, or
 * fd 3.. for LISTEN_FDS-aware programs) "claims" it, and appends "tcp-PORT PID\n" to the file named
 * by $JITSU_READY_REPORT. Once every activated socket is claimed, LISTEN_* and this library are
 * removed from the environment, so the server's own children start clean.
 *
 * Active only in the process LISTEN_PID names, or its direct child (a `sh -c` wrapper that forks
 * the server), and only for fds 3.. that really are listening TCP sockets. A dual-stack bind of
 * `[::]:PORT` on an IPv4 service gets the IPv4 socket; an IPv4 bind on an IPv6 service (whose
 * dual-stack socket already holds the IPv4 port) is left alone and explained on stderr.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_ACTIVATED 64

enum state { WAITING, REDIRECTED, CLAIMED, GONE };

struct activated {
  int fd; /* where the socket is now: 3+i, or the program's fd once redirected */
  dev_t dev;
  ino_t ino;
  int family;
  int port;
  enum state state;
};

static struct activated act[MAX_ACTIVATED];
static int nact, unclaimed, waiting;
static char report_path[4096];

static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_listen)(int, int);
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);

static int port_of(const struct sockaddr *sa, socklen_t len) {
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return -1;
}

__attribute__((constructor)) static void init(void) {
  real_bind = dlsym(RTLD_NEXT, "bind");
  real_listen = dlsym(RTLD_NEXT, "listen");
  real_accept = dlsym(RTLD_NEXT, "accept");
  real_accept4 = dlsym(RTLD_NEXT, "accept4");
  real_poll = dlsym(RTLD_NEXT, "poll");
  real_epoll_ctl = dlsym(RTLD_NEXT, "epoll_ctl");

  const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID"), *report = getenv("JITSU_READY_REPORT");
  if (!fds || !pid) return;
  long owner = strtol(pid, NULL, 10);
  if (owner != (long)getpid() && owner != (long)getppid()) return;
  long n = strtol(fds, NULL, 10);
  if (n < 1 || n > MAX_ACTIVATED) return;
  if (report && strlen(report) < sizeof report_path) strcpy(report_path, report);
  for (int fd = 3; fd < 3 + n; fd++) {
    struct stat st;
    int type = 0, listening = 0;
    socklen_t ol = sizeof type;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol) != 0 || type != SOCK_STREAM) continue;
    ol = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) != 0 || !listening) continue;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) continue;
    int port = port_of((struct sockaddr *)&ss, sl);
    if (port < 0) continue;
    act[nact++] = (struct activated){fd, st.st_dev, st.st_ino, ss.ss_family, port, WAITING};
  }
  unclaimed = waiting = nact;
}

/* The activated socket `fd` refers to now, if any still unclaimed (or any at all with `any`). */
static struct activated *activated_at(int fd, int any) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return NULL;
  for (int i = 0; i < nact; i++) {
    if (act[i].state == GONE || (!any && act[i].state == CLAIMED)) continue;
    if (act[i].ino == st.st_ino && act[i].dev == st.st_dev) return &act[i];
  }
  return NULL;
}

/* Remove `name`'s entry `self` from a ':'/' '-separated list variable (LD_PRELOAD). */
static void drop_from_list(const char *name, const char *self) {
  const char *value = getenv(name);
  if (!value || !self) return;
  char out[4096];
  size_t used = 0, len = strlen(self);
  for (const char *p = value; *p;) {
    size_t word = strcspn(p, ": ");
    if (word > 0 && !(word == len && strncmp(p, self, len) == 0) && used + word + 2 < sizeof out) {
      if (used) out[used++] = ':';
      memcpy(out + used, p, word);
      used += word;
    }
    p += word;
    if (*p) p++;
  }
  out[used] = '\0';
  if (used) setenv(name, out, 1);
  else unsetenv(name);
}

static void claim(struct activated *a) {
  int saved = errno;
  if (a->state == WAITING) waiting--;
  a->state = CLAIMED;
  unclaimed--;
  if (report_path[0]) {
    int fd = open(report_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      char line[48];
      int len = snprintf(line, sizeof line, "tcp-%d %ld\n", a->port, (long)getpid());
      if (write(fd, line, (size_t)len) < 0) { /* the daemon then times the boot out: nothing better to do here */ }
      close(fd);
    }
  }
  if (unclaimed == 0) {
    /* Everything is taken: the program's children must not see sockets or a library meant for it. */
    Dl_info self;
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
    unsetenv("JITSU_READY_REPORT");
    if (dladdr((void *)claim, &self) && self.dli_fname) drop_from_list("LD_PRELOAD", self.dli_fname);
  }
  errno = saved;
}

static void claim_fd(int fd) {
  if (unclaimed == 0) return;
  struct activated *a = activated_at(fd, 0);
  if (a) claim(a);
}

/* May the program's bind of `addr` on `fd` take the activated socket `a`? */
static int compatible(int fd, const struct sockaddr *addr, const struct activated *a) {
  int type = 0;
  socklen_t ol = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol) != 0 || type != SOCK_STREAM) return 0;
  if (addr->sa_family == a->family) return 1;
  if (addr->sa_family == AF_INET6 && a->family == AF_INET) {
    /* A dual-stack [::] bind means "every address": the IPv4 socket is all an IPv4 service has.
     * With IPV6_V6ONLY the program binds IPv4 separately (and gets the socket then). */
    int v6only = 0;
    ol = sizeof v6only;
    if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol) != 0) return 0;
    return !v6only;
  }
  fprintf(stderr, "jitsu-preload: port %d is pre-bound as a dual-stack IPv6 socket ([::]:%d, IPv4 included); "
          "this program binds it as IPv4: bind [::]:%d instead, or run the service with mask=none\n", a->port, a->port, a->port);
  return 0;
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  if (waiting > 0 && addr) {
    int port = port_of(addr, len);
    for (int i = 0; port > 0 && i < nact; i++) {
      struct activated *a = &act[i];
      if (a->state != WAITING || a->port != port) continue;
      if (activated_at(a->fd, 0) != a) {
        a->state = GONE; /* the program closed it: nothing to hand over */
        waiting--;
        unclaimed--;
        break;
      }
      if (!compatible(fd, addr, a)) break;
      int status = fcntl(fd, F_GETFL), fdflags = fcntl(fd, F_GETFD);
      if (status < 0 || fdflags < 0) break;
      /* The program's own socket mode (non-blocking or not, close-on-exec or not) carries over. */
      int target = fcntl(a->fd, F_GETFL);
      if (target < 0 || fcntl(a->fd, F_SETFL, (target & ~O_NONBLOCK) | (status & O_NONBLOCK)) != 0) break;
      if (dup3(a->fd, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) break;
      close(a->fd);
      a->fd = fd;
      a->state = REDIRECTED;
      waiting--;
      return 0;
    }
  }
  return real_bind(fd, addr, len);
}

EXPORT int listen(int fd, int backlog) {
  if (nact > 0) {
    struct activated *a = activated_at(fd, 1);
    if (a) {
      /* Already listening, with a backlog at least as deep as any program asks for. */
      if (a->state != CLAIMED) claim(a);
      return 0;
    }
  }
  return real_listen(fd, backlog);
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len) {
  claim_fd(fd);
  return real_accept(fd, addr, len);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
  claim_fd(fd);
  return real_accept4(fd, addr, len, flags);
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
  for (nfds_t i = 0; unclaimed > 0 && i < n; i++) claim_fd(fds[i].fd);
  return real_poll(fds, n, timeout);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
  if (op == EPOLL_CTL_ADD) claim_fd(fd);
  return real_epoll_ctl(epfd, op, fd, event);
}
