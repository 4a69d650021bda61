// Shared declarations of the native layer: a thin set of Napi::ObjectWrap classes over libbpf, one per kernel
// object with a lifetime. Each wrapper owns its own file descriptor (duplicated from libbpf's where needed), so
// closing a BPF object never invalidates a map or program handle that JavaScript still holds.
#pragma once

#include <napi.h>

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

// Per-environment state: constructors and the set of live handles the cleanup hook closes.
struct AddonData {
  Napi::FunctionReference objectCtor;
  Napi::FunctionReference programCtor;
  Napi::FunctionReference linkCtor;
  Napi::FunctionReference mapCtor;
  std::set<Closeable*> live;
};

AddonData& Data(Napi::Env env);
void Track(Napi::Env env, Closeable* c);
void Untrack(Napi::Env env, Closeable* c);

// Throws a JavaScript Error shaped like Node's system errors: message "CODE: description, syscall 'detail'"
// followed by a hint, with properties code, errno (negative, as in Node), syscall and, when given, path.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& detail = "",
                             const std::string& hint = "");
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall, const std::string& detail = "",
                       const std::string& hint = "");
std::string DefaultHint(int err, const std::string& syscall);

// Bytes of a Buffer or Uint8Array argument, checked for an exact size when size > 0.
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};
Bytes GetBytes(const Napi::Value& v, const char* what, size_t exactSize = 0);

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

}  // namespace flowlb
