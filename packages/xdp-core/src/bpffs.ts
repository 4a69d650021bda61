import { mkdirSync, readdirSync, rmdirSync, statfsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { native } from './native.js';

const BPF_FS_MAGIC = 0xcafe4a11;

/** Where bpffs is mounted by convention (systemd, bpftool and Cilium put it there). */
export const BPFFS_DEFAULT_MOUNT = '/sys/fs/bpf';

export interface EnsureBpffsOptions {
  /**
   * When `dir` is not on bpffs, mount one (needs CAP_SYS_ADMIN) instead of failing: on /sys/fs/bpf when `dir` lies
   * below it, otherwise on the first folder of `dir` that does not exist yet (created for it), or on `dir` itself
   * when it is an empty folder. A folder that holds something is never mounted over.
   */
  mount?: boolean;
}

export interface BpffsDir {
  dir: string;
  /** The mount point of the bpffs that was mounted to hold `dir`; absent when `dir` was on bpffs already. */
  mounted?: string;
}

function codedError(message: string, code: string, cause?: unknown): NodeJS.ErrnoException {
  const err = new Error(message, cause === undefined ? undefined : { cause }) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

function hasDotName(path: string): boolean {
  return path.split('/').some((c) => c.includes('.') && c !== '.' && c !== '..');
}

/** statfs of `dir` or of its nearest ancestor that exists. */
function nearestExisting(dir: string): { probed: string; type: number } {
  let probe = dir;
  for (;;) {
    try {
      return { probed: probe, type: statfsSync(probe).type };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // bpffs refuses names with a dot: looking one up fails with EPERM rather than ENOENT.
      if (code === 'EPERM' && hasDotName(probe)) {
        throw codedError(`${dir}: bpffs does not allow '.' in names (${probe}); choose a pin path without dots`, 'ERR_FLOWLB_BPFFS_NAME');
      }
      if (code !== 'ENOENT') throw e;
      const parent = dirname(probe);
      if (parent === probe) throw e;
      probe = parent;
    }
  }
}

function isEmptyDir(path: string): boolean {
  try {
    return readdirSync(path).length === 0;
  } catch {
    return false;
  }
}

function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

/** Where a bpffs for `dir` goes, and whether that folder has to be created first. */
function mountPointFor(dir: string, existing: string): { point: string; create: boolean } | { refused: string } {
  if (within(dir, BPFFS_DEFAULT_MOUNT) && within(BPFFS_DEFAULT_MOUNT, existing) && isEmptyDir(BPFFS_DEFAULT_MOUNT)) {
    return { point: BPFFS_DEFAULT_MOUNT, create: false };
  }
  if (existing !== dir) {
    const first = relative(existing, dir).split('/')[0]!;
    return { point: join(existing, first), create: true };
  }
  if (isEmptyDir(dir)) return { point: dir, create: false };
  return { refused: `${dir} exists and holds files, so no bpffs is mounted over it` };
}

function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPERM' && hasDotName(dir)) {
      throw codedError(`${dir}: bpffs does not allow '.' in names; choose a pin path without dots`, 'ERR_FLOWLB_BPFFS_NAME', e);
    }
    throw e;
  }
}

/**
 * Creates `dir` on bpffs, or says how to get bpffs there. With `mount: true` it mounts a bpffs when there is none,
 * as bpftool does: inside `ip netns exec`, which remounts /sys, /sys/fs/bpf is a plain sysfs folder. Such a mount
 * belongs to the caller's mount namespace and lasts as long as that namespace.
 */
export function ensureBpffsDir(dir: string, options: EnsureBpffsOptions = {}): BpffsDir {
  const abs = resolve(dir);
  const found = nearestExisting(abs);
  if (found.type === BPF_FS_MAGIC) {
    makeDir(abs);
    return { dir };
  }
  const notBpffs = `${dir} is not on a bpffs mount (${found.probed} has filesystem type 0x${found.type.toString(16)})`;
  if (!options.mount) {
    throw codedError(
      `${notBpffs}; mount one with \`mount -t bpf bpf ${BPFFS_DEFAULT_MOUNT}\` (inside \`ip netns exec\` it is not mounted by default)`,
      'ERR_FLOWLB_NOT_BPFFS',
    );
  }
  const where = mountPointFor(abs, found.probed);
  if ('refused' in where) {
    throw codedError(`${notBpffs}, and ${where.refused}: mount one there yourself (mount -t bpf bpf ${abs}) or choose a pin path on bpffs`, 'ERR_FLOWLB_NOT_BPFFS');
  }
  let created = false;
  try {
    if (where.create) {
      mkdirSync(where.point);
      created = true;
    }
    native().mountBpffs(where.point);
  } catch (e) {
    if (created) rmdirSync(where.point);
    throw codedError(`${notBpffs}, and mounting one on ${where.point} failed: ${(e as Error).message}`, 'ERR_FLOWLB_NOT_BPFFS', e);
  }
  makeDir(abs);
  return { dir, mounted: where.point };
}
