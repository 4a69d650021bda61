import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // End-to-end tests run the bin as its own process (inside network namespaces), which needs built code.
      globalSetup: ['./src/test-support/global-setup.ts'],
    },
  }),
);
