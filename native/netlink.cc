// netlinkTransact: netlink requests from a socket opened inside a given network namespace, which
// Node cannot do. sock_diag (the socket tables ss(8) reads) answers for the namespace the socket was
// created in, and reading a service's /proc/PID/net/tcp instead walks every bucket of the kernel's
// whole TCP hash (~0.6 ms per read on a 24 GiB host, on a service's ready path). The socket is
// created after setns(2) on this thread and the thread switches back at once: no JavaScript runs
// in between. Messages are built and parsed in TypeScript (src/network/netlink.ts); this only moves
// bytes: each request is sent and its replies are read up to the one that ends it.
#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace {

// A reply larger than this is refused: memory stays bounded whatever the namespace holds.
constexpr size_t kMaxReplyBytes = 16u << 20;

std::string Errno(const char* what, int err) { return std::string(what) + ": " + strerror(err); }

// A kernel that never answers must not hang the calling thread.
int WithReplyTimeout(int fd) {
  if (fd >= 0) {
    timeval timeout{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }
  return fd;
}

// This thread's own network namespace, opened on first use and kept until the thread ends: it never
// changes (every switch below returns at once), and opening it cost a third of a cold namespace hop.
class HomeNetnsFd {
 public:
  ~HomeNetnsFd() {
    if (fd_ >= 0) close(fd_);
  }
  int Get() {
    if (fd_ < 0) fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    return fd_;
  }

 private:
  int fd_ = -1;
};

int HomeNetns() {
  static thread_local HomeNetnsFd home;
  return home.Get();
}

// Netlink sockets of this thread's own namespace, one per protocol, opened on first use and kept: the
// link gate's one request then costs its sendto and recv, not a socket's setup and teardown too. A
// socket whose transaction failed is closed (Drop), so no half-read reply meets the next request.
class HostSockets {
 public:
  ~HostSockets() {
    for (int fd : fds_)
      if (fd >= 0) close(fd);
  }
  int Get(int protocol, std::string* error) {
    if (protocol < 0 || protocol >= MAX_LINKS) {
      *error = "netlink protocol out of range";
      return -1;
    }
    if (fds_[protocol] < 0) {
      fds_[protocol] = WithReplyTimeout(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
      if (fds_[protocol] < 0) *error = Errno("socket(AF_NETLINK)", errno);
    }
    return fds_[protocol];
  }
  void Drop(int protocol) {
    close(fds_[protocol]);
    fds_[protocol] = -1;
  }

 private:
  int fds_[MAX_LINKS] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                         -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
};

HostSockets& Host() {
  static thread_local HostSockets host;
  return host;
}

// A new netlink socket of `protocol` in the namespace at `nsPath`. -1 + `error`.
int OpenIn(const std::string& nsPath, int protocol, std::string* error) {
  int target = open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *error = Errno(("open " + nsPath).c_str(), errno);
    return -1;
  }
  int home = HomeNetns();
  if (home < 0) {
    *error = Errno("open /proc/thread-self/ns/net", errno);
    close(target);
    return -1;
  }
  int fd = -1;
  if (setns(target, CLONE_NEWNET) != 0) {
    *error = Errno(("setns " + nsPath).c_str(), errno);
  } else {
    fd = WithReplyTimeout(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
    if (fd < 0) *error = Errno("socket(AF_NETLINK) in the namespace", errno);
    // A thread left in the service's namespace would open every later socket there.
    if (setns(home, CLONE_NEWNET) != 0) Napi::Error::Fatal("netlinkTransact", "cannot return to the thread's own network namespace");
  }
  close(target);
  return fd;
}

// Sends one request and appends every reply message up to the one that ends it (DONE or ERROR).
bool Transact(int fd, const uint8_t* req, size_t len, std::vector<uint8_t>* out, std::string* error) {
  if (len < sizeof(nlmsghdr)) {
    *error = "request shorter than a netlink header";
    return false;
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, req, len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    *error = Errno("sendto(netlink)", errno);
    return false;
  }
  const nlmsghdr* sent = reinterpret_cast<const nlmsghdr*>(req);
  uint32_t seq = sent->nlmsg_seq;
  // A dump ends with NLMSG_DONE, an acknowledged request with its NLMSG_ERROR (0 = success); any
  // other request with its one answer.
  bool single = (sent->nlmsg_flags & (NLM_F_DUMP | NLM_F_ACK)) == 0;
  // One receive buffer per thread, never zeroed: a zeroed 64 KiB a call was most of a cold small request.
  constexpr size_t kChunk = 64 * 1024;
  static thread_local std::unique_ptr<uint8_t[]> buffer;
  if (!buffer) buffer.reset(new uint8_t[kChunk]);
  uint8_t* buf = buffer.get();
  for (;;) {
    ssize_t n = recv(fd, buf, kChunk, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = Errno("recv(netlink)", errno);
      return false;
    }
    size_t size = static_cast<size_t>(n);
    bool ended = false;
    for (size_t off = 0; off + sizeof(nlmsghdr) <= size;) {
      const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(buf + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || off + h->nlmsg_len > size) break;
      bool last = h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR || (single && (h->nlmsg_flags & NLM_F_MULTI) == 0);
      if (h->nlmsg_seq == seq && last) ended = true;
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
    if (out->size() + size > kMaxReplyBytes) {
      *error = "netlink reply larger than 16 MiB";
      return false;
    }
    out->insert(out->end(), buf, buf + size);
    if (ended) return true;
  }
}

// netlinkTransact(protocol, nsPath | null, requests: Buffer[]) -> Buffer[] (the replies to each).
Napi::Value NetlinkTransact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !(info[1].IsString() || info[1].IsNull()) || !info[2].IsArray()) {
    Napi::TypeError::New(env, "netlinkTransact(protocol: number, nsPath: string | null, requests: Buffer[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int protocol = info[0].As<Napi::Number>().Int32Value();
  std::string nsPath = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : std::string();
  Napi::Array requests = info[2].As<Napi::Array>();
  std::string error;
  bool host = nsPath.empty();
  int fd = host ? Host().Get(protocol, &error) : OpenIn(nsPath, protocol, &error);
  if (fd < 0) {
    Napi::Error::New(env, error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto release = [&](bool ok) {
    if (!host) close(fd);
    else if (!ok) Host().Drop(protocol);
  };
  Napi::Array replies = Napi::Array::New(env, requests.Length());
  for (uint32_t i = 0; i < requests.Length(); i++) {
    Napi::Value r = requests.Get(i);
    if (!r.IsBuffer()) {
      release(true);
      Napi::TypeError::New(env, "netlinkTransact: every request must be a Buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> req = r.As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> out;
    if (!Transact(fd, req.Data(), req.Length(), &out, &error)) {
      release(false);
      Napi::Error::New(env, error).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    replies.Set(i, Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size()));
  }
  release(true);
  return replies;
}

// linkIndex(name) -> the interface's index in this thread's namespace, 0 when there is none. Route
// requests name links by index. SIOCGIFINDEX on the kept route socket is one syscall, where
// if_nametoindex(3) opens and closes a socket around it and sysfs costs an open and a read.
Napi::Value LinkIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "linkIndex(name: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.size() >= IFNAMSIZ) return Napi::Number::New(env, 0);
  std::string error;
  int fd = Host().Get(NETLINK_ROUTE, &error);
  ifreq ifr{};
  memcpy(ifr.ifr_name, name.c_str(), name.size() + 1);
  if (fd >= 0 && ioctl(fd, SIOCGIFINDEX, &ifr) == 0) return Napi::Number::New(env, ifr.ifr_ifindex);
  if (fd >= 0 && errno == ENODEV) return Napi::Number::New(env, 0);
  return Napi::Number::New(env, if_nametoindex(name.c_str()));
}

}  // namespace

void RegisterNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("netlinkTransact", Napi::Function::New(env, NetlinkTransact, "netlinkTransact"));
  exports.Set("linkIndex", Napi::Function::New(env, LinkIndex, "linkIndex"));
}
