import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.shared.ts';

export default defineConfig([
  packageBuild(),
  // The test-support builders, for the bench only: to dist-testing/, which the package's `files` leaves out.
  {
    entry: { testing: 'src/testing/index.ts' },
    outDir: 'dist-testing',
    format: ['esm'],
    dts: false,
    sourcemap: false,
    clean: true,
    target: 'node20',
    external: ['@flowlb/mapper-api', '@flowlb/tls-hello', '@flowlb/testkit'],
  },
]);
