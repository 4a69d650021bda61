#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common.h"

namespace flowlb {

// Bound on the buffers of one lookupBatch call. A larger count only makes the call return fewer entries than asked,
// which callers handle anyway by going on with the cursor.
static constexpr size_t kMaxBatchBytes = 64u << 20;

static bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

class MapWrap : public FdHandle<MapWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Map",
                       {
                           InstanceMethod<&MapWrap::Lookup>("lookup"),
                           InstanceMethod<&MapWrap::Update>("update"),
                           InstanceMethod<&MapWrap::Delete>("delete"),
                           InstanceMethod<&MapWrap::NextKey>("nextKey"),
                           InstanceMethod<&MapWrap::LookupBatch>("lookupBatch"),
                           InstanceMethod<&MapWrap::UpdateBatch>("updateBatch"),
                           InstanceMethod<&MapWrap::DeleteBatch>("deleteBatch"),
                           InstanceMethod("pin", &MapWrap::Pin),
                           InstanceMethod("close", &MapWrap::Close),
                           InstanceAccessor("fd", &MapWrap::Fd, nullptr),
                           InstanceAccessor<&MapWrap::Info>("info"),
                       });
  }

  explicit MapWrap(const Napi::CallbackInfo& info) : FdHandle<MapWrap>(info) {
    Napi::Env env = info.Env();
    name_ = info[2].As<Napi::String>();
    struct bpf_map_info mi = {};
    __u32 len = sizeof mi;
    if (bpf_obj_get_info_by_fd(fd_, &mi, &len) < 0) {
      int err = errno;
      close(fd_);
      fd_ = -1;
      ThrowErrno(env, err, "bpf_obj_get_info_by_fd", name_);
    }
    if (name_.empty()) name_ = mi.name;
    type_ = mi.type;
    keySize_ = mi.key_size;
    valueSize_ = mi.value_size;
    maxEntries_ = mi.max_entries;
    id_ = mi.id;
    flags_ = mi.map_flags;
    // Per-CPU maps hand userspace one 8-byte aligned slot for every possible CPU.
    if (IsPerCpu(type_)) {
      int ncpu = libbpf_num_possible_cpus();
      if (ncpu < 1) ncpu = 1;
      valueBufSize_ = ((valueSize_ + 7) / 8 * 8) * (size_t)ncpu;
      ncpu_ = ncpu;
    } else {
      valueBufSize_ = valueSize_;
    }
  }


 private:
  std::string What() const override { return "map '" + name_ + "'"; }

  Bytes Key(const Napi::Value& v) { return GetBytes(v, "key", keySize_); }

  // BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK and their like: the kernel rejects the ones it does not know.
  static uint64_t Flags(const Napi::Value& v) { return GetInteger(v, "flags", 0, UINT32_MAX, BPF_ANY); }

  // An error of a batch call of `asked` entries, with how many it did. The kernel writes the count back only once it
  // has gone through entries, and then it is below `asked` (it stopped at one); an error before that (flags,
  // map type) leaves the count as it was given: nothing was done.
  Napi::Error BatchError(Napi::Env env, int err, const char* syscall, const char* countName, uint32_t asked,
                         uint32_t count) {
    Napi::Error e = ErrnoError(env, err, syscall, name_);
    e.Set(countName, Napi::Number::New(env, count < asked ? count : 0));
    return e;
  }


  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("name", Napi::String::New(env, name_));
    r.Set("id", Napi::Number::New(env, id_));
    r.Set("type", Napi::Number::New(env, type_));
    r.Set("keySize", Napi::Number::New(env, keySize_));
    r.Set("valueSize", Napi::Number::New(env, valueSize_));
    r.Set("valueBufferSize", Napi::Number::New(env, (double)valueBufSize_));
    r.Set("maxEntries", Napi::Number::New(env, maxEntries_));
    r.Set("flags", Napi::Number::New(env, flags_));
    r.Set("perCpu", Napi::Boolean::New(env, IsPerCpu(type_)));
    r.Set("possibleCpus", Napi::Number::New(env, ncpu_));
    return r;
  }

  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    Bytes k = Key(info[0]);
    auto out = Napi::Buffer<uint8_t>::New(env, valueBufSize_);
    if (bpf_map_lookup_elem(fd, k.data, out.Data()) < 0) {
      if (errno == ENOENT) return env.Undefined();
      ThrowErrno(env, errno, "bpf_map_lookup_elem", name_);
    }
    return out;
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    Bytes k = Key(info[0]);
    Bytes v = GetBytes(info[1], "value", valueBufSize_);
    uint64_t flags = Flags(info[2]);
    if (bpf_map_update_elem(fd, k.data, v.data, flags) < 0) ThrowErrno(env, errno, "bpf_map_update_elem", name_);
    return env.Undefined();
  }

  Napi::Value Delete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    Bytes k = Key(info[0]);
    if (bpf_map_delete_elem(fd, k.data) < 0) {
      if (errno == ENOENT) return Napi::Boolean::New(env, false);
      ThrowErrno(env, errno, "bpf_map_delete_elem", name_);
    }
    return Napi::Boolean::New(env, true);
  }

  // nextKey(undefined) is the first key; undefined back means the end.
  Napi::Value NextKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    const void* cur = nullptr;
    if (!info[0].IsUndefined() && !info[0].IsNull()) cur = Key(info[0]).data;
    auto out = Napi::Buffer<uint8_t>::New(env, keySize_);
    if (bpf_map_get_next_key(fd, cur, out.Data()) < 0) {
      if (errno == ENOENT) return env.Undefined();
      ThrowErrno(env, errno, "bpf_map_get_next_key", name_);
    }
    return out;
  }

  // lookupBatch(count, cursor?) -> { keys, values, count, cursor? } with keys and values packed back to back.
  Napi::Value LookupBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    uint64_t asked = GetInteger(info[0], "count", 1, UINT32_MAX, 256);
    // More than the map holds, or than fits the buffers, comes back in several calls.
    size_t perEntry = std::max<size_t>(1, keySize_ + valueBufSize_);
    size_t most = std::max<size_t>(1, std::min<size_t>(std::max<uint32_t>(maxEntries_, 1), kMaxBatchBytes / perEntry));
    uint32_t want = (uint32_t)std::min<uint64_t>(asked, most);
    // The kernel's batch token is opaque (a bucket index for hash maps); 8 bytes covers every map type, and the
    // cursors handed out are all 8 bytes.
    std::vector<uint8_t> inTok(8), outTok(8);
    bool first = info[1].IsUndefined() || info[1].IsNull();
    if (!first) {
      Bytes c = GetBytes(info[1], "cursor", inTok.size());
      memcpy(inTok.data(), c.data, c.size);
    }
    for (;;) {
      std::vector<uint8_t> keys((size_t)want * keySize_), values((size_t)want * valueBufSize_);
      __u32 count = want;
      LIBBPF_OPTS(bpf_map_batch_opts, opts);
      int rc = bpf_map_lookup_batch(fd, first ? nullptr : inTok.data(), outTok.data(), keys.data(), values.data(),
                                    &count, &opts);
      int err = rc < 0 ? errno : 0;
      // A hash bucket larger than the batch: the kernel asks for room for the whole bucket.
      if (err == ENOSPC && (size_t)want * 2 * perEntry <= kMaxBatchBytes) {
        want *= 2;
        continue;
      }
      if (err && err != ENOENT) ThrowErrno(env, err, "bpf_map_lookup_batch", name_);
      Napi::Object r = Napi::Object::New(env);
      r.Set("count", Napi::Number::New(env, count));
      r.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), (size_t)count * keySize_));
      r.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), (size_t)count * valueBufSize_));
      if (err != ENOENT) r.Set("cursor", Napi::Buffer<uint8_t>::Copy(env, outTok.data(), outTok.size()));
      return r;
    }
  }

  // updateBatch(keys, values, count, flags) with keys and values packed back to back; returns how many were written.
  // The kernel writes in order and stops at the first entry it cannot write: the error says how many went before
  // (`written`), so that the caller knows which entries are in the map.
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    uint32_t n = (uint32_t)GetInteger(info[2], "count", 0, UINT32_MAX);
    Bytes k = GetBytes(info[0], "keys", (size_t)n * keySize_);
    Bytes v = GetBytes(info[1], "values", (size_t)n * valueBufSize_);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    opts.elem_flags = Flags(info[3]);
    __u32 count = n;
    if (n && bpf_map_update_batch(fd, k.data, v.data, &count, &opts) < 0) {
      int err = errno;
      throw BatchError(env, err, "bpf_map_update_batch", "written", n, count);
    }
    return Napi::Number::New(env, count);
  }

  // deleteBatch(keys, count): keys that are missing make the kernel stop; the number deleted before that is returned.
  // Other errors carry that number as `deleted`.
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    uint32_t n = (uint32_t)GetInteger(info[1], "count", 0, UINT32_MAX);
    Bytes k = GetBytes(info[0], "keys", (size_t)n * keySize_);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    __u32 count = n;
    if (n && bpf_map_delete_batch(fd, k.data, &count, &opts) < 0) {
      int err = errno;
      if (err != ENOENT) throw BatchError(env, err, "bpf_map_delete_batch", "deleted", n, count);
    }
    return Napi::Number::New(env, count);
  }

  std::string name_;
  uint32_t type_ = 0, keySize_ = 0, valueSize_ = 0, maxEntries_ = 0, id_ = 0, flags_ = 0;
  size_t valueBufSize_ = 0;
  int ncpu_ = 1;
};

Napi::Object NewMap(Napi::Env env, int fd, const std::string& name) {
  return Data(env).mapCtor.New({OwnToken(env), Napi::Number::New(env, fd), Napi::String::New(env, name)});
}

// Not exported: a map handle comes from a loaded object or a pin, never from a descriptor number.
void InitMap(Napi::Env env, Napi::Object exports) { Data(env).mapCtor = Napi::Persistent(MapWrap::Define(env)); }

}  // namespace flowlb
