import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KEY_DOCS, parseConfig } from './config/index.js';
import { loadMapperModule } from './mapper/load-module.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function blocks(lang: string): string[] {
  return [...readme.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

// The README is what users copy from: its examples must work and its key table must be complete.
describe('README', () => {
  it('documents every config key', () => {
    for (const d of KEY_DOCS.filter((k) => k.key !== 'pending' && k.key !== 'rate_limit')) expect(readme).toContain(`| \`${d.key}\``);
  });

  it('its config examples load', () => {
    const yaml = blocks('yaml').filter((b) => b.includes('addr:'));
    expect(yaml.length).toBe(2);
    for (const b of yaml) expect(() => parseConfig(b, 'README.md')).not.toThrow();
  });

  it('its mapper example loads and answers', async () => {
    const [js] = blocks('js');
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-readme-'));
    try {
      writeFileSync(join(dir, 'my-mapper.mjs'), js!);
      const log = { info: () => {} };
      const m = await loadMapperModule(join(dir, 'my-mapper.mjs'), { vip: { address: '192.0.2.1', port: 4433 }, snatAddress: '192.0.2.1', configFile: 'c', log });
      expect(m.findFlow({ address: '203.0.113.7', port: 1 }, [])).toEqual({ action: 'forward', flow: { dstAddr: { address: '10.0.0.11', port: 7000 } } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
