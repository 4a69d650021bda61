import { mkdirSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

const BPF_FS_MAGIC = 0xcafe4a11;

/** Creates `dir` on bpffs, or says how to get bpffs there. */
export function ensureBpffsDir(dir: string): void {
  let probe = dir;
  for (;;) {
    try {
      const st = statfsSync(probe);
      if (st.type !== BPF_FS_MAGIC) {
        const err = new Error(
          `${dir} is not on a bpffs mount (${probe} has filesystem type 0x${st.type.toString(16)}); ` +
            'mount one with `mount -t bpf bpf /sys/fs/bpf` (inside `ip netns exec` it is not mounted by default)',
        ) as NodeJS.ErrnoException;
        err.code = 'ERR_FLOWLB_NOT_BPFFS';
        throw err;
      }
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // bpffs refuses names with a dot: looking one up fails with EPERM rather than ENOENT.
      if (code === 'EPERM' && probe.split('/').some((c) => c.includes('.') && c !== '.' && c !== '..')) {
        const err = new Error(
          `${dir}: bpffs does not allow '.' in names (${probe}); choose a pin path without dots`,
        ) as NodeJS.ErrnoException;
        err.code = 'ERR_FLOWLB_BPFFS_NAME';
        throw err;
      }
      if (code !== 'ENOENT') throw e;
      const parent = dirname(probe);
      if (parent === probe) throw e;
      probe = parent;
    }
  }
  mkdirSync(dir, { recursive: true });
}
