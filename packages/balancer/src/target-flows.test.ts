import { describe, expect, it } from 'vitest';
import { TargetFlowCounters } from './target-flows.js';

describe('TargetFlowCounters', () => {
  it('keys targets by ip:port and adds the active flows of every target that holds one', () => {
    const c = new TargetFlowCounters();
    c.created({ address: '10.0.0.1', port: 443 });
    c.created({ address: '10.0.0.1', port: 443 });
    c.refused({ address: '10.0.0.2', port: 443 });
    const active = new Map([
      ['10.0.0.1:443', 2],
      ['10.0.0.3:443', 5],
    ]);
    expect(c.snapshot(active)).toEqual({
      '10.0.0.1:443': { active: 2, created: 2, refused: 0 },
      '10.0.0.2:443': { active: 0, created: 0, refused: 1 },
      // Adopted from an earlier process: active, never created here.
      '10.0.0.3:443': { active: 5, created: 0, refused: 0 },
    });
  });

  it('stops counting new targets one by one past its bound', () => {
    const c = new TargetFlowCounters(2);
    for (let port = 1; port <= 5; port++) c.created({ address: '10.0.0.1', port });
    c.created({ address: '10.0.0.1', port: 1 });
    expect(c.snapshot(new Map())).toEqual({
      '10.0.0.1:1': { active: 0, created: 2, refused: 0 },
      '10.0.0.1:2': { active: 0, created: 1, refused: 0 },
    });
  });
});
