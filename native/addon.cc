// jitsu_native: the packet path Node lacks. Only moving frames and syscalls live here; every
// protocol decision is made in TypeScript (src/synjitsu/). One PacketSocket is an AF_PACKET socket
// bound to one interface, optionally with a classic BPF filter (attached before bind, so no
// unfiltered frame is ever queued), a TPACKET_V2 or V3 receive ring polled on the owning thread's libuv
// loop (so it works in worker threads), promiscuous membership, and batched send (sendmmsg).
//
// Receive hands JS one batch per wake-up: frames are copied from the ring into a caller-owned
// buffer (reused for every batch) and described in a caller-owned Uint32Array as
// [offset, length, pktType | truncated << 8] triples; then onBatch(count) is called once.
#include "polled_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace {

// The skb hash the kernel relay's tc program (src/synjitsu/kernel-relay.ts) sets on every frame it
// translated; a V3 ring reports it, so the capture knows which copies are already translated.
constexpr uint32_t kRelayMark = 0x4a54534a;
// Bit 9 of a frame's meta flags: the frame carries kRelayMark.
constexpr uint32_t kFrameKernelRelayed = 0x200;

struct BlockDesc {
  uint32_t version;
  uint32_t offset_to_priv;
  struct tpacket_hdr_v1 h1;
};

class PacketSocket : public PolledSocket<PacketSocket> {
  friend class PolledSocket<PacketSocket>;

 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PacketSocket",
                       {
                           InstanceMethod("send", &PacketSocket::Send),
                           InstanceMethod("setFilter", &PacketSocket::SetFilter),
                           InstanceMethod("stats", &PacketSocket::Stats),
                           InstanceMethod("close", &PacketSocket::Close),
                           InstanceAccessor("fd", &PacketSocket::Fd, nullptr),
                           InstanceAccessor("ifindex", &PacketSocket::IfIndex, nullptr),
                       });
  }

  explicit PacketSocket(const Napi::CallbackInfo& info) : PolledSocket<PacketSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Napi::TypeError::New(env, "PacketSocket(options): options object required").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object opts = info[0].As<Napi::Object>();
    if (!opts.Get("iface").IsString()) {
      Napi::TypeError::New(env, "PacketSocket: options.iface (interface name) required").ThrowAsJavaScriptException();
      return;
    }
    std::string iface = opts.Get("iface").As<Napi::String>().Utf8Value();
    ifindex_ = static_cast<int>(if_nametoindex(iface.c_str()));
    if (ifindex_ == 0) {
      Napi::Error::New(env, SysError(("if_nametoindex(" + iface + ")").c_str())).ThrowAsJavaScriptException();
      return;
    }
    bool receive = opts.Get("receive").ToBoolean().Value();
    bool promisc = opts.Get("promisc").ToBoolean().Value();
    Napi::Function onBatchFn;

    // Protocol 0 at socket(): nothing is queued until bind(), which happens after the filter.
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) { Fail(env, SysError("socket(AF_PACKET)")); return; }

    if (receive) {
      Napi::Value filter = opts.Get("filter");
      if (filter.IsBuffer() && !AttachFilter(env, filter.As<Napi::Buffer<uint8_t>>())) return;
      // Frames this socket sends never come back to it (the kernel skips the sender). Other
      // outgoing frames (the host's own) are delivered unless ignoreOutgoing is set.
      if (opts.Get("ignoreOutgoing").ToBoolean().Value()) {
        int one = 1;
        setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
      }
      if (!SetupRing(env, opts)) return;
      Napi::Value data = opts.Get("data");
      Napi::Value meta = opts.Get("meta");
      Napi::Value onBatch = opts.Get("onBatch");
      if (!data.IsBuffer() || !meta.IsTypedArray() || !onBatch.IsFunction()) {
        { Fail(env, "PacketSocket: receive needs data (Buffer), meta (Uint32Array), onBatch (function)"); return; }
      }
      Napi::Buffer<uint8_t> dataBuf = data.As<Napi::Buffer<uint8_t>>();
      Napi::Uint32Array metaArr = meta.As<Napi::Uint32Array>();
      dataRef_ = Napi::Persistent(data.As<Napi::Object>());
      metaRef_ = Napi::Persistent(meta.As<Napi::Object>());
      out_ = dataBuf.Data();
      outCap_ = dataBuf.Length();
      meta_ = metaArr.Data();
      metaCap_ = metaArr.ElementLength() / 3;
      onBatchFn = onBatch.As<Napi::Function>();
    }

    struct sockaddr_ll sll;
    std::memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = receive ? htons(ETH_P_ALL) : 0;
    sll.sll_ifindex = ifindex_;
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof(sll)) < 0) { Fail(env, SysError("bind(AF_PACKET)")); return; }

    if (promisc) {
      struct packet_mreq mr;
      std::memset(&mr, 0, sizeof(mr));
      mr.mr_ifindex = ifindex_;
      mr.mr_type = PACKET_MR_PROMISC;
      if (setsockopt(fd_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) { Fail(env, SysError("PACKET_ADD_MEMBERSHIP")); return; }
    }

    if (receive) StartPolling(env, onBatchFn, "jitsu:packet");
    else CloseOnEnvTeardown();
  }

  ~PacketSocket() override { Shutdown(); }

 private:
  bool AttachFilter(Napi::Env env, Napi::Buffer<uint8_t> prog) {
    if (prog.Length() == 0 || prog.Length() % sizeof(struct sock_filter) != 0 || prog.Length() / 8 > BPF_MAXINSNS) {
      Fail(env, "BPF program must be 1..4096 instructions of 8 bytes");
      return false;
    }
    struct sock_fprog fprog;
    fprog.len = static_cast<unsigned short>(prog.Length() / sizeof(struct sock_filter));
    fprog.filter = reinterpret_cast<struct sock_filter*>(prog.Data());
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) < 0) {
      Fail(env, SysError("SO_ATTACH_FILTER"));
      return false;
    }
    return true;
  }

  bool SetupRing(Napi::Env env, Napi::Object opts) {
    // V3 (default): frames are packed into blocks handed over when full or after timeoutMs (jiffy-rounded),
    // better at high rates. V2: the kernel wakes us per frame, so latency at
    // low rates is the wake-up alone, but slots are fixed-size and must hold a 64 KiB GSO frame.
    uint32_t version = 3, blockSize = 1u << 17, blockCount = 128, frameSize = 2048, timeoutMs = 1;
    Napi::Value ring = opts.Get("ring");
    if (ring.IsObject()) {
      Napi::Object r = ring.As<Napi::Object>();
      if (r.Get("version").IsNumber()) version = r.Get("version").As<Napi::Number>().Uint32Value();
      if (version == 2) blockSize = 200704, blockCount = 64, frameSize = 65664;
      if (r.Get("blockSize").IsNumber()) blockSize = r.Get("blockSize").As<Napi::Number>().Uint32Value();
      if (r.Get("blockCount").IsNumber()) blockCount = r.Get("blockCount").As<Napi::Number>().Uint32Value();
      if (r.Get("frameSize").IsNumber()) frameSize = r.Get("frameSize").As<Napi::Number>().Uint32Value();
      if (r.Get("timeoutMs").IsNumber()) timeoutMs = r.Get("timeoutMs").As<Napi::Number>().Uint32Value();
    }
    if (version != 2 && version != 3) {
      Fail(env, "ring.version must be 2 or 3");
      return false;
    }
    if (frameSize == 0 || blockSize < frameSize) {
      Fail(env, "ring: blockSize must be at least frameSize");
      return false;
    }
    int v = version == 3 ? TPACKET_V3 : TPACKET_V2;
    if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) < 0) {
      Fail(env, SysError("PACKET_VERSION"));
      return false;
    }
    int rc;
    if (version == 3) {
      struct tpacket_req3 req;
      std::memset(&req, 0, sizeof(req));
      req.tp_block_size = blockSize;
      req.tp_block_nr = blockCount;
      req.tp_frame_size = frameSize;
      req.tp_frame_nr = (blockSize / frameSize) * blockCount;
      req.tp_retire_blk_tov = timeoutMs;
      // tp_rxhash carries the kernel relay's mark (set with bpf_set_hash on frames it translated).
      req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
      rc = setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req));
    } else {
      struct tpacket_req req;
      std::memset(&req, 0, sizeof(req));
      req.tp_block_size = blockSize;
      req.tp_block_nr = blockCount;
      req.tp_frame_size = frameSize;
      req.tp_frame_nr = (blockSize / frameSize) * blockCount;
      rc = setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req));
    }
    if (rc < 0) {
      Fail(env, SysError("PACKET_RX_RING (blockSize must be a multiple of the page size, frameSize of 16)"));
      return false;
    }
    ringLen_ = static_cast<size_t>(blockSize) * blockCount;
    void* map = mmap(nullptr, ringLen_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (map == MAP_FAILED) {
      ringLen_ = 0;
      Fail(env, SysError("mmap(rx ring)"));
      return false;
    }
    ring_ = static_cast<uint8_t*>(map);
    version_ = version;
    blockSize_ = blockSize;
    blockCount_ = blockCount;
    frameSize_ = frameSize;
    framesPerBlock_ = blockSize / frameSize;
    frameCount_ = framesPerBlock_ * blockCount;
    return true;
  }

  // Appends one frame to the JS batch, delivering the batch first when it is full. False when the
  // socket was closed from the callback.
  bool Push(const uint8_t* frame, uint32_t snaplen, uint32_t len, uint32_t pktType, uint32_t& count, size_t& used) {
    if (count == metaCap_ || used + snaplen > outCap_) {
      if (!Deliver(count)) return false;
      count = 0;
      used = 0;
      if (fd_ < 0) return false;
    }
    if (snaplen > outCap_) return true;
    std::memcpy(out_ + used, frame, snaplen);
    meta_[count * 3] = static_cast<uint32_t>(used);
    meta_[count * 3 + 1] = snaplen;
    // Bit 8 flags a truncated frame (larger than a ring slot): JS must not trust its payload.
    meta_[count * 3 + 2] = pktType | (snaplen < len ? 0x100u : 0u);
    count++;
    used += (snaplen + 7) & ~static_cast<size_t>(7);
    return true;
  }

  // Copies every ready frame into the JS batch buffer, returning ring slots as soon as they are
  // copied, and calls onBatch once per full buffer (normally once per wake-up). If JS cannot run
  // (the thread is ending) the drain stops and the frames stay in the ring.
  void OnReady(int /*uvEvents*/) {
    uint32_t count = 0;
    size_t used = 0;
    if (version_ == 2) {
      for (uint32_t guard = 0; guard < frameCount_ && fd_ >= 0; guard++) {
        uint8_t* slot = ring_ + static_cast<size_t>(current_ / framesPerBlock_) * blockSize_ +
                        static_cast<size_t>(current_ % framesPerBlock_) * frameSize_;
        auto* hdr = reinterpret_cast<struct tpacket2_hdr*>(slot);
        if ((__atomic_load_n(&hdr->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) break;
        auto* sll = reinterpret_cast<struct sockaddr_ll*>(slot + TPACKET_ALIGN(sizeof(struct tpacket2_hdr)));
        bool ok = Push(slot + hdr->tp_mac, hdr->tp_snaplen, hdr->tp_len, sll->sll_pkttype, count, used);
        if (!ok) return;  // closed from the callback (the ring is gone) or JS cannot run
        __atomic_store_n(&hdr->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        current_ = (current_ + 1) % frameCount_;
      }
    } else {
      for (uint32_t guard = 0; guard < blockCount_ && fd_ >= 0; guard++) {
        auto* block = reinterpret_cast<BlockDesc*>(ring_ + static_cast<size_t>(current_) * blockSize_);
        if ((__atomic_load_n(&block->h1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) break;
        uint32_t n = block->h1.num_pkts;
        auto* pkt = reinterpret_cast<struct tpacket3_hdr*>(reinterpret_cast<uint8_t*>(block) + block->h1.offset_to_first_pkt);
        for (uint32_t i = 0; i < n; i++) {
          auto* sll = reinterpret_cast<struct sockaddr_ll*>(reinterpret_cast<uint8_t*>(pkt) + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
          uint32_t flags = sll->sll_pkttype | (pkt->hv1.tp_rxhash == kRelayMark ? kFrameKernelRelayed : 0u);
          if (!Push(reinterpret_cast<uint8_t*>(pkt) + pkt->tp_mac, pkt->tp_snaplen, pkt->tp_len, flags, count, used)) return;
          pkt = reinterpret_cast<struct tpacket3_hdr*>(reinterpret_cast<uint8_t*>(pkt) + pkt->tp_next_offset);
        }
        __atomic_store_n(&block->h1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        current_ = (current_ + 1) % blockCount_;
      }
    }
    if (count > 0) Deliver(count);
  }

  // send(data, meta, count): meta holds [offset, length] pairs into data; one sendmmsg per 64 frames.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) {
      Napi::Error::New(env, "PacketSocket is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (info.Length() < 3 || !info[0].IsBuffer() || !info[1].IsTypedArray() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "send(data: Buffer, meta: Uint32Array, count: number)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> data = info[0].As<Napi::Buffer<uint8_t>>();
    Napi::Uint32Array meta = info[1].As<Napi::Uint32Array>();
    uint32_t count = info[2].As<Napi::Number>().Uint32Value();
    if (static_cast<size_t>(count) * 2 > meta.ElementLength()) {
      Napi::RangeError::New(env, "send: count exceeds meta pairs").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    constexpr uint32_t kBatch = 64;
    struct mmsghdr msgs[kBatch];
    struct iovec iov[kBatch];
    uint32_t sent = 0;
    while (sent < count) {
      uint32_t n = 0;
      for (; n < kBatch && sent + n < count; n++) {
        uint32_t off = meta[(sent + n) * 2], len = meta[(sent + n) * 2 + 1];
        if (static_cast<size_t>(off) + len > data.Length()) {
          Napi::RangeError::New(env, "send: frame outside data buffer").ThrowAsJavaScriptException();
          return env.Undefined();
        }
        iov[n].iov_base = data.Data() + off;
        iov[n].iov_len = len;
        std::memset(&msgs[n], 0, sizeof(msgs[n]));
        msgs[n].msg_hdr.msg_iov = &iov[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
      }
      int r = sendmmsg(fd_, msgs, n, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == ENOBUFS) {
          // Full device queue: wait briefly for room rather than dropping a masked client's frame.
          struct pollfd p = {fd_, POLLOUT, 0};
          if (poll(&p, 1, 5) > 0) continue;
          break;
        }
        if (sent == 0) {
          Napi::Error::New(env, SysError("sendmmsg")).ThrowAsJavaScriptException();
          return env.Undefined();
        }
        break;
      }
      sent += static_cast<uint32_t>(r);
    }
    return Napi::Number::New(env, sent);
  }

  Napi::Value SetFilter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || info.Length() < 1 || !info[0].IsBuffer()) {
      Napi::TypeError::New(env, "setFilter(program: Buffer) on an open socket").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> prog = info[0].As<Napi::Buffer<uint8_t>>();
    if (prog.Length() == 0 || prog.Length() % 8 != 0 || prog.Length() / 8 > BPF_MAXINSNS) {
      Napi::RangeError::New(env, "BPF program must be 1..4096 instructions of 8 bytes").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    struct sock_fprog fprog;
    fprog.len = static_cast<unsigned short>(prog.Length() / 8);
    fprog.filter = reinterpret_cast<struct sock_filter*>(prog.Data());
    // SO_ATTACH_FILTER replaces the old program atomically.
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) < 0) {
      Napi::Error::New(env, SysError("SO_ATTACH_FILTER")).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    struct tpacket_stats_v3 st;
    std::memset(&st, 0, sizeof(st));
    // V2 returns the shorter struct tpacket_stats (no freeze count): ask for exactly that size.
    socklen_t len = version_ == 3 ? sizeof(st) : sizeof(struct tpacket_stats);
    // The kernel resets these counters on read; accumulate so callers see totals.
    if (fd_ >= 0 && ring_ != nullptr && getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
      packets_ += st.tp_packets;
      drops_ += st.tp_drops;
      freezes_ += st.tp_freeze_q_cnt;
    }
    out.Set("packets", Napi::Number::New(env, static_cast<double>(packets_)));
    out.Set("drops", Napi::Number::New(env, static_cast<double>(drops_)));
    out.Set("freezes", Napi::Number::New(env, static_cast<double>(freezes_)));
    return out;
  }

  Napi::Value IfIndex(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ifindex_); }


  // Called by Shutdown before the fd closes.
  void OnShutdown() {
    if (ring_ != nullptr) {
      munmap(ring_, ringLen_);
      ring_ = nullptr;
    }
  }

  int ifindex_ = 0;
  uint8_t* ring_ = nullptr;
  size_t ringLen_ = 0;
  uint32_t version_ = 2;
  uint32_t blockSize_ = 0;
  uint32_t blockCount_ = 0;
  uint32_t frameSize_ = 0;
  uint32_t framesPerBlock_ = 0;
  uint32_t frameCount_ = 0;
  uint32_t current_ = 0;
  uint8_t* out_ = nullptr;
  size_t outCap_ = 0;
  uint32_t* meta_ = nullptr;
  size_t metaCap_ = 0;
  uint64_t packets_ = 0, drops_ = 0, freezes_ = 0;
  Napi::ObjectReference dataRef_;
  Napi::ObjectReference metaRef_;
};

Napi::Value IfIndexOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "ifIndex(name: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return Napi::Number::New(env, if_nametoindex(name.c_str()));
}

}  // namespace

void RegisterUdp(Napi::Env env, Napi::Object exports);  // native/udp.cc
void RegisterPidWatch(Napi::Env env, Napi::Object exports);  // native/pidwatch.cc
void RegisterNotify(Napi::Env env, Napi::Object exports);  // native/notify.cc
void RegisterBpf(Napi::Env env, Napi::Object exports);  // native/bpf.cc
void RegisterNetlink(Napi::Env env, Napi::Object exports);  // native/netlink.cc
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Number::New(env, 2));
  exports.Set("PacketSocket", PacketSocket::Define(env));
  exports.Set("ifIndex", Napi::Function::New(env, IfIndexOf, "ifIndex"));
  exports.Set("RELAY_MARK", Napi::Number::New(env, kRelayMark));
  RegisterUdp(env, exports);
  RegisterPidWatch(env, exports);
  RegisterNotify(env, exports);
  RegisterBpf(env, exports);
  RegisterNetlink(env, exports);
  return exports;
}

NODE_API_MODULE(jitsu_native, Init)
