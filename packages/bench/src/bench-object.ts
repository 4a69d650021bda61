import { endianness } from 'node:os';
import { BpfObject, type BpfMap, type Link, type Program } from '@flowlb/xdp-core';
import { buildUdpFrame, formatIpv4, onesComplementSum, parseIpv4 } from '@flowlb/testkit';
import { BENCH_BPF_OBJECT } from './context.js';

export type BenchProgramName = 'floor_tx' | 'bare_fwd' | 'gen' | 'sink' | 'mark_drop' | 'pass';

/** Where the generator's clients come from: client i is `firstAddr + i / portsPerAddr`, port `firstPort + i % …`. */
export interface ClientSpread {
  flows: number;
  firstAddr: string;
  firstPort: number;
  portsPerAddr: number;
  /**
   * Instead of filling one address's ports before the next address, spreads consecutive clients over the
   * 2^scatterBits addresses from `firstAddr` (which must start such a block) in a scrambled order, as spoofed
   * random sources arrive, using each address once per round: client i is `firstAddr + (i × GEN_SCATTER_MUL mod
   * 2^scatterBits)`, port `firstPort + ⌊i / 2^scatterBits⌋`. `portsPerAddr` is then not used.
   */
  scatterBits?: number;
}

/** bench.h's GEN_SCATTER_MUL and GEN_SCATTER_BITS_MAX. */
export const GEN_SCATTER_MUL = 2654435761;
export const GEN_SCATTER_BITS_MAX = 24;

/** Client i's address and port under a spread, as gen makes them: what the tests hold gen to. */
export function spreadClient(clients: ClientSpread, i: number): { address: string; port: number } {
  const first = parseIpv4(clients.firstAddr).readUInt32BE(0);
  const bits = clients.scatterBits;
  if (bits) {
    const offset = Number((BigInt(i) * BigInt(GEN_SCATTER_MUL)) & ((1n << BigInt(bits)) - 1n));
    return { address: formatIpv4(u32be(first + offset)), port: clients.firstPort + Math.floor(i / 2 ** bits) };
  }
  return {
    address: formatIpv4(u32be(first + Math.floor(i / clients.portsPerAddr))),
    port: clients.firstPort + (i % clients.portsPerAddr),
  };
}

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function checkSpread(clients: ClientSpread): void {
  const bits = clients.scatterBits;
  if (bits === undefined) return;
  if (!Number.isInteger(bits) || bits < 1 || bits > GEN_SCATTER_BITS_MAX) {
    throw new RangeError(`scatterBits must be an integer from 1 to ${GEN_SCATTER_BITS_MAX}, got ${bits}`);
  }
  const first = parseIpv4(clients.firstAddr).readUInt32BE(0);
  if (first % 2 ** bits !== 0) throw new RangeError(`${clients.firstAddr} does not start a block of 2^${bits} addresses`);
  const lastPort = clients.firstPort + Math.ceil(clients.flows / 2 ** bits) - 1;
  if (lastPort > 65535) throw new RangeError(`${clients.flows} clients over 2^${bits} addresses need ports up to ${lastPort}`);
}

export interface GeneratorFrame {
  srcMac: string;
  dstMac: string;
  dst: { address: string; port: number };
  /** The UDP payload, or its length for filler bytes. */
  payload: number | Uint8Array;
}

/** The generator's template frame and the checksum sums it completes per client (see gen_config in bench.h). */
export function generatorTemplate(frame: GeneratorFrame): { frame: Buffer; head: Buffer; ipSum: number; udpSum: number } {
  const built = buildUdpFrame({
    eth: { src: frame.srcMac, dst: frame.dstMac },
    ip: { src: '0.0.0.0', dst: frame.dst.address, ttl: 64 },
    udp: { srcPort: 0, dstPort: frame.dst.port },
    payload: typeof frame.payload === 'number' ? Buffer.alloc(frame.payload, 0x5a) : frame.payload,
  });
  const ip = built.subarray(14, 34);
  ip.writeUInt16BE(0, 10);
  const udp = built.subarray(34);
  udp.writeUInt16BE(0, 6);
  const pseudo = Buffer.alloc(12);
  parseIpv4(frame.dst.address).copy(pseudo, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udp.length, 10);
  return {
    frame: built,
    head: Buffer.from(built.subarray(0, GEN_TEMPLATE_LEN)),
    ipSum: onesComplementSum(ip),
    udpSum: onesComplementSum(Buffer.concat([pseudo, udp])),
  };
}

/** u32s in host byte order, as the bench maps' keys and values hold them. */
export function u32(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => (endianness() === 'LE' ? b.writeUInt32LE(v >>> 0, i * 4) : b.writeUInt32BE(v >>> 0, i * 4)));
  return b;
}

/** The kernel's largest live-frames batch: fewer flushes per frame. */
export const LIVE_BATCH_MAX = 256;

/**
 * Frames per paced live run at most. A live run of more than one frame costs about 25 ms of wall time on the
 * kernels here whatever its size (measured on 6.18: 41 runs/s of 2 frames, 16/s of 16,384), so a paced sender puts
 * every frame that is due into one run: at 50,000/s that is one run of about 1,300 frames every 25 ms. Those 25 ms
 * go to the kernel adding the program to its XDP dispatcher before the run and removing it after, each change
 * waiting for an RCU grace period; {@link BenchPrograms.holdInDispatcher} avoids them.
 */
export const LIVE_RUN_MAX = 8192;

const ZERO = u32([0]);
/** The frame's first bytes, headers and payload, the generator writes on every run (bench.h). */
const GEN_TEMPLATE_LEN = 80;
/** bench.h's MARK_LEN and MARK_OFF_MAX. */
const MARK_LEN = 32;
const MARK_OFF_MAX = 1023;

/** The bench's own XDP programs (bpf/bench.bpf.c), loaded once per process. */
export class BenchPrograms {
  private constructor(private readonly obj: BpfObject) {}

  static async load(): Promise<BenchPrograms> {
    const obj = BpfObject.open(BENCH_BPF_OBJECT);
    try {
      await obj.load();
    } catch (err) {
      obj.close();
      throw err;
    }
    return new BenchPrograms(obj);
  }

  program(name: BenchProgramName): Program {
    return this.obj.program(name);
  }

  map(name: 'bare_port' | 'gen_cfg' | 'gen_seq' | 'sink_count' | 'mark_cfg' | 'mark_count'): BpfMap {
    return this.obj.map(name);
  }

  /**
   * Keeps a program in the kernel's XDP dispatcher for as long as the returned link is open, by attaching it to
   * `ifname`, a device no traffic reaches. A live run then no longer adds and removes the program around itself:
   * it costs about 20 µs plus its frames instead of 25 ms (measured on 6.18), so a paced sender can run every
   * millisecond and offer an even flow instead of one burst per 25 ms.
   */
  holdInDispatcher(name: BenchProgramName, ifname: string): Link {
    return this.program(name).attachXdp(ifname, { mode: 'native' });
  }

  /** Points bare_fwd at the device it redirects every UDP frame to. */
  setBarePort(ifindex: number): void {
    this.map('bare_port').update(ZERO, u32([ifindex]));
  }

  /** Configures gen and returns the frame to run it on. */
  configureGenerator(frame: GeneratorFrame, clients: ClientSpread): Buffer {
    checkSpread(clients);
    const t = generatorTemplate(frame);
    const first = parseIpv4(clients.firstAddr).readUInt32BE(0);
    const hdr = Buffer.alloc(GEN_TEMPLATE_LEN);
    t.head.copy(hdr);
    this.map('gen_cfg').update(
      ZERO,
      Buffer.concat([
        hdr,
        u32([clients.flows, clients.portsPerAddr, first, clients.firstPort, t.ipSum, t.udpSum, clients.scatterBits ?? 0]),
      ]),
    );
    return t.frame;
  }

  /** Has mark_drop drop UDP datagrams carrying these 32 bytes at `payloadOffset` into their payload. */
  setDropMark(payloadOffset: number, mark: Uint8Array): void {
    if (mark.length !== MARK_LEN) throw new RangeError(`the mark is ${MARK_LEN} bytes, got ${mark.length}`);
    if (!Number.isInteger(payloadOffset) || payloadOffset < 0 || payloadOffset > MARK_OFF_MAX) {
      throw new RangeError(`payloadOffset must be an integer from 0 to ${MARK_OFF_MAX}, got ${payloadOffset}`);
    }
    this.map('mark_cfg').update(ZERO, Buffer.concat([u32([1, payloadOffset]), mark]));
  }

  /** Datagrams mark_drop has dropped, all CPUs summed. */
  markDrops(): number {
    return this.#perCpuSum('mark_count', 0);
  }

  /** Datagrams and bytes the sink has counted, all CPUs summed. */
  sinkCounts(): { packets: number; bytes: number } {
    return { packets: this.#perCpuSum('sink_count', 0), bytes: this.#perCpuSum('sink_count', 1) };
  }

  #perCpuSum(name: 'sink_count' | 'mark_count', key: number): number {
    const m = this.map(name);
    const v = m.lookup(u32([key]));
    if (!v) return 0;
    return m.perCpuValues(v).reduce((sum, b) => sum + Number(endianness() === 'LE' ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0)), 0);
  }

  close(): void {
    this.obj.close();
  }
}
