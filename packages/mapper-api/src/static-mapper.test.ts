import { describe, expect, it } from 'vitest';
import { staticMapper } from './static-mapper.js';

describe('staticMapper', () => {
  it('forwards every client to the one target', () => {
    const m = staticMapper({ address: '10.0.0.2', port: 4433 });
    for (const client of [
      { address: '192.0.2.1', port: 1000 },
      { address: '2001:db8::1', port: 5 },
    ]) {
      expect(m.findFlow(client, [new Uint8Array([1])])).toEqual({
        action: 'forward',
        flow: { dstAddr: { address: '10.0.0.2', port: 4433 } },
      });
    }
  });

  it('is not affected by later changes to the target object or to earlier decisions', () => {
    const target = { address: '10.0.0.2', port: 4433 };
    const m = staticMapper(target);
    target.port = 1;
    const first = m.findFlow({ address: '192.0.2.1', port: 1 }, []);
    if (first instanceof Promise || first.action !== 'forward') throw new Error('expected a forward');
    first.flow.dstAddr.port = 2;
    expect(m.findFlow({ address: '192.0.2.1', port: 1 }, [])).toEqual({
      action: 'forward',
      flow: { dstAddr: { address: '10.0.0.2', port: 4433 } },
    });
  });

  it('rejects an invalid target when built', () => {
    expect(() => staticMapper({ address: 'backend', port: 80 })).toThrow(/not an IPv4 or IPv6 address/);
    expect(() => staticMapper({ address: '10.0.0.1', port: 0 })).toThrow(/port 0/);
    expect(() => staticMapper({ address: '10.0.0.1', port: 70000 })).toThrow(/1\.\.65535/);
  });
});
