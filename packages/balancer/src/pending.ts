import { TimeoutSet } from '@flowlb/cleaner';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import type { DropReason } from './stats.js';

export interface PendingLimits {
  maxPendingClients: number;
  /** Clients of one IP address waiting at once: one host cannot fill the table on its own. */
  maxPendingPerSource: number;
  maxDatagramsPerClient: number;
  maxBytesPerClient: number;
  maxTotalBytes: number;
  classifyTimeoutMs: number;
}

/**
 * - `idle`: waiting for a datagram (after a `wait` answer) or about to be classified;
 * - `classifying`: a mapper call is running; new datagrams are buffered and the client is classified again with
 *   all of them if the mapper answers `wait`;
 * - `installing`: the mapper said forward and the flow is being set up; new datagrams join the ones to send.
 */
export type PendingState = 'idle' | 'classifying' | 'installing';

/** A client the mapper has not placed yet, with everything it sent so far. */
export class PendingClient {
  readonly key: string;
  readonly endpoint: UdpEndpoint;
  /** When the first datagram arrived (process.hrtime.bigint()). */
  readonly firstAt: bigint;
  datagrams: Buffer[] = [];
  bytes = 0;
  state: PendingState = 'idle';
  /** Datagrams arrived while the mapper was deciding. */
  dirty = false;
  /** Neighbours in the table's arrival order, while the client is in it. */
  older: PendingClient | undefined;
  newer: PendingClient | undefined;

  constructor(key: string, endpoint: UdpEndpoint, firstAt = 0n) {
    this.key = key;
    this.endpoint = endpoint;
    this.firstAt = firstAt;
  }
}

export type PendingAddResult = { client: PendingClient; created: boolean } | { dropped: DropReason };

/**
 * The waiting clients, keyed by their `ip:port` string, with hard limits on how many there are and how much they
 * hold: past any limit a datagram is refused (and the caller counts it), never buffered, so memory stays bounded
 * under any flood. The bound is about maxTotalBytes of payload plus a small fixed cost per buffered datagram, of
 * which there are at most maxPendingClients × maxDatagramsPerClient.
 *
 * Each client has a deadline `classifyTimeoutMs` after its first datagram; later datagrams do not extend it, so a
 * client that keeps trickling datagrams at a mapper that keeps waiting still ends.
 */
export class PendingClients {
  readonly limits: PendingLimits;
  readonly #clients = new Map<string, PendingClient>();
  readonly #deadlines = new TimeoutSet<string, bigint>();
  readonly #timeoutNs: bigint;
  /**
   * Ends of the clients' arrival order. A list rather than the Map's own order: an iterator over a Map first steps
   * over the slots of every entry deleted since the table was last rebuilt, thousands under a flood, and the oldest
   * waiter is looked up for each new client while the table is full.
   */
  #oldest: PendingClient | undefined;
  #newest: PendingClient | undefined;
  /**
   * Clients removed while a mapper call still held their datagrams (timed out, say), with the bytes that call
   * keeps alive. They count against the limits until the call answers, so a mapper that never does cannot make
   * memory grow, and their key takes no datagram meanwhile, so one client never has two calls at once.
   */
  readonly #orphans = new Map<string, number>();
  /** Waiting clients per IP address. */
  readonly #perSource = new Map<string, number>();
  #orphanBytes = 0;
  #bytes = 0;
  #datagrams = 0;
  readonly #onGone: ((client: PendingClient) => void) | undefined;

  /** `onGone`: a client has been removed and no mapper call for it is running any more. */
  constructor(limits: PendingLimits, onGone?: (client: PendingClient) => void) {
    this.#onGone = onGone;
    this.limits = { ...limits };
    this.#timeoutNs = BigInt(Math.round(limits.classifyTimeoutMs * 1e6));
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Bytes buffered for waiting clients, with those that mapper calls of removed clients still hold. */
  get bytes(): number {
    return this.#bytes + this.#orphanBytes;
  }

  /** Removed clients whose mapper call has not answered yet. */
  get orphans(): number {
    return this.#orphans.size;
  }

  get datagrams(): number {
    return this.#datagrams;
  }

  get(key: string): PendingClient | undefined {
    return this.#clients.get(key);
  }

  /** Buffers `datagram` for the client, creating its entry if needed; or says which limit refused it. */
  add(key: string, endpoint: UdpEndpoint, datagram: Buffer, now: bigint): PendingAddResult {
    const len = datagram.length;
    let client = this.#clients.get(key);
    const created = client === undefined;
    if (client === undefined) {
      if (this.#orphans.has(key)) return { dropped: 'mapper-busy' };
      if ((this.#perSource.get(endpoint.address) ?? 0) >= this.limits.maxPendingPerSource) return { dropped: 'source-clients-limit' };
      if (this.#clients.size + this.#orphans.size >= this.limits.maxPendingClients) return { dropped: 'pending-clients-limit' };
    } else if (client.datagrams.length >= this.limits.maxDatagramsPerClient) {
      return { dropped: 'client-datagrams-limit' };
    }
    if ((client?.bytes ?? 0) + len > this.limits.maxBytesPerClient) return { dropped: 'client-bytes-limit' };
    if (this.#bytes + this.#orphanBytes + len > this.limits.maxTotalBytes) return { dropped: 'total-bytes-limit' };
    if (client === undefined) {
      client = new PendingClient(key, endpoint, now);
      this.#clients.set(key, client);
      this.#link(client);
      this.#perSource.set(endpoint.address, (this.#perSource.get(endpoint.address) ?? 0) + 1);
      this.#deadlines.add(key, now + this.#timeoutNs);
    }
    client.datagrams.push(datagram);
    client.bytes += len;
    this.#bytes += len;
    this.#datagrams++;
    return { client, created };
  }

  /** True while `client` is the entry for its key (a timed-out one has been replaced or removed). */
  isCurrent(client: PendingClient): boolean {
    return this.#clients.get(client.key) === client;
  }

  /**
   * Removes the client and hands back its datagrams. A client removed during a mapper call stays charged for
   * what that call holds until {@link settled} is called for it.
   */
  remove(client: PendingClient): Buffer[] {
    if (!this.isCurrent(client)) return [];
    this.#clients.delete(client.key);
    this.#unlink(client);
    this.#deadlines.delete(client.key);
    const fromSource = (this.#perSource.get(client.endpoint.address) ?? 1) - 1;
    if (fromSource > 0) this.#perSource.set(client.endpoint.address, fromSource);
    else this.#perSource.delete(client.endpoint.address);
    const datagrams = client.datagrams;
    this.#bytes -= client.bytes;
    this.#datagrams -= datagrams.length;
    const running = client.state === 'classifying';
    if (running) {
      this.#orphans.set(client.key, client.bytes);
      this.#orphanBytes += client.bytes;
    }
    client.datagrams = [];
    client.bytes = 0;
    if (!running) this.#onGone?.(client);
    return datagrams;
  }

  /**
   * The client that has waited longest for more datagrams (neither being classified nor being installed), to make
   * room for a new one when the table is full: under a flood of first datagrams that never go on, the oldest
   * waiter is a forged one far more often than not, while a real client completes within a round trip.
   */
  oldestWaiting(): PendingClient | undefined {
    // Clients being classified or installed are few: their mapper calls or installs are under way.
    for (let c = this.#oldest; c !== undefined; c = c.newer) if (c.state === 'idle') return c;
    return undefined;
  }

  #link(client: PendingClient): void {
    client.older = this.#newest;
    client.newer = undefined;
    if (this.#newest) this.#newest.newer = client;
    else this.#oldest = client;
    this.#newest = client;
  }

  #unlink(client: PendingClient): void {
    if (client.older) client.older.newer = client.newer;
    else this.#oldest = client.newer;
    if (client.newer) client.newer.older = client.older;
    else this.#newest = client.older;
    client.older = undefined;
    client.newer = undefined;
  }

  /** A mapper call for `client` has answered: if the client was removed meanwhile, what it held is released. */
  settled(client: PendingClient): void {
    if (this.isCurrent(client)) return;
    const bytes = this.#orphans.get(client.key);
    if (bytes === undefined) return;
    this.#orphans.delete(client.key);
    this.#orphanBytes -= bytes;
    this.#onGone?.(client);
  }

  /**
   * Removes and returns the clients whose deadline has passed. A client whose flow is being installed is given
   * one more timeout instead: its decision is made and the install finishes on its own.
   */
  expire(now: bigint): PendingClient[] {
    const out: PendingClient[] = [];
    for (const key of this.#deadlines.expire(now)) {
      const client = this.#clients.get(key);
      if (!client) continue;
      if (client.state === 'installing') {
        this.#deadlines.add(key, now + this.#timeoutNs);
        continue;
      }
      out.push(client);
    }
    return out;
  }

  nextDeadline(): bigint | undefined {
    return this.#deadlines.nextDeadline();
  }

  /** Every client, for shutdown. */
  all(): PendingClient[] {
    return [...this.#clients.values()];
  }
}
