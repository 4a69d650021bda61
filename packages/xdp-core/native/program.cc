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

// Far beyond any frame BPF_PROG_TEST_RUN takes (a page, or a few dozen with XDP fragments), and small enough that
// the output buffer is never an allocation that fails.
static constexpr size_t kMaxRunBytes = 16u << 20;

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
    name_ = info[2].As<Napi::String>();
    type_ = info[3].As<Napi::Number>().Uint32Value();
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
    int ifindex = (int)GetInteger(info[0], "ifindex", 1, INT32_MAX);
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

  // The arguments testRun and runLive share: the frame, the device it arrives on and how many runs, with the context
  // the kernel wants to describe it (no metadata, data_end at the frame's end).
  struct RunInput {
    Bytes in;
    uint32_t ifindex;
    uint32_t repeat;
    struct xdp_md ctx;
  };

  static RunInput ReadRunInput(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RunInput r{GetBytes(info[0], "data"), (uint32_t)GetInteger(info[1], "ingressIfindex", 0, INT32_MAX, 0),
               (uint32_t)GetInteger(info[2], "repeat", 0, UINT32_MAX, 1), {}};
    if (r.in.size > kMaxRunBytes) {
      auto e = Napi::RangeError::New(env, "data must be at most " + std::to_string(kMaxRunBytes) + " bytes, got " +
                                              std::to_string(r.in.size));
      e.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
      throw e;
    }
    r.ctx.ingress_ifindex = r.ifindex;
    r.ctx.data_end = (uint32_t)r.in.size;
    return r;
  }

  void Run(Napi::Env env, int fd, RunInput& r, struct bpf_test_run_opts& opts) {
    opts.data_in = r.in.data;
    opts.data_size_in = (uint32_t)r.in.size;
    opts.repeat = r.repeat;
    if (r.ifindex || (opts.flags & BPF_F_TEST_XDP_LIVE_FRAMES)) {
      opts.ctx_in = &r.ctx;
      opts.ctx_size_in = sizeof r.ctx;
    }
    if (bpf_prog_test_run_opts(fd, &opts) < 0) ThrowErrno(env, errno, "bpf_prog_test_run_opts", name_);
  }

  // testRun(data, ingressIfindex, repeat, dataSizeOut) -> { retval, data, durationNs }
  Napi::Value TestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    RunInput r = ReadRunInput(info);
    uint32_t outSize = (uint32_t)GetInteger(info[3], "dataSizeOut", 0, kMaxRunBytes, r.in.size + 256);
    std::vector<uint8_t> out(outSize);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_out = out.data();
    opts.data_size_out = outSize;
    Run(env, fd, r, opts);
    Napi::Object res = Napi::Object::New(env);
    res.Set("retval", Napi::Number::New(env, opts.retval));
    res.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), std::min(opts.data_size_out, outSize)));
    res.Set("durationNs", Napi::Number::New(env, opts.duration));
    return res;
  }

  // runLive(data, ingressIfindex, repeat, batchSize) -> { durationNs }: BPF_F_TEST_XDP_LIVE_FRAMES, so the verdicts
  // are carried out (XDP_TX leaves by the ingress device, XDP_REDIRECT goes where the program sent it) and nothing
  // comes back but the time. Blocks the calling thread for the whole run, like testRun.
  Napi::Value RunLive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    RunInput r = ReadRunInput(info);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    // The kernel's own limit for a live-frames batch.
    opts.batch_size = (uint32_t)GetInteger(info[3], "batchSize", 0, 256, 0);
    opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
    Run(env, fd, r, opts);
    Napi::Object res = Napi::Object::New(env);
    res.Set("durationNs", Napi::Number::New(env, opts.duration));
    return res;
  }

  std::string name_;
  uint32_t type_ = 0;
  uint32_t id_ = 0;
};

Napi::Object NewProgram(Napi::Env env, int fd, const std::string& name, uint32_t type) {
  return Data(env).programCtor.New(
      {OwnToken(env), Napi::Number::New(env, fd), Napi::String::New(env, name), Napi::Number::New(env, type)});
}

// Not exported: a program handle comes from a loaded object or a pin, never from a descriptor number.
void InitProgram(Napi::Env env, Napi::Object exports) {
  Data(env).programCtor = Napi::Persistent(ProgramWrap::Define(env));
}

}  // namespace flowlb
