import type { HealthSettings } from './types.js';

/** Node fires a timer longer than this after 1 ms instead, which would turn a long interval into a busy loop. */
export const MAX_TIMER_MS = 2_147_483_647;

const MIN_INTERVAL_MS = 10;
const MAX_RISE_FALL = 100;

function integerIn(settings: HealthSettings, key: keyof HealthSettings, min: number, max: number, maxText = String(max)): number {
  const value: unknown = settings[key];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const got = typeof value === 'number' ? String(value) : typeof value;
    throw new RangeError(`HealthSettings.${key} must be an integer from ${min} to ${maxText}, got ${got}`);
  }
  return value;
}

/** Checks settings up front and copies them, so a caller mutating its object later cannot change a running check. */
export function validateHealthSettings(settings: HealthSettings): HealthSettings {
  if (typeof settings !== 'object' || settings === null) {
    throw new TypeError(`HealthSettings must be an object, got ${settings === null ? 'null' : typeof settings}`);
  }
  const intervalMs = integerIn(settings, 'intervalMs', MIN_INTERVAL_MS, MAX_TIMER_MS);
  const timeoutMs = integerIn(settings, 'timeoutMs', 1, intervalMs, `intervalMs (${intervalMs})`);
  const rise = integerIn(settings, 'rise', 1, MAX_RISE_FALL);
  const fall = integerIn(settings, 'fall', 1, MAX_RISE_FALL);
  return { intervalMs, timeoutMs, rise, fall };
}
