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
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

// A reply larger than this is refused: memory stays bounded whatever the namespace holds.
constexpr size_t kMaxReplyBytes = 16u << 20;

std::string Errno(const char* what, int err) { return std::string(what) + ": " + strerror(err); }

// A netlink socket of `protocol` in the namespace at `nsPath` (empty: this thread's). -1 + `error`.
int OpenIn(const std::string& nsPath, int protocol, std::string* error) {
  if (nsPath.empty()) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) *error = Errno("socket(AF_NETLINK)", errno);
    return fd;
  }
  int target = open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *error = Errno(("open " + nsPath).c_str(), errno);
    return -1;
  }
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    *error = Errno("open /proc/thread-self/ns/net", errno);
    close(target);
    return -1;
  }
  int fd = -1;
  if (setns(target, CLONE_NEWNET) != 0) {
    *error = Errno(("setns " + nsPath).c_str(), errno);
  } else {
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) *error = Errno("socket(AF_NETLINK) in the namespace", errno);
    // A thread left in the service's namespace would open every later socket there.
    if (setns(home, CLONE_NEWNET) != 0) Napi::Error::Fatal("netlinkTransact", "cannot return to the thread's own network namespace");
  }
  close(home);
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
  std::vector<uint8_t> buf(64 * 1024);
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = Errno("recv(netlink)", errno);
      return false;
    }
    size_t size = static_cast<size_t>(n);
    bool ended = false;
    for (size_t off = 0; off + sizeof(nlmsghdr) <= size;) {
      const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(buf.data() + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || off + h->nlmsg_len > size) break;
      bool last = h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR || (single && (h->nlmsg_flags & NLM_F_MULTI) == 0);
      if (h->nlmsg_seq == seq && last) ended = true;
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
    if (out->size() + size > kMaxReplyBytes) {
      *error = "netlink reply larger than 16 MiB";
      return false;
    }
    out->insert(out->end(), buf.data(), buf.data() + size);
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
  int fd = OpenIn(nsPath, protocol, &error);
  if (fd < 0) {
    Napi::Error::New(env, error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // A kernel that never answers must not hang the calling thread.
  timeval timeout{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  Napi::Array replies = Napi::Array::New(env, requests.Length());
  for (uint32_t i = 0; i < requests.Length(); i++) {
    Napi::Value r = requests.Get(i);
    if (!r.IsBuffer()) {
      close(fd);
      Napi::TypeError::New(env, "netlinkTransact: every request must be a Buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> req = r.As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> out;
    if (!Transact(fd, req.Data(), req.Length(), &out, &error)) {
      close(fd);
      Napi::Error::New(env, error).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    replies.Set(i, Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size()));
  }
  close(fd);
  return replies;
}

// linkIndex(name) -> the interface's index in this thread's namespace, 0 when there is none. Route
// requests name links by index; if_nametoindex(3) is one ioctl where sysfs costs an open and a read.
Napi::Value LinkIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "linkIndex(name: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, if_nametoindex(info[0].As<Napi::String>().Utf8Value().c_str()));
}

}  // namespace

void RegisterNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("netlinkTransact", Napi::Function::New(env, NetlinkTransact, "netlinkTransact"));
  exports.Set("linkIndex", Napi::Function::New(env, LinkIndex, "linkIndex"));
}
