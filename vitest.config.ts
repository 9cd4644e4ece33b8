import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Power-loss rounds need LazyFS and minutes: `npm run test:powerloss` (test/powerloss/vitest.config.ts).
    exclude: ['**/node_modules/**', 'test/powerloss/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
