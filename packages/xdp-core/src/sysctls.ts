import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ifIndex, withNetns } from './system.js';

/**
 * The kernel settings the XDP program relies on for one interface, and putting back what attaching changed.
 *
 * A packet of a known flow whose next hop has no neighbour entry yet is rewritten by the program and passed to the
 * kernel to forward. The kernel then needs, on the interface it arrived on: `forwarding` (IPv4 decides per ingress
 * device, so the global `ip_forward`, which flips every interface, is not needed), `accept_local` (the rewritten
 * source is one of this host's addresses), and reverse path filtering that is not strict (the source is a local
 * address whose route is not through the ingress interface, so strict mode drops it as a martian; loose mode only asks
 * that it be reachable at all).
 */

/** Where the IPv4 sysctls of the calling thread's network namespace are. */
export const PROC_SYS_IPV4 = '/proc/sys/net/ipv4';

/** A value attach() wrote and the value it replaced. */
export interface SysctlChange {
  /** The path below net/ipv4, e.g. `conf/eth0/forwarding`; a dot in an interface name stays a dot here. */
  key: string;
  previous: string;
  written: string;
}

export interface RestoreReport {
  /** Set back to their previous values. */
  restored: SysctlChange[];
  /** Left as they are: changed by someone else since (`current` differs from what was written), or gone. */
  left: Array<SysctlChange & { current: string | undefined; why: string }>;
}

export function readSysctl(key: string, procRoot: string = PROC_SYS_IPV4): string | undefined {
  try {
    return readFileSync(join(procRoot, key), 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function writeSysctl(key: string, value: string, procRoot: string): void {
  writeFileSync(join(procRoot, key), value);
}

/**
 * `rp_filter` as the kernel applies it to packets arriving on `iface`: the larger of `conf/all` and the interface's
 * own value (0 off, 1 strict, 2 loose). Undefined when either cannot be read.
 */
export function effectiveRpFilter(iface: string, procRoot: string = PROC_SYS_IPV4): { all: number; own: number; effective: number } | undefined {
  const all = Number(readSysctl('conf/all/rp_filter', procRoot));
  const own = Number(readSysctl(`conf/${iface}/rp_filter`, procRoot));
  if (!Number.isInteger(all) || !Number.isInteger(own)) return undefined;
  return { all, own, effective: Math.max(all, own) };
}

/** What `iface` needs changed, as `key → value`; nothing for what already holds (through `conf/all` included). */
export function neededSysctls(iface: string, procRoot: string = PROC_SYS_IPV4): Array<{ key: string; value: string }> {
  const conf = `conf/${iface}`;
  const forwarding = readSysctl(`${conf}/forwarding`, procRoot);
  if (forwarding === undefined) {
    throw Object.assign(new Error(`${join(procRoot, conf)} does not exist: no IPv4 interface ${iface} in this network namespace`), { code: 'ENOENT' });
  }
  const needed: Array<{ key: string; value: string }> = [];
  // The kernel reads forwarding per device alone; conf/all only copies itself into every device when written.
  if (forwarding !== '1') needed.push({ key: `${conf}/forwarding`, value: '1' });
  // The kernel ORs conf/all and the device's own accept_local.
  if (readSysctl('conf/all/accept_local', procRoot) !== '1' && readSysctl(`${conf}/accept_local`, procRoot) !== '1') {
    needed.push({ key: `${conf}/accept_local`, value: '1' });
  }
  // Loose on the interface is enough even when conf/all is strict: the larger of the two counts.
  if (effectiveRpFilter(iface, procRoot)?.effective === 1) needed.push({ key: `${conf}/rp_filter`, value: '2' });
  return needed;
}

/**
 * Sets what `iface` needs (see {@link neededSysctls}) and returns what it changed. All or nothing: when a write
 * fails, what was written before it is put back and the error is thrown.
 */
export function applyInterfaceSysctls(iface: string, procRoot: string = PROC_SYS_IPV4): SysctlChange[] {
  const changes: SysctlChange[] = [];
  try {
    for (const { key, value } of neededSysctls(iface, procRoot)) {
      const previous = readSysctl(key, procRoot) ?? '';
      writeSysctl(key, value, procRoot);
      changes.push({ key, previous, written: value });
    }
  } catch (error) {
    restoreSysctlChanges(changes, procRoot);
    throw error;
  }
  return changes;
}

/**
 * Puts back the previous values of `changes`, in reverse order, where each still holds what was written; a value
 * someone changed since is theirs now and stays.
 */
export function restoreSysctlChanges(changes: readonly SysctlChange[], procRoot: string = PROC_SYS_IPV4): RestoreReport {
  const report: RestoreReport = { restored: [], left: [] };
  for (const c of [...changes].reverse()) {
    let current: string | undefined;
    try {
      current = readSysctl(c.key, procRoot);
      if (current === undefined) {
        report.left.push({ ...c, current, why: 'it no longer exists (the interface is gone)' });
      } else if (current !== c.written) {
        report.left.push({ ...c, current, why: `it was changed to ${current} since` });
      } else {
        writeSysctl(c.key, c.previous, procRoot);
        report.restored.push(c);
      }
    } catch (error) {
      report.left.push({ ...c, current, why: `it cannot be written: ${(error as Error).message}` });
    }
  }
  return report;
}

/** A network namespace: its identity, and a path that enters it when one is known. */
export interface NetnsRef {
  /** `dev:inode` of the namespace, as stat reports it for /proc/thread-self/ns/net. */
  id: string;
  path?: string;
}

function netnsIdOf(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** The identity of the calling thread's network namespace (which `withNetns` moves). */
export function currentNetnsId(): string {
  const id = netnsIdOf('/proc/thread-self/ns/net');
  if (id === undefined) throw new Error('cannot read /proc/thread-self/ns/net');
  return id;
}

/**
 * A path that enters the namespace `id` from elsewhere: a name under /run/netns (a process started by `ip netns exec
 * NAME` was given none), or the one of pid 1 for the host's own.
 */
function findNetnsPath(id: string): string | undefined {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    // no named namespaces
  }
  for (const path of [...names.sort().map((name) => join('/run/netns', name)), '/proc/1/ns/net']) {
    if (netnsIdOf(path) === id) return path;
  }
  return undefined;
}

function netnsPath(netns: string): string {
  return netns.includes('/') ? netns : `/run/netns/${netns}`;
}

/**
 * Runs `fn` in the namespace `ref`: here when the calling thread is in it, else through its path when that still
 * leads to it. Undefined when the namespace cannot be reached (it is gone, or was never given a path).
 */
function inNetnsOf<T>(ref: NetnsRef, fn: () => T): { value: T } | undefined {
  if (currentNetnsId() === ref.id) return { value: fn() };
  if (ref.path !== undefined && netnsIdOf(ref.path) === ref.id) return { value: withNetns(ref.path, fn) };
  return undefined;
}

/** What attaching to one interface changed, as the state file keeps it. */
export interface InterfaceSysctls {
  iface: string;
  ifindex: number;
  netns: NetnsRef;
  changes: SysctlChange[];
}

/** The state file of one pin folder. */
export interface SysctlState {
  version: 1;
  pinDir: string;
  interfaces: InterfaceSysctls[];
}

/**
 * Where the previous values of pinned attachments are kept: bpffs holds only BPF objects, and the values must
 * outlive the process as pinned links do. /run is cleared at boot, as bpffs is. `FLOWLB_RUN_DIR` moves it, as it
 * moves the run files of `flowlb run`.
 */
export function sysctlStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.FLOWLB_RUN_DIR ?? '/run/flowlb', 'sysctls');
}

/** The state file of `pinDir`: named by a hash of its absolute path, which may be long and hold any character. */
export function sysctlStateFile(pinDir: string, dir: string = sysctlStateDir()): string {
  return join(dir, `${createHash('sha256').update(resolve(pinDir)).digest('hex').slice(0, 32)}.json`);
}

function isChange(c: unknown): c is SysctlChange {
  const o = c as SysctlChange;
  return !!o && typeof o.key === 'string' && typeof o.previous === 'string' && typeof o.written === 'string' && o.key.startsWith('conf/') && !o.key.split('/').includes('..');
}

function isEntry(e: unknown): e is InterfaceSysctls {
  const o = e as InterfaceSysctls;
  return (
    !!o &&
    typeof o.iface === 'string' &&
    typeof o.ifindex === 'number' &&
    typeof o.netns?.id === 'string' &&
    (o.netns.path === undefined || typeof o.netns.path === 'string') &&
    Array.isArray(o.changes) &&
    o.changes.every(isChange)
  );
}

/** The state file of `pinDir`; undefined when there is none, or it is not one of ours (nothing in it is trusted). */
export function readSysctlState(pinDir: string, dir: string = sysctlStateDir()): SysctlState | undefined {
  let text: string;
  try {
    text = readFileSync(sysctlStateFile(pinDir, dir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const s = JSON.parse(text) as SysctlState;
    if (s.version !== 1 || s.pinDir !== resolve(pinDir) || !Array.isArray(s.interfaces) || !s.interfaces.every(isEntry)) return undefined;
    return s;
  } catch {
    return undefined;
  }
}

/**
 * Replaces the state file of `state.pinDir` in one rename, so that a reader never sees half of it; with no
 * interface left the file is removed.
 */
export function writeSysctlState(state: SysctlState, dir: string = sysctlStateDir()): void {
  const file = sysctlStateFile(state.pinDir, dir);
  if (state.interfaces.length === 0) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, `${JSON.stringify({ ...state, pinDir: resolve(state.pinDir) }, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}

/** The ifindex is what tells an interface from a later one of the same name; a tree other than /proc has no such. */
function sameInterface(iface: string, ifindex: number, procRoot: string): boolean {
  if (procRoot !== PROC_SYS_IPV4) return true;
  try {
    return ifIndex(iface) === ifindex;
  } catch {
    return false;
  }
}

function restoreEntry(entry: InterfaceSysctls, procRoot: string): RestoreReport {
  const gone = (why: string): RestoreReport => ({ restored: [], left: entry.changes.map((c) => ({ ...c, current: undefined, why })) });
  const r = inNetnsOf(entry.netns, () =>
    sameInterface(entry.iface, entry.ifindex, procRoot) ? restoreSysctlChanges(entry.changes, procRoot) : gone(`${entry.iface} is gone or is another interface now`),
  );
  return r?.value ?? gone('its network namespace is gone or cannot be entered');
}

/** What one forwarder changed for an interface it attached to, until it detaches. */
interface Held {
  entry: InterfaceSysctls;
  /** With pinned links: the folder whose state file holds the entry, and the keys this attach added to it. */
  pinDir: string | undefined;
  addedToFile: string[];
  stateDir: string;
  procRoot: string;
}

const held = new WeakMap<object, Map<number, Held>>();

export interface AttachSysctlsTarget {
  iface: string;
  ifindex: number;
  /** The namespace the forwarder works in (a name under /run/netns or a path); absent: the caller's. */
  netns?: string | undefined;
  /** With a pinned link: its pin folder, by which the previous values are kept in a file for later processes. */
  pinDir?: string | undefined;
  stateDir?: string;
  procRoot?: string;
}

/**
 * For attach(), in the namespace of the interface: sets what it needs and keeps what it changed, for `owner` (the
 * forwarder) in memory and, with `pinDir`, in the state file beside the other pinned attachments' values. A value an
 * earlier attach already recorded keeps its first previous value, which is the one from before flowlb. Returns the
 * changes made now.
 */
export function applyAttachSysctls(owner: object, target: AttachSysctlsTarget): SysctlChange[] {
  const procRoot = target.procRoot ?? PROC_SYS_IPV4;
  const stateDir = target.stateDir ?? sysctlStateDir();
  const changes = applyInterfaceSysctls(target.iface, procRoot);
  const id = currentNetnsId();
  const path = target.netns !== undefined ? netnsPath(target.netns) : target.pinDir !== undefined ? findNetnsPath(id) : undefined;
  const entry: InterfaceSysctls = { iface: target.iface, ifindex: target.ifindex, netns: path === undefined ? { id } : { id, path }, changes };
  const h: Held = { entry, pinDir: target.pinDir, addedToFile: [], stateDir, procRoot };
  if (target.pinDir !== undefined) {
    try {
      h.addedToFile = recordInFile(target.pinDir, entry, stateDir);
    } catch (error) {
      restoreSysctlChanges(changes, procRoot);
      throw new Error(
        `cannot keep the previous sysctl values of ${target.iface} in ${sysctlStateFile(target.pinDir, stateDir)}, so they are left as they were ` +
          `(${(error as Error).message}); set FLOWLB_RUN_DIR to a writable folder, or attach with sysctls: false`,
        { cause: error },
      );
    }
  }
  let mine = held.get(owner);
  if (!mine) held.set(owner, (mine = new Map()));
  mine.set(target.ifindex, h);
  return changes;
}

/** Merges `entry` into the state file; returns the keys it added. */
function recordInFile(pinDir: string, entry: InterfaceSysctls, stateDir: string): string[] {
  const state = readSysctlState(pinDir, stateDir) ?? { version: 1, pinDir: resolve(pinDir), interfaces: [] };
  let dirty = false;
  let found = state.interfaces.find((e) => e.iface === entry.iface && e.netns.id === entry.netns.id);
  if (found && found.ifindex !== entry.ifindex) {
    // An interface of that name made anew: what was recorded belonged to one that is gone.
    state.interfaces = state.interfaces.filter((e) => e !== found);
    found = undefined;
    dirty = true;
  }
  const added: string[] = [];
  for (const c of entry.changes) {
    if (found?.changes.some((e) => e.key === c.key)) continue;
    if (!found) state.interfaces.push((found = { ...entry, changes: [] }));
    found.changes.push(c);
    added.push(c.key);
  }
  if (found && entry.netns.path !== undefined && found.netns.path === undefined) {
    found.netns = entry.netns;
    dirty = true;
  }
  if (added.length > 0 || dirty) writeSysctlState(state, stateDir);
  return added;
}

/** Takes the entry of `iface` out of the state file of `pinDir`, in the calling thread's namespace. */
function takeFromFile(pinDir: string, iface: string, ifindex: number, stateDir: string): InterfaceSysctls | undefined {
  const state = readSysctlState(pinDir, stateDir);
  if (!state) return undefined;
  const id = currentNetnsId();
  const entry = state.interfaces.find((e) => e.iface === iface && e.ifindex === ifindex && e.netns.id === id);
  if (!entry) return undefined;
  state.interfaces = state.interfaces.filter((e) => e !== entry);
  writeSysctlState(state, stateDir);
  return entry;
}

/**
 * For the detach of one of `owner`'s attachments, once its link is gone: puts back what attaching changed. A pinned
 * attachment's values come from the state file (an earlier process may have made the changes), in the namespace the
 * caller is in, which detach() enters; others come from memory, in the namespace they were made in. Never throws:
 * the link is gone whatever happens here.
 */
export function releaseAttachSysctls(
  owner: object,
  attachment: { iface: string; ifindex: number },
  pinDir?: string,
  options: { stateDir?: string; procRoot?: string } = {},
): RestoreReport | undefined {
  const mine = held.get(owner);
  const h = mine?.get(attachment.ifindex);
  mine?.delete(attachment.ifindex);
  const procRoot = options.procRoot ?? h?.procRoot ?? PROC_SYS_IPV4;
  try {
    if (pinDir !== undefined) {
      const entry = takeFromFile(pinDir, attachment.iface, attachment.ifindex, options.stateDir ?? h?.stateDir ?? sysctlStateDir());
      return entry && restoreEntry(entry, procRoot);
    }
    return h && restoreEntry(h.entry, procRoot);
  } catch {
    return undefined;
  }
}

/**
 * After a failed attach(): puts back what it changed for interfaces that did not end up attached (those in
 * `attached` keep theirs), and takes what it added to a state file out again. Never throws, so that the attach's
 * own error is the one seen.
 */
export function settleAttachSysctls(owner: object, attached: Iterable<number>): void {
  const mine = held.get(owner);
  if (!mine) return;
  const keep = new Set(attached);
  for (const [ifindex, h] of [...mine]) {
    if (keep.has(ifindex)) continue;
    mine.delete(ifindex);
    try {
      const undo = h.pinDir === undefined ? h.entry.changes : h.entry.changes.filter((c) => h.addedToFile.includes(c.key));
      restoreEntry({ ...h.entry, changes: undo }, h.procRoot);
      if (h.pinDir !== undefined && h.addedToFile.length > 0) {
        const state = readSysctlState(h.pinDir, h.stateDir);
        const entry = state?.interfaces.find((e) => e.iface === h.entry.iface && e.ifindex === h.entry.ifindex && e.netns.id === h.entry.netns.id);
        if (state && entry) {
          entry.changes = entry.changes.filter((c) => !h.addedToFile.includes(c.key));
          if (entry.changes.length === 0) state.interfaces = state.interfaces.filter((e) => e !== entry);
          writeSysctlState(state, h.stateDir);
        }
      }
    } catch {
      // best effort: the attach failed already
    }
  }
}

/**
 * For the end of every link pinned under `pinDir` (removePins): puts back every value the state file holds, each
 * in its interface's namespace, and removes the file. Returns what happened per interface. Never throws: the links
 * have ended whatever happens here, and their pins must still be removed.
 */
export function restorePinnedSysctls(
  pinDir: string,
  options: { stateDir?: string; procRoot?: string } = {},
): Array<{ iface: string; netns: NetnsRef; report: RestoreReport }> {
  const stateDir = options.stateDir ?? sysctlStateDir();
  const procRoot = options.procRoot ?? PROC_SYS_IPV4;
  let state: SysctlState | undefined;
  try {
    state = readSysctlState(pinDir, stateDir);
  } catch {
    return [];
  }
  const out: Array<{ iface: string; netns: NetnsRef; report: RestoreReport }> = [];
  for (const entry of state?.interfaces ?? []) {
    let report: RestoreReport;
    try {
      report = restoreEntry(entry, procRoot);
    } catch (error) {
      report = { restored: [], left: entry.changes.map((c) => ({ ...c, current: undefined, why: (error as Error).message })) };
    }
    out.push({ iface: entry.iface, netns: entry.netns, report });
  }
  try {
    rmSync(sysctlStateFile(pinDir, stateDir), { force: true });
  } catch {
    // left for the next removePins of this folder, which restores only what still holds the written values
  }
  return out;
}
