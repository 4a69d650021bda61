#include "common.h"

namespace flowlb {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

static char kOwnToken = 0;

Napi::Value OwnToken(Napi::Env env) { return Napi::External<char>::New(env, &kOwnToken); }

bool IsOwnToken(const Napi::Value& v) { return v.IsExternal() && v.As<Napi::External<char>>().Data() == &kOwnToken; }

void Registry::ClosedOne() {
  if (--closing == 0 && teardown) {
    napi_async_cleanup_hook_handle h = teardown;
    teardown = nullptr;
    napi_remove_async_cleanup_hook(h);
  }
}

void Tracked::ClosePoll(uv_poll_t* poll) {
  uv_poll_stop(poll);
  auto* reg = new std::shared_ptr<Registry>(registry_);
  if (*reg) (*reg)->closing++;
  poll->data = reg;
  uv_close(reinterpret_cast<uv_handle_t*>(poll), [](uv_handle_t* h) {
    auto* reg = static_cast<std::shared_ptr<Registry>*>(h->data);
    if (*reg) (*reg)->ClosedOne();
    delete reg;
    delete reinterpret_cast<uv_poll_t*>(h);
  });
}

// Closes every kernel handle still open when the environment (main thread or worker) shuts down; the wrappers
// themselves may be collected later or never. Asynchronous because closing a libuv handle is: the environment waits
// for Registry::closing to reach zero before it goes (and, for a worker, before this library is unloaded).
static void Teardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* held = static_cast<std::shared_ptr<Registry>*>(arg);
  std::shared_ptr<Registry> registry = *held;
  delete held;
  registry->teardown = handle;
  // Closing may untrack: walk a copy.
  std::set<Closeable*> live = registry->live;
  for (Closeable* c : live) c->CloseHandle();
  if (registry->closing == 0) {
    registry->teardown = nullptr;
    napi_remove_async_cleanup_hook(handle);
  }
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  auto* held = new std::shared_ptr<Registry>(data->registry);
  if (napi_add_async_cleanup_hook(env, Teardown, held, nullptr) != napi_ok) {
    delete held;
    throw Napi::Error::New(env, "cannot register the environment's cleanup hook");
  }
  InstallLibbpfPrint();
  InitObject(env, exports);
  InitProgram(env, exports);
  InitLink(env, exports);
  InitMap(env, exports);
  InitSystem(env, exports);
  InitUdp(env, exports);
  InitRouteWatch(env, exports);
  return exports;
}

}  // namespace flowlb

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return flowlb::Init(env, exports); }

NODE_API_MODULE(flowlb_xdp_core, InitAddon)
