import { release } from 'node:os';

/** A kernel version as `major.minor`. */
export type KernelVersion = readonly [major: number, minor: number];

/** BPF_PROG_TEST_RUN takes an `xdp_md` context, so an ingress interface, from Linux 5.15. */
export const INGRESS_IFINDEX_FLOOR: KernelVersion = [5, 15];
/** BPF_F_TEST_XDP_LIVE_FRAMES exists from Linux 5.18. */
export const LIVE_FRAMES_FLOOR: KernelVersion = [5, 18];

/** `major.minor` of a uname release such as `5.10.0-21-amd64`; undefined when it does not start that way. */
export function parseKernelRelease(text: string): KernelVersion | undefined {
  const m = /^(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * "FEATURE needs Linux X.Y or later; this kernel is RELEASE" when `kernelRelease` is older than `floor`; undefined
 * when it is not, or cannot be read (a kernel that old would not be the likely cause then).
 */
export function kernelFloorMessage(feature: string, floor: KernelVersion, kernelRelease: string): string | undefined {
  const v = parseKernelRelease(kernelRelease);
  if (!v) return undefined;
  const older = v[0] < floor[0] || (v[0] === floor[0] && v[1] < floor[1]);
  return older ? `${feature} needs Linux ${floor[0]}.${floor[1]} or later; this kernel is ${kernelRelease}` : undefined;
}

/**
 * The kernel answers EINVAL (or EOPNOTSUPP) for an attribute or flag it does not know, which says nothing of the
 * kernel being too old. When it is older than the feature's floor, the error says so instead of the usual hint,
 * keeping its code, errno and syscall; the original error is its `cause`. Anything else comes back unchanged.
 */
export function explainKernelFloor(error: unknown, feature: string, floor: KernelVersion, kernelRelease = release()): unknown {
  const e = error as NodeJS.ErrnoException | undefined;
  if (!(e instanceof Error) || (e.code !== 'EINVAL' && e.code !== 'EOPNOTSUPP')) return error;
  const why = kernelFloorMessage(feature, floor, kernelRelease);
  if (!why) return error;
  // Native messages read "CODE: description, syscall 'detail' (hint)": the hint gives way to the reason.
  const head = e.message.replace(/ \([^]*\)$/, '');
  const explained = new Error(`${head} (${why})`, { cause: error }) as NodeJS.ErrnoException & { detail?: unknown };
  for (const key of ['code', 'errno', 'syscall', 'path', 'detail'] as const) {
    const value = (e as unknown as Record<string, unknown>)[key];
    if (value !== undefined) (explained as unknown as Record<string, unknown>)[key] = value;
  }
  return explained;
}
