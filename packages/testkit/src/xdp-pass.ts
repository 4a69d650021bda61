import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { findExecutable, run } from './exec.js';

/** The whole program: every frame goes on to the stack. */
export const XDP_PASS_SOURCE = `__attribute__((section("xdp"), used)) int xdp_pass(void *ctx) { return 2; /* XDP_PASS */ }
char _license[] __attribute__((section("license"), used)) = "GPL";
`;

/*
 * XDP_PASS_SOURCE compiled with `clang-14 -O2 -target bpf -c` (no BTF, 704 bytes). Used when clang is
 * missing, so a machine with only iproute2 can still give a veth peer the program that makes
 * XDP_TX/redirect deliver.
 */
const PREBUILT_BASE64 =
  'f0VMRgIBAQAAAAAAAAAAAAEA9wABAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAEAAAAAAAEAABwABALcAAAACAAAAlQAAAAAAAABHUEwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACsAAAAEAPH/AAAAAAAAAAAAAAAAAAAAAAcAAAASAAMAAAAAAAAAAAAQAAAAAAAAACIAAAARAAQAAAAAAAAAAAAEAAAAAAAAAAIDAC50ZXh0AHhkcF9wYXNzAHhkcAAubGx2bV9hZGRyc2lnAF9saWNlbnNlAHBhc3MyLmMALnN0cnRhYgAuc3ltdGFiAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAzAAAAAwAAAAAAAAAAAAAAAAAAAAAAAAC6AAAAAAAAAEMAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAQAAAAEAAAAGAAAAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAABAAAAABAAAABgAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAgAAAAAAAAAAAAAAAAAAAAjAAAAAQAAAAMAAAAAAAAAAAAAAAAAAABQAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAFAAAAANM/28AAACAAAAAAAAAAAAAAAAAuAAAAAAAAAACAAAAAAAAAAYAAAAAAAAAAQAAAAAAAAAAAAAAAAAAADsAAAACAAAAAAAAAAAAAAAAAAAAAAAAAFgAAAAAAAAAYAAAAAAAAAABAAAAAgAAAAgAAAAAAAAAGAAAAAAAAAA=';

export type XdpPassSource = 'clang' | 'prebuilt';

let objectPromise: Promise<{ path: string; source: XdpPassSource }> | undefined;

/**
 * A private cache directory shared by every process of this user. Objects are named after their
 * content, so concurrent test processes reuse them and nothing has to be removed at exit (which a
 * worker killed by a signal would never do).
 */
function cacheDir(): string {
  const uid = process.getuid?.() ?? 0;
  const dir = join(tmpdir(), `flowlb-testkit-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`${dir} is not a private directory of uid ${uid}`);
  }
  return dir;
}

function usable(path: string): boolean {
  try {
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}

async function build(preferPrebuilt: boolean): Promise<{ path: string; source: XdpPassSource }> {
  const dir = cacheDir();
  const tag = createHash('sha256').update(XDP_PASS_SOURCE).digest('hex').slice(0, 12);
  const unique = `${process.pid}-${threadId}`;

  const clang = preferPrebuilt ? undefined : (findExecutable('clang') ?? findExecutable('clang-14'));
  if (clang) {
    const out = join(dir, `xdp_pass-${tag}-clang.o`);
    if (usable(out)) return { path: out, source: 'clang' };
    const src = join(dir, `xdp_pass-${tag}-${unique}.c`);
    const tmp = join(dir, `xdp_pass-${tag}-${unique}.o.tmp`);
    writeFileSync(src, XDP_PASS_SOURCE);
    try {
      await run(clang, ['-O2', '-target', 'bpf', '-c', src, '-o', tmp], { timeoutMs: 30_000 });
      // Renamed into place so that a concurrent reader never sees a half-written object.
      renameSync(tmp, out);
      return { path: out, source: 'clang' };
    } catch {
      rmSync(tmp, { force: true });
      // fall through to the prebuilt object
    } finally {
      rmSync(src, { force: true });
    }
  }
  const out = join(dir, `xdp_pass-${createHash('sha256').update(PREBUILT_BASE64).digest('hex').slice(0, 12)}-prebuilt.o`);
  if (!usable(out)) {
    const tmp = `${out}.${unique}.tmp`;
    writeFileSync(tmp, Buffer.from(PREBUILT_BASE64, 'base64'));
    renameSync(tmp, out);
  }
  return { path: out, source: 'prebuilt' };
}

/**
 * Path of an object file with a section `xdp` holding an XDP_PASS program (clang when installed,
 * otherwise a prebuilt copy), cached across processes. FLOWLB_XDP_PASS_PREBUILT=1 skips clang.
 */
export function xdpPassObject(): Promise<{ path: string; source: XdpPassSource }> {
  objectPromise ??= build(process.env.FLOWLB_XDP_PASS_PREBUILT === '1');
  return objectPromise;
}

/** Writes the prebuilt object to `path` (for checks that it still loads). */
export function writePrebuiltXdpPass(path: string): void {
  writeFileSync(path, Buffer.from(PREBUILT_BASE64, 'base64'));
}
