import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './proc.js';

/** Addresses of the demo topology: client ⇄ [front] balancer [back] ⇄ backends. */
export const NET = {
  client: '10.90.1.2',
  front: '10.90.1.1',
  back: '10.90.2.1',
  backends: ['10.90.2.10', '10.90.2.11'],
} as const;

export interface DemoNamespaces {
  client: string;
  lb: string;
  back: string;
  all: string[];
}

/**
 * Three namespaces and two veth pairs, made with iproute2 only: the CLI cannot use the test helpers at run time.
 * Checksum offload is turned off on the senders' veths (a local sender on veth leaves the UDP checksum to the
 * "hardware", and the XDP program forwards the packet as it is).
 */
export async function createNamespaces(prefix: string, created: string[]): Promise<DemoNamespaces> {
  const ns: DemoNamespaces = { client: `${prefix}-client`, lb: `${prefix}-lb`, back: `${prefix}-back`, all: created };
  const ip = (...args: string[]): Promise<string> => sh('ip', args);
  const inNs = (name: string, cmd: string, ...args: string[]): Promise<string> => sh('ip', ['netns', 'exec', name, cmd, ...args]);
  for (const name of [ns.client, ns.lb, ns.back]) {
    // Recorded first: a failure half-way leaves the caller a complete list to delete.
    created.push(name);
    await ip('netns', 'add', name);
    await ip('-n', name, 'link', 'set', 'dev', 'lo', 'up');
  }
  await ip('-n', ns.lb, 'link', 'add', 'name', 'front', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.client);
  await ip('-n', ns.lb, 'link', 'add', 'name', 'back', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.back);
  await ip('-n', ns.lb, 'addr', 'add', `${NET.front}/24`, 'dev', 'front');
  await ip('-n', ns.lb, 'addr', 'add', `${NET.back}/24`, 'dev', 'back');
  await ip('-n', ns.client, 'addr', 'add', `${NET.client}/24`, 'dev', 'eth0');
  for (const a of NET.backends) await ip('-n', ns.back, 'addr', 'add', `${a}/24`, 'dev', 'eth0');
  for (const [name, dev] of [
    [ns.lb, 'front'],
    [ns.lb, 'back'],
    [ns.client, 'eth0'],
    [ns.back, 'eth0'],
  ] as const) {
    await ip('-n', name, 'link', 'set', 'dev', dev, 'up');
  }
  await ip('-n', ns.client, 'route', 'add', 'default', 'via', NET.front);
  await ip('-n', ns.back, 'route', 'add', 'default', 'via', NET.back);
  await inNs(ns.lb, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
  for (const name of [ns.client, ns.back]) {
    try {
      await inNs(name, 'ethtool', '-K', 'eth0', 'tx', 'off');
    } catch (error) {
      throw new Error(`turning checksum offload off needs ethtool: ${(error as Error).message}`);
    }
  }
  return ns;
}

/**
 * Gives `ns` its own /etc/hosts with `names` (name to IPv4 address) besides localhost: `ip netns exec` mounts
 * /etc/netns/<ns>/hosts over /etc/hosts for the commands it starts. For clients that take the server name they send
 * only from the host they connect to.
 */
export function setHosts(ns: string, names: Readonly<Record<string, string>>): void {
  const dir = etcDir(ns);
  mkdirSync(dir, { recursive: true });
  const lines = ['127.0.0.1 localhost', ...Object.entries(names).map(([name, addr]) => `${addr} ${name}`)];
  writeFileSync(join(dir, 'hosts'), `${lines.join('\n')}\n`);
}

/** Undoes `setHosts`. */
export function removeHosts(ns: string): void {
  rmSync(etcDir(ns), { recursive: true, force: true });
}

function etcDir(ns: string): string {
  return join('/etc/netns', ns);
}

export async function deleteNamespaces(ns: Pick<DemoNamespaces, 'all'>): Promise<void> {
  await Promise.all(ns.all.map((n) => sh('ip', ['netns', 'del', n]).catch(() => undefined)));
}

/** For exit handlers, where nothing asynchronous runs any more. */
export function deleteNamespacesSync(ns: Pick<DemoNamespaces, 'all'>): void {
  for (const n of ns.all) {
    try {
      execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore', timeout: 5000 });
    } catch {
      // already gone
    }
  }
}
