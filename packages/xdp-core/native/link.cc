#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <unistd.h>

#include "common.h"

namespace flowlb {

// A bpf_link: the attachment lives as long as the descriptor, or as long as its pin. The wrapper holds itself alive
// until close() or detach(): were it collected, its finalizer would close the descriptor and the kernel would detach
// the program behind the caller's back. The environment's teardown still closes it.
class LinkWrap : public FdHandle<LinkWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Link",
                       {
                           InstanceMethod("pin", &LinkWrap::Pin),
                           InstanceMethod<&LinkWrap::Detach>("detach"),
                           InstanceMethod<&LinkWrap::Update>("update"),
                           InstanceMethod<&LinkWrap::Info>("info"),
                           InstanceMethod<&LinkWrap::CloseLink>("close"),
                           InstanceAccessor("fd", &LinkWrap::Fd, nullptr),
                           InstanceAccessor<&LinkWrap::Description>("description"),
                       });
  }

  explicit LinkWrap(const Napi::CallbackInfo& info) : FdHandle<LinkWrap>(info) {
    description_ = info[2].As<Napi::String>();
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
  }

 private:
  Napi::Value CloseLink(const Napi::CallbackInfo& info) {
    self_.Reset();
    return Close(info);
  }

  std::string What() const override { return "link " + description_; }

  Napi::Value Description(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), description_); }

  // Ends the attachment now, even if the link is pinned elsewhere.
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (bpf_link_detach(Need(env)) < 0 && errno != ENOLINK) ThrowErrno(env, errno, "bpf_link_detach", description_);
    // Nothing is attached any more: closing the descriptor when collected loses nothing.
    self_.Reset();
    return env.Undefined();
  }

  // Swaps the attached program atomically: no packet sees the interface without a program.
  Napi::Value Update(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int progFd = (int)GetInteger(info[0], "program fd", 0, INT32_MAX);
    if (bpf_link_update(Need(env), progFd, nullptr) < 0) ThrowErrno(env, errno, "bpf_link_update", description_);
    return env.Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct bpf_link_info li = {};
    __u32 len = sizeof li;
    if (bpf_obj_get_info_by_fd(Need(env), &li, &len) < 0) ThrowErrno(env, errno, "bpf_obj_get_info_by_fd");
    Napi::Object r = Napi::Object::New(env);
    r.Set("id", Napi::Number::New(env, li.id));
    r.Set("progId", Napi::Number::New(env, li.prog_id));
    r.Set("type", Napi::Number::New(env, li.type));
    if (li.type == BPF_LINK_TYPE_XDP) r.Set("ifindex", Napi::Number::New(env, li.xdp.ifindex));
    return r;
  }

  std::string description_;
  Napi::ObjectReference self_;
};

Napi::Object NewLink(Napi::Env env, int fd, const std::string& description) {
  return Data(env).linkCtor.New({OwnToken(env), Napi::Number::New(env, fd), Napi::String::New(env, description)});
}

// Not exported: a link is made by attaching or by opening a pin, never from a descriptor number.
void InitLink(Napi::Env env, Napi::Object exports) { Data(env).linkCtor = Napi::Persistent(LinkWrap::Define(env)); }

}  // namespace flowlb
