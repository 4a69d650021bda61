import { endianness } from 'node:os';
import { BpfObject, type BpfMap, type Program } from '@flowlb/xdp-core';
import { buildUdpFrame, onesComplementSum, parseIpv4 } from '@flowlb/testkit';
import { BENCH_BPF_OBJECT } from './context.js';

export type BenchProgramName = 'floor_tx' | 'bare_fwd' | 'gen' | 'sink' | 'pass';

/** Where the generator's clients come from: client i is `firstAddr + i / portsPerAddr`, port `firstPort + i % …`. */
export interface ClientSpread {
  flows: number;
  firstAddr: string;
  firstPort: number;
  portsPerAddr: number;
}

export interface GeneratorFrame {
  srcMac: string;
  dstMac: string;
  dst: { address: string; port: number };
  /** The UDP payload, or its length for filler bytes. */
  payload: number | Uint8Array;
}

/** The generator's template frame and the checksum sums it completes per client (see gen_config in bench.h). */
export function generatorTemplate(frame: GeneratorFrame): { frame: Buffer; headers: Buffer; ipSum: number; udpSum: number } {
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
    headers: Buffer.from(built.subarray(0, GEN_HDR_LEN)),
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
 * every frame that is due into one run: at 50,000/s that is one run of about 1,300 frames every 25 ms.
 */
export const LIVE_RUN_MAX = 8192;

const ZERO = u32([0]);
/** Ethernet + IPv4 + UDP headers the generator writes whole on every run. */
const GEN_HDR_LEN = 42;

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

  map(name: 'bare_port' | 'gen_cfg' | 'gen_seq' | 'sink_count'): BpfMap {
    return this.obj.map(name);
  }

  /** Points bare_fwd at the device it redirects every UDP frame to. */
  setBarePort(ifindex: number): void {
    this.map('bare_port').update(ZERO, u32([ifindex]));
  }

  /** Configures gen and returns the frame to run it on. */
  configureGenerator(frame: GeneratorFrame, clients: ClientSpread): Buffer {
    const t = generatorTemplate(frame);
    const first = parseIpv4(clients.firstAddr).readUInt32BE(0);
    const hdr = Buffer.alloc(GEN_HDR_LEN + 2);
    t.headers.copy(hdr);
    this.map('gen_cfg').update(
      ZERO,
      Buffer.concat([hdr, u32([clients.flows, clients.portsPerAddr, first, clients.firstPort, t.ipSum, t.udpSum])]),
    );
    return t.frame;
  }

  /** Datagrams and bytes the sink has counted, all CPUs summed. */
  sinkCounts(): { packets: number; bytes: number } {
    const m = this.map('sink_count');
    const read = (key: number): number => {
      const v = m.lookup(u32([key]));
      if (!v) return 0;
      return m.perCpuValues(v).reduce((sum, b) => sum + Number(endianness() === 'LE' ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0)), 0);
    };
    return { packets: read(0), bytes: read(1) };
  }

  close(): void {
    this.obj.close();
  }
}
