// Changes to the links, neighbours, IPv4 addresses and IPv4 routes of one network namespace, from the kernel's
// rtnetlink multicast groups. JavaScript learns only which kinds changed, once per wakeup: it re-reads what it needs,
// so a burst of changes costs one call. 'overrun' means the socket's buffer overflowed and changes were lost, so
// everything has to be re-read.
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"

namespace flowlb {

enum Kind : unsigned { kLink = 1, kNeigh = 2, kAddr = 4, kRoute = 8, kOverrun = 16 };

static const struct {
  unsigned bit;
  const char* name;
} kKindNames[] = {{kLink, "link"}, {kNeigh, "neigh"}, {kAddr, "addr"}, {kRoute, "route"}, {kOverrun, "overrun"}};

static unsigned KindOf(uint16_t type) {
  switch (type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return kLink;
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
      return kNeigh;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      return kAddr;
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      return kRoute;
    default:
      return 0;
  }
}

// Datagrams read per wakeup at most, so that a storm of changes still lets timers and sockets have their turn; the
// poll fires again for the rest.
static constexpr unsigned kMaxReadsPerWakeup = 1024;

class RouteWatchWrap : public Napi::ObjectWrap<RouteWatchWrap>, public Tracked {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RouteWatch",
                       {
                           InstanceMethod<&RouteWatchWrap::Close>("close"),
                           InstanceMethod<&RouteWatchWrap::Ref>("ref"),
                           InstanceMethod<&RouteWatchWrap::Unref>("unref"),
                       });
  }

  // new RouteWatch(callback): the socket belongs to the network namespace of the calling thread, for good.
  explicit RouteWatchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RouteWatchWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) ThrowErrno(env, errno, "socket", "NETLINK_ROUTE");
    sockaddr_nl sa = {};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      int err = errno;
      close(fd);
      ThrowErrno(env, err, "bind", "NETLINK_ROUTE");
    }
    auto* poll = new uv_poll_t;
    int r = uv_poll_init(loop, poll, fd);
    if (r != 0) {
      delete poll;
      close(fd);
      ThrowErrno(env, -r, "uv_poll_init");
    }
    fd_ = fd;
    poll_ = poll;
    poll->data = this;
    Track(env);
    r = uv_poll_start(poll, UV_READABLE, OnPoll);
    if (r != 0) {
      CloseHandle();
      Untrack();
      ThrowErrno(env, -r, "uv_poll_start");
    }
    // A watcher alone does not keep the process running, like an unref'd timer.
    uv_unref(reinterpret_cast<uv_handle_t*>(poll));
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "flowlb:route-watch");
    // Watching goes on until close(), even if JavaScript drops every reference to this object.
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
  }

  ~RouteWatchWrap() override { CloseHandle(); }

  void CloseHandle() override {
    if (poll_) {
      ClosePoll(poll_);
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  static void OnPoll(uv_poll_t* p, int status, int) { static_cast<RouteWatchWrap*>(p->data)->OnReadable(status); }

  void OnReadable(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    unsigned seen = 0;
    int failure = 0;
    const char* failedCall = "recvfrom";
    alignas(nlmsghdr) uint8_t buf[32768];
    for (unsigned i = 0; i < kMaxReadsPerWakeup; i++) {
      sockaddr_nl from = {};
      socklen_t fromLen = sizeof from;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fromLen);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        // The kernel dropped notifications for want of room: the caller must re-read everything.
        if (errno == ENOBUFS) {
          seen |= kOverrun;
          continue;
        }
        failure = errno;
        break;
      }
      // Only the kernel speaks for its tables; a privileged process could send to the groups too.
      if (from.nl_pid != 0) continue;
      int len = (int)std::min<size_t>((size_t)n, sizeof buf);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        seen |= KindOf(h->nlmsg_type);
      }
    }
    if (seen) {
      Napi::Array kinds = Napi::Array::New(env);
      uint32_t k = 0;
      for (const auto& kn : kKindNames) {
        if (seen & kn.bit) kinds.Set(k++, Napi::String::New(env, kn.name));
      }
      if (!Deliver([&] { callback_.MakeCallback(Value(), {kinds}, *context_); })) return;
    }
    // The callback may have closed the watcher.
    if (fd_ < 0) return;
    // libuv reports a pending socket error (POLLERR) as UV_EBADF and stops polling. On this socket that error is the
    // ENOBUFS the reads above have just taken: polling resumes.
    if (status < 0 && !failure) {
      int r = uv_poll_start(poll_, UV_READABLE, OnPoll);
      if (r != 0) {
        failure = -r;
        failedCall = "uv_poll_start";
      }
    }
    if (failure) {
      // Not expected from a netlink socket; polling on would spin, so the watcher stops and the error is the
      // process's to handle, as an 'error' event nobody listens to would be.
      CloseHandle();
      Untrack();
      Napi::Error e = ErrnoError(env, failure, failedCall, "NETLINK_ROUTE");
      self_.Reset();
      napi_fatal_exception(env, e.Value());
    }
  }

  template <class F>
  bool Deliver(F&& call) {
    try {
      call();
      return true;
    } catch (const Napi::Error& e) {
      // An exception in the callback is the process's to handle, as for any other event.
      napi_fatal_exception(Env(), e.Value());
      return false;
    }
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  // Closing twice is harmless.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    Untrack();
    callback_.Reset();
    self_.Reset();
    context_.reset();
    return info.Env().Undefined();
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::ObjectReference self_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

void InitRouteWatch(Napi::Env env, Napi::Object exports) { exports.Set("RouteWatch", RouteWatchWrap::Define(env)); }

}  // namespace flowlb
