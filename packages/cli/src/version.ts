import { createRequire } from 'node:module';

/** The package's own version, read from package.json next to dist/ (or src/ under test). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
