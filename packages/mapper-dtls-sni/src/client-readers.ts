import { ClientHelloReader, type ParseOptions } from './parser.js';
import type { ParseResult } from './result.js';

export interface ClientReadersLimits {
  /** Clients whose parse state is kept at most. */
  maxClients: number;
  /** Declared message bytes of the hellos being reassembled, over all clients, at most. */
  maxBytes: number;
}

/** As many clients as the balancer keeps waiting by default, and as many bytes as it buffers for them. */
export const DEFAULT_CLIENT_READERS_LIMITS: ClientReadersLimits = { maxClients: 10_000, maxBytes: 32 * 1024 * 1024 };

interface Entry {
  reader: ClientHelloReader;
  /** The last datagram read, to tell a continuation from a client that starts over. */
  last: Uint8Array | undefined;
  bytes: number;
}

/**
 * The parse state of the clients whose hellos are still incomplete, so that each datagram is read once: a call
 * with the datagrams of the previous call plus new ones reads only the new ones. It is a cache, bounded in clients
 * and in bytes with the least recently used dropped first; a client whose state was dropped, or whose datagrams
 * are not a continuation of the last call's (the same objects, in order), is read from its first datagram again.
 */
export class ClientReaders {
  readonly #options: ParseOptions;
  readonly #limits: ClientReadersLimits;
  /** In order of last use, the least recent first. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  /** Datagrams read over all calls. */
  datagramsRead = 0;

  constructor(options: ParseOptions = {}, limits: ClientReadersLimits = DEFAULT_CLIENT_READERS_LIMITS) {
    this.#options = options;
    this.#limits = limits;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** What the client's datagrams hold, reading only those not read before. */
  read(key: string, packets: readonly Uint8Array[]): ParseResult {
    let entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key);
      const n = entry.reader.count;
      if (n > packets.length || (n > 0 && packets[n - 1] !== entry.last)) {
        this.#bytes -= entry.bytes;
        entry = undefined;
      }
    }
    entry ??= { reader: new ClientHelloReader(this.#options), last: undefined, bytes: 0 };
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
    if (!entry) return;
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
