import { readFileSync } from 'node:fs';

const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_BPF = 39n;

/** The effective capability set of this process, or undefined where /proc does not tell (not Linux). */
export function effectiveCapabilities(statusText?: string): bigint | undefined {
  let text = statusText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/status', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(text);
  return m?.[1] ? BigInt(`0x${m[1]}`) : undefined;
}

/**
 * Whether a process with these capabilities can load and attach XDP: CAP_NET_ADMIN for the attachment, and
 * CAP_BPF (or the older catch-all CAP_SYS_ADMIN) for the program and maps. Gives the reason either way.
 */
export function xdpCapabilityCheck(caps: bigint | undefined): { ok: boolean; reason: string } {
  if (caps === undefined) return { ok: false, reason: 'cannot read the process capabilities (/proc/self/status)' };
  const has = (cap: bigint): boolean => (caps & (1n << cap)) !== 0n;
  const missing: string[] = [];
  if (!has(CAP_NET_ADMIN)) missing.push('CAP_NET_ADMIN');
  if (!has(CAP_BPF) && !has(CAP_SYS_ADMIN)) missing.push('CAP_BPF (or CAP_SYS_ADMIN)');
  if (missing.length > 0) return { ok: false, reason: `the process lacks ${missing.join(' and ')}` };
  return { ok: true, reason: 'the process has CAP_NET_ADMIN and CAP_BPF/CAP_SYS_ADMIN' };
}
