import type { Clock } from './types.js';

/**
 * Wall-clock time and Node's timers. Timers are unref'd: health checks are never a reason for a process to stay
 * alive, so a forgotten `stop()` cannot hang a shutdown.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};
