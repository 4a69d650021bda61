import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';

/**
 * Bundles peer-cli.ts from the current sources so a plain `node` in another namespace can run it. The bundle goes
 * under this package's node_modules, from where the @flowlb packages it leaves external resolve as they would for
 * a user of the published package.
 */
export async function bundlePeerCli(): Promise<{ script: string; dispose: () => void }> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const dir = mkdtempSync(join(root, 'node_modules', '.e2e-bundle-'));
  try {
    await build({
      entry: { 'peer-cli': join(root, 'src', 'test-support', 'peer-cli.ts') },
      outDir: dir,
      format: ['esm'],
      outExtension: () => ({ js: '.mjs' }),
      target: 'node20',
      platform: 'node',
      config: false,
      dts: false,
      sourcemap: false,
      clean: false,
      silent: true,
      external: ['@flowlb/xdp-core', '@flowlb/flow-table', '@flowlb/cleaner', '@flowlb/mapper-api'],
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return { script: join(dir, 'peer-cli.mjs'), dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
