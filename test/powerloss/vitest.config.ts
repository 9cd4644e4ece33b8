// The power-loss rounds (`npm run test:powerloss`): minutes of work on a LazyFS mount,
// one file at a time, never in the default run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/powerloss/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
