import { InitialFlightReader, type FlightLimits, type FlightResult } from './flight-reader.js';

export interface ClientReadersLimits {
  /** Clients whose read state is kept at most. */
  maxClients: number;
  /** Bytes the readers hold (crypto streams being reassembled), over all clients, at most. */
  maxBytes: number;
}

/** As many clients as the balancer keeps waiting by default, and as many bytes as it buffers for them. */
export const DEFAULT_CLIENT_READERS_LIMITS: ClientReadersLimits = Object.freeze({
  maxClients: 10_000,
  maxBytes: 32 * 1024 * 1024,
});

interface Entry {
  reader: InitialFlightReader;
  /** The last datagram read, to tell a continuation from a client that starts over. */
  last: Uint8Array | undefined;
  bytes: number;
}

/**
 * The read state of the clients whose ClientHello is still incomplete, so that each datagram is decrypted once
 * however many calls its client takes: a call with the previous call's datagrams plus new ones reads only the new
 * ones. It is a cache, bounded in clients and in bytes, the least recently used dropped first; a client whose
 * state was dropped, or whose datagrams are not a continuation of the last call's (the same objects, in order), is
 * read again from its first datagram, with the same outcome.
 */
export class ClientReaders {
  readonly #flightLimits: FlightLimits;
  readonly #limits: ClientReadersLimits;
  /** In order of last use, the least recent first. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  /** Datagrams read over all calls (each once, unless its client's state was dropped). */
  datagramsRead = 0;
  /** Packets decrypted over all calls. */
  packetsOpened = 0;

  constructor(flightLimits: FlightLimits = {}, limits: ClientReadersLimits = DEFAULT_CLIENT_READERS_LIMITS) {
    this.#flightLimits = flightLimits;
    this.#limits = limits;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** What the client's datagrams hold, reading only those not read before. */
  read(key: string, packets: readonly Uint8Array[]): FlightResult {
    let entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.#entries.delete(key);
      const n = entry.reader.count;
      if (n > packets.length || (n > 0 && packets[n - 1] !== entry.last)) {
        this.#bytes -= entry.bytes;
        entry = undefined;
      }
    }
    entry ??= { reader: new InitialFlightReader(this.#flightLimits), last: undefined, bytes: 0 };
    const reader = entry.reader;
    const before = reader.count;
    const readBefore = reader.datagramsRead;
    const openedBefore = reader.packetsOpened;
    for (let i = before; i < packets.length; i++) reader.add(packets[i]!);
    this.datagramsRead += reader.datagramsRead - readBefore;
    this.packetsOpened += reader.packetsOpened - openedBefore;
    entry.last = packets[packets.length - 1];
    const bytes = reader.footprint;
    this.#bytes += bytes - entry.bytes;
    entry.bytes = bytes;
    this.#entries.set(key, entry);
    this.#evict();
    return reader.result();
  }

  /** Drops the client's state: it is decided, or the balancer is done with it. */
  forget(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }

  #evict(): void {
    // Checked before iterating: a Map iterator first steps over the slots of entries deleted since the table was
    // last rebuilt, thousands when clients come and go fast.
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
