import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      globalSetup: ['./src/global-setup.ts'],
      // npm installs fetch the third-party dependencies and compile the xdp-core addon.
      testTimeout: 120_000,
      hookTimeout: 300_000,
    },
  }),
);
