import { existsSync, readdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import {
  BpfMapFlowTable,
  MAX_TARGET_SLOT,
  NEW_CLIENT_RATE_MAX,
  formatIPv4,
  parseIPv4,
  type NewClientLimits,
  type RateLimit,
} from '@flowlb/flow-table';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { ensureBpffsDir } from './bpffs.js';
import { Link } from './link.js';
import { BpfMap } from './map.js';
import { packageRoot } from './native.js';
import { BpfObject } from './object.js';
import type { Program } from './program.js';
import { watchRoutes, type RouteWatch } from './route-watch.js';
import { STAT_NAMES, sumPerCpu, type XdpStats } from './stats.js';
import { applyAttachSysctls, releaseAttachSysctls, restorePinnedSysctls, settleAttachSysctls } from './sysctls.js';
import { ifIndex, ifName, withNetns, xdpAttachment } from './system.js';
import type { XdpMode } from './types.js';
import { vlanWarnings } from './vlan.js';

/** The compiled flowlb XDP object shipped in this package. */
export const FLOWLB_BPF_OBJECT = join(packageRoot, 'dist', 'flowlb.bpf.o');
export const FLOWLB_PROGRAM = 'flowlb_xdp';

/**
 * An object shipped beside it whose program `xdp_pass` (section `xdp`) returns XDP_PASS: what a veth peer needs so
 * that frames sent out of its other end by XDP are delivered (`ip link set dev PEER xdpdrv obj PATH sec xdp`).
 */
export const XDP_PASS_BPF_OBJECT = join(packageRoot, 'dist', 'xdp_pass.bpf.o');
export const XDP_PASS_PROGRAM = 'xdp_pass';

/** Names of what a forwarder pins under its `pinDir`. */
/** `nexthop_ctl` too: a tool can turn the next-hop cache off, or see it dropped, in a running instance. */
const MAP_PINS = ['flows', 'stats', 'target_slots', 'target_stats', 'nexthop_ctl'] as const;
const PROG_PIN = 'prog';
const PROG_PIN_NEXT = 'prog-next';
const LINK_PIN_PREFIX = 'link-';
const BPF_LINK_TYPE_XDP = 6;
/** The maps of the settings the control plane gives per VIP. */
interface VipMaps {
  vips: BpfMap;
  limits: BpfMap;
  helloVerify: BpfMap;
}

/** `FLOWLB_COOKIE_KEY_LEN`: bytes of a SipHash-2-4 key. */
const COOKIE_KEY_LENGTH = 16;
/** `struct flowlb_hello_verify`: current (u32), pad (u32), two keys. */
const HELLO_VERIFY_VALUE_SIZE = 8 + 2 * COOKIE_KEY_LENGTH;

/** The DTLS cookie keys the program makes and checks cookies with (`struct flowlb_hello_verify`). */
export interface HelloVerifyKeys {
  /** Two 16-byte SipHash-2-4 keys; a cookie made with either is accepted. */
  keys: readonly [Uint8Array, Uint8Array];
  /** Which of the two makes new cookies. */
  current: 0 | 1;
}

/** `FLOWLB_VIPS_MAX_DEFAULT`: VIPs the new-client limits can watch. */
const VIPS_MAX = 64;

/** The maps of the per-target counters: `target_slots` (slot → backend) and `target_stats` (per-CPU, by slot). */
interface TargetMaps {
  slots: BpfMap;
  stats: BpfMap;
}

/** `tx_ports` (the interfaces frames may be redirected to) and `nexthop_ctl` (the next-hop cache's switch). */
interface NextHopMaps {
  txPorts: BpfMap;
  ctl: BpfMap;
}

/** `struct flowlb_nexthop_ctl`: gen (u32) and flags (u32), host byte order. */
const NEXTHOP_CTL_SIZE = 8;
const NEXTHOP_CACHE_OFF = 0x1;

function readNextHopCtl(map: BpfMap): { gen: number; flags: number } {
  const v = map.lookup(u32Key(0));
  if (!v) return { gen: 0, flags: 0 };
  return HOST_LE ? { gen: v.readUInt32LE(0), flags: v.readUInt32LE(4) } : { gen: v.readUInt32BE(0), flags: v.readUInt32BE(4) };
}

/** Moves the generation, which drops every cached next hop, and sets the flags `flags` makes of the old ones. */
function changeNextHopCtl(map: BpfMap, flags: (old: number) => number): void {
  const ctl = readNextHopCtl(map);
  const v = Buffer.alloc(NEXTHOP_CTL_SIZE);
  const write = (n: number, at: number): number => (HOST_LE ? v.writeUInt32LE(n >>> 0, at) : v.writeUInt32BE(n >>> 0, at));
  write(ctl.gen + 1, 0);
  write(flags(ctl.flags), 4);
  map.update(u32Key(0), v);
}

function cacheFlags(enabled: boolean): (old: number) => number {
  return (old) => (enabled ? old & ~NEXTHOP_CACHE_OFF : old | NEXTHOP_CACHE_OFF);
}

/** `struct flowlb_target`: addr (u32) and port (u16) in network byte order, pad (u16). */
const TARGET_VALUE_SIZE = 8;
/** The bytes of `struct flowlb_target` that name the endpoint; the pad is not compared. */
const TARGET_ENDPOINT_BYTES = 6;
/** `struct flowlb_target_stats`: u64 counters in host byte order, in this order. */
const TARGET_STAT_FIELDS = ['fwdPackets', 'fwdBytes', 'revPackets', 'revBytes', 'icmpUnreachable'] as const;

const HOST_LE = endianness() === 'LE';

/** A `__u32` map key in host byte order, as the program reads it. */
function u32Key(n: number, out = Buffer.alloc(4)): Buffer {
  if (HOST_LE) out.writeUInt32LE(n);
  else out.writeUInt32BE(n);
  return out;
}

function readU32Host(b: Buffer): number {
  return HOST_LE ? b.readUInt32LE(0) : b.readUInt32BE(0);
}

/**
 * FNV-1a, 32 bits. Where a target's probe for a slot starts, over the 6 endpoint bytes of its `struct flowlb_target`:
 * every process that shares the pinned maps must start at the same slot (see flowlb.h), so this is part of the
 * format and must not change.
 */
function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** The first slot a target's probe tries: 1..MAX_TARGET_SLOT. */
function targetSlotStart(endpoint: Uint8Array): number {
  return (fnv1a32(endpoint.subarray(0, TARGET_ENDPOINT_BYTES)) % MAX_TARGET_SLOT) + 1;
}

/**
 * What the program forwarded for one target slot, summed over CPUs: packets it rewrote and sent on through a
 * forward entry (client to backend) or a reverse entry (the backend's replies), and their IPv4 total lengths.
 */
export interface TargetTraffic {
  target: { address: string; port: number };
  slot: number;
  fwdPackets: number;
  fwdBytes: number;
  revPackets: number;
  revBytes: number;
  /** ICMP destination unreachable messages about its flows (port, host or network unreachable, or prohibited). */
  icmpUnreachable: number;
}

/**
 * The pin name of an interface's link. bpffs refuses '.' in names, and interface names may hold one (eth0.100) but
 * never a ':', so the mapping stays one to one.
 */
function linkPinName(iface: string): string {
  return LINK_PIN_PREFIX + iface.replaceAll('.', ':');
}

function ifaceOfPin(name: string): string {
  return name.slice(LINK_PIN_PREFIX.length).replaceAll(':', '.');
}

export interface XdpForwarderOptions {
  /** Size of the `flows` map: two entries per flow. Default: the object's compiled-in size. */
  flowsMaxEntries?: number;
  /**
   * A bpffs folder where `flows`, `stats`, `target_slots`, `target_stats` and `nexthop_ctl` are pinned, and reused
   * if they are already there.
   */
  pinDir?: string;
  /**
   * With `pinDir`: attach() pins each link there too (`link-<ifname>`), and the program (`prog`). The program then
   * stays attached, forwarding the flows of the pinned map, after close() and after this process ends, until a
   * later forwarder on the same `pinDir` takes the links over (without a gap) or `destroy()`/`removePins()` ends
   * them. A `pinDir` serves one forwarder at a time. Default false: the links end with the forwarder.
   */
  pinLinks?: boolean;
  /** Another build of the object; defaults to the one shipped with the package. */
  objectPath?: string;
  /** Network namespace (name under /run/netns or a path) whose interfaces attach() and detach() use. */
  netns?: string;
}

export interface AttachOptions {
  mode?: XdpMode;
  /**
   * Set, on each interface, what the kernel needs to forward a rewritten packet that the program passes to it while
   * the next hop's neighbour entry is unresolved (default true): `net.ipv4.conf.<if>.forwarding=1`,
   * `accept_local=1`, and `rp_filter=2` (loose) where reverse path filtering is strict; otherwise the packet is not
   * forwarded, or is dropped as a martian. Only what differs is written, and what was written is put back when the
   * program is detached from the interface (by `detach()`, `close()` of links that are not pinned, `destroy()` or
   * `removePins()`), unless someone changed it since. With pinned links the previous values are kept in a file
   * under `$FLOWLB_RUN_DIR/sysctls` (default /run/flowlb/sysctls), for the process that ends the links. False
   * leaves every sysctl alone.
   */
  sysctls?: boolean;
  /** Pin the links under `pinDir` and take over links pinned there before; default: the `pinLinks` load option. */
  pin?: boolean;
}

export interface Attachment {
  iface: string;
  ifindex: number;
  link: Link;
  /** Where the link is pinned; absent when it ends with the forwarder. */
  pinPath?: string;
  /**
   * `created`: a new link. `updated`: the link an earlier forwarder pinned for this interface now runs this
   * forwarder's program; the kernel swapped the programs atomically, so no packet met the interface without one.
   * `replaced`: a pinned link that could not be taken over (see `replaced`) was removed and a new link created.
   */
  how: 'created' | 'updated' | 'replaced';
  /** With `updated`: the program the link ran until now. */
  previousProgId?: number;
  /** With `replaced`: why the pinned link was not taken over. */
  replaced?: string;
  /**
   * What may go wrong on this interface although the program is attached: VLAN devices on top of it while hardware
   * VLAN stripping is on (or cannot be read), with what to do.
   */
  warnings?: string[];
}

export interface PinnedLink {
  /** The interface the pin is named after. */
  iface: string;
  path: string;
  /** 0 when what is pinned there is not an XDP link. */
  linkId: number;
  progId: number;
  /** The interface the link is attached to; 0 once that interface is gone, or the link was detached. */
  ifindex: number;
}

export interface RemovedPins {
  pinDir: string;
  /** The links found pinned there; each is detached now. */
  links: PinnedLink[];
  /** Every pin removed, links included. */
  removed: string[];
  /** Whether the folder is gone; false when it did not exist or holds entries that are not a forwarder's. */
  folderRemoved: boolean;
  /** Entries left in the folder because they are not a forwarder's. */
  leftover: string[];
}

function readPinnedLink(path: string, name: string): { link: Link; pinned: PinnedLink } {
  const link = Link.openPinned(path);
  try {
    const info = link.info();
    const xdp = info.type === BPF_LINK_TYPE_XDP;
    return {
      link,
      pinned: {
        iface: ifaceOfPin(name),
        path,
        linkId: xdp ? info.id : 0,
        progId: xdp ? info.progId : 0,
        ifindex: xdp ? (info.ifindex ?? 0) : 0,
      },
    };
  } catch (error) {
    link.close();
    throw error;
  }
}

function linkPinNames(pinDir: string): string[] {
  try {
    return readdirSync(pinDir)
      .filter((n) => n.startsWith(LINK_PIN_PREFIX))
      .sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
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
  /** Where the maps (and, with `pinLinks`, the links and the program) are pinned. */
  readonly pinDir: string | undefined;
  readonly #pinLinks: boolean;
  readonly #attachments = new Map<number, Attachment>();
  readonly #netns: string | undefined;
  #programPinned = false;
  #closed = false;

  readonly #vips: BpfMap;
  readonly #limits: BpfMap;
  readonly #helloVerify: BpfMap;
  readonly #targetSlots: BpfMap;
  readonly #targetStats: BpfMap;
  readonly #txPorts: BpfMap;
  readonly #nexthopCtl: BpfMap;
  /** Drops the cached next hops on every route, neighbour, link or address change, from the first attach on. */
  #routeWatch: RouteWatch | undefined;
  /** Target slots found or claimed so far, by the hex of the target's `struct flowlb_target`. */
  readonly #slotOf = new Map<string, number>();
  /** Every slot was found taken: targets not claimed yet get none (slots are never released). */
  #slotsFull = false;

  private constructor(
    program: Program,
    flows: BpfMap,
    stats: BpfMap,
    maps: VipMaps,
    targets: TargetMaps,
    nextHops: NextHopMaps,
    options: XdpForwarderOptions,
  ) {
    this.#vips = maps.vips;
    this.#limits = maps.limits;
    this.#helloVerify = maps.helloVerify;
    this.#targetSlots = targets.slots;
    this.#targetStats = targets.stats;
    this.#txPorts = nextHops.txPorts;
    this.#nexthopCtl = nextHops.ctl;
    this.program = program;
    this.flows = flows;
    this.table = new BpfMapFlowTable(flows);
    this.statsMap = stats;
    this.pinDir = options.pinDir;
    this.#pinLinks = options.pinLinks === true;
    this.#netns = options.netns;
  }

  static async load(options: XdpForwarderOptions = {}): Promise<XdpForwarder> {
    if (options.pinLinks && !options.pinDir) throw new TypeError('XdpForwarder.load: pinLinks needs pinDir');
    const obj = BpfObject.open(options.objectPath ?? FLOWLB_BPF_OBJECT);
    try {
      if (options.flowsMaxEntries !== undefined) obj.setMaxEntries('flows', options.flowsMaxEntries);
      if (options.pinDir) {
        ensureBpffsDir(options.pinDir);
        for (const name of MAP_PINS) obj.setPinPath(name, join(options.pinDir, name));
      }
      await obj.load();
      const maps: VipMaps = { vips: obj.map('vips'), limits: obj.map('limits'), helloVerify: obj.map('hello_verify') };
      const targets: TargetMaps = { slots: obj.map('target_slots'), stats: obj.map('target_stats') };
      const nextHops: NextHopMaps = { txPorts: obj.map('tx_ports'), ctl: obj.map('nexthop_ctl') };
      return new XdpForwarder(obj.program(FLOWLB_PROGRAM), obj.map('flows'), obj.map('stats'), maps, targets, nextHops, options);
    } finally {
      obj.close();
    }
  }

  /** The links pinned under `pinDir`, by whichever forwarder pinned them. */
  static pinnedLinks(pinDir: string): PinnedLink[] {
    return linkPinNames(pinDir).map((name) => {
      const { link, pinned } = readPinnedLink(join(pinDir, name), name);
      link.close();
      return pinned;
    });
  }

  /**
   * Ends what a forwarder left pinned under `pinDir`: detaches every pinned link, removes the link, program and map
   * pins, and the folder when nothing else is in it. Needs no loaded program, so it also cleans up after a process
   * that is gone. Nothing there is not an error.
   */
  static removePins(pinDir: string): RemovedPins {
    const result: RemovedPins = { pinDir, links: [], removed: [], folderRemoved: false, leftover: [] };
    if (!existsSync(pinDir)) return result;
    for (const name of linkPinNames(pinDir)) {
      const path = join(pinDir, name);
      let found: ReturnType<typeof readPinnedLink> | undefined;
      try {
        found = readPinnedLink(path, name);
      } catch (error) {
        // Not a BPF object, or one that cannot be inspected: still ours by its name.
        if ((error as NodeJS.ErrnoException).code === 'EPERM') throw error;
      }
      if (found) {
        try {
          if (found.pinned.linkId !== 0) found.link.detach();
        } finally {
          found.link.close();
        }
        result.links.push(found.pinned);
      }
      rmSync(path, { force: true });
      result.removed.push(path);
    }
    // Every link pinned here has ended: what attaching changed goes back, in whichever process attached.
    restorePinnedSysctls(pinDir);
    for (const name of [PROG_PIN, PROG_PIN_NEXT, ...MAP_PINS]) {
      const path = join(pinDir, name);
      if (!existsSync(path)) continue;
      rmSync(path, { force: true });
      result.removed.push(path);
    }
    result.leftover = readdirSync(pinDir).sort();
    if (result.leftover.length === 0) {
      rmdirSync(pinDir);
      result.folderRemoved = true;
    }
    return result;
  }

  #inNetns<T>(fn: () => T): T {
    return this.#netns ? withNetns(this.#netns, fn) : fn();
  }

  /**
   * Attaches the program to each interface. With pinning, a link pinned for the interface by an earlier forwarder
   * is taken over (its program swapped for this one) rather than replaced; see `Attachment.how`. On any failure the
   * links created by this call are detached again; links taken over keep running this program, which forwards the
   * same maps.
   */
  attach(ifaces: ReadonlyArray<string | number>, options: AttachOptions = {}): Attachment[] {
    if (this.#closed) throw new Error('the forwarder is closed');
    const pin = options.pin ?? this.#pinLinks;
    if (pin && !this.pinDir) throw new TypeError('XdpForwarder.attach: pinning links needs a forwarder loaded with pinDir');
    const mode = options.mode ?? 'auto';
    return this.#inNetns(() => {
      const added: Attachment[] = [];
      // Every interface a tx port before the program runs on any of them: a link taken over switches to this program
      // at once, and its frames for the interfaces after it must not find them missing.
      const ports = ifaces.map((iface) => ifIndex(iface)).filter((ifindex) => !this.#attachments.has(ifindex));
      for (const ifindex of ports) this.#putTxPort(ifindex);
      try {
        for (const iface of ifaces) {
          const ifindex = ifIndex(iface);
          if (this.#attachments.has(ifindex)) continue;
          const name = typeof iface === 'string' ? iface : ifName(ifindex);
          if (options.sysctls !== false) applyAttachSysctls(this, { iface: name, ifindex, netns: this.#netns, pinDir: pin ? this.pinDir : undefined });
          const warnings = vlanWarnings(name);
          const a: Attachment = pin
            ? this.#attachPinned(name, ifindex, mode)
            : { iface: name, ifindex, link: this.program.attachXdp(ifindex, { mode }), how: 'created' };
          if (warnings.length > 0) a.warnings = warnings;
          this.#attachments.set(ifindex, a);
          added.push(a);
        }
        if (pin && !this.#programPinned) this.#pinProgram();
        if (added.length > 0) this.#watchRoutes();
      } catch (e) {
        for (const a of added) if (a.how !== 'updated') this.#detachOne(a);
        for (const ifindex of ports) if (!this.#attachments.has(ifindex)) this.#dropTxPort(ifindex);
        // The interface whose attach failed had its sysctls set already.
        settleAttachSysctls(this, this.#attachments.keys());
        throw e;
      }
      return added;
    });
  }

  #attachPinned(iface: string, ifindex: number, mode: XdpMode): Attachment {
    const path = join(this.pinDir!, linkPinName(iface));
    let replaced: string | undefined;
    if (existsSync(path)) {
      const { link: old, pinned } = readPinnedLink(path, linkPinName(iface));
      let adopted = false;
      try {
        replaced = this.#cannotAdopt(pinned, ifindex, mode);
        if (replaced === undefined) {
          old.update(this.program);
          adopted = true;
          return { iface, ifindex, link: old, pinPath: path, how: 'updated', previousProgId: pinned.progId };
        }
        // The kernel refuses a native and a generic program on one interface at once: the old one goes first.
        if (pinned.ifindex === ifindex) old.detach();
      } finally {
        if (!adopted) old.close();
      }
      rmSync(path, { force: true });
    }
    const link = this.program.attachXdp(ifindex, { mode });
    try {
      link.pin(path);
    } catch (error) {
      try {
        link.detach();
      } finally {
        link.close();
      }
      throw error;
    }
    return replaced === undefined
      ? { iface, ifindex, link, pinPath: path, how: 'created' }
      : { iface, ifindex, link, pinPath: path, how: 'replaced', replaced };
  }

  /** Why a pinned link cannot simply be given this program; undefined when it can. */
  #cannotAdopt(pinned: PinnedLink, ifindex: number, mode: XdpMode): string | undefined {
    if (pinned.linkId === 0) return 'what is pinned there is not an XDP link';
    if (pinned.ifindex === 0) return 'its interface is gone (the link is defunct)';
    if (pinned.ifindex !== ifindex) return `it is attached to another interface (index ${pinned.ifindex})`;
    if (mode !== 'auto') {
      const now = xdpAttachment(ifindex).mode;
      if ((now === 'native' || now === 'generic') && now !== mode) return `it runs in ${now} mode, ${mode} was asked for`;
    }
    return undefined;
  }

  /** Pins the program under a temporary name, then renames it over the old pin, so `prog` is never missing. */
  #pinProgram(): void {
    const next = join(this.pinDir!, PROG_PIN_NEXT);
    rmSync(next, { force: true });
    this.program.pin(next);
    renameSync(next, join(this.pinDir!, PROG_PIN));
    this.#programPinned = true;
  }

  get attachments(): Attachment[] {
    return [...this.#attachments.values()];
  }

  #detachOne(a: Attachment): void {
    this.#attachments.delete(a.ifindex);
    this.#dropTxPort(a.ifindex);
    try {
      a.link.detach();
    } finally {
      a.link.close();
      if (a.pinPath) rmSync(a.pinPath, { force: true });
      // Once the link is gone, whether detach() threw or not: the program no longer needs them.
      releaseAttachSysctls(this, a, a.pinPath ? this.pinDir : undefined);
    }
  }

  /** Detaches from the given interfaces, or from all, pinned links included (their pins are removed). */
  detach(ifaces?: ReadonlyArray<string | number>): void {
    this.#inNetns(() => {
      const targets = ifaces
        ? ifaces.map((i) => this.#attachments.get(ifIndex(i))).filter((a): a is Attachment => !!a)
        : [...this.#attachments.values()];
      for (const a of targets) this.#detachOne(a);
    });
  }

  /**
   * Detaches and unpins the links pinned under `pinDir` that this forwarder does not hold: those of interfaces that
   * are gone, and those of interfaces it no longer attaches to. Returns them.
   */
  prunePins(): PinnedLink[] {
    if (!this.pinDir) return [];
    const held = new Set([...this.#attachments.values()].map((a) => a.pinPath));
    const pruned: PinnedLink[] = [];
    for (const name of linkPinNames(this.pinDir)) {
      const path = join(this.pinDir, name);
      if (held.has(path)) continue;
      const { link, pinned } = readPinnedLink(path, name);
      try {
        if (pinned.linkId !== 0 && pinned.ifindex !== 0) link.detach();
      } finally {
        link.close();
      }
      rmSync(path, { force: true });
      pruned.push(pinned);
    }
    return pruned;
  }

  /** The addresses and ports new clients send to, which the new-client limits watch; replaces the ones set before. */
  setVips(vips: ReadonlyArray<{ address: string; port: number }>): void {
    if (vips.length > VIPS_MAX) throw new RangeError(`setVips: at most ${VIPS_MAX} VIPs, got ${vips.length}`);
    const keys = vips.map((v) => {
      if (!Number.isInteger(v.port) || v.port < 1 || v.port > 65535) throw new RangeError(`setVips: port ${String(v.port)} is not a port number`);
      const key = Buffer.alloc(8);
      key.writeUInt32BE(parseIPv4(v.address, 'setVips: address'), 0);
      key.writeUInt16BE(v.port, 4);
      return key;
    });
    const wanted = new Set(keys.map((k) => k.toString('hex')));
    for (const old of [...this.#vips.keys()]) if (!wanted.has(old.toString('hex'))) this.#vips.delete(old);
    const one = Buffer.alloc(4);
    one.writeUInt32LE(1);
    for (const key of keys) this.#vips.update(key, one);
  }

  /** Sets the limits on new clients' datagrams to the VIPs; a limit left out is off. */
  setNewClientLimits(limits: NewClientLimits): void {
    const value = Buffer.alloc(16);
    const put = (limit: RateLimit | undefined, at: number, what: string): void => {
      if (limit === undefined) return;
      const burst = limit.burst ?? 2 * limit.rate;
      for (const [name, n, min] of [['rate', limit.rate, 1], ['burst', burst, 1]] as const) {
        if (!Number.isInteger(n) || n < min || n > NEW_CLIENT_RATE_MAX) {
          throw new RangeError(`setNewClientLimits: ${what}.${name} ${String(n)} is not an integer from ${min} to ${NEW_CLIENT_RATE_MAX}`);
        }
      }
      value.writeUInt32LE(limit.rate, at);
      value.writeUInt32LE(burst, at + 4);
    };
    put(limits.perSource, 0, 'perSource');
    put(limits.perNet24, 8, 'perNet24');
    this.#limits.update(Buffer.alloc(4), value);
  }

  /**
   * Has the program answer ClientHellos to `vip` that bring no valid cookie with a DTLS HelloVerifyRequest of its
   * own (see bpf/include/hello_verify.h), or, with `undefined`, leave them to the control plane again. The cookie
   * is SipHash-2-4 over the layout of @flowlb/mapper-dtls-sni's `encodeCookieInput`: give the keys of its
   * `HelloCookies.periodKeys()` and call again when they rotate, so that the program and the mapper accept the same
   * cookies. The VIP need not be among {@link setVips}.
   */
  setHelloVerify(vip: { address: string; port: number }, keys: HelloVerifyKeys | undefined): void {
    if (!Number.isInteger(vip.port) || vip.port < 1 || vip.port > 65535) throw new RangeError(`setHelloVerify: port ${String(vip.port)} is not a port number`);
    const key = Buffer.alloc(8);
    key.writeUInt32BE(parseIPv4(vip.address, 'setHelloVerify: address'), 0);
    key.writeUInt16BE(vip.port, 4);
    if (keys === undefined) {
      this.#helloVerify.delete(key);
      return;
    }
    if (keys.current !== 0 && keys.current !== 1) throw new RangeError(`setHelloVerify: current ${String(keys.current)} is not 0 or 1`);
    const value = Buffer.alloc(HELLO_VERIFY_VALUE_SIZE);
    value.writeUInt32LE(keys.current, 0);
    keys.keys.forEach((k, i) => {
      if (k.length !== COOKIE_KEY_LENGTH) throw new RangeError(`setHelloVerify: key ${i} has ${k.length} bytes, not ${COOKIE_KEY_LENGTH}`);
      value.set(k, 8 + i * COOKIE_KEY_LENGTH);
    });
    this.#helloVerify.update(key, value);
  }

  /**
   * Lets the program send frames out of `iface` (an index, or a name in the forwarder's netns): a route out of an
   * interface not added here is left to the kernel, whose forwarding works out of any device, instead of an XDP
   * redirect that a device without XDP support would drop. attach() adds the interfaces it attaches to; add another
   * only when it takes XDP frames (a driver with ndo_xdp_xmit, or a veth whose peer runs an XDP program).
   */
  addTxPort(iface: string | number): void {
    if (this.#closed) throw new Error('the forwarder is closed');
    // The kernel resolves the ifindex in the netns of the process that writes it.
    this.#inNetns(() => this.#putTxPort(ifIndex(iface)));
  }

  #watchRoutes(): void {
    if (this.#routeWatch) return;
    // Cached next hops go stale within a second anyway; a watch that cannot be opened only makes that the bound.
    try {
      this.#routeWatch = watchRoutes(() => {
        if (this.#closed) return;
        try {
          this.#bumpNextHopGen();
        } catch {
          // A map write that failed leaves the expiry as the bound; nothing to hand an error to from here.
        }
      }, this.#netns === undefined ? {} : { netns: this.#netns });
    } catch {
      this.#routeWatch = undefined;
    }
  }

  #putTxPort(ifindex: number): void {
    // struct bpf_devmap_val: the ifindex to send to, then the program to run there (none: fd 0).
    const value = Buffer.alloc(8);
    if (HOST_LE) value.writeUInt32LE(ifindex, 0);
    else value.writeUInt32BE(ifindex, 0);
    this.#txPorts.update(u32Key(ifindex), value);
    this.#bumpNextHopGen();
  }

  #dropTxPort(ifindex: number): void {
    this.#txPorts.delete(u32Key(ifindex));
    this.#bumpNextHopGen();
  }

  /** Undoes {@link addTxPort}; an interface that is not there is not an error. */
  removeTxPort(iface: string | number): void {
    if (this.#closed) throw new Error('the forwarder is closed');
    this.#dropTxPort(typeof iface === 'number' ? iface : this.#inNetns(() => ifIndex(iface)));
  }

  /** The interfaces frames may be redirected to, by index. */
  txPorts(): number[] {
    return [...this.#txPorts.keys()].map(readU32Host).sort((a, b) => a - b);
  }

  /**
   * Drops every next hop the program cached, on every CPU at once: the next packet of each flow looks its route up
   * again. Call it when a route, neighbour, link or address changes (the forwarder does, for its netns, while it is
   * attached); cached hops also expire by themselves within a second.
   */
  invalidateNextHops(): void {
    if (this.#closed) throw new Error('the forwarder is closed');
    this.#bumpNextHopGen();
  }

  #bumpNextHopGen(): void {
    changeNextHopCtl(this.#nexthopCtl, (flags) => flags);
  }

  /**
   * The cache's generation: it moves each time the cached next hops are dropped ({@link invalidateNextHops}, a change
   * of tx_ports, or a route, neighbour, link or address change the forwarder saw), so a caller can tell that a change
   * it made has been taken into account.
   */
  get nextHopGeneration(): number {
    return readNextHopCtl(this.#nexthopCtl).gen;
  }

  /** Turns the next-hop cache off (every hit looks its route up, as a benchmark's baseline) or on again (default). */
  setNextHopCache(enabled: boolean): void {
    if (this.#closed) throw new Error('the forwarder is closed');
    changeNextHopCtl(this.#nexthopCtl, cacheFlags(enabled));
  }

  /**
   * {@link setNextHopCache} for the program of another process, through the `nexthop_ctl` it pinned under `pinDir`
   * (a running `flowlb run`, say).
   */
  static setPinnedNextHopCache(pinDir: string, enabled: boolean): void {
    const ctl = BpfMap.openPinned(join(pinDir, 'nexthop_ctl'));
    try {
      changeNextHopCtl(ctl, cacheFlags(enabled));
    } finally {
      ctl.close();
    }
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

  /**
   * The slot of `target` in the program's per-target counters, to give `table.installPair` (or `forwardEntry` and
   * `reverseEntry`) for its flows; a target without one claims the next free slot in `target_slots`. Processes that
   * share the pinned maps get the same slot for the same target: the claim probes from a hash of the endpoint and
   * inserts with BPF_NOEXIST (see flowlb.h), so two processes claiming at once agree, and a slot already in the
   * map is found again. 0 when every slot is taken: the target's flows are then not counted per target. Slots are
   * never released.
   */
  targetSlot(target: { address: string; port: number }): number {
    if (this.#closed) throw new Error('the forwarder is closed');
    if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
      throw new RangeError(`targetSlot: port ${String(target.port)} is not a port number`);
    }
    const value = Buffer.alloc(TARGET_VALUE_SIZE);
    value.writeUInt32BE(parseIPv4(target.address, 'targetSlot: address'), 0);
    value.writeUInt16BE(target.port, 4);
    const id = value.toString('hex');
    const known = this.#slotOf.get(id);
    if (known !== undefined) return known;
    const slot = this.#claimSlot(value);
    if (slot !== 0) this.#slotOf.set(id, slot);
    return slot;
  }

  /** Linear probing from the endpoint's hash: the first slot holding the endpoint, or the first free one, is its. */
  #claimSlot(value: Buffer): number {
    if (this.#slotsFull) return 0;
    const endpoint = value.subarray(0, TARGET_ENDPOINT_BYTES);
    const start = targetSlotStart(value);
    const key = Buffer.alloc(4);
    for (let i = 0; i < MAX_TARGET_SLOT; i++) {
      const slot = ((start - 1 + i) % MAX_TARGET_SLOT) + 1;
      u32Key(slot, key);
      // A lookup first: most slots on the way are taken, and a refused insert costs an exception.
      let held = this.#targetSlots.lookup(key);
      if (held === undefined) {
        try {
          this.#targetSlots.update(key, value, 'noexist');
          return slot;
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          // Another process claimed it between the lookup and the insert: for this target or for another.
          if (code === 'EEXIST') held = this.#targetSlots.lookup(key);
          // Entries at keys that are no slot (written by a tool) can fill the map before the slots are.
          else if (code === 'E2BIG') break;
          else throw error;
        }
      }
      if (held?.subarray(0, TARGET_ENDPOINT_BYTES).equals(endpoint)) return slot;
    }
    this.#slotsFull = true;
    return 0;
  }

  /** What the program forwarded per target: one row per slot claimed in `target_slots` (by any process), by slot. */
  targetStats(): TargetTraffic[] {
    if (this.#closed) throw new Error('the forwarder is closed');
    const rows: TargetTraffic[] = [];
    for (const [key, value] of this.#targetSlots.entries()) {
      const slot = readU32Host(key);
      if (slot < 1 || slot > MAX_TARGET_SLOT || value.length < TARGET_ENDPOINT_BYTES) continue;
      const totals = TARGET_STAT_FIELDS.map(() => 0n);
      const perCpu = this.#targetStats.lookup(key);
      for (const cpu of perCpu ? this.#targetStats.perCpuValues(perCpu) : []) {
        for (let i = 0; i < totals.length; i++) totals[i]! += HOST_LE ? cpu.readBigUInt64LE(8 * i) : cpu.readBigUInt64BE(8 * i);
      }
      const row = { target: { address: formatIPv4(value.readUInt32BE(0)), port: value.readUInt16BE(4) }, slot } as TargetTraffic;
      TARGET_STAT_FIELDS.forEach((name, i) => {
        row[name] = Number(totals[i]);
      });
      rows.push(row);
    }
    return rows.sort((a, b) => a.slot - b.slot);
  }

  /**
   * Releases the handles. Links that are not pinned are detached; pinned links stay attached, running this
   * program on the pinned maps, for the next forwarder to take over (or `destroy`/`removePins` to end). Pinned maps
   * stay pinned. Closing twice is harmless.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const errors: unknown[] = [];
    for (const a of [...this.#attachments.values()]) {
      try {
        if (a.pinPath) {
          this.#attachments.delete(a.ifindex);
          a.link.close();
        } else {
          this.#detachOne(a);
        }
      } catch (error) {
        errors.push(error);
      }
    }
    this.#routeWatch?.close();
    this.program.close();
    this.flows.close();
    this.statsMap.close();
    this.#vips.close();
    this.#limits.close();
    this.#helloVerify.close();
    this.#targetSlots.close();
    this.#targetStats.close();
    this.#txPorts.close();
    this.#nexthopCtl.close();
    if (errors.length > 0) throw errors[0];
  }

  /**
   * Leaves nothing behind: detaches every link, this forwarder's and any other pinned under `pinDir`, removes the
   * pins of links, program and maps (the flows in them are gone then) and the folder, and closes the handles.
   */
  destroy(): RemovedPins | undefined {
    let closing: { error: unknown } | undefined;
    try {
      this.close();
    } catch (error) {
      closing = { error };
    }
    // Even when closing failed: the pins are what keeps the links alive.
    const removed = this.pinDir ? XdpForwarder.removePins(this.pinDir) : undefined;
    if (closing) throw closing.error;
    return removed;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
