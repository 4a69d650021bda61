import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.shared.ts';

// The BPF object is written into dist/ by the bpf build before this runs: keep it.
export default defineConfig(packageBuild({ clean: false, shims: true }));
