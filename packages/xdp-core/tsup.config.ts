import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  // The BPF object is written into dist/ by the bpf build; keep it.
  clean: false,
  shims: true,
  target: 'node20',
});
