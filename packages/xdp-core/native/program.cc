#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <vector>

#include "common.h"

namespace flowlb {

class ProgramWrap : public FdHandle<ProgramWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Program",
                       {
                           InstanceMethod<&ProgramWrap::AttachXdp>("attachXdp"),
                           InstanceMethod<&ProgramWrap::TestRun>("testRun"),
                           InstanceMethod<&ProgramWrap::RunLive>("runLive"),
                           InstanceMethod("pin", &ProgramWrap::Pin),
                           InstanceMethod("close", &ProgramWrap::Close),
                           InstanceAccessor("fd", &ProgramWrap::Fd, nullptr),
                           InstanceAccessor<&ProgramWrap::Name>("name"),
                           InstanceAccessor<&ProgramWrap::Id>("id"),
                           InstanceAccessor<&ProgramWrap::Type>("type"),
                       });
  }

  explicit ProgramWrap(const Napi::CallbackInfo& info) : FdHandle<ProgramWrap>(info) {
    // Built only by NewProgram, which hands over a descriptor it owns.
    name_ = info[1].As<Napi::String>();
    type_ = info[2].As<Napi::Number>().Uint32Value();
    struct bpf_prog_info pinfo = {};
    __u32 len = sizeof pinfo;
    if (bpf_obj_get_info_by_fd(fd_, &pinfo, &len) == 0) id_ = pinfo.id;
  }


 private:
  std::string What() const override { return "program '" + name_ + "'"; }

  Napi::Value Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }
  Napi::Value Id(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_); }
  Napi::Value Type(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), type_); }

  // attachXdp(ifindex, mode: 'native' | 'generic' | 'auto') -> Link
  Napi::Value AttachXdp(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "ifindex must be a number");
    int ifindex = info[0].As<Napi::Number>().Int32Value();
    std::string mode = info[1].IsString() ? std::string(info[1].As<Napi::String>()) : "auto";
    LIBBPF_OPTS(bpf_link_create_opts, opts);
    if (mode == "native")
      opts.flags = XDP_FLAGS_DRV_MODE;
    else if (mode == "generic")
      opts.flags = XDP_FLAGS_SKB_MODE;
    else if (mode != "auto")
      throw Napi::TypeError::New(env, "mode must be 'native', 'generic' or 'auto'");
    int link = bpf_link_create(fd, ifindex, BPF_XDP, &opts);
    if (link < 0) {
      int err = errno;
      char ifname[IF_NAMESIZE] = "";
      std::string what = if_indextoname(ifindex, ifname) ? std::string(ifname) : "ifindex " + std::to_string(ifindex);
      std::string hint;
      if (err == EINVAL && mode == "native")
        hint = "the driver of " + what + " may lack native XDP; try mode 'generic'";
      ThrowErrno(env, err, "bpf_link_create", what, hint);
    }
    return NewLink(env, link, "xdp:" + name_ + "@" + std::to_string(ifindex));
  }

  // testRun(data, ingressIfindex, repeat, dataSizeOut) -> { retval, data, durationNs }
  Napi::Value TestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    Bytes in = GetBytes(info[0], "data");
    uint32_t ifindex = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
    int repeat = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 1;
    uint32_t outSize = info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : (uint32_t)in.size + 256;
    if (repeat < 1) repeat = 1;
    std::vector<uint8_t> out(outSize);
    struct xdp_md ctx = {};
    ctx.ingress_ifindex = ifindex;
    // The kernel wants the context to describe the frame it is given: no metadata, data_end at its end.
    ctx.data_end = (uint32_t)in.size;
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = in.data;
    opts.data_size_in = (uint32_t)in.size;
    opts.data_out = out.data();
    opts.data_size_out = outSize;
    opts.repeat = repeat;
    if (ifindex) {
      opts.ctx_in = &ctx;
      opts.ctx_size_in = sizeof ctx;
    }
    if (bpf_prog_test_run_opts(fd, &opts) < 0) ThrowErrno(env, errno, "bpf_prog_test_run_opts", name_);
    Napi::Object r = Napi::Object::New(env);
    r.Set("retval", Napi::Number::New(env, opts.retval));
    r.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), std::min(opts.data_size_out, outSize)));
    r.Set("durationNs", Napi::Number::New(env, opts.duration));
    return r;
  }

  // runLive(data, ingressIfindex, repeat, batchSize) -> { durationNs }: BPF_F_TEST_XDP_LIVE_FRAMES, so the verdicts
  // are carried out (XDP_TX leaves by the ingress device, XDP_REDIRECT goes where the program sent it) and nothing
  // comes back but the time. Blocks the calling thread for the whole run, like testRun.
  Napi::Value RunLive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    Bytes in = GetBytes(info[0], "data");
    uint32_t ifindex = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
    int repeat = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 1;
    uint32_t batch = info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 0;
    if (repeat < 1) repeat = 1;
    struct xdp_md ctx = {};
    ctx.ingress_ifindex = ifindex;
    ctx.data_end = (uint32_t)in.size;
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = in.data;
    opts.data_size_in = (uint32_t)in.size;
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof ctx;
    opts.repeat = repeat;
    opts.batch_size = batch;
    opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
    if (bpf_prog_test_run_opts(fd, &opts) < 0) ThrowErrno(env, errno, "bpf_prog_test_run_opts", name_);
    Napi::Object r = Napi::Object::New(env);
    r.Set("durationNs", Napi::Number::New(env, opts.duration));
    return r;
  }

  std::string name_;
  uint32_t type_ = 0;
  uint32_t id_ = 0;
};

Napi::Object NewProgram(Napi::Env env, int fd, const std::string& name, uint32_t type) {
  return Data(env).programCtor.New(
      {Napi::Number::New(env, fd), Napi::String::New(env, name), Napi::Number::New(env, type)});
}

void InitProgram(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = ProgramWrap::Define(env);
  Data(env).programCtor = Napi::Persistent(ctor);
  exports.Set("Program", ctor);
}

}  // namespace flowlb
