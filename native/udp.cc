// UdpSocket: the DNS hot path's datagram socket. Node's dgram costs one recvmsg + one sendmsg +
// one JS dispatch per datagram; here one readable wake-up drains up to `batch` datagrams with
// recvmmsg into caller-owned memory, calls JS once with the count, and JS answers the whole batch
// with one sendmmsg (sendBatch). Nothing is allocated per datagram.
//
// Memory shared with JS (all owned by JS, referenced here for the socket's lifetime):
//   data     batch * slotSize bytes; datagram i is at i * slotSize
//   meta     Uint32Array, [length, flags] per slot (flags: UDP_TRUNCATED when larger than a slot)
//   addrs    batch * kAddrStride bytes; the sender of datagram i as a raw sockaddr_in/in6
//   outData  replies placed by JS for sendBatch
//   outMeta  Uint32Array, [offset, length, slot] per reply: reply goes to the sender of `slot`
// A reply that comes later (summon, forward) copies its sender's kAddrStride bytes out of addrs
// (the "address key") and goes out with sendTo(buf, key).
//
// Send never blocks: on EAGAIN (send buffer full) the rest is copied into a bounded queue flushed
// when the socket is writable again; beyond the bound datagrams are dropped and counted. ENOBUFS
// and other per-datagram errors drop that datagram only (counted in sendErrors).
// The poll handle lives on the creating thread's libuv loop, so a socket works in a worker thread.
#include "polled_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kAddrStride = 32;  // >= sizeof(sockaddr_in6) (28), 8-aligned
constexpr uint32_t kTruncated = 1;
constexpr uint32_t kMaxBatch = 1024;
constexpr uint32_t kSendChunk = 64;
// A wake-up drains at most this many full batches before yielding to the rest of the loop.
constexpr int kRoundsPerWake = 8;

socklen_t AddrLen(const uint8_t* addr) {
  sa_family_t fam;
  std::memcpy(&fam, addr, sizeof(fam));
  if (fam == AF_INET) return sizeof(struct sockaddr_in);
  if (fam == AF_INET6) return sizeof(struct sockaddr_in6);
  return 0;
}

struct Queued {
  uint8_t addr[kAddrStride];
  std::vector<uint8_t> bytes;
};

class UdpSocket : public PolledSocket<UdpSocket> {
  friend class PolledSocket<UdpSocket>;

 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpSocket",
                       {
                           InstanceMethod("sendBatch", &UdpSocket::SendBatch),
                           InstanceMethod("sendTo", &UdpSocket::SendTo),
                           InstanceMethod("stats", &UdpSocket::Stats),
                           InstanceMethod("localAddress", &UdpSocket::LocalAddress),
                           InstanceMethod("ref", &UdpSocket::RefLoop),
                           InstanceMethod("unref", &UdpSocket::UnrefLoop),
                           InstanceMethod("close", &UdpSocket::Close),
                           InstanceAccessor("fd", &UdpSocket::Fd, nullptr),
                       });
  }

  explicit UdpSocket(const Napi::CallbackInfo& info) : PolledSocket<UdpSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "UdpSocket(options): options object required").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("address").IsString() || !o.Get("port").IsNumber()) {
      Napi::TypeError::New(env, "UdpSocket: options.address (IP literal) and options.port required").ThrowAsJavaScriptException();
      return;
    }
    if (!TakeBuffers(env, o)) return;

    std::string address = o.Get("address").As<Napi::String>().Utf8Value();
    uint32_t port = o.Get("port").As<Napi::Number>().Uint32Value();
    if (port > 65535) { Fail(env, "UdpSocket: port out of range"); return; }
    struct sockaddr_storage ss;
    std::memset(&ss, 0, sizeof(ss));
    socklen_t sslen;
    int family;
    auto* s4 = reinterpret_cast<struct sockaddr_in*>(&ss);
    auto* s6 = reinterpret_cast<struct sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, address.c_str(), &s4->sin_addr) == 1) {
      family = AF_INET;
      s4->sin_family = AF_INET;
      s4->sin_port = htons(static_cast<uint16_t>(port));
      sslen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, address.c_str(), &s6->sin6_addr) == 1) {
      family = AF_INET6;
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(static_cast<uint16_t>(port));
      sslen = sizeof(*s6);
    } else {
      Fail(env, "UdpSocket: address " + address + " is not an IPv4 or IPv6 literal");
      return;
    }

    fd_ = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) { Fail(env, SysError("socket(SOCK_DGRAM)")); return; }
    int one = 1;
    if (family == AF_INET6 && setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
      Fail(env, SysError("IPV6_V6ONLY"));
      return;
    }
    if (o.Get("reusePort").ToBoolean().Value() && setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
      Fail(env, SysError("SO_REUSEPORT"));
      return;
    }
    if (o.Get("recvBuffer").IsNumber()) {
      int size = o.Get("recvBuffer").As<Napi::Number>().Int32Value();
      // Best effort, like dgram's recvBufferSize: the kernel caps it at net.core.rmem_max.
      if (size > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    if (o.Get("sendBuffer").IsNumber()) {
      int size = o.Get("sendBuffer").As<Napi::Number>().Int32Value();
      if (size > 0) setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    if (o.Get("maxQueued").IsNumber()) maxQueued_ = o.Get("maxQueued").As<Napi::Number>().Uint32Value();
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&ss), sslen) < 0) {
      int err = errno;
      std::string msg = SysError(("bind(" + address + ":" + std::to_string(port) + ")").c_str());
      Shutdown();
      Napi::Error e = Napi::Error::New(env, msg);
      e.Set("code", Napi::String::New(env, err == EADDRINUSE ? "EADDRINUSE" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : err == EACCES ? "EACCES" : "EBIND"));
      e.Set("errno", Napi::Number::New(env, err));
      e.ThrowAsJavaScriptException();
      return;
    }

    msgs_.resize(batch_);
    iov_.resize(batch_);
    for (uint32_t i = 0; i < batch_; i++) {
      iov_[i].iov_base = data_ + static_cast<size_t>(i) * slotSize_;
      iov_[i].iov_len = slotSize_;
    }

    StartPolling(env, o.Get("onBatch").As<Napi::Function>(), "jitsu:udp");
  }

  ~UdpSocket() override { Shutdown(); }

 private:
  bool TakeBuffers(Napi::Env env, Napi::Object o) {
    Napi::Value data = o.Get("data"), meta = o.Get("meta"), addrs = o.Get("addrs");
    Napi::Value outData = o.Get("outData"), outMeta = o.Get("outMeta"), onBatch = o.Get("onBatch");
    if (!data.IsBuffer() || !meta.IsTypedArray() || !addrs.IsBuffer() || !outData.IsBuffer() || !outMeta.IsTypedArray() ||
        !onBatch.IsFunction() || !o.Get("slotSize").IsNumber()) {
      Napi::TypeError::New(env, "UdpSocket: needs data, addrs, outData (Buffer), meta, outMeta (Uint32Array), slotSize, onBatch")
          .ThrowAsJavaScriptException();
      return false;
    }
    if (meta.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        outMeta.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      Napi::TypeError::New(env, "UdpSocket: meta and outMeta must be Uint32Array").ThrowAsJavaScriptException();
      return false;
    }
    Napi::Buffer<uint8_t> d = data.As<Napi::Buffer<uint8_t>>(), a = addrs.As<Napi::Buffer<uint8_t>>(), od = outData.As<Napi::Buffer<uint8_t>>();
    Napi::Uint32Array m = meta.As<Napi::Uint32Array>(), om = outMeta.As<Napi::Uint32Array>();
    slotSize_ = o.Get("slotSize").As<Napi::Number>().Uint32Value();
    batch_ = static_cast<uint32_t>(m.ElementLength() / 2);
    if (slotSize_ < 12 || batch_ == 0 || batch_ > kMaxBatch || d.Length() < static_cast<size_t>(batch_) * slotSize_ ||
        a.Length() < static_cast<size_t>(batch_) * kAddrStride || om.ElementLength() < 3) {
      Napi::RangeError::New(env, "UdpSocket: batch (meta.length / 2) must be 1..1024, data >= batch * slotSize, addrs >= batch * 32")
          .ThrowAsJavaScriptException();
      return false;
    }
    refs_.push_back(Napi::Persistent(data.As<Napi::Object>()));
    refs_.push_back(Napi::Persistent(meta.As<Napi::Object>()));
    refs_.push_back(Napi::Persistent(addrs.As<Napi::Object>()));
    refs_.push_back(Napi::Persistent(outData.As<Napi::Object>()));
    refs_.push_back(Napi::Persistent(outMeta.As<Napi::Object>()));
    data_ = d.Data();
    meta_ = m.Data();
    addrs_ = a.Data();
    out_ = od.Data();
    outCap_ = od.Length();
    outMeta_ = om.Data();
    outMetaCap_ = static_cast<uint32_t>(om.ElementLength() / 3);
    return true;
  }

  void OnReady(int events) {
    if (events & UV_WRITABLE) Flush();
    if ((events & UV_READABLE) && fd_ >= 0) Drain();
  }

  void Drain() {
    for (int round = 0; round < kRoundsPerWake && fd_ >= 0; round++) {
      for (uint32_t i = 0; i < batch_; i++) {
        struct msghdr& h = msgs_[i].msg_hdr;
        h.msg_name = addrs_ + static_cast<size_t>(i) * kAddrStride;
        h.msg_namelen = sizeof(struct sockaddr_in6);
        h.msg_iov = &iov_[i];
        h.msg_iovlen = 1;
        h.msg_control = nullptr;
        h.msg_controllen = 0;
        h.msg_flags = 0;
      }
      int r = recvmmsg(fd_, msgs_.data(), batch_, MSG_DONTWAIT, nullptr);
      if (r <= 0) {
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) recvErrors_++;
        return;
      }
      uint32_t n = static_cast<uint32_t>(r);
      for (uint32_t i = 0; i < n; i++) {
        meta_[i * 2] = msgs_[i].msg_len;
        bool trunc = (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        meta_[i * 2 + 1] = trunc ? kTruncated : 0;
        if (trunc) truncated_++;
      }
      received_ += n;
      batches_++;
      if (!Deliver(n)) return;
      if (n < batch_) return;  // drained: no extra syscall just to hear EAGAIN
    }
  }

  // Sends msgs[0..n) (already filled); returns how many the kernel took before EAGAIN/ENOBUFS.
  // Hard errors on one datagram drop that datagram only.
  uint32_t SendSome(struct mmsghdr* msgs, uint32_t n, bool& blocked) {
    uint32_t done = 0;
    blocked = false;
    while (done < n) {
      int r = sendmmsg(fd_, msgs + done, n - done, MSG_DONTWAIT);
      if (r > 0) {
        done += static_cast<uint32_t>(r);
        sent_ += static_cast<uint32_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        blocked = true;
        return done;
      }
      // ENOBUFS (no memory or a full device queue: the socket still polls writable, so waiting
      // for POLLOUT would spin), EPERM (firewall), EINVAL (bad address key) ...: this datagram is
      // lost, the rest may go.
      sendErrors_++;
      done++;
    }
    return done;
  }

  bool Enqueue(const uint8_t* addr, const uint8_t* bytes, size_t len) {
    if (queue_.size() >= maxQueued_ || queuedBytes_ + len > kMaxQueuedBytes) {
      dropped_++;
      return false;
    }
    queue_.emplace_back();
    Queued& q = queue_.back();
    std::memcpy(q.addr, addr, kAddrStride);
    q.bytes.assign(bytes, bytes + len);
    queuedBytes_ += len;
    queuedTotal_++;
    if (!wantWritable_ && fd_ >= 0) {
      wantWritable_ = true;
      WatchWritable(true);
    }
    return true;
  }

  // Sends queued datagrams while the socket takes them; stops write polling once empty.
  void Flush() {
    struct mmsghdr msgs[kSendChunk];
    struct iovec iov[kSendChunk];
    while (!queue_.empty() && fd_ >= 0) {
      uint32_t n = 0;
      for (auto it = queue_.begin(); it != queue_.end() && n < kSendChunk; ++it, n++) {
        iov[n].iov_base = it->bytes.data();
        iov[n].iov_len = it->bytes.size();
        std::memset(&msgs[n], 0, sizeof(msgs[n]));
        msgs[n].msg_hdr.msg_name = it->addr;
        msgs[n].msg_hdr.msg_namelen = AddrLen(it->addr);
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
      }
      bool blocked;
      uint32_t done = SendSome(msgs, n, blocked);
      for (uint32_t i = 0; i < done; i++) {
        queuedBytes_ -= queue_.front().bytes.size();
        queue_.pop_front();
      }
      if (blocked) return;
    }
    if (queue_.empty() && wantWritable_ && fd_ >= 0) {
      wantWritable_ = false;
      WatchWritable(false);
    }
  }

  // sendBatch(count): outMeta holds [offset, length, slot] per reply. Returns how many were dropped
  // (0 unless the send queue overflowed or the kernel refused a datagram).
  Napi::Value SendBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return Napi::Number::New(env, 0);
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(env, "sendBatch(count: number)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint32_t count = info[0].As<Napi::Number>().Uint32Value();
    if (count > outMetaCap_) {
      Napi::RangeError::New(env, "sendBatch: count exceeds outMeta triples").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t droppedBefore = dropped_ + sendErrors_;
    struct mmsghdr msgs[kSendChunk];
    struct iovec iov[kSendChunk];
    uint32_t next = 0;
    while (next < count) {
      uint32_t n = 0;
      for (; n < kSendChunk && next + n < count; n++) {
        const uint32_t* m = outMeta_ + static_cast<size_t>(next + n) * 3;
        if (static_cast<size_t>(m[0]) + m[1] > outCap_ || m[2] >= batch_) {
          Napi::RangeError::New(env, "sendBatch: reply outside outData or slot outside the batch").ThrowAsJavaScriptException();
          return env.Undefined();
        }
        iov[n].iov_base = out_ + m[0];
        iov[n].iov_len = m[1];
        std::memset(&msgs[n], 0, sizeof(msgs[n]));
        uint8_t* addr = addrs_ + static_cast<size_t>(m[2]) * kAddrStride;
        msgs[n].msg_hdr.msg_name = addr;
        msgs[n].msg_hdr.msg_namelen = AddrLen(addr);
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
      }
      bool blocked = false;
      uint32_t done = queue_.empty() ? SendSome(msgs, n, blocked) : 0;
      if (!queue_.empty() || blocked) {
        // Keep order behind what is already queued; the copies free outData for the next batch.
        for (uint32_t i = done; i < n; i++) Enqueue(static_cast<uint8_t*>(msgs[i].msg_hdr.msg_name), static_cast<uint8_t*>(iov[i].iov_base), iov[i].iov_len);
      }
      next += n;
    }
    return Napi::Number::New(env, static_cast<double>(dropped_ + sendErrors_ - droppedBefore));
  }

  // sendTo(buf, key): one late reply to the sender whose address key (kAddrStride bytes copied
  // from addrs) is given. Returns false when it was dropped.
  Napi::Value SendTo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return Napi::Boolean::New(env, false);
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsTypedArray()) {
      Napi::TypeError::New(env, "sendTo(data: Uint8Array, key: Uint8Array)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    Napi::Uint8Array key = info[1].As<Napi::Uint8Array>();
    if (key.ByteLength() < kAddrStride || AddrLen(key.Data()) == 0) {
      Napi::RangeError::New(env, "sendTo: key is not an address key").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!queue_.empty()) return Napi::Boolean::New(env, Enqueue(key.Data(), data.Data(), data.ByteLength()));
    struct iovec iov = {data.Data(), data.ByteLength()};
    struct mmsghdr msg;
    std::memset(&msg, 0, sizeof(msg));
    msg.msg_hdr.msg_name = key.Data();
    msg.msg_hdr.msg_namelen = AddrLen(key.Data());
    msg.msg_hdr.msg_iov = &iov;
    msg.msg_hdr.msg_iovlen = 1;
    uint64_t errorsBefore = sendErrors_;
    bool blocked;
    uint32_t done = SendSome(&msg, 1, blocked);
    if (done == 1) return Napi::Boolean::New(env, sendErrors_ == errorsBefore);
    return Napi::Boolean::New(env, Enqueue(key.Data(), data.Data(), data.ByteLength()));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    auto set = [&](const char* k, uint64_t v) { out.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
    set("received", received_);
    set("batches", batches_);
    set("truncated", truncated_);
    set("sent", sent_);
    set("queuedTotal", queuedTotal_);
    set("queued", queue_.size());
    set("dropped", dropped_);
    set("sendErrors", sendErrors_);
    set("recvErrors", recvErrors_);
    return out;
  }

  Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (fd_ < 0 || getsockname(fd_, reinterpret_cast<struct sockaddr*>(&ss), &len) < 0) {
      Napi::Error::New(env, fd_ < 0 ? std::string("UdpSocket is closed") : SysError("getsockname")).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    char text[INET6_ADDRSTRLEN] = {0};
    Napi::Object out = Napi::Object::New(env);
    if (ss.ss_family == AF_INET) {
      auto* s = reinterpret_cast<struct sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &s->sin_addr, text, sizeof(text));
      out.Set("family", Napi::Number::New(env, 4));
      out.Set("port", Napi::Number::New(env, ntohs(s->sin_port)));
    } else {
      auto* s = reinterpret_cast<struct sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof(text));
      out.Set("family", Napi::Number::New(env, 6));
      out.Set("port", Napi::Number::New(env, ntohs(s->sin6_port)));
    }
    out.Set("address", Napi::String::New(env, text));
    return out;
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    SetLoopRef(true);
    return info.Env().Undefined();
  }
  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    SetLoopRef(false);
    return info.Env().Undefined();
  }

  // Called by Shutdown before the fd closes.
  void OnShutdown() {
    queue_.clear();
    queuedBytes_ = 0;
  }

  static constexpr size_t kMaxQueuedBytes = 4u << 20;

  bool wantWritable_ = false;
  uint32_t batch_ = 0;
  uint32_t slotSize_ = 0;
  uint8_t* data_ = nullptr;
  uint32_t* meta_ = nullptr;
  uint8_t* addrs_ = nullptr;
  uint8_t* out_ = nullptr;
  size_t outCap_ = 0;
  uint32_t* outMeta_ = nullptr;
  uint32_t outMetaCap_ = 0;
  uint32_t maxQueued_ = 1024;
  std::vector<struct mmsghdr> msgs_;
  std::vector<struct iovec> iov_;
  std::deque<Queued> queue_;
  size_t queuedBytes_ = 0;
  uint64_t received_ = 0, batches_ = 0, truncated_ = 0, sent_ = 0, queuedTotal_ = 0, dropped_ = 0, sendErrors_ = 0,
           recvErrors_ = 0;
  std::vector<Napi::ObjectReference> refs_;
};

}  // namespace

void RegisterUdp(Napi::Env env, Napi::Object exports) {
  exports.Set("UdpSocket", UdpSocket::Define(env));
  exports.Set("UDP_ADDR_STRIDE", Napi::Number::New(env, kAddrStride));
}
