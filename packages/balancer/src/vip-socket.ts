import type dgram from 'node:dgram';
import type { Endpoint } from '@flowlb/flow-table';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { bindUdp, closeQuietly, sendAll, type SendOutcome } from './udp-socket.js';
import { sendSync, type SyncUdpSocketClass } from './xdp-datapath.js';

/**
 * The VIP's receive buffer when none is configured, on the XDP datapath: a burst of new clients (a reconnect storm
 * or a flood) queues here while the slow path catches up. 8 MiB holds about 8,000 small first datagrams (each
 * costs the kernel about 1 KiB of buffer).
 */
export const DEFAULT_VIP_RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024;

export interface VipSocket {
  /** The Node socket, on the userspace datapath, which sends the targets' replies from it. */
  readonly dgram: dgram.Socket | undefined;
  /**
   * The receive buffer asked for, and what the kernel granted (SO_RCVBUF as it reports it: twice the payload bytes
   * it will queue); undefined when none was asked for.
   */
  readonly receiveBuffer: { asked: number; granted: number } | undefined;
  send(to: Endpoint, datagrams: readonly Buffer[], done: (outcome: SendOutcome) => void): void;
  close(): void;
}

export interface VipSocketOptions {
  vip: Endpoint;
  /** @flowlb/xdp-core's sockets: read in batches with recvmmsg. Absent: a Node dgram socket. */
  udp: SyncUdpSocketClass | undefined;
  /** Share the port with the other workers (native sockets only). */
  reusePort: boolean;
  receiveBufferBytes: number | undefined;
  onDatagram(datagram: Buffer, from: UdpEndpoint): void;
  /** After each batch of datagrams read in one go (native sockets only). */
  onBatchEnd?: () => void;
  onError(error: Error): void;
}

/** Binds the VIP. Rejects with the bind error (EADDRINUSE, EADDRNOTAVAIL) and leaves nothing open. */
export async function openVipSocket(o: VipSocketOptions): Promise<VipSocket> {
  if (!o.udp) {
    if (o.reusePort) throw new Error('a VIP shared between workers needs the XDP datapath');
    const socket = await bindUdp(o.vip, o.onError, { receiveBufferBytes: o.receiveBufferBytes });
    socket.on('message', (msg, rinfo) => o.onDatagram(msg, { address: rinfo.address, port: rinfo.port }));
    return {
      dgram: socket,
      receiveBuffer: o.receiveBufferBytes === undefined ? undefined : { asked: o.receiveBufferBytes, granted: socket.getRecvBufferSize() },
      send: (to, datagrams, done) => sendAll(socket, datagrams, to, done),
      close: () => closeQuietly(socket),
    };
  }
  const asked = o.receiveBufferBytes ?? DEFAULT_VIP_RECEIVE_BUFFER_BYTES;
  const socket = o.udp.bind(o.vip, { reusePort: o.reusePort, receiveBufferBytes: asked });
  socket.receive(o.onDatagram, o.onBatchEnd);
  return {
    dgram: undefined,
    receiveBuffer: { asked, granted: socket.receiveBufferBytes() },
    send: (to, datagrams, done) => done(sendSync(socket, to, datagrams)),
    close: () => socket.close(),
  };
}
