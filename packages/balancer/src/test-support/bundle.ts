import { fileURLToPath } from 'node:url';
import { bundleForChild, type ChildBundle } from '@flowlb/testkit';

/** peer-cli.ts from the current sources, runnable by a plain `node` in another namespace. */
export function bundlePeerCli(): Promise<ChildBundle> {
  return bundleForChild({
    packageRoot: fileURLToPath(new URL('../..', import.meta.url)),
    entry: 'src/test-support/peer-cli.ts',
    external: ['@flowlb/xdp-core', '@flowlb/flow-table', '@flowlb/cleaner', '@flowlb/mapper-api'],
  });
}
