import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleEsm } from '../child-control.js';

/**
 * The UDP peer runs as a separate node process, which cannot load TypeScript: bundle it (and the
 * namespace module, for the exit-cleanup test) from the current sources before the tests start.
 */
export default async function setup(): Promise<() => void> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-test-build-'));
  const src = (f: string): string => fileURLToPath(new URL(`../${f}`, import.meta.url));
  await bundleEsm({ 'udp-peer': src('udp-peer.ts'), netns: src('netns.ts') }, dir);
  process.env.FLOWLB_UDP_PEER = join(dir, 'udp-peer.mjs');
  process.env.FLOWLB_TEST_NETNS_MODULE = join(dir, 'netns.mjs');
  return () => rmSync(dir, { recursive: true, force: true });
}
