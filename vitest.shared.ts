import { defineConfig } from 'vitest/config';

/** Settings every package's tests share: one JSON result per package for the run's summary line. */
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    reporters: ['default', ['json', { outputFile: '.vitest-result.json' }]],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
