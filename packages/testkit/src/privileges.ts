import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { describe, it, type TestFunction } from 'vitest';
import { findExecutable } from './exec.js';

export interface PrivilegeCheck {
  ok: boolean;
  reason?: string;
}

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const REQUIRED_COMMANDS = ['ip', 'ethtool', 'mount', 'umount'] as const;

let cached: PrivilegeCheck | undefined;

/** True when the environment says privileged tests must run (a skip would hide a broken CI machine). */
export function isCi(): boolean {
  return process.env.CI === 'true';
}

function effectiveCaps(): bigint | undefined {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
    return m?.[1] ? BigInt(`0x${m[1]}`) : undefined;
  } catch {
    return undefined;
  }
}

function errText(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { stderr?: Buffer | string; message?: string };
    const stderr = e.stderr ? String(e.stderr).trim() : '';
    if (stderr) return stderr;
    if (e.message) return e.message;
  }
  return String(err);
}

function probe(): PrivilegeCheck {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux, this is ${process.platform}` };

  const caps = effectiveCaps();
  if (caps === undefined) return { ok: false, reason: 'cannot read capabilities from /proc/self/status' };
  const missing: string[] = [];
  if (!(caps & (1n << BigInt(CAP_NET_ADMIN)))) missing.push('CAP_NET_ADMIN');
  if (!(caps & (1n << BigInt(CAP_SYS_ADMIN)))) missing.push('CAP_SYS_ADMIN');
  if (missing.length > 0) {
    const who = process.getuid?.() === 0 ? 'root without' : 'not root and lacks';
    return { ok: false, reason: `${who} ${missing.join(' and ')}` };
  }

  for (const cmd of REQUIRED_COMMANDS) {
    if (!findExecutable(cmd)) return { ok: false, reason: `'${cmd}' is not installed` };
  }

  // Creating a namespace is the only reliable proof: /run/netns may be read-only, or a
  // container may refuse setns even with the capability bits set.
  const probeNs = `tkprobe-${process.pid}-${threadId}`;
  try {
    execFileSync('ip', ['netns', 'add', probeNs], { stdio: 'pipe', timeout: 5000 });
  } catch (err) {
    return { ok: false, reason: `'ip netns add' failed: ${errText(err)}` };
  }
  try {
    execFileSync('ip', ['-n', probeNs, 'link', 'set', 'dev', 'lo', 'up'], { stdio: 'pipe', timeout: 5000 });
  } catch (err) {
    return { ok: false, reason: `cannot configure a network namespace: ${errText(err)}` };
  } finally {
    try {
      execFileSync('ip', ['netns', 'del', probeNs], { stdio: 'pipe', timeout: 5000 });
    } catch {
      // nothing more to do; the name is unique to this process
    }
  }

  // Mount inside a private mount namespace when possible so the probe leaves no trace even if
  // it is killed between mount and umount.
  const dir = mkdtempSync(join(tmpdir(), 'tk-bpffs-probe-'));
  try {
    if (findExecutable('unshare')) {
      execFileSync('unshare', ['--mount', '--propagation', 'private', 'mount', '-t', 'bpf', 'bpf', dir], {
        stdio: 'pipe',
        timeout: 5000,
      });
    } else {
      execFileSync('mount', ['-t', 'bpf', 'bpf', dir], { stdio: 'pipe', timeout: 5000 });
      execFileSync('umount', [dir], { stdio: 'pipe', timeout: 5000 });
    }
  } catch (err) {
    return { ok: false, reason: `cannot mount bpffs: ${errText(err)}` };
  } finally {
    try {
      rmdirSync(dir);
    } catch {
      // left behind only if still mounted, which the private namespace rules out
    }
  }
  return { ok: true };
}

/**
 * Whether this process can build network namespaces, veth pairs and load BPF programs.
 * The probe runs once per process (worker) and is cached. FLOWLB_TESTKIT_UNPRIVILEGED=<why>
 * forces a negative answer.
 */
export function canRunPrivileged(): PrivilegeCheck {
  // Lets a root developer see what an unprivileged run (or CI on a broken machine) would do.
  const forced = process.env.FLOWLB_TESTKIT_UNPRIVILEGED;
  if (forced) return { ok: false, reason: `FLOWLB_TESTKIT_UNPRIVILEGED=${forced}` };
  cached ??= probe();
  return cached;
}

function failureMessage(reason: string | undefined): string {
  return `privileged test cannot run: ${reason ?? 'unknown reason'} (CI=true turns this into a failure)`;
}

/**
 * `describe` for blocks that need root networking. Runs the block when possible; with CI=true an
 * impossible block becomes one failing test carrying the reason; otherwise it is skipped with the
 * reason in its name.
 */
export function describePrivileged(name: string, fn: () => void): void {
  const check = canRunPrivileged();
  if (check.ok) {
    describe(name, fn);
  } else if (isCi()) {
    describe(name, () => {
      it('has the privileges it needs', () => {
        throw new Error(failureMessage(check.reason));
      });
    });
  } else {
    describe.skip(`${name} [skipped: ${check.reason ?? 'not privileged'}]`, fn);
  }
}

/** `it` counterpart of {@link describePrivileged}. */
export function itPrivileged(name: string, fn: TestFunction, timeoutMs?: number): void {
  const check = canRunPrivileged();
  if (check.ok) {
    it(name, fn, timeoutMs);
  } else if (isCi()) {
    it(name, () => {
      throw new Error(failureMessage(check.reason));
    });
  } else {
    it.skip(`${name} [skipped: ${check.reason ?? 'not privileged'}]`, fn);
  }
}
