import { native } from './native.js';

/** The index of a network interface in the caller's network namespace (see `withNetns`). */
export function ifIndex(iface: string | number): number {
  if (typeof iface === 'number') return iface;
  return native().ifNameToIndex(iface);
}

export function ifName(index: number): string {
  return native().ifIndexToName(index);
}

export interface XdpAttachment {
  /** Id of the attached program, 0 when none. */
  progId: number;
  mode: 'none' | 'native' | 'generic' | 'offload' | 'multi';
  driverProgId: number;
  genericProgId: number;
}

/** What XDP program is attached to an interface, however it was attached. */
export function xdpAttachment(iface: string | number): XdpAttachment {
  return native().xdpQuery(ifIndex(iface)) as XdpAttachment;
}

export function possibleCpus(): number {
  return native().possibleCpus();
}

export function libbpfVersion(): string {
  return native().libbpfVersion;
}

/**
 * Runs `fn` with the calling thread inside another network namespace (a name under /run/netns or a path such as
 * /proc/PID/ns/net), then returns. Only synchronous work belongs in `fn`: interface lookups, attaching XDP,
 * BPF_PROG_TEST_RUN with an ingress interface and /proc/sys/net writes all act on the namespace of the thread.
 * Sockets opened inside are not supported, since Node opens them later on its own schedule.
 */
export function withNetns<T>(netns: string, fn: () => T): T {
  const path = netns.includes('/') ? netns : `/run/netns/${netns}`;
  const addon = native();
  const previous = addon.netnsEnter(path);
  try {
    const r = fn();
    if (r && typeof (r as { then?: unknown }).then === 'function') {
      throw new TypeError('withNetns runs synchronous functions only');
    }
    return r;
  } finally {
    addon.netnsRestore(previous);
  }
}
