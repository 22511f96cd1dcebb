/*
 * jitsu-activate: run a command inside a network namespace with pre-bound listening sockets
 * (systemd socket-activation protocol), so connections that arrive while the command starts
 * wait in the kernel's accept queue instead of being refused.
 *
 *   jitsu-activate [--netns PATH] [--listen tcp|udp:ADDR:PORT]... [--backlog N] [--chdir DIR]
 *                  [--log FILE [--log-max BYTES]] [--ready-fd N] [--supervise EXITFILE]
 *                  [--preload LIB] [--report FILE] [--uid N --gid N] [--private-tmp] [--read-only]
 *                  [--rlimit as|nproc=N]... [--cgroup DIR] [--open-low-ports] [--wait-fifo PATH]
 *                  -- COMMAND ARGS...
 *
 * ADDR is an IPv4 address, `[IPv6]`, or empty (`tcp::80` = 0.0.0.0). Sockets land on fds 3..N in
 * the order given; LISTEN_FDS, LISTEN_PID (exec keeps our pid) and LISTEN_FDNAMES (`tcp-80`, ...)
 * describe them. With --log, stdout and stderr go through a small detached logger that keeps the
 * file under BYTES/2 by rotating it to FILE.1 (so at most BYTES on disk). With --ready-fd N (>= 3),
 * one byte is written to fd N once every socket is bound and listening, just before exec: the
 * caller learns "connections are now queued" without polling.
 *
 * With --supervise EXITFILE the command does not replace us: we fork a small supervisor (which
 * outlives us, reparented to init) that forks the command in its own session/process group, writes
 * its pid as "PID\n" to the ready fd, waits for it and writes {"pid":P,"code":C,"signal":S} to
 * EXITFILE. The caller (a daemon thread) then never has to reap the service, and the exit status
 * survives any restart of the caller. The launcher itself exits 0 right after the fork.
 *
 * With --wait-fifo PATH (needs --supervise) the command is made ready to run and then waits: PATH is
 * created as a FIFO and opened read-write here (so a writer can open it from the moment our pid
 * report goes out, and cannot once the command is gone: ENXIO), the command does everything up to
 * and including its confinement, then blocks reading PATH, and execs once one byte arrives. This
 * is the process backend's precreate=on: the next start is a write, not a launch.
 *
 * With --preload LIB, LIB is put in front of the command's LD_PRELOAD (and only the command's: the
 * launcher, its logger and supervisor never load it). jitsu-preload.so (native/preload.c) is that
 * library: it hands the pre-bound sockets to a command that binds its ports itself.
 *
 * With --report FILE, FILE is opened here (as root, so its directory may be private to the daemon)
 * and handed to the command as JITSU_READY_REPORT=/proc/self/fd/N: where jitsu-preload.so appends
 * its claims, whatever user the command runs as.
 *
 * Confinement, applied to the command only (the logger and supervisor were forked before and stay
 * root, so the log, exit record and report stay the daemon's files), in this order, just before
 * exec: --cgroup DIR (join DIR/cgroup.procs), --rlimit (as = RLIMIT_AS bytes, nproc = RLIMIT_NPROC),
 * --private-tmp / --read-only (a private mount namespace, slave to the host's; `/` and everything
 * under it recursively read-only; an empty 64 MiB tmpfs on /tmp), then with --uid/--gid: every
 * capability dropped from the bounding and ambient sets, supplementary groups cleared, gid and uid
 * set, the inheritable set cleared (effective/permitted go with the uid change) and no_new_privs;
 * the --chdir is done again last, so it is checked as the service sees the filesystem. --open-low-ports
 * sets net.ipv4.ip_unprivileged_port_start=0 in the --netns namespace (which holds only this
 * service's address), so an unprivileged command that binds its own port below 1024 can.
 *
 * Exit codes (one line on stderr says why): 64 usage, 65 open netns, 66 setns, 67 socket setup,
 * 68 chdir, 69 fd/env setup, 70 log setup, 71 supervisor setup, 72 cgroup join, 73 rlimit,
 * 74 mount namespace (unshare, read-only remount, /tmp), 75 user/group switch, 76 capability drop
 * or no_new_privs, 77 open low ports (sysctl), 78 report file, 79 wait fifo, 126 exec failed, 127
 * command not found (with --supervise, 68 and 72..79 and 126/127 are the command's status in EXITFILE).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* 32-bit targets (armhf): rlim_t, off_t and time_t must be 64 bits (see binding.gyp). */
_Static_assert(sizeof(rlim_t) == 8, "build with -D_FILE_OFFSET_BITS=64: rlim_t must hold byte counts above 4 GiB");
_Static_assert(sizeof(time_t) == 8, "build with -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64: time_t must be 64 bits");

enum {
  EXIT_USAGE = 64,
  EXIT_NETNS_OPEN = 65,
  EXIT_SETNS = 66,
  EXIT_SOCKET = 67,
  EXIT_CHDIR = 68,
  EXIT_FDS = 69,
  EXIT_LOG = 70,
  EXIT_SUPERVISE = 71,
  EXIT_CGROUP = 72,
  EXIT_RLIMIT = 73,
  EXIT_MOUNTS = 74,
  EXIT_IDENTITY = 75,
  EXIT_CAPS = 76,
  EXIT_LOW_PORTS = 77,
  EXIT_REPORT = 78,
  EXIT_WAIT = 79,
  EXIT_EXEC = 126,
  EXIT_NOTFOUND = 127,
};

#define MAX_LISTEN 64

/* Where the "sockets are bound" byte goes (-1: nowhere); kept above the socket fd range. */
static int ready_fd = -1;

/* --preload: library prepended to the command's LD_PRELOAD, or NULL. */
static const char *preload_lib = NULL;

/* --report: the claims file, held open on this fd (-1: none); above the ready fd. */
static int report_fd = -1;

/* --wait-fifo: the FIFO the command reads its go byte from, held open read-write (-1: none). */
static int wait_fd = -1;

#define MAX_RLIMITS 4

/* What confine() does to the command just before exec (see the header comment). */
static struct {
  long uid, gid; /* -1: keep the caller's identity and capabilities */
  int private_tmp, read_only;
  const char *cgroup, *dir;
  int nlimits;
  struct { int resource; rlim_t value; const char *text; } limits[MAX_RLIMITS];
} confinement = {-1, -1, 0, 0, NULL, NULL, 0, {{0, 0, NULL}}};

struct listen_spec {
  int type; /* SOCK_STREAM or SOCK_DGRAM */
  int family;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char name[16];
  const char *text;
};

static void die(int code, const char *what, const char *arg, int err) {
  if (err)
    fprintf(stderr, "jitsu-activate: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(err));
  else
    fprintf(stderr, "jitsu-activate: %s%s%s\n", what, arg ? " " : "", arg ? arg : "");
  exit(code);
}

static long parse_long(const char *s, long min, long max, const char *what) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < min || v > max) die(EXIT_USAGE, what, s, 0);
  return v;
}

/* tcp:1.2.3.4:80, tcp:[::1]:80, tcp::80 (any IPv4), udp:... */
static void parse_listen(const char *text, struct listen_spec *out) {
  char buf[128];
  if (strlen(text) >= sizeof buf) die(EXIT_USAGE, "--listen value too long:", text, 0);
  strcpy(buf, text);
  memset(out, 0, sizeof *out);
  out->text = text;
  char *rest;
  if (strncmp(buf, "tcp:", 4) == 0) out->type = SOCK_STREAM;
  else if (strncmp(buf, "udp:", 4) == 0) out->type = SOCK_DGRAM;
  else die(EXIT_USAGE, "--listen must start with tcp: or udp:, got", text, 0);
  rest = buf + 4;
  char *colon = strrchr(rest, ':');
  if (!colon) die(EXIT_USAGE, "--listen needs ADDR:PORT, got", text, 0);
  *colon = '\0';
  long port = parse_long(colon + 1, 0, 65535, "--listen port out of range:");
  char *host = rest;
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    host++;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) die(EXIT_USAGE, "--listen bad IPv6 address in", text, 0);
    out->family = AF_INET6;
    out->addrlen = sizeof *a6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (hl == 0) a4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) die(EXIT_USAGE, "--listen bad IPv4 address in", text, 0);
    out->family = AF_INET;
    out->addrlen = sizeof *a4;
  }
  snprintf(out->name, sizeof out->name, "%s-%ld", out->type == SOCK_STREAM ? "tcp" : "udp", port);
}

static int open_socket(const struct listen_spec *spec, int backlog) {
  int fd = socket(spec->family, spec->type | SOCK_CLOEXEC, 0);
  if (fd < 0) die(EXIT_SOCKET, "socket() for", spec->text, errno);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die(EXIT_SOCKET, "SO_REUSEADDR for", spec->text, errno);
  /* A previous instance of the service may still be dying (its last threads hold the socket for
   * a few ms after it shows as a zombie): retry EADDRINUSE for up to ~1 s. */
  for (int attempt = 0;; attempt++) {
    if (bind(fd, (const struct sockaddr *)&spec->addr, spec->addrlen) == 0) break;
    if (errno != EADDRINUSE || attempt >= 200) die(EXIT_SOCKET, "bind", spec->text, errno);
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  if (spec->type == SOCK_STREAM && listen(fd, backlog) != 0) die(EXIT_SOCKET, "listen", spec->text, errno);
  return fd;
}

/* Logger loop: copy the pipe into `out` (= `path`), rotating to path.1 when the file reaches
 * `half` bytes. It never stops reading before EOF: a logger that quit would SIGPIPE the service,
 * so on a file error it keeps draining the pipe and drops the bytes. */
static void run_logger(int in, int out, const char *path, long half) {
  char rotated[PATH_MAX];
  int can_rotate = snprintf(rotated, sizeof rotated, "%s.1", path) < (int)sizeof rotated;
  struct stat st;
  long size = fstat(out, &st) == 0 ? (long)st.st_size : 0;
  char buf[4096];
  for (;;) {
    /* Never read more than fits in half the budget, so neither file ever exceeds it. */
    ssize_t n = read(in, buf, (size_t)half < sizeof buf ? (size_t)half : sizeof buf);
    if (n == 0) _exit(0);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (out >= 0 && size + n > half && can_rotate) {
      close(out);
      (void)rename(path, rotated);
      out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
      size = 0;
    }
    for (ssize_t off = 0; out >= 0 && off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        close(out);
        out = -1;
        break;
      }
      off += w;
    }
    size += n;
  }
}

/* Point stdout+stderr at a pipe read by a double-forked logger (reparented away from the service,
 * but in its process group, so killing the group with SIGKILL also ends the logger). The file is
 * opened here, so a bad path fails the launch instead of silently losing the log. */
static void setup_log(const char *path, long max_bytes) {
  int out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) die(EXIT_LOG, "open log", path, errno);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) die(EXIT_LOG, "pipe for log", path, errno);
  pid_t child = fork();
  if (child < 0) die(EXIT_LOG, "fork logger for", path, errno);
  if (child == 0) {
    pid_t grandchild = fork();
    if (grandchild < 0) _exit(1);
    if (grandchild > 0) _exit(0);
    close(fds[1]);
    if (ready_fd >= 0) close(ready_fd); /* else the caller never sees EOF if we fail */
    (void)prctl(PR_SET_NAME, "jitsu-logger", 0, 0, 0); /* tell it apart in ps/top */
    /* Outlive a graceful SIGTERM to the group so the service's last words still get logged. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    run_logger(fds[0], out, path, max_bytes / 2 > 0 ? max_bytes / 2 : 1);
  }
  int status;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) die(EXIT_LOG, "waitpid logger for", path, errno);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die(EXIT_LOG, "logger fork failed for", path, 0);
  close(fds[0]);
  close(out);
  if (dup2(fds[1], STDOUT_FILENO) < 0 || dup2(fds[1], STDERR_FILENO) < 0) die(EXIT_LOG, "dup2 log pipe for", path, errno);
  close(fds[1]);
}

/* LISTEN_FDS/LISTEN_PID(=our pid, call after any fork)/LISTEN_FDNAMES, or none of them. */
static void set_listen_env(const struct listen_spec *specs, int nspecs) {
  int i;
  if (nspecs > 0) {
    char num[32], names[MAX_LISTEN * 17];
    size_t off = 0;
    snprintf(num, sizeof num, "%d", nspecs);
    if (setenv("LISTEN_FDS", num, 1) != 0) die(EXIT_FDS, "setenv LISTEN_FDS", NULL, errno);
    snprintf(num, sizeof num, "%ld", (long)getpid());
    if (setenv("LISTEN_PID", num, 1) != 0) die(EXIT_FDS, "setenv LISTEN_PID", NULL, errno);
    names[0] = '\0';
    for (i = 0; i < nspecs; i++) off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? ":" : "", specs[i].name);
    if (setenv("LISTEN_FDNAMES", names, 1) != 0) die(EXIT_FDS, "setenv LISTEN_FDNAMES", NULL, errno);
  } else {
    /* Never let a child misread sockets inherited from whoever started us. */
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
  }
}

/* The command's LD_PRELOAD gets --preload first (set in the command's process only). The library
 * is opened here, while we are still root and see the host's mounts, and named by its fd: a
 * confined command may see neither its directory (a private /tmp, a directory only root may
 * enter) nor its path, yet the dynamic loader opens /proc/self/fd/N, which checks only the file's
 * own permissions. The fd stays open across exec (and in a wrapper's children, which may need it). */
static void set_preload_env(void) {
  if (!preload_lib) return;
  int fd = open(preload_lib, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(EXIT_FDS, "open --preload", preload_lib, errno);
  int kept = fcntl(fd, F_DUPFD, 3 + MAX_LISTEN + 10);
  if (kept < 0) die(EXIT_FDS, "fcntl(F_DUPFD) --preload", preload_lib, errno);
  close(fd);
  char by_fd[32];
  snprintf(by_fd, sizeof by_fd, "/proc/self/fd/%d", kept);
  const char *old = getenv("LD_PRELOAD");
  char value[PATH_MAX * 2];
  int len = old && *old ? snprintf(value, sizeof value, "%s:%s", by_fd, old) : snprintf(value, sizeof value, "%s", by_fd);
  if (len < 0 || (size_t)len >= sizeof value) die(EXIT_FDS, "LD_PRELOAD too long with", preload_lib, 0);
  if (setenv("LD_PRELOAD", value, 1) != 0) die(EXIT_FDS, "setenv LD_PRELOAD", NULL, errno);
}

/* Write `msg` to the ready fd (if any) and close it. A caller that stopped listening is not our
 * failure: SIGPIPE is blocked around the write and a pending one swallowed, so the service
 * starts with the signal state it inherited. */
static void report_ready(const char *msg, size_t len) {
  if (ready_fd < 0) return;
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  if (sigprocmask(SIG_BLOCK, &pipe_set, &old_set) != 0) die(EXIT_FDS, "sigprocmask", NULL, errno);
  ssize_t w;
  do w = write(ready_fd, msg, len);
  while (w < 0 && errno == EINTR);
  if (w < 0 && errno == EPIPE) {
    struct timespec zero = {0, 0};
    (void)sigtimedwait(&pipe_set, NULL, &zero);
  }
  if (sigprocmask(SIG_SETMASK, &old_set, NULL) != 0) die(EXIT_FDS, "sigprocmask", NULL, errno);
  close(ready_fd);
  ready_fd = -1;
}

/* --rlimit as=BYTES | nproc=N (soft = hard: the command cannot raise it back). */
static void parse_rlimit(const char *text) {
  if (confinement.nlimits == MAX_RLIMITS) die(EXIT_USAGE, "too many --rlimit", NULL, 0);
  const char *eq = strchr(text, '=');
  int resource;
  if (eq && (size_t)(eq - text) == 2 && strncmp(text, "as", 2) == 0) resource = RLIMIT_AS;
  else if (eq && (size_t)(eq - text) == 5 && strncmp(text, "nproc", 5) == 0) resource = RLIMIT_NPROC;
  else die(EXIT_USAGE, "--rlimit must be as=BYTES or nproc=N, got", text, 0);
  /* Not parse_long: memory= is bytes, and a long is 32 bits on armhf, so as=4294967296 (4 GiB) would
   * be refused there. rlim_t is 64 bits on every target (binding.gyp builds with _FILE_OFFSET_BITS=64). */
  char *end = NULL;
  errno = 0;
  unsigned long long v = eq[1] == '-' ? 0 : strtoull(eq + 1, &end, 10);
  if (errno || end == eq + 1 || *end != '\0' || v < 1 || v >= (unsigned long long)RLIM_INFINITY)
    die(EXIT_USAGE, "--rlimit value must be a positive integer:", eq + 1, 0);
  confinement.limits[confinement.nlimits].resource = resource;
  confinement.limits[confinement.nlimits].value = (rlim_t)v;
  confinement.limits[confinement.nlimits++].text = text;
}

static void write_file(int code, const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(code, "open", path, errno);
  ssize_t len = (ssize_t)strlen(text);
  if (write(fd, text, (size_t)len) != len) die(code, "write", path, errno);
  close(fd);
}

/* Every capability out of the bounding set (needs CAP_SETPCAP: before the uid change). */
static void drop_bounding_set(void) {
  for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) die(EXIT_CAPS, "PR_CAPBSET_DROP", NULL, errno);
  }
}

/* Applies `confinement` to this process (the command, just before exec). */
static void confine(void) {
  char pid[32];
  if (confinement.cgroup) {
    char procs[PATH_MAX];
    if (snprintf(procs, sizeof procs, "%s/cgroup.procs", confinement.cgroup) >= (int)sizeof procs) die(EXIT_CGROUP, "--cgroup path too long", NULL, 0);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    write_file(EXIT_CGROUP, procs, pid);
  }
  for (int i = 0; i < confinement.nlimits; i++) {
    struct rlimit rl = {confinement.limits[i].value, confinement.limits[i].value};
    if (setrlimit(confinement.limits[i].resource, &rl) != 0) die(EXIT_RLIMIT, "setrlimit", confinement.limits[i].text, errno);
  }
  if (confinement.private_tmp || confinement.read_only) {
    if (unshare(CLONE_NEWNS) != 0) die(EXIT_MOUNTS, "unshare(CLONE_NEWNS)", NULL, errno);
    /* Slave: the host's later mounts still reach us, ours never reach the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) die(EXIT_MOUNTS, "make / a slave mount", NULL, errno);
    if (confinement.read_only) {
      struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
      if (syscall(SYS_mount_setattr, -1, "/", AT_RECURSIVE, &attr, sizeof attr) != 0) die(EXIT_MOUNTS, "remount / read-only", NULL, errno);
    }
    if (confinement.private_tmp && mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m") != 0) {
      die(EXIT_MOUNTS, "mount a private tmpfs on /tmp", NULL, errno);
    }
  }
  if (confinement.uid >= 0) {
    drop_bounding_set();
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) die(EXIT_CAPS, "clear ambient capabilities", NULL, errno);
    gid_t gid = (gid_t)confinement.gid;
    if (setgroups(1, &gid) != 0) die(EXIT_IDENTITY, "setgroups", NULL, errno);
    if (setgid(gid) != 0) die(EXIT_IDENTITY, "setgid", NULL, errno);
    if (setuid((uid_t)confinement.uid) != 0) die(EXIT_IDENTITY, "setuid", NULL, errno);
    /* setuid() away from 0 empties effective and permitted; inheritable stays unless cleared. */
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];
    memset(none, 0, sizeof none);
    if (syscall(SYS_capset, &header, none) != 0) die(EXIT_CAPS, "capset (clear all)", NULL, errno);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die(EXIT_CAPS, "PR_SET_NO_NEW_PRIVS", NULL, errno);
  }
  if (confinement.dir && chdir(confinement.dir) != 0) die(EXIT_CHDIR, "chdir", confinement.dir, errno);
  if (report_fd >= 0) {
    char value[48];
    /* Inherited across exec (only the command's copy: the supervisor closes its own). */
    if (fcntl(report_fd, F_SETFD, 0) != 0) die(EXIT_REPORT, "fcntl report fd", NULL, errno);
    snprintf(value, sizeof value, "/proc/self/fd/%d", report_fd);
    if (setenv("JITSU_READY_REPORT", value, 1) != 0) die(EXIT_REPORT, "setenv JITSU_READY_REPORT", NULL, errno);
  }
}

/* --wait-fifo: block until the daemon writes the go byte (a start of this service). */
static void wait_for_start(void) {
  if (wait_fd < 0) return;
  char go;
  ssize_t r;
  do r = read(wait_fd, &go, 1);
  while (r < 0 && errno == EINTR);
  if (r != 1) die(EXIT_WAIT, "read the start byte", NULL, r < 0 ? errno : 0);
  close(wait_fd);
}

static void exec_command(char **cmd) {
  execvp(cmd[0], cmd);
  int err = errno;
  die(err == ENOENT ? EXIT_NOTFOUND : EXIT_EXEC, "exec", cmd[0], err);
}

/* See --supervise above. Never returns in the launcher (exits 0 once the supervisor runs). */
static void supervise(char **cmd, const struct listen_spec *specs, int nspecs, const char *exit_path) {
  int exit_fd = open(exit_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (exit_fd < 0) die(EXIT_SUPERVISE, "open exit record", exit_path, errno);
  pid_t sup = fork();
  if (sup < 0) die(EXIT_SUPERVISE, "fork supervisor", NULL, errno);
  if (sup > 0) _exit(0); /* the launcher: the supervisor carries on */

  pid_t child = fork();
  if (child < 0) die(EXIT_SUPERVISE, "fork command", NULL, errno);
  if (child == 0) {
    /* The command: its own session and process group (pgid = pid), so the daemon signals the
     * group without touching the supervisor or the logger. */
    if (setsid() < 0) die(EXIT_SUPERVISE, "setsid", NULL, errno);
    set_listen_env(specs, nspecs);
    set_preload_env();
    close(exit_fd);
    if (ready_fd >= 0) close(ready_fd);
    confine();
    wait_for_start();
    exec_command(cmd);
  }

  /* The supervisor: holds no socket, no log pipe; ignores the signals meant for the service. */
  (void)prctl(PR_SET_NAME, "jitsu-supervise", 0, 0, 0);
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  for (int i = 0; i < nspecs; i++) close(3 + i);
  if (report_fd >= 0) close(report_fd);
  if (wait_fd >= 0) close(wait_fd); /* only the command's copy keeps a reader there */
  char msg[32];
  int len = snprintf(msg, sizeof msg, "%ld\n", (long)child);
  report_ready(msg, (size_t)len);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    (void)dup2(devnull, STDIN_FILENO);
    (void)dup2(devnull, STDOUT_FILENO);
    (void)dup2(devnull, STDERR_FILENO);
    close(devnull);
  }
  (void)chdir("/");
  int status;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) _exit(1);
  }
  char rec[128];
  if (WIFEXITED(status)) len = snprintf(rec, sizeof rec, "{\"pid\":%ld,\"code\":%d,\"signal\":null}\n", (long)child, WEXITSTATUS(status));
  else len = snprintf(rec, sizeof rec, "{\"pid\":%ld,\"code\":null,\"signal\":%d}\n", (long)child, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  ssize_t w;
  do w = write(exit_fd, rec, (size_t)len);
  while (w < 0 && errno == EINTR);
  _exit(0);
}

static void usage(void) {
  die(EXIT_USAGE,
      "usage: jitsu-activate [--netns PATH] [--listen tcp|udp:ADDR:PORT]... [--backlog N] [--chdir DIR] "
      "[--log FILE [--log-max BYTES]] [--ready-fd N] [--supervise EXITFILE] [--preload LIB] [--report FILE] "
      "[--uid N --gid N] [--private-tmp] [--read-only] [--rlimit as|nproc=N]... [--cgroup DIR] [--open-low-ports] "
      "[--wait-fifo PATH] -- COMMAND ARGS...",
      NULL, 0);
}

int main(int argc, char **argv) {
  const char *netns = NULL, *log_path = NULL, *supervise_path = NULL, *report_path = NULL, *wait_path = NULL;
  int open_low_ports = 0;
  /* Ask for a deep queue: the kernel caps it at the namespace's net.core.somaxconn, which the daemon
   * raises in each service namespace, so a burst of clients during a start is queued, not dropped. */
  long backlog = 65535, log_max = 1 << 20;
  struct listen_spec specs[MAX_LISTEN];
  int nspecs = 0, i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    /* The flags without a value. */
    if (strcmp(a, "--private-tmp") == 0 || strcmp(a, "--read-only") == 0 || strcmp(a, "--open-low-ports") == 0) {
      if (a[2] == 'p') confinement.private_tmp = 1;
      else if (a[2] == 'r') confinement.read_only = 1;
      else open_low_ports = 1;
      continue;
    }
    if (!v) usage();
    if (strcmp(a, "--netns") == 0) netns = v;
    else if (strcmp(a, "--chdir") == 0) confinement.dir = v;
    else if (strcmp(a, "--report") == 0) report_path = v;
    else if (strcmp(a, "--cgroup") == 0) confinement.cgroup = v;
    else if (strcmp(a, "--rlimit") == 0) parse_rlimit(v);
    else if (strcmp(a, "--uid") == 0) confinement.uid = parse_long(v, 0, INT_MAX, "--uid must be a uid:");
    else if (strcmp(a, "--gid") == 0) confinement.gid = parse_long(v, 0, INT_MAX, "--gid must be a gid:");
    else if (strcmp(a, "--log") == 0) log_path = v;
    else if (strcmp(a, "--supervise") == 0) supervise_path = v;
    else if (strcmp(a, "--wait-fifo") == 0) wait_path = v;
    else if (strcmp(a, "--preload") == 0) preload_lib = v;
    else if (strcmp(a, "--log-max") == 0) log_max = parse_long(v, 1024, LONG_MAX, "--log-max must be >= 1024:");
    else if (strcmp(a, "--ready-fd") == 0) ready_fd = (int)parse_long(v, 3, INT_MAX, "--ready-fd must be >= 3:");
    else if (strcmp(a, "--backlog") == 0) backlog = parse_long(v, 1, INT_MAX, "--backlog must be >= 1:");
    else if (strcmp(a, "--listen") == 0) {
      if (nspecs == MAX_LISTEN) die(EXIT_USAGE, "too many --listen (max 64)", NULL, 0);
      parse_listen(v, &specs[nspecs++]);
    } else usage();
    i++;
  }
  if (i >= argc) usage();
  if ((confinement.uid < 0) != (confinement.gid < 0)) die(EXIT_USAGE, "--uid and --gid go together", NULL, 0);
  if (open_low_ports && !netns) die(EXIT_USAGE, "--open-low-ports needs --netns", NULL, 0);
  if (wait_path && !supervise_path) die(EXIT_USAGE, "--wait-fifo needs --supervise", NULL, 0);
  char **cmd = argv + i;

  if (ready_fd >= 0) {
    int high = fcntl(ready_fd, F_DUPFD_CLOEXEC, 3 + MAX_LISTEN + 8);
    if (high < 0) die(EXIT_FDS, "--ready-fd is not an open fd", NULL, errno);
    close(ready_fd);
    ready_fd = high;
  }

  /* Before the sockets exist, so the logger never holds a listening socket open. */
  if (log_path) setup_log(log_path, log_max);

  if (report_path) {
    int fd = open(report_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) die(EXIT_REPORT, "open report", report_path, errno);
    /* The command appends to it through /proc/self/fd/N, which checks the file's own permissions. */
    if (confinement.uid >= 0 && fchown(fd, (uid_t)confinement.uid, (gid_t)confinement.gid) != 0) die(EXIT_REPORT, "chown report", report_path, errno);
    report_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3 + MAX_LISTEN + 9);
    if (report_fd < 0) die(EXIT_REPORT, "fcntl(F_DUPFD) report", report_path, errno);
    close(fd);
  }

  if (wait_path) {
    (void)unlink(wait_path);
    if (mkfifo(wait_path, 0600) != 0) die(EXIT_WAIT, "mkfifo", wait_path, errno);
    int fd = open(wait_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) die(EXIT_WAIT, "open wait fifo", wait_path, errno);
    wait_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3 + MAX_LISTEN + 10);
    if (wait_fd < 0) die(EXIT_WAIT, "fcntl(F_DUPFD) wait fifo", wait_path, errno);
    close(fd);
  }

  if (netns) {
    int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) die(EXIT_NETNS_OPEN, "open netns", netns, errno);
    if (setns(nsfd, CLONE_NEWNET) != 0) die(EXIT_SETNS, "setns", netns, errno);
    close(nsfd);
    /* /proc/sys/net is the namespace of whoever opens it: now the service's. */
    if (open_low_ports) write_file(EXIT_LOW_PORTS, "/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
  }

  int fds[MAX_LISTEN];
  for (i = 0; i < nspecs; i++) fds[i] = open_socket(&specs[i], (int)backlog);

  /* Move the sockets to 3..3+n-1: first above the target range, so no dup2 clobbers a socket
   * not yet moved; dup2 clears FD_CLOEXEC on the final fds. */
  for (i = 0; i < nspecs; i++) {
    int high = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + nspecs);
    if (high < 0) die(EXIT_FDS, "fcntl(F_DUPFD) for", specs[i].text, errno);
    close(fds[i]);
    fds[i] = high;
  }
  for (i = 0; i < nspecs; i++) {
    if (dup2(fds[i], 3 + i) < 0) die(EXIT_FDS, "dup2 for", specs[i].text, errno);
    close(fds[i]);
  }

  /* Fails the launch at once for a missing directory; confine() enters it again as the service. */
  if (confinement.dir && chdir(confinement.dir) != 0) die(EXIT_CHDIR, "chdir", confinement.dir, errno);

  set_listen_env(specs, nspecs);
  if (supervise_path) supervise(cmd, specs, nspecs, supervise_path);
  set_preload_env();
  report_ready("1", 1);
  confine();

  exec_command(cmd);
  return EXIT_EXEC;
}
