import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';

/**
 * Bundles the current sources into dist-test-<pid>/ (inside the package, so that the workspace dependencies resolve
 * from there) before the tests start: the end-to-end tests run `node dist-test-<pid>/bin.js`, and dist/ may be stale.
 */
export default async function setup(): Promise<() => void> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  // One folder per test run, beside dist/ so that `../package.json` still resolves: runs side by side would otherwise
  // remove each other's bin at teardown.
  const outDir = `${root}dist-test-${process.pid}`;
  await build({
    entry: { bin: `${root}src/bin.ts`, index: `${root}src/index.ts` },
    outDir,
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    config: false,
    dts: false,
    sourcemap: true,
    clean: true,
    silent: true,
  });
  process.env.FLOWLB_CLI_BIN = `${outDir}/bin.js`;
  return () => rmSync(outDir, { recursive: true, force: true });
}
