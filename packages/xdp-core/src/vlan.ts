import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * With hardware VLAN stripping on (rx-vlan-offload, `ethtool -K IF rxvlan on`), the driver takes the 802.1Q tag off
 * before XDP runs and keeps it beside the frame: a frame for a VLAN device on top of the interface reaches the program
 * looking untagged, and when it belongs to a known flow the program rewrites it and sends it on without its tag.
 */

/** A VLAN device (802.1Q or 802.1ad) and the interface it sits on. */
export interface VlanDevice {
  name: string;
  id: number;
  lower: string;
}

export type OffloadState = 'on' | 'off' | 'unknown';

/** Lists every VLAN device of the calling thread's network namespace, and only those. */
export const VLAN_CONFIG = '/proc/thread-self/net/vlan/config';

/** `/proc/net/vlan/config`: two header lines, then `name | id | lower` per VLAN device. */
export function parseVlanConfig(text: string): VlanDevice[] {
  const out: VlanDevice[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split('|').map((p) => p.trim());
    if (parts.length !== 3) continue;
    const [name, id, lower] = parts as [string, string, string];
    if (!/^\d+$/.test(id) || !name || !lower) continue;
    out.push({ name, id: Number(id), lower });
  }
  return out;
}

/**
 * The VLAN devices on top of `iface` in the calling thread's network namespace (`withNetns` moves it; /sys/class/net
 * would show the namespace /sys was mounted in instead). Without the file no VLAN device exists there: the kernel
 * makes it when 802.1Q support is loaded.
 */
export function vlanUppers(iface: string, configPath: string = VLAN_CONFIG): VlanDevice[] {
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch {
    return [];
  }
  return parseVlanConfig(text).filter((d) => d.lower === iface);
}

function findEthtool(): string | undefined {
  // sbin is often missing from the PATH of services and of users other than root.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, 'ethtool');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** `rx-vlan-offload` from the output of `ethtool -k IF` (`on`, `off`, either with ` [fixed]`). */
export function parseRxVlanOffload(ethtoolK: string): OffloadState {
  const m = /^rx-vlan-offload:\s*(on|off)\b/m.exec(ethtoolK);
  return m ? (m[1] as 'on' | 'off') : 'unknown';
}

/**
 * Whether `iface` strips VLAN tags in hardware, read with the `ethtool` binary in the calling thread's network
 * namespace (a child process starts in its parent thread's); `unknown` without ethtool or when it cannot tell. The one
 * place that reads it, so that a reader without the binary can take its place.
 */
export function rxVlanOffload(iface: string): OffloadState {
  const ethtool = findEthtool();
  if (!ethtool) return 'unknown';
  try {
    const out = execFileSync(ethtool, ['-k', iface], { encoding: 'utf8', timeout: 2000, killSignal: 'SIGKILL', stdio: ['ignore', 'pipe', 'ignore'] });
    return parseRxVlanOffload(out);
  } catch {
    return 'unknown';
  }
}

export interface VlanStripping {
  iface: string;
  uppers: VlanDevice[];
  /** Read only when there are VLAN devices on top. */
  rxvlan: OffloadState | undefined;
  /** What goes wrong and what to do; absent when nothing does. */
  warning?: string;
}

export interface VlanReaders {
  uppers(iface: string): VlanDevice[];
  rxvlan(iface: string): OffloadState;
}

const SYSTEM_READERS: VlanReaders = { uppers: (iface) => vlanUppers(iface), rxvlan: rxVlanOffload };

export function describeUppers(uppers: readonly VlanDevice[]): string {
  return uppers.map((u) => `${u.name}, id ${u.id}`).join('; ');
}

/** Whether VLAN-tagged frames arriving on `iface` would reach the XDP program stripped of their tag. */
export function vlanStripping(iface: string, readers: VlanReaders = SYSTEM_READERS): VlanStripping {
  const uppers = readers.uppers(iface);
  if (uppers.length === 0) return { iface, uppers, rxvlan: undefined };
  const rxvlan = readers.rxvlan(iface);
  const result: VlanStripping = { iface, uppers, rxvlan };
  const has = `${iface} has VLAN devices on top (${describeUppers(uppers)})`;
  const harm = 'frames tagged for them reach the XDP program looking untagged, and those of known flows are forwarded without their tag';
  const todo = `turn stripping off (ethtool -K ${iface} rxvlan off), or attach to the VLAN devices instead of ${iface} (generic mode)`;
  if (rxvlan === 'on') {
    result.warning = `${has} and hardware VLAN stripping (rx-vlan-offload) is on: ${harm}; ${todo}`;
  } else if (rxvlan === 'unknown') {
    result.warning =
      `${has} and whether hardware VLAN stripping (rx-vlan-offload) is on cannot be read (is ethtool installed?): if it is, ${harm}; ` +
      `look with ethtool -k ${iface}, and if it is on, ${todo}`;
  }
  return result;
}

/** The warnings attach() gives for `iface`; looking never fails an attach. */
export function vlanWarnings(iface: string, readers: VlanReaders = SYSTEM_READERS): string[] {
  try {
    const w = vlanStripping(iface, readers).warning;
    return w === undefined ? [] : [w];
  } catch {
    return [];
  }
}
