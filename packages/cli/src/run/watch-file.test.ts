import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { watchFile } from './watch-file.js';

const waitFor = async (cond: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('watchFile', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('reports a write and a replacement by rename once each, and ignores other files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-watch-'));
    dirs.push(dir);
    const file = join(dir, 'mappings.yaml');
    writeFileSync(file, 'a');
    let calls = 0;
    const stop = watchFile(file, () => calls++, 100);
    try {
      for (let i = 0; i < 5; i++) writeFileSync(file, `write ${i}`);
      await waitFor(() => calls === 1);
      writeFileSync(join(dir, 'other.yaml'), 'x');
      writeFileSync(join(dir, 'mappings.yaml.tmp'), 'replaced');
      renameSync(join(dir, 'mappings.yaml.tmp'), file);
      await waitFor(() => calls === 2);
      await new Promise((r) => setTimeout(r, 300));
      expect(calls).toBe(2);
    } finally {
      stop();
    }
    writeFileSync(file, 'after stop');
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toBe(2);
  });
});
