// UDP sockets for the control plane's slow path, where Node's dgram costs too much per new flow: binding a socket
// to a SNAT port just to prove the port is free and send a flow's first datagrams from it, then closing it, takes
// three syscalls here and tens of microseconds through dgram. The VIP socket reads many datagrams per wakeup
// (recvmmsg) and can share its port with other processes (SO_REUSEPORT), which dgram on Node 20 cannot.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cstdlib>
#include <vector>

#include "common.h"

namespace flowlb {

// Datagrams read per recvmmsg call, and calls per wakeup: a flood is read in bounded slices so that timers and
// other sockets still get their turn.
static constexpr unsigned kRecvBatch = 64;
static constexpr unsigned kRecvRoundsPerWakeup = 8;
// A datagram on the VIP can be a reassembled IP datagram of any size.
static constexpr size_t kSlotBytes = 65536;
// Datagrams per sendmmsg call.
static constexpr unsigned kSendBatch = 64;
// Per received datagram in the meta buffer: IPv4 address (network order), port, length.
static constexpr size_t kMetaBytes = 12;

static sockaddr_in ParseEndpoint(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (!info[i].IsString()) throw Napi::TypeError::New(env, "address must be a string");
  std::string addr = info[i].As<Napi::String>();
  uint64_t port = GetInteger(info[i + 1], "port", 0, 65535);
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    throw Napi::TypeError::New(env, "'" + addr + "' is not an IPv4 address");
  }
  return sa;
}

static std::string EndpointText(const sockaddr_in& sa) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(sa.sin_port));
}

class UdpSocketWrap : public Napi::ObjectWrap<UdpSocketWrap>, public Tracked {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UdpSocket",
                       {
                           InstanceMethod<&UdpSocketWrap::Send>("send"),
                           InstanceMethod<&UdpSocketWrap::StartReceiving>("startReceiving"),
                           InstanceMethod<&UdpSocketWrap::ReceiveBuffer>("receiveBuffer"),
                           InstanceMethod<&UdpSocketWrap::Close>("close"),
                       });
  }

  // new UdpSocket(address, port, flags, receiveBufferBytes): socket(2) and bind(2), synchronously. flags: 1 =
  // SO_REUSEADDR, 2 = SO_REUSEPORT, 4 = set the receive buffer with SO_RCVBUFFORCE (falling back to SO_RCVBUF).
  explicit UdpSocketWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpSocketWrap>(info) {
    Napi::Env env = info.Env();
    sockaddr_in local = ParseEndpoint(info, 0);
    uint32_t flags = (uint32_t)GetInteger(info[2], "flags", 0, 7, 0);
    int64_t rcvbuf = (int64_t)GetInteger(info[3], "receiveBufferBytes", 0, (1ull << 53) - 1, 0);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) ThrowErrno(env, errno, "socket");
    int one = 1;
    auto fail = [&](const char* call, const std::string& detail) {
      int err = errno;
      close(fd);
      ThrowErrno(env, err, call, detail);
    };
    if ((flags & 1) && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) fail("setsockopt", "SO_REUSEADDR");
    if ((flags & 2) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) fail("setsockopt", "SO_REUSEPORT");
    if (rcvbuf > 0) {
      int bytes = rcvbuf > (1 << 30) ? (1 << 30) : static_cast<int>(rcvbuf);
      // Without CAP_NET_ADMIN, SO_RCVBUFFORCE fails and SO_RCVBUF gives what net.core.rmem_max allows.
      if (!((flags & 4) && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0) &&
          setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) < 0) {
        fail("setsockopt", "SO_RCVBUF");
      }
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) fail("bind", EndpointText(local));
    fd_ = fd;
    Track(env);
  }

  ~UdpSocketWrap() override { CloseHandle(); }

  void CloseHandle() override {
    if (poll_) {
      ClosePoll(poll_);
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
    std::free(slots_);
    slots_ = nullptr;
  }

 private:
  int Need(Napi::Env env) {
    if (fd_ < 0) throw Napi::Error::New(env, "the UDP socket is closed");
    return fd_;
  }

  // send(address, port, datagrams[]) -> how many were sent. Throws the errno of the first datagram that could not
  // be sent, with `sent` set, when not all were.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    sockaddr_in to = ParseEndpoint(info, 0);
    if (!info[2].IsArray()) throw Napi::TypeError::New(env, "datagrams must be an array");
    Napi::Array list = info[2].As<Napi::Array>();
    uint32_t n = list.Length();
    // Grown as the elements are checked, not sized by the length up front: a sparse array can claim 2^32-1 elements.
    std::vector<Bytes> datagrams;
    datagrams.reserve(std::min<uint32_t>(n, kSendBatch));
    for (uint32_t i = 0; i < n; i++) datagrams.push_back(GetBytes(list.Get(i), "datagram"));
    uint32_t sent = 0;
    mmsghdr msgs[kSendBatch];
    iovec iovs[kSendBatch];
    while (sent < n) {
      unsigned k = 0;
      for (; k < kSendBatch && sent + k < n; k++) {
        const Bytes& d = datagrams[sent + k];
        iovs[k] = {const_cast<uint8_t*>(d.data), d.size};
        msgs[k] = {};
        msgs[k].msg_hdr.msg_name = &to;
        msgs[k].msg_hdr.msg_namelen = sizeof to;
        msgs[k].msg_hdr.msg_iov = &iovs[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
      }
      int r = sendmmsg(fd, msgs, k, MSG_DONTWAIT);
      if (r <= 0) {
        Napi::Error e = ErrnoError(env, r < 0 ? errno : EAGAIN, "sendmmsg", EndpointText(to));
        e.Set("sent", Napi::Number::New(env, sent));
        throw e;
      }
      sent += static_cast<uint32_t>(r);
    }
    return Napi::Number::New(env, sent);
  }

  // receiveBuffer() -> SO_RCVBUF as the kernel reports it (twice what was asked, for its bookkeeping).
  Napi::Value ReceiveBuffer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int bytes = 0;
    socklen_t len = sizeof bytes;
    if (getsockopt(Need(env), SOL_SOCKET, SO_RCVBUF, &bytes, &len) < 0) ThrowErrno(env, errno, "getsockopt", "SO_RCVBUF");
    return Napi::Number::New(env, bytes);
  }

  // startReceiving(callback): from now on, callback(data, meta, count) runs with the datagrams read in one recvmmsg
  // call: data holds them one after another, meta 12 bytes each (IPv4 address in network order, port, length).
  Napi::Value StartReceiving(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = Need(env);
    if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    if (poll_) throw Napi::Error::New(env, "the UDP socket is already receiving");
    slots_ = static_cast<uint8_t*>(std::malloc(kSlotBytes * kRecvBatch));
    if (!slots_) throw Napi::Error::New(env, "out of memory for the receive buffers");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
    auto* poll = new uv_poll_t;
    int r = uv_poll_init(loop, poll, fd);
    if (r != 0) {
      delete poll;
      ThrowErrno(env, -r, "uv_poll_init");
    }
    poll->data = this;
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "flowlb:udp");
    // The socket is read for as long as it is open, even if JavaScript drops every reference to this object.
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
    poll_ = poll;
    r = uv_poll_start(poll, UV_READABLE, [](uv_poll_t* p, int status, int) {
      if (status == 0) static_cast<UdpSocketWrap*>(p->data)->OnReadable();
    });
    if (r != 0) ThrowErrno(env, -r, "uv_poll_start");
    return env.Undefined();
  }

  void OnReadable() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    mmsghdr msgs[kRecvBatch];
    iovec iovs[kRecvBatch];
    sockaddr_in from[kRecvBatch];
    for (unsigned round = 0; round < kRecvRoundsPerWakeup && fd_ >= 0; round++) {
      for (unsigned i = 0; i < kRecvBatch; i++) {
        iovs[i] = {slots_ + i * kSlotBytes, kSlotBytes};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(fd_, msgs, kRecvBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;  // EAGAIN, or an error the next wakeup will meet again (ICMP errors are not enabled)
      size_t total = 0;
      for (int i = 0; i < n; i++) total += msgs[i].msg_len;
      Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::New(env, total);
      Napi::Buffer<uint8_t> meta = Napi::Buffer<uint8_t>::New(env, kMetaBytes * n);
      size_t off = 0;
      for (int i = 0; i < n; i++) {
        uint32_t len = msgs[i].msg_len;
        memcpy(data.Data() + off, slots_ + i * kSlotBytes, len);
        off += len;
        uint8_t* m = meta.Data() + kMetaBytes * i;
        memcpy(m, &from[i].sin_addr.s_addr, 4);
        uint32_t port = ntohs(from[i].sin_port);
        memcpy(m + 4, &port, 4);
        memcpy(m + 8, &len, 4);
      }
      try {
        callback_.MakeCallback(Value(), {data, meta, Napi::Number::New(env, n)}, *context_);
      } catch (const Napi::Error& e) {
        // An exception in the callback is the process's to handle, as for any other event.
        napi_fatal_exception(env, e.Value());
        return;
      }
      if (static_cast<unsigned>(n) < kRecvBatch) return;
    }
  }

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
  uint8_t* slots_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::ObjectReference self_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

void InitUdp(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = UdpSocketWrap::Define(env);
  exports.Set("UdpSocket", ctor);
}

}  // namespace flowlb
