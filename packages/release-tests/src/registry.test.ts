// Publishes every package to a registry on loopback with `npm publish`, then runs the CLI the way a user who has
// not installed anything does: `npx @flowlb/cli`, with only the @flowlb scope pointed at that registry.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { run, runOk, userEnv } from './exec.js';
import { startRegistry, type LocalRegistry } from './registry.js';
import { makeTempDir, removeTempDir } from './temp.js';
import { publishedPackages } from './workspace.js';

const TOKEN = 'test';
const packed = inject('packed');

let registry: LocalRegistry | undefined;
let home: string | undefined;
let work: string;

beforeAll(async () => {
  home = makeTempDir('registry');
  work = join(home, 'work');
  registry = await startRegistry(TOKEN);
  const { host } = new URL(registry.url);
  for (const p of packed) {
    // The token goes on the command line, so no user or project .npmrc is written to.
    await runOk('npm', ['publish', p.tarball, '--registry', registry.url, `--//${host}/:_authToken=${TOKEN}`, '--cache', join(home, 'publish-cache')], {
      cwd: home,
      timeoutMs: 60_000,
      // Outside CI npm has no OIDC token to trade; inside, this registry has nothing to trade it with.
      env: userEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: undefined, ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined, NPM_ID_TOKEN: undefined }),
    });
  }
});

afterAll(async () => {
  await registry?.close();
  removeTempDir(home);
});

it('accepts `npm publish` of every package and serves each packument, scoped name escaped or not', async () => {
  for (const p of packed) {
    for (const path of [encodeURIComponent(p.name).replace('%40', '@'), p.name]) {
      const res = await fetch(`${registry!.url}${path}`);
      expect(res.status, `${path}: ${registry!.log.join('\n')}`).toBe(200);
      const doc = (await res.json()) as { 'dist-tags': Record<string, string>; versions: Record<string, { dist: { tarball: string } }> };
      expect(doc['dist-tags'].latest).toBe(p.version);
      const tarball = await fetch(doc.versions[p.version]!.dist.tarball);
      expect(tarball.status).toBe(200);
      expect((await tarball.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
  }
});

it('refuses a publish without the token', async () => {
  const res = await fetch(`${registry!.url}@flowlb%2fanything`, { method: 'PUT', body: '{}' });
  expect(res.status).toBe(401);
});

it('runs `npx --yes @flowlb/cli --help` with only the @flowlb scope mapped to the local registry', async () => {
  mkdirSync(work);
  writeFileSync(join(work, '.npmrc'), `@flowlb:registry=${registry!.url}\n`);
  const before = registry!.log.length;
  const r = await run('npx', ['--yes', '@flowlb/cli', '--help'], {
    cwd: work,
    timeoutMs: 240_000,
    // A cache of its own, filled neither by earlier runs (npx would reuse their ~/.npm/_npx install) nor by the
    // publishes above (npm would take the tarballs from it by their integrity instead of downloading them).
    env: userEnv({ npm_config_cache: join(home!, 'npx-cache') }),
  });
  expect(r, `${r.stderr}\nregistry log:\n${registry!.log.join('\n')}`).toMatchObject({ code: 0 });
  expect(r.stdout).toMatch(/^Usage: flowlb /);
  expect(r.stdout).toMatch(/^Commands:$/m);

  const requests = registry!.log.slice(before);
  // The CLI and its @flowlb dependencies came from here; nothing else was asked of this registry, so the
  // third-party dependencies came from the default one.
  const cli = publishedPackages().find((p) => p.manifest.name === '@flowlb/cli')!.manifest;
  const fromHere = ['@flowlb/cli', ...Object.keys(cli.dependencies ?? {}).filter((d) => d.startsWith('@flowlb/'))];
  for (const name of fromHere) {
    expect(requests, name).toContainEqual(expect.stringMatching(new RegExp(`^GET /${name}/-/.*\\.tgz 200$`)));
  }
  expect(requests.filter((line) => !/^GET \/@flowlb(\/|%2f)/i.test(line))).toEqual([]);
});
