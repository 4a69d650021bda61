import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/udp-peer.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
  // vitest comes from the consuming package's test run; bundling it would give tests a second copy.
  external: ['vitest', 'tsup'],
});
