import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statfsSync } from 'node:fs';
import { release } from 'node:os';
import { dirname } from 'node:path';
import { importXdpCore } from '@flowlb/balancer';
import { rxVlanOffload, vlanUppers, type OffloadState, type VlanDevice } from '@flowlb/xdp-core';

export const BPF_FS_MAGIC = 0xcafe4a11;

export type XdpAttachMode = 'native' | 'generic' | 'offload' | 'multi';

export interface LinkDetails {
  ifindex: number;
  ifname: string;
  /** `linkinfo.info_kind`: veth, bridge, …; undefined for plain devices. */
  kind: string | undefined;
  /** The other end of a veth: by name when it is in the same namespace, else by index and namespace id. */
  peer?: { ifname?: string; ifindex?: number; netnsid?: number };
  xdp?: { mode: XdpAttachMode; progId: number };
}

/** A process that has a socket open. */
export interface SocketOwner {
  pid: number;
  /** The process's name, from /proc/<pid>/comm. */
  command: string;
}

export type ProgramLoad =
  | { ok: true; libbpf: string }
  | { ok: false; stage: 'addon' | 'load'; error: Error & { code?: string } };

/** What the checks read from the machine; a fake one lets the logic be tested without root. */
export interface SystemProbe {
  kernelRelease(): string;
  fileExists(path: string): boolean;
  readFile(path: string): string | undefined;
  capEff(): bigint | undefined;
  uid(): number | undefined;
  /** statfs of `path` or of its nearest existing ancestor. */
  fsType(path: string): { probed: string; type: number } | undefined;
  links(): Promise<LinkDetails[]>;
  /** IPv4 addresses configured on this namespace's interfaces. */
  addresses(): Promise<string[]>;
  /** Names of the namespaces this one knows by id (`ip netns list-id`). */
  netnsNames(): Promise<Map<number, string>>;
  linksIn(ns: string): Promise<LinkDetails[]>;
  /** Whether tx checksum offload is on; undefined when ethtool cannot tell. */
  txChecksum(ifname: string, ns?: string): Promise<boolean | undefined>;
  /** The VLAN devices on top of an interface of this namespace. */
  vlanUppers(ifname: string): VlanDevice[];
  /** Whether the interface strips VLAN tags in hardware (rx-vlan-offload). */
  rxVlanOffload(ifname: string): OffloadState;
  loadProgram(): Promise<ProgramLoad>;
  /** Which process has each socket (by inode) open; sockets of processes this user cannot see are left out. */
  socketOwners?(inodes: readonly number[]): Map<number, SocketOwner>;
}

function run(cmd: string, args: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

interface IpLinkJson {
  ifindex: number;
  ifname: string;
  link?: string;
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
  xdp?: { mode?: number; prog?: { id?: number } };
}

const XDP_MODES: Record<number, XdpAttachMode> = { 1: 'native', 2: 'generic', 3: 'offload', 4: 'multi' };

export function parseIpLinks(json: string): LinkDetails[] {
  return (JSON.parse(json) as IpLinkJson[]).map((l) => {
    const d: LinkDetails = { ifindex: l.ifindex, ifname: l.ifname, kind: l.linkinfo?.info_kind };
    if (l.link !== undefined || l.link_index !== undefined) {
      d.peer = {};
      if (l.link !== undefined) d.peer.ifname = l.link;
      if (l.link_index !== undefined) d.peer.ifindex = l.link_index;
      if (l.link_netnsid !== undefined) d.peer.netnsid = l.link_netnsid;
    }
    if (l.xdp?.mode) d.xdp = { mode: XDP_MODES[l.xdp.mode] ?? 'native', progId: l.xdp.prog?.id ?? 0 };
    return d;
  });
}

/** The probe of the namespace this process runs in. */
export const systemProbe: SystemProbe = {
  kernelRelease: () => release(),
  fileExists: (path) => existsSync(path),
  readFile(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  capEff() {
    const status = this.readFile('/proc/self/status');
    const m = status && /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
    return m && m[1] ? BigInt(`0x${m[1]}`) : undefined;
  },
  uid: () => process.getuid?.(),
  fsType(path) {
    let probe = path;
    for (;;) {
      try {
        return { probed: probe, type: statfsSync(probe).type };
      } catch {
        const parent = dirname(probe);
        if (parent === probe) return undefined;
        probe = parent;
      }
    }
  },
  links: async () => parseIpLinks(await run('ip', ['-j', '-d', 'link', 'show'])),
  async addresses() {
    const out = JSON.parse(await run('ip', ['-j', '-4', 'addr', 'show'])) as Array<{ addr_info?: Array<{ local?: string }> }>;
    return out.flatMap((l) => (l.addr_info ?? []).map((a) => a.local).filter((a): a is string => !!a));
  },
  async netnsNames() {
    const out = (await run('ip', ['-j', 'netns', 'list-id']).catch(() => '[]')).trim();
    const list = (out ? JSON.parse(out) : []) as Array<{ nsid: number; name?: string }>;
    return new Map(list.filter((e) => e.name).map((e) => [e.nsid, e.name!]));
  },
  linksIn: async (ns) => parseIpLinks(await run('ip', ['-n', ns, '-j', '-d', 'link', 'show'])),
  async txChecksum(ifname, ns) {
    const args = ['--json', '-k', ifname];
    try {
      const out = ns ? await run('ip', ['netns', 'exec', ns, 'ethtool', ...args]) : await run('ethtool', args);
      const parsed = JSON.parse(out) as Array<Record<string, { active?: boolean } | undefined>>;
      return parsed[0]?.['tx-checksumming']?.active;
    } catch {
      return undefined;
    }
  },
  // The readers attach() uses, so that both say the same.
  vlanUppers: (ifname) => vlanUppers(ifname),
  rxVlanOffload: (ifname) => rxVlanOffload(ifname),
  socketOwners(inodes) {
    const wanted = new Set(inodes);
    const found = new Map<number, SocketOwner>();
    const list = (dir: string): string[] => {
      try {
        return readdirSync(dir);
      } catch {
        // gone meanwhile, or not ours to read
        return [];
      }
    };
    for (const pid of list('/proc')) {
      if (found.size === wanted.size) break;
      if (!/^\d+$/.test(pid)) continue;
      for (const fd of list(`/proc/${pid}/fd`)) {
        let link: string;
        try {
          link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          continue;
        }
        const m = /^socket:\[(\d+)\]$/.exec(link);
        const inode = m ? Number(m[1]) : undefined;
        if (inode === undefined || !wanted.has(inode) || found.has(inode)) continue;
        found.set(inode, { pid: Number(pid), command: this.readFile(`/proc/${pid}/comm`)?.trim() || '?' });
      }
    }
    return found;
  },
  async loadProgram() {
    let core: typeof import('@flowlb/xdp-core');
    try {
      core = await importXdpCore<typeof import('@flowlb/xdp-core')>();
      const libbpf = core.libbpfVersion();
      try {
        const fwd = await core.XdpForwarder.load({ flowsMaxEntries: 16 });
        fwd.close();
        return { ok: true, libbpf };
      } catch (error) {
        return { ok: false, stage: 'load', error: error as Error };
      }
    } catch (error) {
      return { ok: false, stage: 'addon', error: error as Error };
    }
  },
};
