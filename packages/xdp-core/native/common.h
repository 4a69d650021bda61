// Shared declarations of the native layer: a thin set of Napi::ObjectWrap classes over libbpf, one per kernel
// object with a lifetime. Each wrapper owns its own file descriptor (duplicated from libbpf's where needed), so
// closing a BPF object never invalidates a map or program handle that JavaScript still holds.
#pragma once

#include <napi.h>
#include <unistd.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>

struct bpf_object;

namespace flowlb {

// Something that holds a kernel resource and must release it when the environment goes away.
class Closeable {
 public:
  virtual ~Closeable() = default;
  virtual void CloseHandle() = 0;
};

// The handles alive in one environment. Shared by the environment and every handle, so whichever of the cleanup
// hook and a handle's finalizer runs last still finds it.
struct Registry {
  std::set<Closeable*> live;
  // libuv handles being closed whose close callback has not run yet. That callback is code in this library, which
  // Node unloads once a worker's environment is gone: the environment's cleanup waits until this drops to zero.
  int closing = 0;
  // Set while the environment's teardown is waiting for `closing`.
  napi_async_cleanup_hook_handle teardown = nullptr;
  void ClosedOne();
};

// Per-environment state: constructors and the registry the cleanup hook closes.
struct AddonData {
  Napi::FunctionReference objectCtor;
  Napi::FunctionReference programCtor;
  Napi::FunctionReference linkCtor;
  Napi::FunctionReference mapCtor;
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
};

AddonData& Data(Napi::Env env);

// A handle the environment's cleanup hook closes if JavaScript has not.
class Tracked : public Closeable {
 public:
  ~Tracked() override { Untrack(); }

 protected:
  void Track(Napi::Env env) {
    registry_ = Data(env).registry;
    registry_->live.insert(this);
  }
  void Untrack() {
    if (registry_) registry_->live.erase(this);
    registry_.reset();
  }
  // Stops and closes a poll handle; libuv frees it later, counted by the registry (see Registry::closing).
  void ClosePoll(uv_poll_t* poll);

 private:
  std::shared_ptr<Registry> registry_;
};

// Handles that own a descriptor are built only by this library: their constructors want this token first, so that
// JavaScript cannot hand them a descriptor number of its choosing, which they would close when collected.
Napi::Value OwnToken(Napi::Env env);
bool IsOwnToken(const Napi::Value& v);

// A wrapper that owns one BPF file descriptor (program, link, map), handed over as its first constructor argument.
// Built with (OwnToken, fd, ...); the subclass's own arguments follow from index 2.
template <class T>
class FdHandle : public Napi::ObjectWrap<T>, public Tracked {
 public:
  explicit FdHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {
    if (!IsOwnToken(info[0]) || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "Illegal constructor");
    fd_ = info[1].As<Napi::Number>().Int32Value();
    Track(info.Env());
  }
  ~FdHandle() override { CloseHandle(); }

  void CloseHandle() override {
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

 protected:
  // What error messages call this handle, e.g. "map 'flows'".
  virtual std::string What() const = 0;

  int Need(Napi::Env env) {
    if (fd_ < 0) throw Napi::Error::New(env, What() + " is closed");
    return fd_;
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  Napi::Value Pin(const Napi::CallbackInfo& info);

  // Closing twice is harmless.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    Untrack();
    return info.Env().Undefined();
  }

  int fd_ = -1;
};

// Throws a JavaScript Error shaped like Node's system errors: message "CODE: description, syscall 'detail'"
// followed by a hint, with properties code, errno (negative, as in Node), syscall and, when given, path.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail = "",
                             const std::string& hint = "");
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall, const std::string& detail = "",
                       const std::string& hint = "");
std::string DefaultHint(int err, const std::string& syscall);

// Bytes of a Buffer or Uint8Array argument, checked for an exact size unless it is kAnySize.
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};
constexpr size_t kAnySize = SIZE_MAX;
Bytes GetBytes(const Napi::Value& v, const char* what, size_t exactSize = kAnySize);

// A count, size, index or flags argument: an integer from min to max, else a TypeError or RangeError naming it.
// Sizes and counts come from JavaScript unchecked; they size allocations and kernel reads, so they are bounded here.
uint64_t GetInteger(const Napi::Value& v, const char* what, uint64_t min, uint64_t max);
// The same, with a default for undefined.
uint64_t GetInteger(const Napi::Value& v, const char* what, uint64_t min, uint64_t max, uint64_t dflt);

void PinFd(Napi::Env env, int fd, const Napi::Value& path);

template <class T>
Napi::Value FdHandle<T>::Pin(const Napi::CallbackInfo& info) {
  PinFd(info.Env(), Need(info.Env()), info[0]);
  return info.Env().Undefined();
}

// libbpf messages of the calling thread are collected while a Capture is alive (the verifier log among them).
class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  std::string Take();
};
void InstallLibbpfPrint();

class BpfObjectWrap;
class ProgramWrap;
class LinkWrap;
class MapWrap;

Napi::Object NewProgram(Napi::Env env, int fd, const std::string& name, uint32_t type);
Napi::Object NewMap(Napi::Env env, int fd, const std::string& name);
Napi::Object NewLink(Napi::Env env, int fd, const std::string& description);

void InitObject(Napi::Env env, Napi::Object exports);
void InitProgram(Napi::Env env, Napi::Object exports);
void InitLink(Napi::Env env, Napi::Object exports);
void InitMap(Napi::Env env, Napi::Object exports);
void InitSystem(Napi::Env env, Napi::Object exports);
void InitUdp(Napi::Env env, Napi::Object exports);
void InitRouteWatch(Napi::Env env, Napi::Object exports);

}  // namespace flowlb
