/** BPF objects compiled from the `.bpf.c` files beside this one, for tests that need something other than flowlb's. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LONG_VERIFIER_LOG_SOURCE = join(import.meta.dirname, 'long-verifier-log.bpf.c');
export const FIXTURE_MAPS_SOURCE = join(import.meta.dirname, 'fixture-maps.bpf.c');

function archIncludes(): string[] {
  // The uapi headers include <asm/types.h>, which Debian keeps under a multiarch folder clang does not search for bpf.
  const multiarch = spawnSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).stdout?.trim();
  return multiarch ? [`-I/usr/include/${multiarch}`] : [];
}

export interface CompiledObjects {
  /** Object file path for each source, in the order given. */
  objects: string[];
  remove(): void;
}

/** Compiles each source with clang into a fresh temporary folder; `remove()` deletes it. */
export function compileBpf(...sources: string[]): CompiledObjects {
  const dir = mkdtempSync(join(tmpdir(), 'xdp-core-fixture-'));
  try {
    const objects = sources.map((src, i) => {
      const out = join(dir, `${i}.bpf.o`);
      execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-c', src, '-o', out, ...archIncludes()], { stdio: 'pipe' });
      return out;
    });
    return { objects, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
