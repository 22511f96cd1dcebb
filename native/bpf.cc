// The bpf(2) calls the kernel relay needs and Node lacks: create a hash map, load a tc program
// (instructions assembled in TypeScript, src/synjitsu/ebpf.ts), attach it to a link's tcx ingress or
// egress (a bpf_link: it goes away with its fd, so a dead daemon leaves nothing attached), and
// update or delete map entries. Every call returns an fd or throws with errno's text; the verifier's
// log is part of a failed load's message. fds are closed from JS (fs.closeSync).
#include <napi.h>

#include <errno.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

// Linux 6.6 (tcx) attach types; the build host's headers may predate them.
static_assert(BPF_LSM_CGROUP == 43, "bpf_attach_type numbering changed");
constexpr uint32_t kTcxIngress = 46;
constexpr uint32_t kTcxEgress = 47;

long Bpf(int cmd, union bpf_attr* attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

Napi::Value Fail(Napi::Env env, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(errno));
  e.Set("errno", Napi::Number::New(env, errno));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

bool Uints(const Napi::CallbackInfo& info, size_t n, const char* usage) {
  for (size_t i = 0; i < n; i++) {
    if (info.Length() <= i || !info[i].IsNumber()) {
      Napi::TypeError::New(info.Env(), usage).ThrowAsJavaScriptException();
      return false;
    }
  }
  return true;
}

// bpfHashMap(keySize, valueSize, maxEntries) -> fd. Entries are allocated as they are added.
Napi::Value HashMap(const Napi::CallbackInfo& info) {
  if (!Uints(info, 3, "bpfHashMap(keySize, valueSize, maxEntries)")) return info.Env().Undefined();
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_type = BPF_MAP_TYPE_HASH;
  attr.key_size = info[0].As<Napi::Number>().Uint32Value();
  attr.value_size = info[1].As<Napi::Number>().Uint32Value();
  attr.max_entries = info[2].As<Napi::Number>().Uint32Value();
  attr.map_flags = BPF_F_NO_PREALLOC;
  strncpy(attr.map_name, "jitsu_relay", sizeof(attr.map_name) - 1);
  long fd = Bpf(BPF_MAP_CREATE, &attr);
  if (fd < 0) return Fail(info.Env(), "bpf(BPF_MAP_CREATE)");
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// bpfLoadTcProgram(instructions: Buffer, name) -> fd of a BPF_PROG_TYPE_SCHED_CLS program.
Napi::Value LoadTcProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsString()) {
    Napi::TypeError::New(env, "bpfLoadTcProgram(instructions: Buffer, name: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> insns = info[0].As<Napi::Buffer<uint8_t>>();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  if (insns.Length() == 0 || insns.Length() % 8 != 0) {
    Napi::RangeError::New(env, "bpfLoadTcProgram: instructions must be a non-empty multiple of 8 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<char> log(1 << 16);
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  attr.insns = reinterpret_cast<uint64_t>(insns.Data());
  attr.insn_cnt = static_cast<uint32_t>(insns.Length() / 8);
  static const char kLicense[] = "Dual MIT/GPL";
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  attr.log_buf = reinterpret_cast<uint64_t>(log.data());
  attr.log_size = static_cast<uint32_t>(log.size());
  attr.log_level = 1;
  strncpy(attr.prog_name, name.c_str(), sizeof(attr.prog_name) - 1);
  long fd = Bpf(BPF_PROG_LOAD, &attr);
  if (fd < 0 && errno == ENOSPC) {
    // The log did not fit: load again without it, so the errno is the program's, not the log's.
    attr.log_level = 0;
    attr.log_buf = 0;
    attr.log_size = 0;
    fd = Bpf(BPF_PROG_LOAD, &attr);
  }
  if (fd < 0) {
    int err = errno;
    std::string text(log.data(), strnlen(log.data(), log.size()));
    if (text.size() > 4000) text = "..." + text.substr(text.size() - 4000);
    errno = err;
    return Fail(env, "bpf(BPF_PROG_LOAD) " + name + (text.empty() ? "" : " (verifier: " + text + ")"));
  }
  return Napi::Number::New(env, static_cast<double>(fd));
}

// Attaching waits for an RCU grace period in the kernel (~10 ms per direction measured here), so it
// runs on the libuv thread pool, never on the event loop.
class AttachTcxWorker : public Napi::AsyncWorker {
 public:
  AttachTcxWorker(Napi::Env env, uint32_t progFd, uint32_t ifindex)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), progFd_(progFd), ifindex_(ifindex) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    uint32_t types[2] = {kTcxIngress, kTcxEgress};
    for (int i = 0; i < 2; i++) {
      union bpf_attr attr;
      memset(&attr, 0, sizeof(attr));
      attr.link_create.prog_fd = progFd_;
      attr.link_create.target_ifindex = ifindex_;
      attr.link_create.attach_type = types[i];
      long fd = Bpf(BPF_LINK_CREATE, &attr);
      if (fd < 0) {
        err_ = errno;
        if (i == 1) close(fds_[0]);
        return;
      }
      fds_[i] = static_cast<int>(fd);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      Napi::Error e = Napi::Error::New(env, std::string("bpf(BPF_LINK_CREATE tcx): ") + strerror(err_));
      e.Set("errno", Napi::Number::New(env, err_));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Array fds = Napi::Array::New(env, 2);
    fds.Set(0u, Napi::Number::New(env, fds_[0]));
    fds.Set(1u, Napi::Number::New(env, fds_[1]));
    deferred_.Resolve(fds);
  }

 private:
  Napi::Promise::Deferred deferred_;
  uint32_t progFd_, ifindex_;
  int fds_[2] = {-1, -1};
  int err_ = 0;
};

// bpfAttachTcx(progFd, ifindex) -> Promise<[ingressLinkFd, egressLinkFd]>, appended after programs
// others attached; both or neither.
Napi::Value AttachTcx(const Napi::CallbackInfo& info) {
  if (!Uints(info, 2, "bpfAttachTcx(progFd, ifindex)")) return info.Env().Undefined();
  auto* worker = new AttachTcxWorker(info.Env(), info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// bpfMapUpdate(mapFd, key, value): insert or replace.
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Uints(info, 1, "bpfMapUpdate(mapFd, key: Buffer, value: Buffer)")) return env.Undefined();
  if (info.Length() < 3 || !info[1].IsBuffer() || !info[2].IsBuffer()) {
    Napi::TypeError::New(env, "bpfMapUpdate(mapFd, key: Buffer, value: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = info[0].As<Napi::Number>().Uint32Value();
  attr.key = reinterpret_cast<uint64_t>(info[1].As<Napi::Buffer<uint8_t>>().Data());
  attr.value = reinterpret_cast<uint64_t>(info[2].As<Napi::Buffer<uint8_t>>().Data());
  attr.flags = BPF_ANY;
  if (Bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0) return Fail(env, "bpf(BPF_MAP_UPDATE_ELEM)");
  return env.Undefined();
}

// bpfMapDelete(mapFd, key) -> false when the key was not there.
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Uints(info, 1, "bpfMapDelete(mapFd, key: Buffer)") || info.Length() < 2 || !info[1].IsBuffer()) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, "bpfMapDelete(mapFd, key: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = info[0].As<Napi::Number>().Uint32Value();
  attr.key = reinterpret_cast<uint64_t>(info[1].As<Napi::Buffer<uint8_t>>().Data());
  if (Bpf(BPF_MAP_DELETE_ELEM, &attr) < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    return Fail(env, "bpf(BPF_MAP_DELETE_ELEM)");
  }
  return Napi::Boolean::New(env, true);
}

// bpfTestRun(progFd, frame: Buffer) -> { result, frame }: runs a tc program once on a copy of the
// frame (BPF_PROG_TEST_RUN) and returns its verdict and the frame as the program left it. Lets the
// tests hold the kernel program to the TypeScript reference of the same translation.
Napi::Value TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!Uints(info, 1, "bpfTestRun(progFd, frame: Buffer)") || info.Length() < 2 || !info[1].IsBuffer()) {
    if (!env.IsExceptionPending()) Napi::TypeError::New(env, "bpfTestRun(progFd, frame: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> in = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> out(in.Length() + 256);
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.test.prog_fd = info[0].As<Napi::Number>().Uint32Value();
  attr.test.data_in = reinterpret_cast<uint64_t>(in.Data());
  attr.test.data_size_in = static_cast<uint32_t>(in.Length());
  attr.test.data_out = reinterpret_cast<uint64_t>(out.data());
  attr.test.data_size_out = static_cast<uint32_t>(out.size());
  attr.test.repeat = 1;
  if (Bpf(BPF_PROG_TEST_RUN, &attr) < 0) return Fail(env, "bpf(BPF_PROG_TEST_RUN)");
  Napi::Object result = Napi::Object::New(env);
  result.Set("result", Napi::Number::New(env, static_cast<int32_t>(attr.test.retval)));
  result.Set("frame", Napi::Buffer<uint8_t>::Copy(env, out.data(), attr.test.data_size_out));
  return result;
}

}  // namespace

void RegisterBpf(Napi::Env env, Napi::Object exports) {
  exports.Set("bpfHashMap", Napi::Function::New(env, HashMap, "bpfHashMap"));
  exports.Set("bpfLoadTcProgram", Napi::Function::New(env, LoadTcProgram, "bpfLoadTcProgram"));
  exports.Set("bpfAttachTcx", Napi::Function::New(env, AttachTcx, "bpfAttachTcx"));
  exports.Set("bpfMapUpdate", Napi::Function::New(env, MapUpdate, "bpfMapUpdate"));
  exports.Set("bpfMapDelete", Napi::Function::New(env, MapDelete, "bpfMapDelete"));
  exports.Set("bpfTestRun", Napi::Function::New(env, TestRun, "bpfTestRun"));
}
