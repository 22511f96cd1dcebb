// PidWatch: one pidfd (pidfd_open, Linux >= 5.3) polled on the creating thread's libuv loop. The fd
// turns readable when the process exits, so the daemon learns of a service's death in the same loop
// turn, without polling /proc. Node has no pidfd; everything else (which pid, pid-reuse checks,
// what an exit means) is decided in TypeScript (src/supervise/).
#include "polled_socket.h"

#include <sys/syscall.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace {

class PidWatch : public PolledSocket<PidWatch> {
  friend class PolledSocket<PidWatch>;

 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PidWatch",
                       {
                           InstanceMethod("close", &PidWatch::Close),
                           InstanceAccessor("fd", &PidWatch::Fd, nullptr),
                       });
  }

  // new PidWatch(pid, onExit): onExit() is called once, when the process has exited.
  explicit PidWatch(const Napi::CallbackInfo& info) : PolledSocket<PidWatch>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "PidWatch(pid, onExit): a pid and a function are required").ThrowAsJavaScriptException();
      return;
    }
    int pid = info[0].As<Napi::Number>().Int32Value();
    if (pid <= 0) {
      Napi::RangeError::New(env, "PidWatch: pid must be positive").ThrowAsJavaScriptException();
      return;
    }
    fd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (fd_ < 0) {
      // ESRCH: already gone (the caller treats it as an exit); ENOSYS: kernel too old.
      Fail(env, SysError("pidfd_open"));
      return;
    }
    StartPolling(env, info[1].As<Napi::Function>(), "jitsu:PidWatch");
  }

 private:
  void OnReady(int /*uvEvents*/) {
    // Readable means exited: report once, then release the fd (Shutdown is idempotent, so the
    // callback may close us itself).
    Deliver(0);
    Shutdown();
  }
  void OnShutdown() {}
};

}  // namespace

void RegisterPidWatch(Napi::Env env, Napi::Object exports) { exports.Set("PidWatch", PidWatch::Define(env)); }
