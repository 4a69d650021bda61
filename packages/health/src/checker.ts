import { isIP } from 'node:net';
import { endpointKey } from '@flowlb/mapper-api';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { systemClock } from './clock.js';
import { validateHealthSettings } from './settings.js';
import type { Clock, HealthSettings, HealthState, Probe, ProbeOutcome, TargetHealth } from './types.js';

export interface HealthCheckerOptions {
  /** Default {@link systemClock}. */
  clock?: Clock;
  /**
   * Called on every state change, `unknown` → `healthy` included, with a copy of the target's health. An error it
   * throws does not disturb the checker; it is rethrown from a microtask, where it surfaces as an uncaught exception.
   */
  onChange?: (health: TargetHealth, previous: HealthState) => void;
}

interface Run {
  readonly controller: AbortController;
  readonly startedAt: number;
  timeout: unknown;
}

interface Entry {
  readonly health: TargetHealth;
  probe: Probe;
  settings: HealthSettings;
  /** Timer of the next probe; undefined once it has come due. */
  next: unknown;
  lastStartedAt: number;
  /** The probe in flight. Anything that settles for a run that is no longer this one is ignored. */
  run: Run | undefined;
  /** The next probe came due while one was still in flight: it starts as soon as that one settles. */
  overdue: boolean;
}

function snapshot(health: TargetHealth): TargetHealth {
  return { ...health, target: { ...health.target } };
}

function reasonOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** Reads what a probe resolved with defensively: a probe is user code, and a malformed answer must count as a failure. */
function outcomeOf(value: unknown): ProbeOutcome {
  if (typeof value === 'object' && value !== null) {
    const { ok, reason } = value as { ok?: unknown; reason?: unknown };
    if (ok === true) return { ok: true };
    if (ok === false) return { ok: false, reason: typeof reason === 'string' && reason !== '' ? reason : 'failed' };
  }
  return { ok: false, reason: 'probe resolved without an outcome' };
}

function checkTarget(target: UdpEndpoint): void {
  if (typeof target !== 'object' || target === null) {
    throw new TypeError(`HealthChecker: expected a target { address, port }, got ${target === null ? 'null' : typeof target}`);
  }
  if (typeof target.address !== 'string' || isIP(target.address) === 0) {
    throw new TypeError(`HealthChecker: target address ${JSON.stringify(target.address)} is not an IPv4 or IPv6 address`);
  }
  if (typeof target.port !== 'number' || !Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw new RangeError(`HealthChecker: target port ${String(target.port)} is not an integer in 1..65535`);
  }
}

/**
 * Probes targets periodically and keeps a rise/fall state per target. A target starts `unknown`, which counts as
 * usable so that a fresh balancer does not refuse everyone before the first probes are in; `rise` successes in a
 * row make it `healthy` and `fall` failures in a row make it `unhealthy`, from whichever state it is in.
 *
 * Targets are keyed by `endpointKey`, so the objects passed to the methods need not be the ones given to `set()`.
 */
export class HealthChecker {
  readonly #clock: Clock;
  readonly #onChange: HealthCheckerOptions['onChange'];
  readonly #entries = new Map<string, Entry>();
  #stopped = false;

  constructor(options: HealthCheckerOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    if (options.onChange !== undefined && typeof options.onChange !== 'function') {
      throw new TypeError('HealthChecker: onChange must be a function');
    }
    this.#onChange = options.onChange;
  }

  /**
   * Starts checking `target` with `probe` every `settings.intervalMs`, the first probe at once; or, for a target
   * already checked, switches to the new probe and settings while keeping its state and counts. A probe in flight
   * finishes under the settings it started with; the next one is timed from its start with the new interval, and
   * the new `rise` and `fall` apply from the next result. Ignored after `stop()`.
   */
  set(target: UdpEndpoint, probe: Probe, settings: HealthSettings): void {
    checkTarget(target);
    if (typeof probe !== 'function') throw new TypeError('HealthChecker: probe must be a function');
    const valid = validateHealthSettings(settings);
    if (this.#stopped) return;

    const key = endpointKey(target);
    const existing = this.#entries.get(key);
    if (existing !== undefined) {
      existing.probe = probe;
      const intervalChanged = existing.settings.intervalMs !== valid.intervalMs;
      existing.settings = valid;
      if (intervalChanged && existing.next !== undefined) {
        this.#clock.clearTimeout(existing.next);
        const wait = Math.max(0, existing.lastStartedAt + valid.intervalMs - this.#clock.now());
        existing.next = this.#clock.setTimeout(() => this.#due(existing), wait);
      }
      return;
    }

    const entry: Entry = {
      health: {
        target: { address: target.address, port: target.port },
        state: 'unknown',
        since: this.#clock.now(),
        successesInRow: 0,
        failuresInRow: 0,
        probes: 0,
        failures: 0,
      },
      probe,
      settings: valid,
      next: undefined,
      lastStartedAt: 0,
      run: undefined,
      overdue: false,
    };
    this.#entries.set(key, entry);
    this.#start(entry);
  }

  /** Stops checking `target` and forgets it; a probe in flight is aborted and its result ignored. */
  delete(target: UdpEndpoint): void {
    const key = endpointKey(target);
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#halt(entry);
  }

  /** Whether `target` may take new clients: anything but `unhealthy`. A target that is not checked is usable. */
  isUsable(target: UdpEndpoint): boolean {
    return this.#entries.get(endpointKey(target))?.health.state !== 'unhealthy';
  }

  /** A copy of the target's health, or undefined when it is not checked. */
  get(target: UdpEndpoint): TargetHealth | undefined {
    const entry = this.#entries.get(endpointKey(target));
    return entry === undefined ? undefined : snapshot(entry.health);
  }

  /** Copies of every checked target's health, in the order they were first set. */
  all(): TargetHealth[] {
    return [...this.#entries.values()].map((entry) => snapshot(entry.health));
  }

  /**
   * A passive signal, such as an ICMP unreachable or a new flow that got no reply: counts as one failed probe now,
   * without waiting for the next active one. Ignored for a target that is not checked, and after `stop()`.
   */
  reportFailure(target: UdpEndpoint, reason: string): void {
    if (this.#stopped) return;
    const entry = this.#entries.get(endpointKey(target));
    if (entry === undefined) return;
    this.#record(entry, { ok: false, reason: String(reason) }, this.#clock.now(), 0);
  }

  /**
   * Stops every timer and aborts the probes in flight. Afterwards the checker probes nothing and ignores `set()` and
   * `reportFailure()`; `get()`, `all()` and `isUsable()` keep answering with the last known states.
   */
  stop(): void {
    this.#stopped = true;
    for (const entry of this.#entries.values()) this.#halt(entry);
  }

  #halt(entry: Entry): void {
    if (entry.next !== undefined) this.#clock.clearTimeout(entry.next);
    entry.next = undefined;
    entry.overdue = false;
    const run = entry.run;
    if (run !== undefined) {
      entry.run = undefined;
      this.#clock.clearTimeout(run.timeout);
      run.controller.abort();
    }
  }

  #start(entry: Entry): void {
    const { intervalMs, timeoutMs } = entry.settings;
    const startedAt = this.#clock.now();
    const run: Run = { controller: new AbortController(), startedAt, timeout: undefined };
    entry.run = run;
    entry.overdue = false;
    entry.lastStartedAt = startedAt;
    // Armed before the probe is called, so that a probe calling back into the checker (delete, stop) finds them to clear.
    run.timeout = this.#clock.setTimeout(() => {
      if (entry.run !== run) return;
      this.#settle(entry, run, { ok: false, reason: 'timeout' });
      run.controller.abort();
    }, timeoutMs);
    entry.next = this.#clock.setTimeout(() => this.#due(entry), intervalMs);

    let pending: Promise<unknown>;
    try {
      pending = Promise.resolve(entry.probe({ ...entry.health.target }, { timeoutMs, signal: run.controller.signal }));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => this.#settle(entry, run, outcomeOf(value)),
      (error: unknown) => this.#settle(entry, run, { ok: false, reason: reasonOf(error) }),
    );
  }

  #due(entry: Entry): void {
    entry.next = undefined;
    if (entry.run !== undefined) entry.overdue = true;
    else this.#start(entry);
  }

  #settle(entry: Entry, run: Run, outcome: ProbeOutcome): void {
    // A run that was timed out, deleted, stopped or superseded has no say any more.
    if (entry.run !== run) return;
    entry.run = undefined;
    this.#clock.clearTimeout(run.timeout);
    const now = this.#clock.now();
    this.#record(entry, outcome, now, now - run.startedAt);
    // Read after onChange ran: deleting the target or stopping the checker from there clears it.
    if (entry.overdue) this.#start(entry);
  }

  #record(entry: Entry, outcome: ProbeOutcome, now: number, rttMs: number): void {
    const health = entry.health;
    const { rise, fall } = entry.settings;
    health.probes++;
    health.lastProbeAt = now;
    let next: HealthState = health.state;
    if (outcome.ok) {
      health.successesInRow++;
      health.failuresInRow = 0;
      health.lastRttMs = rttMs;
      // At least, not exactly: a `rise` lowered by set() then takes effect on the next success.
      if (health.successesInRow >= rise) next = 'healthy';
    } else {
      health.failures++;
      health.failuresInRow++;
      health.successesInRow = 0;
      health.lastFailure = outcome.reason;
      if (health.failuresInRow >= fall) next = 'unhealthy';
    }
    if (next === health.state) return;
    const previous = health.state;
    health.state = next;
    health.since = now;
    if (this.#onChange === undefined) return;
    try {
      this.#onChange(snapshot(health), previous);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
