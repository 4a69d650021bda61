/** What reads one client's datagrams in order, as a mapper's parser does, and says what they hold so far. */
export interface DatagramReader<T> {
  /** Datagrams fed so far. */
  readonly count: number;
  /** Bytes it holds (what it reassembles), for the cache's bound. */
  readonly footprint: number;
  add(datagram: Uint8Array): void;
  result(): T;
}

export interface ClientReadersLimits {
  /** Clients whose read state is kept at most. */
  maxClients: number;
  /** Bytes the readers hold, over all clients, at most. */
  maxBytes: number;
}

/** As many clients as the balancer keeps waiting by default, and as many bytes as it buffers for them. */
export const DEFAULT_CLIENT_READERS_LIMITS: Readonly<ClientReadersLimits> = Object.freeze({ maxClients: 10_000, maxBytes: 32 * 1024 * 1024 });

interface Entry<R> {
  reader: R;
  /** The last datagram read, to tell a continuation from a client that starts over. */
  last: Uint8Array | undefined;
  bytes: number;
}

/**
 * The read state of the clients a mapper has not decided yet, so that each datagram is read once: the balancer
 * calls a mapper with all of a client's datagrams every time, and a call with the previous call's datagrams plus new
 * ones reads only the new ones. It is a cache, bounded in clients and in bytes, the least recently used dropped
 * first; a client whose state was dropped, or whose datagrams are not a continuation of the last call's (the same
 * objects, in order), is read again from its first datagram, with the same outcome.
 */
export class ClientReaders<T, R extends DatagramReader<T> = DatagramReader<T>> {
  readonly #create: () => R;
  readonly #limits: ClientReadersLimits;
  /** In order of last use, the least recent first. */
  readonly #entries = new Map<string, Entry<R>>();
  #bytes = 0;
  /** Datagrams fed to readers over all calls (each once, unless its client's state was dropped). */
  datagramsRead = 0;

  constructor(create: () => R, limits: ClientReadersLimits = DEFAULT_CLIENT_READERS_LIMITS) {
    this.#create = create;
    this.#limits = { maxClients: limits.maxClients, maxBytes: limits.maxBytes };
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** What the client's datagrams hold, reading only those not read before. */
  read(key: string, packets: readonly Uint8Array[]): T {
    let entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.#entries.delete(key);
      const n = entry.reader.count;
      if (n > packets.length || (n > 0 && packets[n - 1] !== entry.last)) {
        this.#bytes -= entry.bytes;
        entry = undefined;
      }
    }
    entry ??= { reader: this.#create(), last: undefined, bytes: 0 };
    const before = entry.reader.count;
    for (let i = before; i < packets.length; i++) entry.reader.add(packets[i]!);
    this.datagramsRead += packets.length - before;
    entry.last = packets[packets.length - 1];
    const result = entry.reader.result();
    const bytes = entry.reader.footprint;
    this.#bytes += bytes - entry.bytes;
    entry.bytes = bytes;
    this.#entries.set(key, entry);
    this.#evict();
    return result;
  }

  /** Drops the client's state: it is decided, or the balancer is done with it. */
  forget(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }

  #evict(): void {
    // Checked before iterating: a Map iterator starts by stepping over the slots of entries deleted since the
    // table was last rebuilt, thousands when clients come and go fast, so a loop started on every call costs
    // microseconds even when it evicts nothing.
    if (this.#withinLimits()) return;
    for (const [key, entry] of this.#entries) {
      this.#entries.delete(key);
      this.#bytes -= entry.bytes;
      if (this.#withinLimits()) return;
    }
  }

  #withinLimits(): boolean {
    return this.#entries.size <= this.#limits.maxClients && this.#bytes <= this.#limits.maxBytes;
  }
}
