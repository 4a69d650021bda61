import { defineConfig } from 'tsup';

export default defineConfig({
  // run.ts drives the benchmarks; the others are started as their own processes inside network namespaces.
  entry: ['src/run.ts', 'src/generator.ts', 'src/control-plane-child.ts', 'src/hash-mapper.ts'],
  format: ['esm'],
  sourcemap: true,
  // make has already put bench.bpf.o and the tools in dist/.
  clean: false,
  target: 'node20',
});
