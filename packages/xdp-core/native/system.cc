#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common.h"

namespace flowlb {

static std::string Str(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>();
}

static int GetPinned(Napi::Env env, const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, errno, "bpf_obj_get", path);
  return fd;
}

static Napi::Value OpenPinnedMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return NewMap(env, GetPinned(env, Str(info, 0, "path")), "");
}

static Napi::Value OpenPinnedProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = Str(info, 0, "path");
  int fd = GetPinned(env, path);
  struct bpf_prog_info pi = {};
  __u32 len = sizeof pi;
  if (bpf_obj_get_info_by_fd(fd, &pi, &len) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "bpf_obj_get_info_by_fd", path, "is a program pinned there?");
  }
  return NewProgram(env, fd, pi.name, pi.type);
}

static Napi::Value OpenPinnedLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = Str(info, 0, "path");
  return NewLink(env, GetPinned(env, path), "pinned:" + path);
}

static Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = Str(info, 0, "interface name");
  unsigned idx = if_nametoindex(name.c_str());
  if (!idx) ThrowErrno(env, errno == ENXIO ? ENODEV : errno, "if_nametoindex", name);
  return Napi::Number::New(env, idx);
}

static Napi::Value IfIndexToName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  char buf[IF_NAMESIZE] = "";
  unsigned index = (unsigned)GetInteger(info[0], "ifindex", 1, INT32_MAX);
  if (!if_indextoname(index, buf)) ThrowErrno(env, errno == ENXIO ? ENODEV : errno, "if_indextoname", std::to_string(index));
  return Napi::String::New(env, buf);
}

// xdpQuery(ifindex) -> { progId, mode, driverProgId, genericProgId }: what is attached, by any means.
static Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = (int)GetInteger(info[0], "ifindex", 1, INT32_MAX);
  LIBBPF_OPTS(bpf_xdp_query_opts, opts);
  if (bpf_xdp_query(ifindex, 0, &opts) < 0) ThrowErrno(env, errno, "bpf_xdp_query", std::to_string(ifindex));
  Napi::Object r = Napi::Object::New(env);
  r.Set("progId", Napi::Number::New(env, opts.prog_id));
  r.Set("driverProgId", Napi::Number::New(env, opts.drv_prog_id));
  r.Set("genericProgId", Napi::Number::New(env, opts.skb_prog_id));
  const char* mode = "none";
  switch (opts.attach_mode) {
    case XDP_ATTACHED_DRV: mode = "native"; break;
    case XDP_ATTACHED_SKB: mode = "generic"; break;
    case XDP_ATTACHED_HW: mode = "offload"; break;
    case XDP_ATTACHED_MULTI: mode = "multi"; break;
  }
  r.Set("mode", Napi::String::New(env, mode));
  return r;
}

// The calling thread joins another network namespace; the descriptor of the one it left comes back so that
// netnsRestore can return to it. Only the main thread moves: libuv's pool and sockets opened earlier stay put.
static Napi::Value NetnsEnter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = Str(info, 0, "namespace path");
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) ThrowErrno(env, errno, "open", "/proc/thread-self/ns/net");
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(self);
    ThrowErrno(env, err, "open", path, "no such network namespace");
  }
  int rc = setns(target, CLONE_NEWNET);
  int err = errno;
  close(target);
  if (rc < 0) {
    close(self);
    ThrowErrno(env, err, "setns", path, err == EPERM ? "entering a network namespace needs CAP_SYS_ADMIN" : "");
  }
  return Napi::Number::New(env, self);
}

static Napi::Value NetnsRestore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = (int)GetInteger(info[0], "namespace fd", 0, INT32_MAX);
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc < 0) ThrowErrno(env, err, "setns", "restore");
  return env.Undefined();
}

// A new bpffs instance on `path`, as `mount -t bpf bpf PATH` makes it. Only the owner may look inside, as with the
// /sys/fs/bpf that systemd mounts.
static Napi::Value MountBpffs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = Str(info, 0, "mount point");
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") < 0) {
    int err = errno;
    std::string hint;
    if (err == EPERM || err == EACCES)
      hint = "mounting bpffs needs CAP_SYS_ADMIN: run as root, or have it mounted beforehand with mount -t bpf bpf " + path;
    else if (err == ENOENT || err == ENOTDIR)
      hint = "the mount point must be an existing folder";
    else if (err == ENODEV)
      hint = "this kernel has no bpffs (it needs CONFIG_BPF_SYSCALL)";
    ThrowErrno(env, err, "mount", path, hint);
  }
  return env.Undefined();
}

static Napi::Value PossibleCpus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), libbpf_num_possible_cpus());
}

void InitSystem(Napi::Env env, Napi::Object exports) {
  exports.Set("openPinnedMap", Napi::Function::New<OpenPinnedMap>(env, "openPinnedMap"));
  exports.Set("openPinnedProgram", Napi::Function::New<OpenPinnedProgram>(env, "openPinnedProgram"));
  exports.Set("openPinnedLink", Napi::Function::New<OpenPinnedLink>(env, "openPinnedLink"));
  exports.Set("ifNameToIndex", Napi::Function::New<IfNameToIndex>(env, "ifNameToIndex"));
  exports.Set("ifIndexToName", Napi::Function::New<IfIndexToName>(env, "ifIndexToName"));
  exports.Set("xdpQuery", Napi::Function::New<XdpQuery>(env, "xdpQuery"));
  exports.Set("netnsEnter", Napi::Function::New<NetnsEnter>(env, "netnsEnter"));
  exports.Set("netnsRestore", Napi::Function::New<NetnsRestore>(env, "netnsRestore"));
  exports.Set("mountBpffs", Napi::Function::New<MountBpffs>(env, "mountBpffs"));
  exports.Set("possibleCpus", Napi::Function::New<PossibleCpus>(env, "possibleCpus"));
  exports.Set("libbpfVersion",
              Napi::String::New(env, std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version())));
}

}  // namespace flowlb
