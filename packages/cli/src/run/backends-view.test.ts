import { describe, expect, it } from 'vitest';
import type { BackendReport } from '../mapper/backend-health.js';
import { backendsView } from './backends-view.js';

const row = (target: string, extra: Partial<BackendReport> = {}): BackendReport => ({ target, names: ['api.example'], state: 'healthy', weight: 1, ...extra });

describe('backendsView', () => {
  it("adds each mapped target's flows and traffic, zero flows for one without any", () => {
    const traffic = new Map([['10.0.0.2:4433', { toTarget: { packets: 5, bytes: 500 }, fromTarget: { packets: 4, bytes: 400 } }]]);
    const view = backendsView([row('10.0.0.2:4433'), row('10.0.0.3:4433')], { '10.0.0.2:4433': { active: 2, created: 3, refused: 0 } }, traffic);
    expect(view).toEqual([
      { ...row('10.0.0.2:4433'), flows: { active: 2, created: 3, refused: 0 }, traffic: traffic.get('10.0.0.2:4433') },
      { ...row('10.0.0.3:4433'), flows: { active: 0, created: 0, refused: 0 } },
    ]);
  });

  it('lists a target the mappings dropped as draining while it holds flows, and forgets it once it holds none', () => {
    const view = backendsView(
      [row('10.0.0.2:4433')],
      { '10.0.0.7:4433': { active: 1, created: 4, refused: 0 }, '10.0.0.8:4433': { active: 0, created: 9, refused: 0 } },
      undefined,
    );
    expect(view.map((r) => [r.target, r.state, r.names])).toEqual([
      ['10.0.0.2:4433', 'healthy', ['api.example']],
      ['10.0.0.7:4433', 'draining', []],
    ]);
  });

  it("lists every target of a mapper that reports none, as unchecked", () => {
    const view = backendsView(undefined, { '10.0.0.8:4433': { active: 0, created: 9, refused: 1 } }, undefined);
    expect(view).toEqual([{ target: '10.0.0.8:4433', names: [], state: 'unchecked', flows: { active: 0, created: 9, refused: 1 } }]);
  });
});
