#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>
#include <new>

#include "common.h"

namespace flowlb {

std::string DefaultHint(int err, const std::string& syscall) {
  switch (err) {
    case EPERM:
    case EACCES:
      if (syscall == "bpf_obj_pin" || syscall == "bpf_obj_get")
        return "the path must be on a bpffs mount (mount -t bpf bpf /sys/fs/bpf) and the caller needs "
               "CAP_BPF; inside 'ip netns exec' bpffs is not mounted by default";
      return "BPF needs CAP_BPF and CAP_NET_ADMIN (and CAP_PERFMON for some programs): run as root or grant them, "
             "e.g. setcap cap_bpf,cap_net_admin,cap_perfmon+ep \"$(command -v node)\"";
    case ENODEV:
      return "no such network interface in this network namespace";
    case EBUSY:
      return "another XDP program is attached to the interface; detach it (ip link set dev IFACE xdp off) or "
             "attach in another mode";
    case EEXIST:
      return "already exists";
    case ENOENT:
      if (syscall == "bpf_obj_get") return "nothing is pinned at that path";
      return "";
    case EOPNOTSUPP:
      return "the driver or kernel does not support this; try generic XDP mode";
    case E2BIG:
      return "the map is full: raise its max entries";
    default:
      return "";
  }
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                       const std::string& hint) {
  if (err < 0) err = -err;
  const char* name = strerrorname_np(err);
  std::string code = name ? name : ("E" + std::to_string(err));
  // Node's own system errors read "ENOENT: no such file or directory, open '/x'".
  std::string desc = strerror(err);
  if (!desc.empty() && desc[0] >= 'A' && desc[0] <= 'Z' && (desc.size() < 2 || !(desc[1] >= 'A' && desc[1] <= 'Z')))
    desc[0] = desc[0] - 'A' + 'a';
  std::string msg = code + ": " + desc + ", " + syscall;
  if (!detail.empty()) msg += " '" + detail + "'";
  std::string h = hint.empty() ? DefaultHint(err, syscall) : hint;
  if (!h.empty()) msg += " (" + h + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!detail.empty()) e.Set("detail", Napi::String::New(env, detail));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail,
                const std::string& hint) {
  throw ErrnoError(env, err, syscall, detail, hint);
}

static std::string NumberText(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  snprintf(buf, sizeof buf, "%.15g", d);
  if (strtod(buf, nullptr) != d) snprintf(buf, sizeof buf, "%.17g", d);
  return buf;
}

uint64_t GetInteger(const Napi::Value& v, const char* what, uint64_t min, uint64_t max) {
  Napi::Env env = v.Env();
  if (!v.IsNumber()) {
    auto e = Napi::TypeError::New(env, std::string(what) + " must be a number");
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
    throw e;
  }
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || d < (double)min || d > (double)max) {
    auto e = Napi::RangeError::New(env, std::string(what) + " must be an integer from " + std::to_string(min) +
                                            " to " + std::to_string(max) + ", got " + NumberText(d));
    e.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
    throw e;
  }
  return (uint64_t)d;
}

uint64_t GetInteger(const Napi::Value& v, const char* what, uint64_t min, uint64_t max, uint64_t dflt) {
  return v.IsUndefined() ? dflt : GetInteger(v, what, min, max);
}

Bytes GetBytes(const Napi::Value& v, const char* what, size_t exactSize) {
  Napi::Env env = v.Env();
  Bytes b;
  if (v.IsBuffer()) {
    auto buf = v.As<Napi::Buffer<uint8_t>>();
    b.data = buf.Data();
    b.size = buf.Length();
  } else if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    auto arr = v.As<Napi::Uint8Array>();
    b.data = arr.Data();
    b.size = arr.ByteLength();
  } else {
    throw Napi::TypeError::New(env, std::string(what) + " must be a Buffer or Uint8Array");
  }
  if (exactSize != kAnySize && b.size != exactSize) {
    auto e = Napi::RangeError::New(env, std::string(what) + " must be " + std::to_string(exactSize) +
                                            " bytes, got " + std::to_string(b.size));
    e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
    throw e;
  }
  return b;
}

void PinFd(Napi::Env env, int fd, const Napi::Value& path) {
  if (!path.IsString()) throw Napi::TypeError::New(env, "pin path must be a string");
  std::string p = path.As<Napi::String>();
  if (bpf_obj_pin(fd, p.c_str()) < 0) ThrowErrno(env, errno, "bpf_obj_pin", p);
}

// libbpf reports through one process-wide print callback; each thread that wants the text (a load running on a
// worker thread, for the verifier log) points this at its own buffer.
static thread_local std::string* captureBuf = nullptr;

// More than libbpf's largest verifier log buffer (16 MiB), so that a log is kept whole.
static constexpr size_t kMaxCapture = 32u << 20;

static int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (!captureBuf) return 0;
  va_list again;
  va_copy(again, args);
  // A failed load prints the verifier log as one message, often far longer than any fixed buffer: its end, where the
  // verifier says what it rejected, is the part that matters. Messages are kept whole or not at all.
  char small[1024];
  int n = vsnprintf(small, sizeof small, fmt, args);
  try {
    if (n > 0 && captureBuf->size() + (size_t)n <= kMaxCapture) {
      if ((size_t)n < sizeof small) {
        captureBuf->append(small, (size_t)n);
      } else {
        size_t at = captureBuf->size();
        captureBuf->resize(at + (size_t)n + 1);
        vsnprintf(&(*captureBuf)[at], (size_t)n + 1, fmt, again);
        captureBuf->resize(at + (size_t)n);
      }
    }
  } catch (const std::bad_alloc&) {
    // Called from C inside libbpf: nothing may be thrown through it. The message is lost, the load goes on.
  }
  va_end(again);
  return n;
}

void InstallLibbpfPrint() { libbpf_set_print(LibbpfPrint); }

LibbpfLogCapture::LibbpfLogCapture() { captureBuf = new std::string(); }
LibbpfLogCapture::~LibbpfLogCapture() {
  delete captureBuf;
  captureBuf = nullptr;
}
std::string LibbpfLogCapture::Take() { return captureBuf ? std::move(*captureBuf) : std::string(); }

}  // namespace flowlb
