import type dgram from 'node:dgram';
import type { Endpoint } from '@flowlb/flow-table';
import { bindUdp, closeQuietly, sendAll, type SendOutcome } from './udp-socket.js';

interface Entry {
  key: string;
  ready: Promise<dgram.Socket>;
  socket: dgram.Socket | undefined;
  leases: number;
  sending: number;
}

/**
 * Short-lived sockets on SNAT:P, for the XDP datapath, which holds no socket per flow: a socket is bound when
 * something must be sent from SNAT:P (a new flow's buffered datagrams, a late datagram of an installed flow),
 * sends, and is closed once nothing else wants it. Everything sent from one SNAT:P while its socket is open goes
 * through that one socket, in order, so two senders never race for the port. Replies from the target are taken
 * by XDP's reverse entry before any socket sees them.
 */
export class SnatSenders {
  readonly #entries = new Map<string, Entry>();
  readonly #onError: (error: Error) => void;
  #closed = false;

  constructor(onError: (error: Error) => void) {
    this.#onError = onError;
  }

  /** Sockets open or being bound. */
  get open(): number {
    return this.#entries.size;
  }

  has(snat: Endpoint): boolean {
    return this.#entries.has(keyOf(snat));
  }

  /**
   * A lease on a socket bound to `snat`, shared with whoever else holds one. Rejects with the bind error when the
   * port is taken by a socket of someone else. Release the lease when done; the socket closes when the last lease
   * is released and its sends have completed.
   */
  async acquire(snat: Endpoint): Promise<SnatLease> {
    const key = keyOf(snat);
    let entry = this.#entries.get(key);
    if (!entry) {
      const created: Entry = { key, ready: bindUdp(snat, this.#onError), socket: undefined, leases: 0, sending: 0 };
      entry = created;
      this.#entries.set(key, created);
      created.ready.then(
        (socket) => {
          if (this.#closed) {
            closeQuietly(socket);
            return;
          }
          created.socket = socket;
          // Sockets here only send; a reply that XDP passed up has no flow socket to go to.
          socket.unref();
        },
        () => {
          if (this.#entries.get(key) === created) this.#entries.delete(key);
        },
      );
    }
    entry.leases++;
    try {
      await entry.ready;
    } catch (error) {
      entry.leases--;
      throw error;
    }
    return new SnatLease(this, entry);
  }

  /** @internal */
  send(entry: Entry, target: Endpoint, datagrams: readonly Buffer[], done: (outcome: SendOutcome) => void): void {
    const socket = entry.socket;
    if (!socket || datagrams.length === 0) {
      done({ sent: 0, failed: datagrams.length });
      return;
    }
    entry.sending += datagrams.length;
    sendAll(socket, datagrams, target, (outcome) => {
      entry.sending -= datagrams.length;
      done(outcome);
      this.#maybeClose(entry);
    });
  }

  /** @internal */
  release(entry: Entry): void {
    entry.leases--;
    this.#maybeClose(entry);
  }

  #maybeClose(entry: Entry): void {
    if (entry.leases > 0 || entry.sending > 0 || !entry.socket) return;
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
    closeQuietly(entry.socket);
    entry.socket = undefined;
  }

  closeAll(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) if (entry.socket) closeQuietly(entry.socket);
    this.#entries.clear();
  }
}

export class SnatLease {
  readonly #senders: SnatSenders;
  readonly #entry: Entry;
  #released = false;

  constructor(senders: SnatSenders, entry: Entry) {
    this.#senders = senders;
    this.#entry = entry;
  }

  send(target: Endpoint, datagrams: readonly Buffer[], done: (outcome: SendOutcome) => void): void {
    this.#senders.send(this.#entry, target, datagrams, done);
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#senders.release(this.#entry);
  }
}

function keyOf(e: Endpoint): string {
  return `${e.address}:${e.port}`;
}
