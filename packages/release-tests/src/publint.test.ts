import { existsSync, readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { describe, expect, inject, it } from 'vitest';
import { publishedPackages } from './workspace.js';

const packages = publishedPackages();

describe.each(packages.map((p) => [p.manifest.name, p] as const))('%s', (name, pkg) => {
  it('passes publint with no error and no warning', async () => {
    // pack: 'pnpm' lints against the files pnpm would publish, so a path outside `files` is reported as such.
    const { messages, pkg: manifest } = await publint({ pkgDir: pkg.dir, pack: 'pnpm', level: 'suggestion' });
    const text = (type: string): string[] =>
      messages.filter((m) => m.type === type).map((m) => `${m.code}: ${formatMessage(m, manifest, { color: false })}`);
    const suggestions = text('suggestion');
    if (suggestions.length > 0) console.info(`publint suggestions for ${name}:\n  ${suggestions.join('\n  ')}`);
    expect([...text('error'), ...text('warning')]).toEqual([]);
  });

  it('declares what npm needs to publish it: public access, files allow-list, license, engines', () => {
    const m = pkg.manifest;
    // A scoped package is published restricted (and refused without a paid plan) unless access is public.
    expect(m.publishConfig).toMatchObject({ access: 'public' });
    expect(Array.isArray(m.files) && m.files.length > 0, 'a `files` allow-list').toBe(true);
    expect(m.license).toBeTypeOf('string');
    expect(m.engines).toMatchObject({ node: expect.any(String) });
  });

  it('has an exports map whose every entry point carries its types', () => {
    const root = (pkg.manifest.exports as Record<string, unknown> | undefined)?.['.'];
    expect(root, 'exports["."]').toBeTypeOf('object');
    const withoutTypes: string[] = [];
    const visit = (node: unknown, path: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const conditions = node as Record<string, unknown>;
      const leaves = Object.entries(conditions).filter(([, v]) => typeof v === 'string');
      if (leaves.some(([k]) => k !== 'types') && typeof conditions.types !== 'string') withoutTypes.push(path);
      for (const [k, v] of Object.entries(conditions)) visit(v, `${path}.${k}`);
    };
    visit(root, 'exports["."]');
    expect(withoutTypes).toEqual([]);
  });

  it('ships a README with an example', () => {
    const file = join(pkg.dir, 'README.md');
    expect(existsSync(file), `${file} exists`).toBe(true);
    expect(readFileSync(file, 'utf8')).toMatch(/```(ts|js|sh|yaml)/);
    const packed = inject('packed').find((p) => p.name === name);
    expect(packed?.files).toContain('README.md');
  });

  it("links from its README only to web addresses, anchors and files in its own tarball", () => {
    const text = readFileSync(join(pkg.dir, 'README.md'), 'utf8');
    const packed = inject('packed').find((p) => p.name === name);
    const targets = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
    const local = targets.filter((t) => !/^(https?:|mailto:|#)/.test(t)).map((t) => normalize(t.split('#')[0]!));
    expect(local.filter((t) => !packed?.files.includes(t))).toEqual([]);
  });
});

it('finds the published packages', () => {
  expect(packages.map((p) => p.manifest.name)).toEqual(
    expect.arrayContaining(['@flowlb/balancer', '@flowlb/cli', '@flowlb/mapper-api', '@flowlb/xdp-core']),
  );
});
