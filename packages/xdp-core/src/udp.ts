import { native, type NativeUdpSocket } from './native.js';

export interface UdpEndpointLike {
  address: string;
  port: number;
}

export interface UdpBindOptions {
  /** SO_REUSEADDR. Off by default: a bind then fails with EADDRINUSE wherever another socket holds the port. */
  reuseAddr?: boolean;
  /** SO_REUSEPORT: processes that all set it share the port, the kernel spreading clients over them by their address. */
  reusePort?: boolean;
  /**
   * Receive buffer to ask for, in bytes. As root (CAP_NET_ADMIN) it is set with SO_RCVBUFFORCE, past
   * net.core.rmem_max; otherwise the kernel caps it there. {@link UdpSocket.receiveBufferBytes} says what was had.
   */
  receiveBufferBytes?: number;
}

const REUSE_ADDR = 1;
const REUSE_PORT = 2;
const FORCE_RCVBUF = 4;
/** Bytes per datagram in the native layer's meta buffer: IPv4 address (network order), port and length (host order). */
const META_BYTES = 12;

/**
 * An IPv4 UDP socket whose work happens in synchronous syscalls: bind on creation, `send` of many datagrams in one
 * sendmmsg, and reads of many datagrams per wakeup with recvmmsg. For the control plane's slow path, where a socket
 * is bound to a SNAT port only to prove it free and send a flow's first datagrams, and for a VIP socket shared by
 * worker processes. Errors are like Node's system errors (`code`, `errno`, `syscall`).
 */
export class UdpSocket {
  readonly #raw: NativeUdpSocket;
  readonly local: UdpEndpointLike;
  #closed = false;

  private constructor(raw: NativeUdpSocket, local: UdpEndpointLike) {
    this.#raw = raw;
    this.local = local;
  }

  /** Creates a socket bound to `local`; throws EADDRINUSE when another socket holds it (and reuse does not apply). */
  static bind(local: UdpEndpointLike, options: UdpBindOptions = {}): UdpSocket {
    const flags = (options.reuseAddr ? REUSE_ADDR : 0) | (options.reusePort ? REUSE_PORT : 0) | FORCE_RCVBUF;
    const rcvbuf = options.receiveBufferBytes ?? 0;
    if (!Number.isSafeInteger(rcvbuf) || rcvbuf < 0) {
      throw new RangeError(`receiveBufferBytes must be a non-negative integer, got ${String(options.receiveBufferBytes)}`);
    }
    const raw = new (native().UdpSocket)(local.address, local.port, flags, rcvbuf);
    return new UdpSocket(raw, { address: local.address, port: local.port });
  }

  /**
   * Sends every datagram to `to`, in order, and returns how many went. Throws the error of the first one that could
   * not be sent (a full send buffer: EAGAIN), with `sent` on the error.
   */
  send(to: UdpEndpointLike, datagrams: readonly Uint8Array[]): number {
    return this.#raw.send(to.address, to.port, datagrams);
  }

  /**
   * Delivers each datagram that arrives to `onDatagram`, and calls `onBatchEnd` after each batch read in one go,
   * so that work the datagrams caused can be done once per batch. Datagrams are views of one buffer per batch.
   */
  receive(onDatagram: (datagram: Buffer, from: UdpEndpointLike) => void, onBatchEnd?: () => void): void {
    this.#raw.startReceiving((data, meta, count) => {
      const lens = new Uint32Array(meta.buffer, meta.byteOffset, count * (META_BYTES / 4));
      let offset = 0;
      for (let i = 0; i < count; i++) {
        const m = i * META_BYTES;
        const address = `${meta[m]}.${meta[m + 1]}.${meta[m + 2]}.${meta[m + 3]}`;
        const port = lens[i * 3 + 1]!;
        const len = lens[i * 3 + 2]!;
        onDatagram(data.subarray(offset, offset + len), { address, port });
        offset += len;
      }
      onBatchEnd?.();
    });
  }

  /** SO_RCVBUF as the kernel reports it: about twice the bytes of payload the socket can queue. */
  receiveBufferBytes(): number {
    return this.#raw.receiveBuffer();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closing twice is harmless. */
  close(): void {
    this.#closed = true;
    this.#raw.close();
  }
}
