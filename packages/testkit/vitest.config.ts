import { configDefaults, defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // Run only by privileges.test.ts, in a child vitest with an environment of its choosing.
      exclude: [...configDefaults.exclude, 'src/test-support/fixtures/**'],
      globalSetup: ['./src/test-support/global-setup.ts'],
    },
  }),
);
