import type { FlowlbConfig } from '../config/index.js';
import { PIN_ROOT } from '../config/index.js';
import { BPF_FS_MAGIC, type SystemProbe } from './probe.js';
import type { CheckResult } from './types.js';

/** XDP links (bpf_link) came in 5.9; the program's clock, bpf_ktime_get_coarse_ns, in 5.11. */
const MIN_KERNEL: readonly [number, number] = [5, 11];
const MIN = MIN_KERNEL.join('.');
const NEEDS = 'XDP links and the coarse clock helper need';
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_BPF = 39n;

export function checkKernel(probe: SystemProbe): CheckResult {
  const rel = probe.kernelRelease();
  const m = /^(\d+)\.(\d+)/.exec(rel);
  const base = { id: 'kernel', title: 'kernel' };
  if (!m) return { ...base, verdict: 'warn', detail: `cannot read the version from "${rel}"`, fix: `flowlb needs Linux ${MIN} or newer` };
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major > MIN_KERNEL[0] || (major === MIN_KERNEL[0] && minor >= MIN_KERNEL[1])) {
    return { ...base, verdict: 'ok', detail: `${rel} (${NEEDS} ${MIN} or newer)` };
  }
  return {
    ...base,
    verdict: 'fail',
    detail: `${rel} is older than ${MIN}, which ${NEEDS}`,
    fix: 'upgrade the kernel, or run with mode: userspace',
  };
}

export function checkBtf(probe: SystemProbe): CheckResult {
  const base = { id: 'btf', title: 'BTF' };
  return probe.fileExists('/sys/kernel/btf/vmlinux')
    ? { ...base, verdict: 'ok', detail: '/sys/kernel/btf/vmlinux is present' }
    : {
        ...base,
        verdict: 'warn',
        detail: '/sys/kernel/btf/vmlinux is missing: the kernel was built without CONFIG_DEBUG_INFO_BTF',
        fix: 'the flowlb program loads without it, but the verifier logs and bpftool are less helpful; use a kernel with BTF',
      };
}

export function checkPrivileges(probe: SystemProbe): CheckResult & { capable: boolean } {
  const base = { id: 'privileges', title: 'privileges' };
  const caps = probe.capEff();
  const uid = probe.uid();
  const who = uid === 0 ? 'root' : uid === undefined ? 'this process' : `uid ${uid}`;
  if (caps === undefined) {
    return { ...base, capable: false, verdict: 'fail', detail: 'cannot read CapEff from /proc/self/status', fix: 'run on Linux' };
  }
  const has = (c: bigint): boolean => (caps & (1n << c)) !== 0n;
  const missing: string[] = [];
  if (!has(CAP_BPF) && !has(CAP_SYS_ADMIN)) missing.push('CAP_BPF');
  if (!has(CAP_NET_ADMIN)) missing.push('CAP_NET_ADMIN');
  if (missing.length === 0) {
    return { ...base, capable: true, verdict: 'ok', detail: `${who} with CAP_BPF${has(CAP_BPF) ? '' : ' (as CAP_SYS_ADMIN)'} and CAP_NET_ADMIN` };
  }
  return {
    ...base,
    capable: false,
    verdict: 'fail',
    detail: `${who} lacks ${missing.join(' and ')}: loading the program needs CAP_BPF, attaching it needs CAP_NET_ADMIN`,
    fix: 'run as root, or grant CAP_BPF and CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_BPF CAP_NET_ADMIN)',
  };
}

export async function checkProgram(probe: SystemProbe, capable: boolean): Promise<CheckResult> {
  const base = { id: 'xdp-program', title: 'XDP program' };
  const r = await probe.loadProgram();
  if (r.ok) return { ...base, verdict: 'ok', detail: `the flowlb program loads and passes the verifier (libbpf ${r.libbpf})` };
  if (r.stage === 'addon') {
    return {
      ...base,
      verdict: 'fail',
      detail: `@flowlb/xdp-core cannot be used: ${r.error.message}`,
      fix: 'install @flowlb/xdp-core with its native addon (needs libbpf-dev, libelf-dev, g++ and make to build), or run with mode: userspace',
    };
  }
  if (!capable || r.error.code === 'EPERM') {
    return {
      ...base,
      verdict: 'fail',
      detail: `loading the program was refused: ${firstLine(r.error.message)}`,
      fix: 'see privileges above',
    };
  }
  return { ...base, verdict: 'fail', detail: `the kernel refused the program: ${firstLine(r.error.message)}`, fix: 'run with mode: userspace' };
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** Where `flowlb run` mounts bpffs for `path` (as ensureBpffsDir of @flowlb/xdp-core chooses), and whether it is new. */
function mountPointFor(path: string, existing: string | undefined): { point: string; create: boolean } {
  if (path === '/sys/fs/bpf' || path.startsWith('/sys/fs/bpf/')) return { point: '/sys/fs/bpf', create: false };
  if (existing && existing !== path) {
    const rest = path.slice(existing === '/' ? 1 : existing.length + 1).split('/')[0]!;
    return { point: `${existing === '/' ? '' : existing}/${rest}`, create: true };
  }
  return { point: path, create: false };
}

export function checkBpffs(probe: SystemProbe, config: FlowlbConfig | undefined): CheckResult {
  const base = { id: 'bpffs', title: 'bpffs' };
  const path = config?.pinPath ?? PIN_ROOT;
  const fs = probe.fsType(path);
  if (fs && fs.type === BPF_FS_MAGIC) {
    return { ...base, verdict: 'ok', detail: `${fs.probed} is on bpffs: maps are pinned under ${path}` };
  }
  const found = fs ? `${fs.probed} is not on bpffs (filesystem type 0x${fs.type.toString(16)})` : `nothing of ${path} exists`;
  const { point, create } = mountPointFor(path, fs?.probed);
  const mount = `${create ? `mkdir ${point} && ` : ''}mount -t bpf bpf ${point}`;
  const caps = probe.capEff();
  if (caps !== undefined && (caps & (1n << CAP_SYS_ADMIN)) !== 0n) {
    return {
      ...base,
      verdict: 'warn',
      detail:
        `${found}: \`flowlb run\` mounts a bpffs on ${point} for its pins, which lasts as long as the mount namespace it ` +
        'runs in; inside `ip netns exec` that is a namespace of its own, which ends with the run unless a shell started ' +
        'there holds it, and other `ip netns exec` commands do not see the pins',
      fix:
        'for pins that outlive the run and are seen from every `ip netns exec`, mount bpffs in the host outside /sys ' +
        '(mkdir -p /run/flowlb/bpffs && mount -t bpf bpf /run/flowlb/bpffs) and set pin_path below it; or start flowlb ' +
        'from a shell in the namespace (ip netns exec NS bash)',
    };
  }
  const fix = `mount bpffs: ${mount} (inside \`ip netns exec\` /sys/fs/bpf is not mounted); \`flowlb run\` mounts it itself with CAP_SYS_ADMIN`;
  if (config?.pinPathSet) {
    return { ...base, verdict: 'fail', detail: `${found}, and without CAP_SYS_ADMIN \`flowlb run\` cannot mount one, so pin_path ${path} cannot hold pinned maps`, fix };
  }
  return {
    ...base,
    verdict: 'warn',
    detail:
      `${found}, and without CAP_SYS_ADMIN \`flowlb run\` cannot mount one: it runs without pinned maps, so its flows do ` +
      'not survive a restart and `flowlb flows` and `flowlb stats` reach it only through its metrics server',
    fix,
  };
}
