import dgram from 'node:dgram';
import type { Endpoint } from '@flowlb/flow-table';

export interface BindOptions {
  receiveBufferBytes?: number | undefined;
  /**
   * SO_REUSEADDR, for sockets that are connected right after binding: several of them then share one local port,
   * each receiving only from its own peer (the kernel prefers the connected socket that matches exactly). A socket
   * of another program that did not set it still makes the bind fail; one that did shares the port without a word,
   * which {@link assertUnbound} rules out before the first such socket is bound.
   */
  shareWithConnected?: boolean;
}

/**
 * An IPv4 UDP socket bound to exactly `local`. Resolves once bound; rejects with the bind error (EADDRINUSE when
 * another socket holds the port, EADDRNOTAVAIL when the address is not on this host) and leaves nothing open.
 * The socket has an 'error' listener that hands errors to `onError`, so a late ICMP error never crashes the
 * process.
 */
export function bindUdp(local: Endpoint, onError: (error: Error) => void, options: BindOptions = {}): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({
      type: 'udp4',
      reuseAddr: options.shareWithConnected ?? false,
      ...(options.receiveBufferBytes !== undefined ? { recvBufferSize: options.receiveBufferBytes } : {}),
    });
    const onBindError = (error: Error): void => {
      try {
        socket.close();
      } catch {
        // never bound: nothing to close
      }
      reject(error);
    };
    socket.once('error', onBindError);
    // exclusive: a cluster worker must never share a flow's port with another process.
    socket.bind({ address: local.address, port: local.port, exclusive: true }, () => {
      socket.removeListener('error', onBindError);
      socket.on('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Resolves when no socket at all is bound to `local`, rejecting with EADDRINUSE otherwise: a socket bound without
 * SO_REUSEADDR cannot share the port with any other (one that set SO_REUSEADDR or SO_REUSEPORT, or one bound to
 * 0.0.0.0, included). It is closed again at once.
 */
export async function assertUnbound(local: Endpoint): Promise<void> {
  closeQuietly(await bindUdp(local, () => {}));
}

export function connectUdp(socket: dgram.Socket, remote: Endpoint): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.connect(remote.port, remote.address, () => {
      socket.removeListener('error', onError);
      resolve();
    });
  });
}

/** Closes a socket that may already be closed. */
export function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}

export interface SendOutcome {
  sent: number;
  failed: number;
  /** The first send error, if any. */
  error?: Error;
}

/**
 * Sends every datagram (to `target`, or to the connected peer without one) and calls `done` once, when the last
 * send has completed, with how many went and how many failed. A send that throws counts as failed.
 */
export function sendAll(
  socket: dgram.Socket,
  datagrams: readonly Buffer[],
  target: Endpoint | undefined,
  done: (outcome: SendOutcome) => void,
): void {
  const outcome: SendOutcome = { sent: 0, failed: 0 };
  let left = datagrams.length;
  if (left === 0) {
    done(outcome);
    return;
  }
  const callback = (error: Error | null): void => {
    if (error) {
      outcome.failed++;
      outcome.error ??= error;
    } else {
      outcome.sent++;
    }
    if (--left === 0) done(outcome);
  };
  for (const d of datagrams) {
    try {
      if (target) socket.send(d, target.port, target.address, callback);
      else socket.send(d, callback);
    } catch (error) {
      callback(error as Error);
    }
  }
}
