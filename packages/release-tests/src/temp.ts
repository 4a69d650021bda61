import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh folder outside the workspace, so npm finds no workspace root, lockfile or .npmrc above it. */
export function makeTempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `flowlb-${label}-`));
}

export function removeTempDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
