import { describe, expect, it } from 'vitest';
import { staticMapper } from '@flowlb/mapper-api';
import { effectiveCapabilities, xdpCapabilityCheck } from './capabilities.js';
import { DEFAULT_LIMITS, resolveOptions, type LoadBalancerOptions } from './options.js';

const mapper = staticMapper({ address: '10.0.0.5', port: 7000 });
const base: LoadBalancerOptions = { vip: { address: '10.0.0.1', port: 5000 }, mapper };

describe('resolveOptions', () => {
  it('fills in defaults', () => {
    const o = resolveOptions(base);
    expect(o.snatAddress).toBe('10.0.0.1');
    expect(o.snatPorts).toEqual({ min: 10000, max: 29999 });
    expect(o.datapath).toBe('auto');
    expect(o.connTtlMs).toBe(60_000);
    expect(o.unconfirmedTtlMs).toBe(60_000);
    expect(resolveOptions({ ...base, connTtlSec: 10, unconfirmedTtlSec: 3 }).unconfirmedTtlMs).toBe(3000);
    expect(resolveOptions({ ...base, connTtlSec: 10, unconfirmedTtlSec: 30 }).unconfirmedTtlMs).toBe(10_000);
    expect(o.sweepIntervalMs).toBe(5000);
    expect(o.limits).toEqual(DEFAULT_LIMITS);
    expect(o.xdp.flowsMaxEntries).toBe(2 * DEFAULT_LIMITS.maxFlows);
    expect(o.reserveSnatPorts).toBe(false);
    expect(o.dropHoldMs).toBe(1000);
  });

  it('derives the sweep interval from a short TTL', () => {
    expect(resolveOptions({ ...base, connTtlSec: 1 }).sweepIntervalMs).toBe(250);
    expect(resolveOptions({ ...base, connTtlSec: 0.2 }).sweepIntervalMs).toBe(100);
  });

  it.each<[string, Partial<LoadBalancerOptions>, RegExp]>([
    ['an IPv6 VIP', { vip: { address: '::1', port: 5000 } }, /vip\.address.*flow map holds IPv4 only/],
    ['a VIP without a port', { vip: { address: '10.0.0.1', port: 0 } }, /vip\.port 0 is not a port/],
    ['a bad SNAT address', { snatAddress: '10.0.0.256' }, /snatAddress.*invalid octet/],
    ['an inverted SNAT range', { snatPorts: { min: 30000, max: 20000 } }, /snatPorts: min 30000 is greater than max 20000/],
    ['the VIP port inside the SNAT range', { vip: { address: '10.0.0.1', port: 15000 } }, /VIP port 15000 lies inside snatPorts/],
    ['no mapper', { mapper: {} as never }, /mapper must be an object with a findFlow/],
    ['an unknown datapath', { datapath: 'dpdk' as never }, /datapath must be 'auto', 'xdp' or 'userspace'/],
    ['a bad interface name', { interfaces: ['eth0', 'a/b'] }, /"a\/b" is not an interface name/],
    ['a zero limit', { limits: { maxPendingClients: 0 } }, /limits\.maxPendingClients 0 is not a positive integer/],
    ['a negative TTL', { connTtlSec: -1 }, /connTtlSec -1 is not a positive number/],
    ['a negative drop hold', { dropHoldMs: -5 }, /dropHoldMs -5/],
    ['a bad XDP mode', { xdp: { mode: 'offload' as never } }, /xdp\.mode/],
    ['the XDP datapath with nothing to attach to', { datapath: 'xdp' }, /datapath 'xdp' needs interfaces to attach the program to/],
  ])('rejects %s with an error naming the option', (_name, patch, message) => {
    expect(() => resolveOptions({ ...base, ...patch })).toThrow(message);
  });

  it('accepts the VIP port inside the SNAT range when the SNAT address differs', () => {
    expect(() => resolveOptions({ ...base, vip: { address: '10.0.0.1', port: 15000 }, snatAddress: '10.0.1.1' })).not.toThrow();
  });
});

describe('capability check', () => {
  it('reads CapEff and wants CAP_NET_ADMIN with CAP_BPF or CAP_SYS_ADMIN', () => {
    const status = (hex: string) => `Name:\tnode\nCapEff:\t${hex}\n`;
    expect(effectiveCapabilities(status('000001ffffffffff'))).toBe(0x1ffffffffffn);
    expect(xdpCapabilityCheck(effectiveCapabilities(status('000001ffffffffff'))).ok).toBe(true);
    // CAP_NET_ADMIN (12) and CAP_BPF (39) only.
    expect(xdpCapabilityCheck((1n << 12n) | (1n << 39n)).ok).toBe(true);
    expect(xdpCapabilityCheck(1n << 39n)).toEqual({ ok: false, reason: 'the process lacks CAP_NET_ADMIN' });
    expect(xdpCapabilityCheck(0n).reason).toBe('the process lacks CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN)');
    expect(xdpCapabilityCheck(undefined).ok).toBe(false);
    expect(effectiveCapabilities('Name:\tnode\n')).toBeUndefined();
  });
});
