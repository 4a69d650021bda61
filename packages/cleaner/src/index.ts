export { Cleaner, createCleaner } from './cleaner.js';
export type { CleanerOptions, SweepStats } from './cleaner.js';
export { expireIfIdle } from './expire-flow.js';
export type { ExpiredFlow, SweepableTable } from './expire-flow.js';
export { TimeoutSet } from './timeout-set.js';
