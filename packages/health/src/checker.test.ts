import { describe, expect, it } from 'vitest';
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { FakeClock, flush } from '../test/fake-clock.js';
import { answeringProbe, scriptedProbe } from '../test/scripted-probe.js';
import { HealthChecker } from './checker.js';
import type { HealthSettings, HealthState, Probe, TargetHealth } from './types.js';

const A: UdpEndpoint = { address: '10.0.0.2', port: 4433 };
const B: UdpEndpoint = { address: '10.0.0.3', port: 4433 };
const OK = { ok: true } as const;
const FAIL = { ok: false, reason: 'no' } as const;

function settings(overrides: Partial<HealthSettings> = {}): HealthSettings {
  return { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, ...overrides };
}

function setup() {
  const clock = new FakeClock();
  const changes: { health: TargetHealth; previous: HealthState }[] = [];
  const checker = new HealthChecker({ clock, onChange: (health, previous) => changes.push({ health, previous }) });
  return { clock, checker, changes, t0: clock.now() };
}

describe('HealthChecker state machine', () => {
  it('starts unknown and usable, probes at once, and turns healthy after rise successes', async () => {
    const { clock, checker, changes, t0 } = setup();
    const { probe, count } = answeringProbe(OK);
    checker.set(A, probe, settings({ rise: 3 }));
    expect(count()).toBe(1);
    expect(checker.get(A)).toMatchObject({ state: 'unknown', since: t0, probes: 0 });
    expect(checker.isUsable(A)).toBe(true);

    await flush();
    expect(checker.get(A)).toMatchObject({ state: 'unknown', successesInRow: 1, probes: 1 });
    await clock.advance(1000);
    expect(checker.get(A)).toMatchObject({ state: 'unknown', successesInRow: 2, probes: 2 });
    expect(changes).toEqual([]);
    await clock.advance(1000);
    expect(count()).toBe(3);
    expect(checker.get(A)).toMatchObject({ state: 'healthy', since: t0 + 2000, successesInRow: 3, probes: 3, failures: 0 });
    expect(changes).toHaveLength(1);
    expect(changes[0]!.previous).toBe('unknown');
    expect(changes[0]!.health).toMatchObject({ target: A, state: 'healthy', since: t0 + 2000 });
  });

  it('goes healthy → unhealthy after fall failures and back after rise successes; each kind resets the other', async () => {
    const { clock, checker, changes, t0 } = setup();
    const p = answeringProbe(OK);
    checker.set(A, p.probe, settings({ rise: 2, fall: 3 }));
    await clock.advance(1000);
    expect(checker.get(A)!.state).toBe('healthy');

    p.answer(FAIL);
    await clock.advance(2000); // probes at 2000 and 3000 fail: two in a row, one short of fall
    expect(checker.get(A)).toMatchObject({ state: 'healthy', failuresInRow: 2, successesInRow: 0, lastFailure: 'no' });
    expect(checker.isUsable(A)).toBe(true);

    p.answer(OK);
    await clock.advance(1000); // a success in between starts the count of failures over
    expect(checker.get(A)).toMatchObject({ state: 'healthy', failuresInRow: 0, successesInRow: 1 });

    p.answer(FAIL);
    await clock.advance(2000);
    expect(checker.get(A)!.state).toBe('healthy');
    await clock.advance(1000);
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', since: t0 + 7000, failuresInRow: 3, failures: 5, probes: 8 });
    expect(checker.isUsable(A)).toBe(false);

    p.answer(OK);
    await clock.advance(1000);
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', successesInRow: 1, failuresInRow: 0 });
    expect(checker.isUsable(A)).toBe(false);
    await clock.advance(1000);
    expect(checker.get(A)).toMatchObject({ state: 'healthy', since: t0 + 9000, lastFailure: 'no' });
    expect(changes.map((c) => `${c.previous}→${c.health.state}`)).toEqual(['unknown→healthy', 'healthy→unhealthy', 'unhealthy→healthy']);
  });

  it('goes unknown → unhealthy after fall failures without ever being healthy', async () => {
    const { clock, checker, changes } = setup();
    checker.set(A, answeringProbe(FAIL).probe, settings({ fall: 2 }));
    await flush();
    expect(checker.get(A)!.state).toBe('unknown');
    await clock.advance(1000);
    expect(checker.get(A)!.state).toBe('unhealthy');
    expect(changes.map((c) => c.previous)).toEqual(['unknown']);
  });

  it('keeps each target apart, and treats targets it does not check as usable', async () => {
    const { clock, checker } = setup();
    checker.set(A, answeringProbe(FAIL).probe, settings({ fall: 1 }));
    checker.set(B, answeringProbe(OK).probe, settings({ rise: 1 }));
    await clock.advance(10);
    expect(checker.isUsable({ address: '10.0.0.2', port: 4433 })).toBe(false);
    expect(checker.isUsable(B)).toBe(true);
    expect(checker.isUsable({ address: '10.0.0.9', port: 4433 })).toBe(true);
    expect(checker.get({ address: '10.0.0.9', port: 4433 })).toBeUndefined();
    expect(checker.all().map((h) => [h.target.address, h.state])).toEqual([
      ['10.0.0.2', 'unhealthy'],
      ['10.0.0.3', 'healthy'],
    ]);
  });

  it('measures the round trip of a successful probe with the clock', async () => {
    const { clock, checker } = setup();
    const s = scriptedProbe(() => clock.now());
    checker.set(A, s.probe, settings());
    await clock.advance(30);
    s.calls[0]!.resolve(OK);
    await flush();
    expect(checker.get(A)).toMatchObject({ lastRttMs: 30, lastProbeAt: clock.now() });
  });
});

describe('HealthChecker probes', () => {
  it('fails a probe that has not settled by timeoutMs as a timeout, aborts it and ignores its late answer', async () => {
    const { clock, checker, t0 } = setup();
    const s = scriptedProbe(() => clock.now());
    checker.set(A, s.probe, settings({ timeoutMs: 200, fall: 1 }));
    expect(s.calls[0]!.timeoutMs).toBe(200);
    await clock.advance(199);
    expect(s.calls[0]!.signal.aborted).toBe(false);
    expect(checker.get(A)!.probes).toBe(0);

    await clock.advance(1);
    expect(s.calls[0]!.signal.aborted).toBe(true);
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', lastFailure: 'timeout', lastProbeAt: t0 + 200, probes: 1, failures: 1 });

    s.calls[0]!.resolve(OK);
    await flush();
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', probes: 1, successesInRow: 0 });

    await clock.advance(800);
    expect(s.calls.map((c) => c.at - t0)).toEqual([0, 1000]);
  });

  it('counts a probe that throws, synchronously or not, as a failure with the error message', async () => {
    const { clock, checker } = setup();
    let n = 0;
    const probe: Probe = () => {
      n++;
      if (n === 1) throw new Error('bad socket');
      if (n === 2) return Promise.reject(new TypeError('boom'));
      return Promise.reject('plain string');
    };
    checker.set(A, probe, settings({ fall: 3 }));
    await flush();
    expect(checker.get(A)).toMatchObject({ lastFailure: 'bad socket', failuresInRow: 1 });
    await clock.advance(1000);
    expect(checker.get(A)).toMatchObject({ lastFailure: 'boom', failuresInRow: 2 });
    await clock.advance(1000);
    expect(checker.get(A)).toMatchObject({ lastFailure: 'plain string', failuresInRow: 3, state: 'unhealthy' });
  });

  it('counts a malformed outcome as a failure', async () => {
    const { checker } = setup();
    checker.set(A, (() => Promise.resolve(undefined)) as unknown as Probe, settings({ fall: 1 }));
    await flush();
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', lastFailure: 'probe resolved without an outcome' });
  });

  it('times the next probe from the start of the previous one, not its end', async () => {
    const { clock, checker, t0 } = setup();
    const s = scriptedProbe(() => clock.now());
    checker.set(A, s.probe, settings({ intervalMs: 100, timeoutMs: 80 }));
    await clock.advance(70);
    s.calls[0]!.resolve(OK);
    await clock.advance(30);
    expect(s.calls.map((c) => c.at - t0)).toEqual([0, 100]);
    await clock.advance(50);
    s.calls[1]!.resolve(OK);
    await clock.advance(50);
    expect(s.calls.map((c) => c.at - t0)).toEqual([0, 100, 200]);
  });

  it('runs one probe per target at a time: a probe due while one runs starts when that one settles', async () => {
    const { clock, checker, t0 } = setup();
    const s = scriptedProbe(() => clock.now());
    checker.set(A, s.probe, settings({ intervalMs: 1000, timeoutMs: 500 }));
    await clock.advance(100);
    // The running probe keeps its 500 ms deadline; the next one comes due at 200, while it still runs.
    checker.set(A, s.probe, settings({ intervalMs: 200, timeoutMs: 200 }));
    await clock.advance(200);
    expect(s.calls).toHaveLength(1);
    expect(s.running()).toBe(1);

    s.calls[0]!.resolve(OK);
    await flush();
    expect(s.calls.map((c) => c.at - t0)).toEqual([0, 300]);
    expect(s.running()).toBe(1);
    s.calls[1]!.resolve(OK);
    await clock.advance(200);
    expect(s.calls.map((c) => c.at - t0)).toEqual([0, 300, 500]);
  });

  it('starts the next probe at once when the timeout and the interval end together', async () => {
    const { clock, checker, t0 } = setup();
    const s = scriptedProbe(() => clock.now());
    checker.set(A, s.probe, settings({ intervalMs: 100, timeoutMs: 100 }));
    await clock.advance(100);
    expect(s.calls.map((c) => c.at - t0)).toEqual([0, 100]);
    expect(s.calls[0]!.signal.aborted).toBe(true);
    expect(s.calls[1]!.signal.aborted).toBe(false);
    expect(checker.get(A)).toMatchObject({ lastFailure: 'timeout', probes: 1 });
  });
});

describe('HealthChecker.set on a checked target', () => {
  it('switches probe and settings but keeps state, counts and schedule', async () => {
    const { clock, checker, changes, t0 } = setup();
    const first = answeringProbe(OK);
    checker.set(A, first.probe, settings({ rise: 2, fall: 3 }));
    await clock.advance(1000);
    const before = checker.get(A)!;
    expect(before).toMatchObject({ state: 'healthy', probes: 2, successesInRow: 2 });

    const second = answeringProbe(FAIL);
    checker.set({ ...A }, second.probe, settings({ intervalMs: 500, fall: 1 }));
    expect(checker.get(A)).toEqual(before);
    expect(second.count()).toBe(0);

    // The last probe started at 1000, so the next one is due at 1500 under the new interval.
    await clock.advance(499);
    expect(second.count()).toBe(0);
    await clock.advance(1);
    expect(second.count()).toBe(1);
    expect(first.count()).toBe(2);
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', since: t0 + 1500, probes: 3 });
    expect(changes).toHaveLength(2);
  });

  it('applies a lowered rise on the next success', async () => {
    const { clock, checker } = setup();
    const p = answeringProbe(OK);
    checker.set(A, p.probe, settings({ rise: 5 }));
    await clock.advance(2000);
    expect(checker.get(A)).toMatchObject({ state: 'unknown', successesInRow: 3 });
    checker.set(A, p.probe, settings({ rise: 2 }));
    expect(checker.get(A)!.state).toBe('unknown');
    await clock.advance(1000);
    expect(checker.get(A)!.state).toBe('healthy');
  });

  it('checks everything before changing anything', async () => {
    const { clock, checker } = setup();
    const p = answeringProbe(OK);
    checker.set(A, p.probe, settings());
    expect(() => checker.set(A, answeringProbe(FAIL).probe, settings({ rise: 0 }))).toThrow(RangeError);
    await clock.advance(1000);
    expect(p.count()).toBe(2);
  });
});

describe('HealthChecker.delete', () => {
  it('aborts the running probe, ignores its result, stops the timers and forgets the target', async () => {
    const { clock, checker, changes } = setup();
    const s = scriptedProbe(() => clock.now());
    checker.set(A, s.probe, settings({ fall: 1 }));
    checker.reportFailure(A, 'icmp');
    expect(checker.isUsable(A)).toBe(false);
    expect(clock.pending).toBe(2);

    checker.delete(A);
    expect(s.calls[0]!.signal.aborted).toBe(true);
    expect(clock.pending).toBe(0);
    expect(checker.get(A)).toBeUndefined();
    expect(checker.all()).toEqual([]);
    expect(checker.isUsable(A)).toBe(true);

    s.calls[0]!.reject(new Error('aborted'));
    await clock.advance(5000);
    expect(s.calls).toHaveLength(1);
    expect(checker.get(A)).toBeUndefined();
    expect(changes).toHaveLength(1);

    // Set again, it starts over.
    checker.set(A, s.probe, settings());
    expect(checker.get(A)).toMatchObject({ state: 'unknown', probes: 0, failures: 0 });
    expect(s.calls).toHaveLength(2);
  });

  it('leaves the other targets alone', async () => {
    const { clock, checker } = setup();
    const a = answeringProbe(OK);
    const b = answeringProbe(OK);
    checker.set(A, a.probe, settings());
    checker.set(B, b.probe, settings());
    checker.delete(A);
    await clock.advance(2000);
    expect([a.count(), b.count()]).toEqual([1, 3]);
  });
});

describe('HealthChecker.reportFailure', () => {
  it('counts as one failed probe now, between active probes', async () => {
    const { clock, checker, changes, t0 } = setup();
    const p = answeringProbe(OK);
    checker.set(A, p.probe, settings({ rise: 1, fall: 2 }));
    await clock.advance(100);
    expect(checker.get(A)!.state).toBe('healthy');

    checker.reportFailure(A, 'icmp port unreachable');
    expect(checker.get(A)).toMatchObject({
      state: 'healthy',
      failuresInRow: 1,
      successesInRow: 0,
      failures: 1,
      probes: 2,
      lastFailure: 'icmp port unreachable',
      lastProbeAt: t0 + 100,
    });
    await clock.advance(50);
    checker.reportFailure({ address: '10.0.0.2', port: 4433 }, 'no reply to a new flow');
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', since: t0 + 150, failures: 2, probes: 3 });
    expect(changes.at(-1)).toMatchObject({ previous: 'healthy', health: { state: 'unhealthy', lastFailure: 'no reply to a new flow' } });
    expect(p.count()).toBe(1);
  });

  it('ignores targets it does not check', () => {
    const { checker } = setup();
    checker.reportFailure(A, 'icmp');
    expect(checker.get(A)).toBeUndefined();
    expect(checker.all()).toEqual([]);
  });
});

describe('HealthChecker onChange', () => {
  it('gets a snapshot the checker does not share or change afterwards', async () => {
    const { clock, checker, changes } = setup();
    const p = answeringProbe(OK);
    checker.set(A, p.probe, settings({ rise: 1, fall: 1 }));
    await flush();
    const seen = changes[0]!.health;
    expect(seen).toMatchObject({ state: 'healthy', probes: 1 });

    seen.state = 'unhealthy';
    seen.target.port = 1;
    expect(checker.get(A)).toMatchObject({ state: 'healthy', target: { port: 4433 } });
    expect(checker.isUsable(A)).toBe(true);

    await clock.advance(1000);
    expect(seen.probes).toBe(1);
    const got = checker.get(A)!;
    got.failuresInRow = 99;
    expect(checker.get(A)!.failuresInRow).toBe(0);
  });

  it('keeps checking when onChange throws, and lets the error surface', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const checker = new HealthChecker({
      clock,
      onChange: () => {
        calls++;
        throw new Error('listener bug');
      },
    });
    const uncaught: unknown[] = [];
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const catcher = (error: unknown): void => {
      uncaught.push(error);
    };
    process.on('uncaughtException', catcher);
    try {
      const p = answeringProbe(OK);
      checker.set(A, p.probe, settings({ rise: 1, fall: 1 }));
      await flush();
      p.answer(FAIL);
      await clock.advance(1000);
      await flush();
    } finally {
      process.off('uncaughtException', catcher);
      for (const listener of listeners) process.on('uncaughtException', listener);
    }
    expect(calls).toBe(2);
    expect(checker.get(A)).toMatchObject({ state: 'unhealthy', probes: 2 });
    expect(uncaught.map((e) => (e as Error).message)).toEqual(['listener bug', 'listener bug']);
  });
});

describe('HealthChecker.stop', () => {
  it('clears every timer, aborts running probes and does nothing afterwards', async () => {
    const { clock, checker } = setup();
    const s = scriptedProbe(() => clock.now());
    const b = answeringProbe(OK);
    checker.set(A, s.probe, settings());
    checker.set(B, b.probe, settings({ rise: 1 }));
    await flush();
    expect(clock.pending).toBe(3);

    checker.stop();
    expect(clock.pending).toBe(0);
    expect(s.calls[0]!.signal.aborted).toBe(true);
    s.calls[0]!.resolve(OK);
    await clock.advance(10_000);
    expect(s.calls).toHaveLength(1);
    expect(b.count()).toBe(1);

    checker.set({ address: '10.0.0.9', port: 1 }, b.probe, settings());
    checker.reportFailure(B, 'late');
    expect(b.count()).toBe(1);
    expect(clock.pending).toBe(0);
    expect(checker.get({ address: '10.0.0.9', port: 1 })).toBeUndefined();
    expect(checker.get(A)).toMatchObject({ state: 'unknown', probes: 0 });
    expect(checker.get(B)).toMatchObject({ state: 'healthy', failures: 0 });
    expect(checker.isUsable(B)).toBe(true);
  });
});

describe('HealthChecker validation', () => {
  const probe = answeringProbe(OK).probe;

  it.each([
    ['intervalMs', { intervalMs: 9 }],
    ['intervalMs', { intervalMs: 100.5 }],
    ['intervalMs', { intervalMs: 2 ** 31 }],
    ['intervalMs', { intervalMs: Number.NaN }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['timeoutMs', { intervalMs: 100, timeoutMs: 101 }],
    ['timeoutMs', { timeoutMs: 1.5 }],
    ['rise', { rise: 0 }],
    ['rise', { rise: 101 }],
    ['fall', { fall: 0 }],
    ['fall', { fall: 101 }],
    ['fall', { fall: '3' as unknown as number }],
  ] as [string, Partial<HealthSettings>][])('refuses a bad %s: %o', (key, overrides) => {
    const checker = new HealthChecker({ clock: new FakeClock() });
    expect(() => checker.set(A, probe, settings(overrides))).toThrow(RangeError);
    expect(() => checker.set(A, probe, settings(overrides))).toThrow(`HealthSettings.${key} `);
    expect(checker.get(A)).toBeUndefined();
  });

  it('accepts the bounds', () => {
    const checker = new HealthChecker({ clock: new FakeClock() });
    expect(() => checker.set(A, probe, { intervalMs: 10, timeoutMs: 10, rise: 1, fall: 100 })).not.toThrow();
    expect(() => checker.set(B, probe, { intervalMs: 2 ** 31 - 1, timeoutMs: 1, rise: 100, fall: 1 })).not.toThrow();
  });

  it('refuses bad targets, probes and options', () => {
    const checker = new HealthChecker({ clock: new FakeClock() });
    expect(() => checker.set({ address: 'example.com', port: 1 }, probe, settings())).toThrow(TypeError);
    expect(() => checker.set({ address: '10.0.0.2', port: 0 }, probe, settings())).toThrow(RangeError);
    expect(() => checker.set({ address: '10.0.0.2', port: 65536 }, probe, settings())).toThrow(RangeError);
    expect(() => checker.set(A, 'ping' as unknown as Probe, settings())).toThrow(TypeError);
    expect(() => checker.set(A, probe, null as unknown as HealthSettings)).toThrow(TypeError);
    expect(() => new HealthChecker({ onChange: 1 as unknown as () => void })).toThrow(TypeError);
    expect(checker.all()).toEqual([]);
  });
});
