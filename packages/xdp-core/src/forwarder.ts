import { writeFileSync } from 'node:fs';
import { BpfMapFlowTable } from '@flowlb/flow-table';
import { join } from 'node:path';
import { ensureBpffsDir } from './bpffs.js';
import type { Link } from './link.js';
import type { BpfMap } from './map.js';
import { packageRoot } from './native.js';
import { BpfObject } from './object.js';
import type { Program } from './program.js';
import { STAT_NAMES, sumPerCpu, type XdpStats } from './stats.js';
import { ifIndex, ifName, withNetns } from './system.js';
import type { XdpMode } from './types.js';

/** The compiled flowlb XDP object shipped in this package. */
export const FLOWLB_BPF_OBJECT = join(packageRoot, 'dist', 'flowlb.bpf.o');
export const FLOWLB_PROGRAM = 'flowlb_xdp';

export interface XdpForwarderOptions {
  /** Size of the `flows` map: two entries per flow. Default: the object's compiled-in size. */
  flowsMaxEntries?: number;
  /** A bpffs folder where `flows` and `stats` are pinned, and reused if they are already there. */
  pinDir?: string;
  /** Another build of the object; defaults to the one shipped with the package. */
  objectPath?: string;
  /** Network namespace (name under /run/netns or a path) whose interfaces attach() and detach() use. */
  netns?: string;
}

export interface AttachOptions {
  mode?: XdpMode;
  /**
   * Set `net.ipv4.ip_forward=1` and `net.ipv4.conf.<if>.accept_local=1` (default true). Without them the kernel
   * drops, as a martian, a rewritten packet that the program passes to it while the next hop's neighbour entry
   * is unresolved.
   */
  sysctls?: boolean;
}

export interface Attachment {
  iface: string;
  ifindex: number;
  link: Link;
}

/** The flowlb XDP program with its maps: load, attach to interfaces, fill `flows`, read the counters. */
export class XdpForwarder {
  readonly program: Program;
  /** The flow table: `struct flow_key` → `struct flow_val` (see @flowlb/flow-table for the codec). */
  readonly flows: BpfMap;
  /** `flows` as a typed table of flow pairs. */
  readonly table: BpfMapFlowTable;
  /** Per-CPU counters indexed by `enum flowlb_stat`. */
  readonly statsMap: BpfMap;
  readonly #attachments = new Map<number, Attachment>();
  readonly #netns: string | undefined;
  #closed = false;

  private constructor(program: Program, flows: BpfMap, stats: BpfMap, netns: string | undefined) {
    this.program = program;
    this.flows = flows;
    this.table = new BpfMapFlowTable(flows);
    this.statsMap = stats;
    this.#netns = netns;
  }

  static async load(options: XdpForwarderOptions = {}): Promise<XdpForwarder> {
    const obj = BpfObject.open(options.objectPath ?? FLOWLB_BPF_OBJECT);
    try {
      if (options.flowsMaxEntries !== undefined) obj.setMaxEntries('flows', options.flowsMaxEntries);
      if (options.pinDir) {
        ensureBpffsDir(options.pinDir);
        obj.setPinPath('flows', join(options.pinDir, 'flows'));
        obj.setPinPath('stats', join(options.pinDir, 'stats'));
      }
      await obj.load();
      return new XdpForwarder(obj.program(FLOWLB_PROGRAM), obj.map('flows'), obj.map('stats'), options.netns);
    } finally {
      obj.close();
    }
  }

  #inNetns<T>(fn: () => T): T {
    return this.#netns ? withNetns(this.#netns, fn) : fn();
  }

  /** Attaches the program to each interface; on any failure the ones attached by this call are detached again. */
  attach(ifaces: ReadonlyArray<string | number>, options: AttachOptions = {}): Attachment[] {
    if (this.#closed) throw new Error('the forwarder is closed');
    return this.#inNetns(() => {
      const added: Attachment[] = [];
      try {
        for (const iface of ifaces) {
          const ifindex = ifIndex(iface);
          if (this.#attachments.has(ifindex)) continue;
          const name = typeof iface === 'string' ? iface : ifName(ifindex);
          if (options.sysctls !== false) {
            writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
            writeFileSync(`/proc/sys/net/ipv4/conf/${name}/accept_local`, '1');
          }
          const link = this.program.attachXdp(ifindex, { mode: options.mode ?? 'auto' });
          const a = { iface: name, ifindex, link };
          this.#attachments.set(ifindex, a);
          added.push(a);
        }
      } catch (e) {
        for (const a of added) this.#detachOne(a);
        throw e;
      }
      return added;
    });
  }

  get attachments(): Attachment[] {
    return [...this.#attachments.values()];
  }

  #detachOne(a: Attachment): void {
    this.#attachments.delete(a.ifindex);
    try {
      a.link.detach();
    } finally {
      a.link.close();
    }
  }

  /** Detaches from the given interfaces, or from all. */
  detach(ifaces?: ReadonlyArray<string | number>): void {
    this.#inNetns(() => {
      const targets = ifaces
        ? ifaces.map((i) => this.#attachments.get(ifIndex(i))).filter((a): a is Attachment => !!a)
        : [...this.#attachments.values()];
      for (const a of targets) this.#detachOne(a);
    });
  }

  /** The counters, summed over CPUs. */
  stats(): XdpStats {
    const key = Buffer.alloc(4);
    const out = {} as XdpStats;
    STAT_NAMES.forEach((name, i) => {
      key.writeUInt32LE(i);
      out[name] = sumPerCpu([this.statsMap.lookup(key)]);
    });
    return out;
  }

  /** Detaches everything and releases the handles; pinned maps stay pinned. Closing twice is harmless. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.detach();
    } finally {
      this.program.close();
      this.flows.close();
      this.statsMap.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
