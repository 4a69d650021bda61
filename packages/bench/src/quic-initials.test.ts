import { detectProtocol } from '@flowlb/mapper-api';
import { parseInitialHeader, QUIC_V1, QuicSniMapper, staticRoutes } from '@flowlb/mapper-quic-sni';
import { describe, expect, it } from 'vitest';
import { connectionId, quicClientInitial, quicFirstDatagrams } from './quic-initials.js';

const routes = staticRoutes({
  'foo.example': { address: '10.0.0.1', port: 4433 },
  'bar.example': { address: '10.0.0.2', port: 4433 },
});

describe('connectionId', () => {
  it('is 8 bytes, the tag then the index', () => {
    expect(Buffer.from(connectionId(0x01020304)).toString('hex')).toBe('666c6f7701020304');
    expect(Buffer.from(connectionId(1, 'clnt')).toString('latin1', 0, 4)).toBe('clnt');
    expect(Buffer.from(connectionId(1))).not.toEqual(Buffer.from(connectionId(2)));
  });
});

describe('quicFirstDatagrams', () => {
  it('makes one padded v1 Initial per client, each with its own DCID, naming the servers in turn', async () => {
    const datagrams = await quicFirstDatagrams(['foo.example', 'bar.example'], 4);
    expect(datagrams).toHaveLength(4);
    const dcids = datagrams.map((d, i) => {
      expect(d.length).toBeGreaterThanOrEqual(1200);
      expect(detectProtocol(d)).toBe('quic');
      const h = parseInitialHeader(d);
      if (!h.ok) throw new Error(h.detail);
      expect(h.header.version).toBe(QUIC_V1);
      expect(h.header.dcid).toEqual(connectionId(i));
      return Buffer.from(h.header.dcid).toString('hex');
    });
    expect(new Set(dcids).size).toBe(4);
    // Any source address and port: the generator rewrites those, outside the packet's protection.
    const mapper = new QuicSniMapper({ routes });
    const targets = datagrams.map((d, i) => {
      const decision = mapper.findFlow({ address: `10.1.0.${i + 1}`, port: 40000 + i }, [d]);
      return decision.action === 'forward' ? decision.flow.dstAddr.address : decision.action;
    });
    expect(targets).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.2']);
  });

  it('wants a name', async () => {
    await expect(quicFirstDatagrams([], 1)).rejects.toThrow(RangeError);
  });
});

describe('quicClientInitial', () => {
  it('spreads a post-quantum hello over two datagrams, which the mapper needs both of', async () => {
    const datagrams = await quicClientInitial({ sni: 'bar.example', postQuantum: true });
    expect(datagrams).toHaveLength(2);
    const mapper = new QuicSniMapper({ routes });
    const client = { address: '192.0.2.1', port: 50000 };
    expect(mapper.findFlow(client, datagrams.slice(0, 1)).action).toBe('wait');
    const decision = mapper.findFlow(client, datagrams);
    expect(decision.action === 'forward' && decision.flow.dstAddr.address).toBe('10.0.0.2');
  });
});
