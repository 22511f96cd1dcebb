// The lifecycle both native sockets share: a non-blocking fd polled on the creating thread's libuv
// loop (so a socket works in a worker thread), batches handed to one JS callback, and teardown that
// is safe when the socket is closed from inside that callback or when its worker thread ends.
//
// JS is called through the raw N-API, not node-addon-api's wrappers: while a worker thread is being
// terminated JS cannot run, and the wrappers turn that failed call into a fatal error.
#pragma once

#include <napi.h>
#include <uv.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

inline std::string SysError(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// T derives from PolledSocket<T> and defines `void OnReady(int uvEvents)` (called inside a handle
// scope) and `void OnShutdown()` (releases its own resources; called once per Shutdown).
template <typename T>
class PolledSocket : public Napi::ObjectWrap<T> {
 public:
  explicit PolledSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info), env_(info.Env()) {}

 protected:
  // Releases what the constructor acquired so far, then throws `msg` to JS.
  void Fail(Napi::Env env, const std::string& msg) {
    Shutdown();
    Napi::Error::New(env, msg).ThrowAsJavaScriptException();
  }

  // Polls fd_ for readability and delivers batches to `onBatch`. The JS object stays alive while
  // polled; close() (Shutdown) drops that reference. False after throwing to JS.
  bool StartPolling(Napi::Env env, Napi::Function onBatch, const char* resourceName) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Fail(env, "napi_get_uv_event_loop failed");
      return false;
    }
    poll_ = new uv_poll_t;
    poll_->data = this;
    if (uv_poll_init_socket(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      Fail(env, "uv_poll_init_socket failed");
      return false;
    }
    uv_poll_start(poll_, UV_READABLE, OnPoll);
    onBatch_ = Napi::Persistent(onBatch);
    asyncContext_ = new Napi::AsyncContext(env, resourceName);
    this->Ref();
    polling_ = true;
    CloseOnEnvTeardown();
    return true;
  }

  // Close the socket when the environment (a worker thread) ends, polled or not.
  void CloseOnEnvTeardown() {
    if (cleanupHook_) return;
    napi_add_env_cleanup_hook(env_, CleanupHook, this);
    cleanupHook_ = true;
  }

  // Also wait for writability (a send queue to flush), or stop waiting for it.
  void WatchWritable(bool on) {
    if (poll_ != nullptr) uv_poll_start(poll_, on ? UV_READABLE | UV_WRITABLE : UV_READABLE, OnPoll);
  }

  // Whether the poll handle keeps the event loop alive.
  void SetLoopRef(bool on) {
    if (poll_ == nullptr) return;
    if (on) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    else uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }

  // Calls onBatch(count). False when JS could not run (thread ending) or the callback threw (the
  // error is reported as uncaught); the caller stops draining either way.
  bool Deliver(uint32_t count) {
    napi_value argv[1];
    napi_value fn;
    napi_value recv;
    napi_value result;
    if (napi_create_uint32(env_, count, &argv[0]) != napi_ok || napi_get_reference_value(env_, onBatch_, &fn) != napi_ok ||
        napi_get_reference_value(env_, static_cast<napi_ref>(static_cast<Napi::Reference<Napi::Object>&>(*this)), &recv) != napi_ok) {
      return false;
    }
    if (napi_make_callback(env_, *asyncContext_, recv, fn, 1, argv, &result) == napi_ok) return true;
    bool pending = false;
    if (napi_is_exception_pending(env_, &pending) == napi_ok && pending) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env_, &err) == napi_ok) napi_fatal_exception(env_, err);
    }
    return false;
  }

  // Idempotent; safe from inside onBatch (drains check fd_ after every callback).
  // envTeardown: the environment (a worker thread) is ending. Node unloads the addon before the loop
  // runs its closing handles, so a close callback would jump into unmapped code: close without one
  // and leave the small uv_poll_t to the dying thread.
  void Shutdown(bool envTeardown = false) {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), envTeardown ? nullptr : OnPollClosed);
      poll_ = nullptr;
    }
    static_cast<T*>(this)->OnShutdown();
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (cleanupHook_) {
      napi_remove_env_cleanup_hook(env_, CleanupHook, this);
      cleanupHook_ = false;
    }
    if (asyncContext_ != nullptr) {
      delete asyncContext_;
      asyncContext_ = nullptr;
    }
    if (polling_) {
      polling_ = false;
      this->Unref();
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  napi_env env_ = nullptr;
  int fd_ = -1;

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<T*>(handle->data);
    if (status < 0 || self->fd_ < 0) return;
    napi_env env = self->env_;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;  // JS cannot run: the thread is ending
    self->OnReady(events);
    napi_close_handle_scope(env, scope);
  }

  static void CleanupHook(void* arg) {
    auto* self = static_cast<T*>(arg);
    self->cleanupHook_ = false;
    self->Shutdown(true);
  }

  static void OnPollClosed(uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); }

  uv_poll_t* poll_ = nullptr;
  bool polling_ = false;
  bool cleanupHook_ = false;
  Napi::FunctionReference onBatch_;
  Napi::AsyncContext* asyncContext_ = nullptr;
};
