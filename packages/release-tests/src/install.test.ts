// Installs the packed tarballs into an empty project with plain npm, as a user would install them from the
// registry, and uses them from there: the CLI, both module formats, the declarations, a balancer with a custom
// mapper, and xdp-core's native addon and BPF object.
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run, runOk, type RunResult } from './exec.js';
import { makeTempDir, removeTempDir } from './temp.js';
import { fixturesDir, repoRoot } from './workspace.js';

const packed = inject('packed');
const isRoot = process.getuid?.() === 0;

let project: string | undefined;
let install: RunResult;

function inProject(command: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return run(command, args, { cwd: project!, timeoutMs });
}

function readJson<T>(...path: string[]): T {
  return JSON.parse(readFileSync(join(project!, ...path), 'utf8')) as T;
}

/** Copies a fixture into the project: it must resolve the packages from the project's node_modules, as user code does. */
function fixture(name: string): string {
  copyFileSync(join(fixturesDir, name), join(project!, name));
  return name;
}

/** The last line a fixture prints is its JSON report; anything before it is the packages' own logging. */
function report<T>(r: RunResult): T {
  expect(r, r.stderr).toMatchObject({ code: 0 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

beforeAll(async () => {
  project = makeTempDir('install');
  await runOk('npm', ['init', '-y'], { cwd: project, timeoutMs: 30_000 });
  // npm 11 warns about dependency install scripts the project has not allowed and is moving to skip them; this is
  // how a project that uses xdp-core allows its addon build.
  const manifest = readJson<Record<string, unknown>>('package.json');
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ ...manifest, allowScripts: { '@flowlb/xdp-core': true } }, null, 2)}\n`,
  );
  // --foreground-scripts keeps node-gyp's output, which tells how the addon was built.
  install = await runOk('npm', ['install', '--foreground-scripts', '--no-fund', '--no-audit', ...packed.map((p) => p.tarball)], {
    cwd: project,
    timeoutMs: 300_000,
  });
});

afterAll(() => removeTempDir(project));

it('installs every package from its tarball, each @flowlb dependency satisfied by a tarball', () => {
  const lock = readJson<{ packages: Record<string, { version?: string; resolved?: string }> }>('package-lock.json');
  const flowlb = Object.entries(lock.packages).filter(([path]) => path.includes('node_modules/@flowlb/'));
  // One copy each, at the top: a nested copy would mean a `workspace:` range became one the tarball does not meet.
  expect(flowlb.map(([path]) => path).sort()).toEqual(packed.map((p) => `node_modules/${p.name}`).sort());
  for (const [path, entry] of flowlb) expect(entry.resolved, path).toMatch(/^file:.*\.tgz$/);
  for (const p of packed) expect(readJson<{ version: string }>('node_modules', p.name, 'package.json').version).toBe(p.version);
});

it('runs `npx flowlb --help`: usage text, exit 0', async () => {
  const r = await inProject('npx', ['flowlb', '--help']);
  expect(r, r.stderr).toMatchObject({ code: 0 });
  expect(r.stdout).toMatch(/^Usage: flowlb /);
  for (const command of ['run', 'flows', 'stats', 'check', 'demo']) expect(r.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  const version = await inProject('npx', ['flowlb', '--version']);
  expect(version.stdout.trim()).toBe(packed.find((p) => p.name === '@flowlb/cli')!.version);
});

it('imports every package as ESM, and requires those that export CommonJS', async () => {
  const loaded = report<Record<string, { esm: string[]; cjs: string[] | null }>>(
    await inProject(process.execPath, [fixture('import-all.mjs')]),
  );
  expect(Object.keys(loaded).sort()).toEqual(packed.map((p) => p.name).sort());
  for (const [name, { esm, cjs }] of Object.entries(loaded)) {
    expect(esm.length, `${name} exports something`).toBeGreaterThan(0);
    if (cjs) expect(cjs, `${name}: the same names from require()`).toEqual(esm.filter((k) => k !== 'default'));
  }
});

it('type-checks user code against the installed declarations, from ESM and from CommonJS (node16 resolution)', async () => {
  for (const file of ['esm.mts', 'cjs.cts']) copyFileSync(join(fixturesDir, 'types', file), join(project!, file));
  writeFileSync(
    join(project!, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'node16',
        moduleResolution: 'node16',
        target: 'es2022',
        strict: true,
        noEmit: true,
        // The shipped .d.ts files are checked too: they must not need anything the packages do not install.
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(repoRoot, 'node_modules', '@types')],
      },
      files: ['esm.mts', 'cjs.cts'],
    }),
  );
  const tsc = createRequire(join(repoRoot, 'package.json')).resolve('typescript/bin/tsc');
  const r = await inProject(process.execPath, [tsc, '-p', 'tsconfig.json']);
  expect(r.stdout + r.stderr).toBe('');
  expect(r.code).toBe(0);
});

it('composes @flowlb/balancer with a custom mapper: UDP through the VIP on loopback, userspace datapath', async () => {
  const out = report<{ replies: string[]; snat: string; decisions: number[]; flows: { created: number } }>(
    await inProject(process.execPath, [fixture('userspace-echo.mjs')], 30_000),
  );
  expect(out.replies).toEqual([0, 1, 2, 3, 4].map((i) => `echo:hello-${i}`));
  expect(out.snat).toMatch(/^127\.0\.0\.1:\d+$/);
  // The mapper chose once it had both buffered datagrams.
  expect(out.decisions.at(-1)).toBe(2);
  expect(out.flows.created).toBe(1);
});

describe('@flowlb/xdp-core', () => {
  const pkgDir = (): string => join(project!, 'node_modules', '@flowlb', 'xdp-core');

  it("builds its addon from source on install, with the node-gyp npm provides (it ships none of its own)", () => {
    expect(existsSync(join(pkgDir(), 'build', 'Release', 'flowlb_xdp_core.node'))).toBe(true);
    expect(existsSync(join(project!, 'node_modules', 'node-gyp')), 'node-gyp is a dev dependency only').toBe(false);
    expect(install.stdout + install.stderr).toMatch(/gyp info ok/);
  });

  it('finds the BPF objects it ships by paths inside node_modules', async () => {
    const r = await inProject(process.execPath, [
      '-e',
      "import('@flowlb/xdp-core').then(m => { for (const o of [m.FLOWLB_BPF_OBJECT, m.XDP_PASS_BPF_OBJECT]) console.log(o, require('fs').existsSync(o)); })",
    ]);
    expect(r, r.stderr).toMatchObject({ code: 0 });
    expect(r.stdout.trim().split('\n')).toEqual([`${join(pkgDir(), 'dist', 'flowlb.bpf.o')} true`, `${join(pkgDir(), 'dist', 'xdp_pass.bpf.o')} true`]);
  });

  it('ships the header with the layout of its maps', () => {
    const header = readFileSync(join(pkgDir(), 'dist', 'flowlb.h'), 'utf8');
    expect(header).toMatch(/struct flow_key \{/);
    expect(header).toMatch(/struct flow_val \{/);
  });

  it.skipIf(!isRoot)('loads the XDP program from the installed copy (XdpForwarder.load, as root)', async () => {
    const out = report<{ object: string; cjsObject: string; program: string; flowsMaxEntries: number }>(
      await inProject(process.execPath, [fixture('xdp-core-load.mjs')]),
    );
    expect(out).toMatchObject({
      object: join(pkgDir(), 'dist', 'flowlb.bpf.o'),
      cjsObject: join(pkgDir(), 'dist', 'flowlb.bpf.o'),
      program: 'flowlb_xdp',
      flowsMaxEntries: 1024,
    });
  });
});
