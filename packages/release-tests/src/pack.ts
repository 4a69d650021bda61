import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runOk } from './exec.js';
import { publishedPackages, type WorkspacePackage } from './workspace.js';

export interface Packed {
  name: string;
  version: string;
  tarball: string;
  files: string[];
}

/**
 * `pnpm pack` of every published package into `dest`. pnpm, not npm: it rewrites `workspace:` ranges into the
 * versions being released, which is what `pnpm publish` (and changesets) upload.
 */
export async function packAll(dest: string, packages: WorkspacePackage[] = publishedPackages()): Promise<Packed[]> {
  const packed: Packed[] = [];
  for (const pkg of packages) {
    const r = await runOk('pnpm', ['pack', '--pack-destination', dest, '--json'], {
      cwd: pkg.dir,
      timeoutMs: 60_000,
      env: process.env,
    });
    const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { filename: string; files: { path: string }[] };
    const files = out.files.map((f) => f.path);
    if (!files.some((f) => f.startsWith('dist/'))) {
      throw new Error(`${pkg.manifest.name} has no dist/ to pack: build the workspace first (pnpm -w build)`);
    }
    packed.push({ name: pkg.manifest.name, version: pkg.manifest.version, tarball: out.filename, files });
  }
  const onDisk = readdirSync(dest).filter((f) => f.endsWith('.tgz'));
  if (onDisk.length !== packed.length) throw new Error(`expected ${packed.length} tarballs in ${dest}, found ${onDisk.join(', ')}`);
  return packed.map((p) => ({ ...p, tarball: join(dest, basename(p.tarball)) }));
}
