import { createSocket, type Socket } from 'node:dgram';
import type { UdpEndpoint } from '@flowlb/mapper-api';

export interface Peer {
  endpoint: UdpEndpoint;
  /** Datagrams received so far. */
  received: Buffer[];
  close(): Promise<void>;
}

function bound(socket: Socket, address: string): Promise<UdpEndpoint> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => {
      socket.off('error', reject);
      resolve({ address, port: socket.address().port });
    });
  });
}

function closer(socket: Socket): () => Promise<void> {
  return () => new Promise((resolve) => socket.close(() => resolve()));
}

/** A peer on `address` that answers each datagram with `answer(datagram)` (a string as latin1), or not at all when that gives null. */
export async function udpPeer(
  answer: (datagram: Buffer, from: UdpEndpoint) => Uint8Array | string | null,
  address = '127.0.0.1',
): Promise<Peer> {
  const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  const received: Buffer[] = [];
  socket.on('message', (datagram, from) => {
    received.push(datagram);
    const reply = answer(datagram, { address: from.address, port: from.port });
    if (reply !== null) socket.send(typeof reply === 'string' ? Buffer.from(reply, 'latin1') : reply, from.port, from.address);
  });
  const endpoint = await bound(socket, address);
  return { endpoint, received, close: closer(socket) };
}

/** A port that was bound a moment ago and is closed now: datagrams to it draw an ICMP port unreachable. */
export async function closedPort(address = '127.0.0.1'): Promise<UdpEndpoint> {
  const socket = createSocket('udp4');
  const endpoint = await bound(socket, address);
  await closer(socket)();
  return endpoint;
}

/**
 * UDP handles this process holds open. A closed socket's handle stays listed until libuv's close phase, which can
 * come after the next immediates, so a few turns of the event loop go by before counting.
 */
export async function udpHandles(): Promise<number> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  return process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap').length;
}
