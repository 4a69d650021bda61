import { describe, expect, it } from 'vitest';
import { systemClock } from './clock.js';

describe('systemClock', () => {
  it('tells wall-clock time', () => {
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it('runs timers that do not keep the process alive, and cancels them', async () => {
    let cancelledRan = false;
    const cancelled = systemClock.setTimeout(() => {
      cancelledRan = true;
    }, 1);
    systemClock.clearTimeout(cancelled);
    let handle: unknown;
    await new Promise<void>((resolve) => {
      handle = systemClock.setTimeout(resolve, 5);
      expect((handle as { hasRef(): boolean }).hasRef()).toBe(false);
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(cancelledRan).toBe(false);
  });
});
