#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>

#include "common.h"

namespace flowlb {

// The bpf_object, shared by its wrapper and a load running on the libuv pool. The environment's teardown can close
// the wrapper while the verifier runs (a worker terminated mid-load); libbpf must not free the object under the load,
// so a close waits for a running load to return, and one that comes before the load started makes it a no-op.
struct ObjectSlot {
  enum class Load { Idle, Queued, Running };
  std::mutex mu;
  std::condition_variable done;
  struct bpf_object* obj = nullptr;
  Load load = Load::Idle;
  // The wrapper, until it is destroyed: the load's completion must not reach a wrapper the teardown finalized.
  BpfObjectWrap* owner = nullptr;
};

class BpfObjectWrap : public Napi::ObjectWrap<BpfObjectWrap>, public Tracked {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BpfObject",
                       {
                           InstanceMethod<&BpfObjectWrap::MapNames>("mapNames"),
                           InstanceMethod<&BpfObjectWrap::ProgramNames>("programNames"),
                           InstanceMethod<&BpfObjectWrap::SetMaxEntries>("setMaxEntries"),
                           InstanceMethod<&BpfObjectWrap::SetPinPath>("setPinPath"),
                           InstanceMethod<&BpfObjectWrap::Load>("load"),
                           InstanceMethod<&BpfObjectWrap::Program>("program"),
                           InstanceMethod<&BpfObjectWrap::Map>("map"),
                           InstanceMethod<&BpfObjectWrap::Close>("close"),
                           InstanceAccessor<&BpfObjectWrap::Loaded>("loaded"),
                       });
  }

  explicit BpfObjectWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObjectWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
    path_ = info[0].As<Napi::String>();
    LibbpfLogCapture capture;
    obj_ = bpf_object__open_file(path_.c_str(), nullptr);
    if (!obj_) {
      int err = errno;
      std::string log = capture.Take();
      ThrowErrno(env, err, "bpf_object__open_file", path_, log.empty() || err == ENOENT ? "" : "libbpf: " + log);
    }
    slot_->obj = obj_;
    slot_->owner = this;
    Track(env);
  }

  ~BpfObjectWrap() override {
    CloseHandle();
    std::lock_guard<std::mutex> lock(slot_->mu);
    slot_->owner = nullptr;
  }

  void CloseHandle() override {
    std::unique_lock<std::mutex> lock(slot_->mu);
    // Running: the verifier is using the object; it returns on its own, without the main thread.
    slot_->done.wait(lock, [this] { return slot_->load != ObjectSlot::Load::Running; });
    // Queued: the pool has not started; it will find the object gone and do nothing.
    slot_->load = ObjectSlot::Load::Idle;
    if (slot_->obj) bpf_object__close(slot_->obj);
    slot_->obj = nullptr;
    obj_ = nullptr;
  }

 private:
  friend class LoadWorker;

  struct bpf_object* Need(Napi::Env env) {
    if (!obj_) throw Napi::Error::New(env, "the BPF object is closed");
    if (loading_) throw Napi::Error::New(env, "the BPF object is being loaded");
    return obj_;
  }

  struct bpf_map* NeedMap(Napi::Env env, const Napi::Value& name) {
    if (!name.IsString()) throw Napi::TypeError::New(env, "map name must be a string");
    std::string n = name.As<Napi::String>();
    struct bpf_map* m = bpf_object__find_map_by_name(Need(env), n.c_str());
    if (!m) ThrowErrno(env, ENOENT, "bpf_object__find_map_by_name", n, "no map of that name in " + path_);
    return m;
  }

  Napi::Value MapNames(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto arr = Napi::Array::New(env);
    struct bpf_map* m;
    uint32_t i = 0;
    bpf_object__for_each_map(m, Need(env)) arr.Set(i++, Napi::String::New(env, bpf_map__name(m)));
    return arr;
  }

  Napi::Value ProgramNames(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto arr = Napi::Array::New(env);
    struct bpf_program* p;
    uint32_t i = 0;
    bpf_object__for_each_program(p, Need(env)) arr.Set(i++, Napi::String::New(env, bpf_program__name(p)));
    return arr;
  }

  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_map* m = NeedMap(env, info[0]);
    uint32_t n = (uint32_t)GetInteger(info[1], "max entries", 1, UINT32_MAX);
    int err = bpf_map__set_max_entries(m, n);
    if (err) ThrowErrno(env, err, "bpf_map__set_max_entries", bpf_map__name(m), "set sizes before load");
    return env.Undefined();
  }

  Napi::Value SetPinPath(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_map* m = NeedMap(env, info[0]);
    std::string p = info[1].IsString() ? std::string(info[1].As<Napi::String>()) : std::string();
    int err = bpf_map__set_pin_path(m, p.empty() ? nullptr : p.c_str());
    if (err) ThrowErrno(env, err, "bpf_map__set_pin_path", p);
    return env.Undefined();
  }

  Napi::Value Loaded(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), loaded_); }

  Napi::Value Load(const Napi::CallbackInfo& info);

  Napi::Value Program(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "program name must be a string");
    std::string n = info[0].As<Napi::String>();
    struct bpf_program* p = bpf_object__find_program_by_name(Need(env), n.c_str());
    if (!p) ThrowErrno(env, ENOENT, "bpf_object__find_program_by_name", n, "no program of that name in " + path_);
    int fd = bpf_program__fd(p);
    if (fd < 0) throw Napi::Error::New(env, "program '" + n + "' is not loaded: call load() first");
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0) ThrowErrno(env, errno, "fcntl");
    return NewProgram(env, dupfd, n, bpf_program__type(p));
  }

  Napi::Value Map(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_map* m = NeedMap(env, info[0]);
    int fd = bpf_map__fd(m);
    if (fd < 0) throw Napi::Error::New(env, std::string("map '") + bpf_map__name(m) + "' is not loaded: call load() first");
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0) ThrowErrno(env, errno, "fcntl");
    return NewMap(env, dupfd, bpf_map__name(m));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (loading_) throw Napi::Error::New(info.Env(), "cannot close a BPF object while it is being loaded");
    CloseHandle();
    Untrack();
    return info.Env().Undefined();
  }

  std::string path_;
  // Mirrors slot_->obj for the main thread's own use; both are cleared together by CloseHandle.
  struct bpf_object* obj_ = nullptr;
  std::shared_ptr<ObjectSlot> slot_ = std::make_shared<ObjectSlot>();
  bool loading_ = false;
  bool loaded_ = false;
};

// Loading runs the verifier, which can take long for big programs: it runs on the libuv pool.
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, BpfObjectWrap* self)
      : Napi::AsyncWorker(env, "flowlb:bpf_object__load"), deferred_(Napi::Promise::Deferred::New(env)),
        slot_(self->slot_), path_(self->path_), keepAlive_(Napi::Persistent(self->Value())) {
    std::lock_guard<std::mutex> lock(slot_->mu);
    slot_->load = ObjectSlot::Load::Queued;
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    struct bpf_object* obj;
    {
      std::lock_guard<std::mutex> lock(slot_->mu);
      if (slot_->load != ObjectSlot::Load::Queued || !slot_->obj) {
        closed_ = true;
        return;
      }
      slot_->load = ObjectSlot::Load::Running;
      obj = slot_->obj;
    }
    LibbpfLogCapture capture;
    int err = bpf_object__load(obj);
    err_ = err < 0 ? -err : err;
    log_ = capture.Take();
    std::lock_guard<std::mutex> lock(slot_->mu);
    slot_->load = ObjectSlot::Load::Idle;
    slot_->done.notify_all();
  }

  void OnOK() override { Settle(); }
  void OnError(const Napi::Error&) override { Settle(); }

 private:
  void Settle() {
    BpfObjectWrap* self;
    {
      std::lock_guard<std::mutex> lock(slot_->mu);
      self = slot_->owner;
    }
    if (self) {
      self->loading_ = false;
      if (!err_ && !closed_ && self->obj_) self->loaded_ = true;
    }
    // A worker terminated during the load: its environment is being torn down and can no longer run JavaScript, so
    // every call below fails. An exception escaping from here would reach Node's C++ and end the whole process.
    try {
      Reply();
    } catch (const Napi::Error&) {
      // Nobody is left to hear the answer.
    }
  }

  void Reply() {
    Napi::Env env = Env();
    if (closed_) {
      deferred_.Reject(Napi::Error::New(env, "the BPF object was closed before it was loaded").Value());
      return;
    }
    if (!err_) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    std::string hint = err_ == EPERM || err_ == EACCES ? DefaultHint(err_, "bpf_object__load") : "";
    if (!log_.empty()) {
      // The verifier's own words are the useful part; keep the tail, where it says what it rejected. The whole
      // log is on error.log.
      std::string tail = log_.size() > 8192 ? "..." + log_.substr(log_.size() - 8192) : log_;
      hint = (hint.empty() ? "" : hint + "; ") + "libbpf and verifier log:\n" + tail;
    }
    Napi::Error e = ErrnoError(env, err_, "bpf_object__load", path_, hint);
    e.Set("log", Napi::String::New(env, log_));
    deferred_.Reject(e.Value());
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ObjectSlot> slot_;
  std::string path_;
  // The wrapper must not be collected while the pool thread uses its bpf_object.
  Napi::ObjectReference keepAlive_;
  int err_ = 0;
  bool closed_ = false;
  std::string log_;
};

Napi::Value BpfObjectWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Need(env);
  if (loaded_) throw Napi::Error::New(env, "the BPF object is already loaded");
  auto* w = new LoadWorker(env, this);
  loading_ = true;
  auto promise = w->Promise();
  w->Queue();
  return promise;
}

void InitObject(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = BpfObjectWrap::Define(env);
  Data(env).objectCtor = Napi::Persistent(ctor);
  exports.Set("BpfObject", ctor);
}

}  // namespace flowlb
