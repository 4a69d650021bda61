import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { CommandError, run, runSync, sleep, type ExecOptions, type ExecResult } from './exec.js';
import { xdpPassObject } from './xdp-pass.js';

export interface IfaceRef {
  ns: string;
  ifname: string;
}

export interface Iface extends IfaceRef {
  ifindex: number;
  mac: string;
  /** Address without prefix length, when one was assigned. */
  addr?: string;
  /** The same address as `addr/len`. */
  cidr?: string;
}

export type XdpMode = 'native' | 'generic';

export interface XdpAttachment {
  mode: XdpMode | 'offload' | 'multi';
  progId: number;
  progName?: string;
}

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mac: string;
  mtu: number;
  up: boolean;
  xdp?: XdpAttachment;
}

export interface VethOptions {
  /** CIDR for the A end, e.g. `10.1.0.1/24`. */
  addrA?: string;
  addrB?: string;
  macA?: string;
  macB?: string;
  mtu?: number;
  /**
   * Turn off tx checksum offload on both ends (default true). Without it a local sender on veth
   * emits UDP packets whose checksum is not filled in, which an XDP program then sees as-is.
   */
  txOff?: boolean;
  /** Bring both ends up (default true). */
  up?: boolean;
}

export interface VethPair {
  a: Iface;
  b: Iface;
}

export interface RouteOptions {
  via?: string;
  dev?: string;
  src?: string;
  metric?: number;
  onlink?: boolean;
}

export interface SysctlOptions {
  /** Don't fail on keys this kernel or namespace does not have. */
  ignoreMissing?: boolean;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Keep stdin open as a pipe (default: ignored). */
  stdin?: boolean;
  /** How much of stdout and of stderr is kept for `output()` (default 4 MiB each). */
  maxOutputBytes?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface Spawned {
  readonly ns: string;
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  /** Resolves when the process has exited (streams may still hold data). */
  readonly exited: Promise<ExitStatus>;
  /** Resolves when the process has exited and its stdout/stderr have ended. */
  readonly closed: Promise<ExitStatus>;
  /** Everything read so far from stdout and stderr, up to the configured limit. */
  output(): { stdout: string; stderr: string };
  /** SIGTERM, then SIGKILL after `graceMs` (default 1000). Never throws. */
  stop(graceMs?: number): Promise<ExitStatus>;
}

export interface TopologyOptions {
  /** Start of every namespace name; default `tk`. Keep it short and free of `/`. */
  prefix?: string;
  /** Timeout for each command run through this topology (default 10 s). */
  execTimeoutMs?: number;
  /**
   * Keep IPv6 enabled in new namespaces. Off by default: router solicitations and MLD reports
   * would otherwise show up in captures and in XDP "not IPv4/UDP" counters.
   */
  ipv6?: boolean;
  /** Where destroy() reports what it could not clean up; default console.warn. */
  log?: (message: string) => void;
}

export interface DestroyReport {
  errors: string[];
}

const live = new Set<Topology>();
let handlersInstalled = false;
let nameSeq = 0;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const killLocal = (): void => {
    for (const c of localChildren) {
      try {
        c.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.on('exit', () => {
    killLocal();
    for (const t of [...live]) t.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      killLocal();
      for (const t of [...live]) t.destroySync();
      process.removeListener(sig, handler);
      // Re-raise only if nobody else handles it, so the default action (exit) still happens.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

const localChildren = new Set<Spawned>();

function startProcess(
  command: string,
  args: readonly string[],
  ns: string,
  opts: SpawnOptions,
  onStopped: () => void,
): Spawned {
  const limit = opts.maxOutputBytes ?? 4 * 1024 * 1024;
  const child = spawnChild(command, args, {
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    if (stdout.length < limit) stdout += d;
  });
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < limit) stderr += d;
  });

  let spawnError: Error | undefined;
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve((status = { code, signal })));
    child.once('error', (err) => {
      spawnError = err;
      resolve((status = { code: null, signal: null, error: err }));
    });
  });
  const closed = new Promise<ExitStatus>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal }));
    child.once('error', (err) => resolve({ code: null, signal: null, error: err }));
  });

  const running = (): boolean => child.exitCode === null && child.signalCode === null && !spawnError;
  return {
    ns,
    child,
    pid: child.pid,
    exited,
    closed,
    output: () => ({ stdout, stderr }),
    stop: async (graceMs = 1000) => {
      if (running()) {
        child.kill('SIGTERM');
        const done = await Promise.race([exited, sleep(graceMs).then(() => undefined)]);
        if (!done && running()) {
          child.kill('SIGKILL');
          await Promise.race([exited, sleep(2000)]);
        }
      }
      onStopped();
      return status ?? { code: child.exitCode, signal: child.signalCode };
    },
  };
}

/**
 * Starts a tracked process in the current network namespace (for tests that stay on loopback and
 * need no privileges). Killed at process exit if still running; `ns` of the result is ''.
 */
export function spawnLocal(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): Spawned {
  installExitHandlers();
  const spawned = startProcess(cmd, args, '', opts, () => localChildren.delete(spawned));
  localChildren.add(spawned);
  void spawned.exited.then(() => localChildren.delete(spawned));
  return spawned;
}

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export function assertIfname(name: string): void {
  if (!IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new Error(`invalid interface name '${name}': 1-15 characters of [A-Za-z0-9_.-]`);
  }
}

function splitCidr(cidr: string): { addr: string; len: number } {
  const slash = cidr.indexOf('/');
  if (slash < 0) throw new Error(`expected an address with prefix length (a.b.c.d/len), got '${cidr}'`);
  const len = Number(cidr.slice(slash + 1));
  if (!Number.isInteger(len)) throw new Error(`bad prefix length in '${cidr}'`);
  return { addr: cidr.slice(0, slash), len };
}

const XDP_MODES: Record<number, XdpAttachment['mode']> = { 1: 'native', 2: 'generic', 3: 'offload', 4: 'multi' };

interface IpLinkJson {
  ifindex: number;
  ifname: string;
  address?: string;
  mtu: number;
  flags?: string[];
  xdp?: { mode: number; prog?: { id: number; name?: string } };
}

function linkInfoFromJson(stdout: string, ns: string, ifname: string): LinkInfo {
  const parsed = JSON.parse(stdout) as IpLinkJson[];
  const l = parsed.find((x) => x.ifname === ifname) ?? parsed[0];
  if (!l) throw new Error(`no link ${ifname} in ${ns}`);
  const info: LinkInfo = {
    ifindex: l.ifindex,
    ifname: l.ifname,
    mac: l.address ?? '',
    mtu: l.mtu,
    up: (l.flags ?? []).includes('UP'),
  };
  if (l.xdp?.prog) {
    info.xdp = { mode: XDP_MODES[l.xdp.mode] ?? 'native', progId: l.xdp.prog.id };
    if (l.xdp.prog.name) info.xdp.progName = l.xdp.prog.name;
  }
  return info;
}

/**
 * A set of network namespaces, veths, bridges and child processes that belong to one test and are
 * all removed by {@link Topology.destroy}. Namespace names are unique per process and thread, so tests
 * running in parallel never collide; interface names only have to be unique inside their namespace.
 */
export class Topology {
  readonly prefix: string;
  readonly execTimeoutMs: number;
  readonly ipv6: boolean;
  private readonly log: (message: string) => void;
  private readonly nsList: string[] = [];
  private readonly children = new Set<Spawned>();
  private readonly mounts: string[] = [];
  /** Folders under /etc/netns made for the namespaces' own files (`setHosts`). */
  private readonly etcDirs: string[] = [];
  private readonly peers = new Map<string, IfaceRef>();
  private destroyPromise: Promise<DestroyReport> | undefined;
  private destroyedSync = false;
  /**
   * Creating or deleting a namespace waits for the kernel's namespace cleanup, which takes seconds
   * while many namespaces are being torn down at once (parallel test runs).
   */
  private get nsTimeoutMs(): number {
    return Math.max(this.execTimeoutMs, 30_000);
  }

  constructor(opts: TopologyOptions = {}) {
    this.prefix = opts.prefix ?? 'tk';
    if (!/^[A-Za-z0-9_]{1,12}$/.test(this.prefix)) throw new Error(`bad topology prefix '${this.prefix}'`);
    this.execTimeoutMs = opts.execTimeoutMs ?? 10_000;
    this.ipv6 = opts.ipv6 ?? false;
    this.log = opts.log ?? ((m) => console.warn(`[testkit] ${m}`));
    installExitHandlers();
    live.add(this);
  }

  /** Names of the namespaces this topology owns (created or being created), in creation order. */
  get namespaces(): readonly string[] {
    return this.nsList;
  }

  get destroyed(): boolean {
    return this.destroyPromise !== undefined || this.destroyedSync;
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('topology already destroyed');
  }

  /** A fresh name `<prefix>-<pid>-<thread>-<n>-<hint>`. */
  uniqueName(hint: string): string {
    const clean = hint.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 24) || 'x';
    nameSeq += 1;
    return `${this.prefix}-${process.pid}-${threadId}-${nameSeq}-${clean}`;
  }

  /**
   * An interface name (≤ 15 characters) unique across processes, for the rare interface that has to
   * exist in a shared namespace. Inside a test namespace plain names such as `eth0` are fine.
   */
  uniqueIfname(hint = ''): string {
    nameSeq += 1;
    const base = `${this.prefix.slice(0, 2)}${process.pid.toString(36)}${threadId.toString(36)}${nameSeq.toString(36)}`;
    const name = `${base}${hint.replace(/[^A-Za-z0-9_]/g, '')}`.slice(0, 15);
    assertIfname(name);
    return name;
  }

  /** Runs `ip -n ns ...args`. */
  ip(ns: string, ...args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', ns, ...args], { timeoutMs: this.execTimeoutMs });
  }

  /** Runs a command inside `ns` and waits for it, killing it after the timeout. Throws {@link CommandError} on failure. */
  exec(ns: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], { timeoutMs: this.execTimeoutMs, ...opts });
  }

  /** Creates a namespace with `lo` up and returns its (unique) name. */
  async addNamespace(hint = 'ns'): Promise<string> {
    this.assertAlive();
    const name = this.uniqueName(hint);
    // Recorded before it exists: if `ip netns add` is killed by its timeout after the kernel made
    // the namespace, destroy() still deletes it (a missing one is ignored there).
    this.nsList.push(name);
    // The first `ip netns add` on a machine makes /run/netns a shared mount; concurrent first calls
    // can race on that, so retry a few times before giving up.
    for (let attempt = 1; ; attempt++) {
      try {
        await run('ip', ['netns', 'add', name], { timeoutMs: this.nsTimeoutMs });
        break;
      } catch (err) {
        // The name is unique to this topology: "exists" on a retry means the earlier try got through.
        if (attempt > 1 && err instanceof CommandError && /File exists/.test(err.stderr)) break;
        if (attempt >= 3) throw err;
        await sleep(50 * attempt);
      }
    }
    if (this.destroyed) {
      // destroy() ran while this namespace was being created and could not delete it yet.
      await run('ip', ['netns', 'del', name]).catch(() => undefined);
      throw new Error('topology destroyed while a namespace was being added');
    }
    await Promise.all([
      this.ip(name, 'link', 'set', 'dev', 'lo', 'up'),
      this.ipv6
        ? undefined
        : this.sysctl(
            name,
            { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 },
            { ignoreMissing: true },
          ),
    ]);
    return name;
  }

  /** Sets sysctls inside `ns` in one `sysctl -w` run. */
  async sysctl(ns: string, settings: Record<string, string | number>, opts: SysctlOptions = {}): Promise<void> {
    const pairs = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
    if (pairs.length === 0) return;
    await this.exec(ns, 'sysctl', ['-q', ...(opts.ignoreMissing ? ['-e'] : []), '-w', ...pairs]);
  }

  /** Reads one sysctl inside `ns`, or undefined when the key does not exist there. */
  async readSysctl(ns: string, key: string): Promise<string | undefined> {
    try {
      const { stdout } = await this.exec(ns, 'sysctl', ['-n', key]);
      return stdout.trim();
    } catch {
      return undefined;
    }
  }

  /**
   * Creates a veth pair with end A (`ifA`) in `nsA` and end B (`ifB`) in `nsB`, assigns addresses and
   * MACs, brings both up and turns tx checksum offload off on both (see {@link VethOptions.txOff}).
   */
  async addVethPair(nsA: string, ifA: string, nsB: string, ifB: string, opts: VethOptions = {}): Promise<VethPair> {
    this.assertAlive();
    assertIfname(ifA);
    assertIfname(ifB);
    // Always spell out `name`: a bare interface name such as `a` is parsed by ip as the keyword
    // `address`.
    const args = ['link', 'add', 'name', ifA];
    if (opts.macA) args.push('address', opts.macA);
    args.push('type', 'veth', 'peer', 'name', ifB);
    if (opts.macB) args.push('address', opts.macB);
    args.push('netns', nsB);
    await this.ip(nsA, ...args);
    this.peers.set(`${nsA}\0${ifA}`, { ns: nsB, ifname: ifB });
    this.peers.set(`${nsB}\0${ifB}`, { ns: nsA, ifname: ifA });

    const end = async (ns: string, ifname: string, cidr: string | undefined): Promise<Iface> => {
      // One `ip -batch` per end: each ip invocation costs tens of milliseconds here.
      const cmds: string[] = [];
      if (opts.mtu !== undefined) cmds.push(`link set dev ${ifname} mtu ${opts.mtu}`);
      if (cidr) {
        splitCidr(cidr);
        cmds.push(`addr add ${cidr} dev ${ifname}${cidr.includes(':') ? ' nodad' : ''}`);
      }
      if (opts.up ?? true) cmds.push(`link set dev ${ifname} up`);
      cmds.push(`link show dev ${ifname}`);
      const [{ stdout }] = await Promise.all([
        run('ip', ['-n', ns, '-j', '-batch', '-'], { timeoutMs: this.execTimeoutMs, input: `${cmds.join('\n')}\n` }),
        opts.txOff ?? true ? this.txOff(ns, ifname) : undefined,
      ]);
      const l = linkInfoFromJson(stdout, ns, ifname);
      const iface: Iface = { ns, ifname, ifindex: l.ifindex, mac: l.mac };
      if (cidr) {
        iface.addr = splitCidr(cidr).addr;
        iface.cidr = cidr;
      }
      return iface;
    };
    const [a, b] = await Promise.all([end(nsA, ifA, opts.addrA), end(nsB, ifB, opts.addrB)]);
    return { a, b };
  }

  /** The other end of a veth created by this topology. */
  peerOf(ns: string, ifname: string): IfaceRef | undefined {
    return this.peers.get(`${ns}\0${ifname}`);
  }

  /** Creates a bridge (STP off, so ports forward at once) and brings it up. */
  async addBridge(ns: string, name = 'br0'): Promise<Iface> {
    this.assertAlive();
    assertIfname(name);
    await this.ip(ns, 'link', 'add', 'name', name, 'type', 'bridge', 'stp_state', '0');
    await this.setLinkUp(ns, name);
    return this.describeIface(ns, name);
  }

  /** Enslaves `ifname` to `bridge` (both in `ns`). */
  async addBridgePort(ns: string, bridge: string, ifname: string): Promise<void> {
    await this.ip(ns, 'link', 'set', 'dev', ifname, 'master', bridge);
  }

  async addAddress(ns: string, ifname: string, cidr: string): Promise<void> {
    splitCidr(cidr);
    // DAD would keep an IPv6 address "tentative" (unusable) for a second or more.
    const extra = cidr.includes(':') ? ['nodad'] : [];
    await this.ip(ns, 'addr', 'add', cidr, 'dev', ifname, ...extra);
  }

  async setLinkUp(ns: string, ifname: string, up = true): Promise<void> {
    await this.ip(ns, 'link', 'set', 'dev', ifname, up ? 'up' : 'down');
  }

  /** `ip route replace dest ...`; `dest` may be `default`. */
  async addRoute(ns: string, dest: string, opts: RouteOptions = {}): Promise<void> {
    const args = ['route', 'replace', dest];
    if (opts.via) args.push('via', opts.via);
    if (opts.dev) args.push('dev', opts.dev);
    if (opts.src) args.push('src', opts.src);
    if (opts.metric !== undefined) args.push('metric', String(opts.metric));
    if (opts.onlink) args.push('onlink');
    await this.ip(ns, ...args);
  }

  /** A permanent neighbour entry, so the first packet needs no ARP (and `bpf_fib_lookup` succeeds at once). */
  async addNeighbor(ns: string, ifname: string, ip: string, mac: string): Promise<void> {
    await this.ip(ns, 'neigh', 'replace', ip, 'lladdr', mac, 'dev', ifname, 'nud', 'permanent');
  }

  /** `ethtool -K ifname tx off`: the kernel then fills in checksums before the frame leaves. */
  async txOff(ns: string, ifname: string): Promise<void> {
    await this.exec(ns, 'ethtool', ['-K', ifname, 'tx', 'off']);
  }

  async link(ns: string, ifname: string): Promise<LinkInfo> {
    const { stdout } = await this.ip(ns, '-j', 'link', 'show', 'dev', ifname);
    return linkInfoFromJson(stdout, ns, ifname);
  }

  async ifindex(ns: string, ifname: string): Promise<number> {
    return (await this.link(ns, ifname)).ifindex;
  }

  async mac(ns: string, ifname: string): Promise<string> {
    return (await this.link(ns, ifname)).mac;
  }

  async describeIface(ns: string, ifname: string, cidr?: string): Promise<Iface> {
    const l = await this.link(ns, ifname);
    const iface: Iface = { ns, ifname, ifindex: l.ifindex, mac: l.mac };
    if (cidr) {
      iface.addr = splitCidr(cidr).addr;
      iface.cidr = cidr;
    }
    return iface;
  }

  /**
   * Loads a program that returns XDP_PASS onto `ifname`. On a veth, XDP_TX or a redirect out of
   * the PEER of this interface is only delivered while this interface has an XDP program.
   * veth supports native mode; `generic` is there for tests that want the skb path.
   */
  async attachXdpPass(ns: string, ifname: string, opts: { mode?: XdpMode } = {}): Promise<XdpAttachment> {
    const mode = opts.mode ?? 'native';
    const { path } = await xdpPassObject();
    await this.ip(ns, 'link', 'set', 'dev', ifname, mode === 'native' ? 'xdpdrv' : 'xdpgeneric', 'obj', path, 'sec', 'xdp');
    const l = await this.link(ns, ifname);
    if (!l.xdp) throw new Error(`XDP program did not attach to ${ifname} in ${ns}`);
    return l.xdp;
  }

  async detachXdp(ns: string, ifname: string, mode: XdpMode = 'native'): Promise<void> {
    await this.ip(ns, 'link', 'set', 'dev', ifname, mode === 'native' ? 'xdpdrv' : 'xdpgeneric', 'off');
  }

  /**
   * Mounts a fresh bpffs on a temp dir (in this process's mount namespace, where `/sys/fs/bpf` may be
   * missing) for pinning; unmounted and removed by destroy().
   */
  async mountBpffs(): Promise<string> {
    this.assertAlive();
    const dir = mkdtempSync(join(tmpdir(), `${this.prefix}-bpffs-`));
    try {
      await run('mount', ['-t', 'bpf', 'bpf', dir], { timeoutMs: this.execTimeoutMs });
    } catch (err) {
      rmdirSync(dir);
      throw err;
    }
    this.mounts.push(dir);
    return dir;
  }

  /**
   * Gives `ns` its own /etc/hosts with `names` (name to IPv4 address) besides localhost: `ip netns exec`, which
   * starts every command here, mounts /etc/netns/<ns>/hosts over /etc/hosts for that command. For clients that
   * take a server name only from the host they connect to. Removed by destroy().
   */
  setHosts(ns: string, names: Readonly<Record<string, string>>): void {
    this.assertAlive();
    if (!this.nsList.includes(ns)) throw new Error(`setHosts: ${ns} is not a namespace of this topology`);
    const dir = join('/etc/netns', ns);
    mkdirSync(dir, { recursive: true });
    if (!this.etcDirs.includes(dir)) this.etcDirs.push(dir);
    const lines = ['127.0.0.1 localhost', ...Object.entries(names).map(([name, addr]) => `${addr} ${name}`)];
    writeFileSync(join(dir, 'hosts'), `${lines.join('\n')}\n`);
  }

  /**
   * Starts a long-running command inside `ns`. The process is tracked and killed by destroy(); its
   * output is always drained so it never blocks on a full pipe.
   */
  spawn(ns: string, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): Spawned {
    this.assertAlive();
    // `ip netns exec` execs the command in place (no fork), so the child's pid is the command's.
    const spawned = startProcess('ip', ['netns', 'exec', ns, cmd, ...args], ns, opts, () => this.children.delete(spawned));
    this.children.add(spawned);
    return spawned;
  }

  /**
   * Kills tracked children, unmounts bpffs mounts and deletes every namespace (which deletes the
   * veths and bridges inside). Never throws; problems are logged and returned. Idempotent.
   */
  destroy(): Promise<DestroyReport> {
    this.destroyPromise ??= this.doDestroy();
    return this.destroyPromise;
  }

  private async doDestroy(): Promise<DestroyReport> {
    const errors: string[] = [];
    if (this.destroyedSync) return { errors };
    await Promise.all([...this.children].map((c) => c.stop(500).catch((e: unknown) => errors.push(String(e)))));
    for (const dir of this.mounts.splice(0).reverse()) {
      try {
        await run('umount', [dir], { timeoutMs: this.execTimeoutMs });
        rmdirSync(dir);
      } catch (err) {
        errors.push(`umount ${dir}: ${String(err)}`);
      }
    }
    await Promise.all(
      this.nsList.map(async (ns) => {
        try {
          await run('ip', ['netns', 'del', ns], { timeoutMs: this.nsTimeoutMs });
        } catch (err) {
          if (!(err instanceof CommandError && /No such file/.test(err.stderr))) errors.push(`netns del ${ns}: ${String(err)}`);
        }
      }),
    );
    this.nsList.length = 0;
    for (const dir of this.etcDirs.splice(0)) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch (err) {
        errors.push(`rm ${dir}: ${String(err)}`);
      }
    }
    live.delete(this);
    for (const e of errors) this.log(`cleanup: ${e}`);
    return { errors };
  }

  /** Best-effort synchronous cleanup for process exit and signals. */
  destroySync(): void {
    if (this.destroyedSync) return;
    this.destroyedSync = true;
    live.delete(this);
    for (const c of this.children) {
      try {
        c.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    this.children.clear();
    for (const dir of this.mounts.splice(0).reverse()) {
      try {
        runSync('umount', ['-l', dir]);
        rmdirSync(dir);
      } catch {
        // best effort
      }
    }
    for (const ns of this.nsList.splice(0).reverse()) {
      try {
        runSync('ip', ['netns', 'del', ns]);
      } catch {
        // best effort
      }
    }
    for (const dir of this.etcDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

/** Creates a topology, runs `fn` and destroys the topology whether `fn` succeeds or throws. */
export async function withTopology<T>(fn: (topo: Topology) => Promise<T> | T, opts?: TopologyOptions): Promise<T> {
  const topo = new Topology(opts);
  try {
    return await fn(topo);
  } finally {
    await topo.destroy();
  }
}

/** Namespaces currently present (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/**
 * Deletes namespaces left by processes that died without cleanup (`<prefix>-<pid>-...` whose pid is
 * gone). Meant for CI setup scripts; returns what it deleted.
 */
export async function sweepStaleNamespaces(prefix = 'tk'): Promise<string[]> {
  const re = new RegExp(`^${prefix.replace(/[^A-Za-z0-9_]/g, '')}-(\\d+)-\\d+-\\d+-`);
  const removed: string[] = [];
  for (const ns of await listNamespaces()) {
    const m = re.exec(ns);
    if (!m?.[1]) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code !== 'ESRCH';
    }
    if (alive) continue;
    try {
      await run('ip', ['netns', 'del', ns]);
      removed.push(ns);
    } catch {
      // another sweeper got there first
    }
  }
  return removed;
}
