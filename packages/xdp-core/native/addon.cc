#include "common.h"

namespace flowlb {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }


static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  // Close every kernel handle still open when the environment (main thread or worker) shuts down; the wrappers
  // themselves may be collected later or never.
  std::shared_ptr<Registry> registry = data->registry;
  env.AddCleanupHook([registry]() {
    for (Closeable* c : registry->live) c->CloseHandle();
  });
  InstallLibbpfPrint();
  InitObject(env, exports);
  InitProgram(env, exports);
  InitLink(env, exports);
  InitMap(env, exports);
  InitSystem(env, exports);
  InitUdp(env, exports);
  return exports;
}

}  // namespace flowlb

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return flowlb::Init(env, exports); }

NODE_API_MODULE(flowlb_xdp_core, InitAddon)
