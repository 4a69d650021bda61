/**
 * Weights, drain, health settings and when_all_down in the mappings, and how the table and the mapper choose
 * among the targets a health checker lets take new clients.
 */
import type { UdpEndpoint } from '@flowlb/mapper-api';
import { dtlsCapture } from '@flowlb/testkit';
import { describe, expect, it } from 'vitest';
import { DtlsSniMapper } from './mapper.js';
import { mappingsFromYaml } from './mappings.js';
import { issuesOf } from './test-support.js';

const A = { address: '10.0.0.2', port: 4433 };
const B = { address: '10.0.0.3', port: 4433 };
const C = { address: '10.0.0.4', port: 4433 };
const key = (t: UdpEndpoint): string => `${t.address}:${t.port}`;
const clients = Array.from({ length: 3000 }, (_, i) => `192.0.2.${i % 200}:${20000 + i}`);

const POOL = `
health:
  probe: dtls
  interval_ms: 2000
  rise: 3
sniMappings:
  - fqdn: api.example
    targets:
      - { ipv4: 10.0.0.2, port: 4433, weight: 2 }
      - { ipv4: 10.0.0.3, port: 4433 }
      - { ipv4: 10.0.0.4, port: 4433, drain: true }
    health: { sni: probe.api.example, fall: 4 }
  - fqdn: "*.udp.example"
    ipv4: 10.0.0.5
    port: 7000
    health: { probe: udp, udp_payload: ping, udp_expect: "^pong" }
  - fqdn: plain.example
    ipv4: 10.0.0.2
    port: 4433
    health: { probe: none }
`;

describe('weights, drain and health in the mappings', () => {
  it('reads weights and drain flags per target, and health settings merged over the file defaults', () => {
    const t = mappingsFromYaml(POOL);
    const [api, udp, plain] = t.rules;
    expect(api).toMatchObject({ targets: [A, B, C], weights: [2, 1, 1], drain: [false, false, true] });
    expect(api!.health).toEqual({ probe: 'dtls', intervalMs: 2000, timeoutMs: 500, rise: 3, fall: 4, onDown: 'keep', passive: true, sni: 'probe.api.example' });
    expect(udp!.health).toEqual({
      probe: 'udp',
      intervalMs: 2000,
      timeoutMs: 500,
      rise: 3,
      fall: 2,
      onDown: 'keep',
      passive: false,
      udpPayload: 'ping',
      udpExpect: '^pong',
    });
    expect(plain!.health).toBeUndefined();
    // Without the settings, an entry is what it always was.
    expect(plain).not.toHaveProperty('weights');
    expect(plain).not.toHaveProperty('drain');
    expect(t.whenAllDown).toBe('drop');
  });

  it('lets an entry turn the passive signal of unanswered flows on or off either way', () => {
    const t = mappingsFromYaml(`
health: { probe: dtls, passive: false }
sniMappings:
  - { fqdn: a.example, ipv4: 10.0.0.2, port: 4433 }
  - { fqdn: b.example, ipv4: 10.0.0.3, port: 4433, health: { probe: udp, udp_payload: hi, passive: true } }
`);
    expect(t.rules.map((r) => r.health?.passive)).toEqual([false, true]);
    expect(issuesOf('health: { probe: dtls, passive: "yes" }\nsniMappings: []\n')).toEqual([{ key: 'health.passive', reason: 'must be true or false, got "yes"' }]);
  });

  it("has the dtls probe ask for the entry's own name by default, and a wildcard's suffix", () => {
    const t = mappingsFromYaml(`
health: { probe: dtls }
sniMappings:
  - { fqdn: API.Example, ipv4: 10.0.0.2, port: 4433 }
  - { fqdn: "*.wild.example", ipv4: 10.0.0.3, port: 4433 }
`);
    expect(t.rules.map((r) => r.health?.sni)).toEqual(['api.example', 'wild.example']);
  });

  it('lists each probed target once, the first entry that lists it giving the settings, the default last', () => {
    const t = mappingsFromYaml(`${POOL}default:
  targets:
    - { ipv4: 10.0.0.3, port: 4433 }
    - { ipv4: 10.0.0.9, port: 4433 }
  health: { probe: udp, udp_payload: hi }
`);
    const checked = t.checkedTargets();
    expect(checked.map((c) => key(c.target))).toEqual(['10.0.0.2:4433', '10.0.0.3:4433', '10.0.0.4:4433', '10.0.0.5:7000', '10.0.0.9:4433']);
    expect(checked[1]!.health.probe).toBe('dtls');
    expect(checked[4]!.health).toMatchObject({ probe: 'udp', udpPayload: 'hi' });
    expect(t.defaultRoute?.health?.sni).toBeUndefined();
  });

  it('reports every bad setting with its key', () => {
    const issues = issuesOf(`
when_all_down: maybe
health: { probe: icmp, interval_ms: 5, rise: 0, colour: blue }
sniMappings:
  - fqdn: a.example
    targets:
      - { ipv4: 10.0.0.2, port: 4433, weight: 0 }
      - { ipv4: 10.0.0.3, port: 4433, weight: 1.5, drain: "yes" }
  - fqdn: b.example
    ipv4: 10.0.0.2
    port: 4433
    health: { probe: udp }
  - fqdn: c.example
    ipv4: 10.0.0.2
    port: 4433
    health: { probe: dtls, interval_ms: 100, timeout_ms: 200, udp_expect: "(", sni: "*.x.example", on_down: later }
`);
    const keys = issues.map((i) => i.key);
    expect(keys).toEqual(
      expect.arrayContaining([
        'when_all_down',
        'health.probe',
        'health.interval_ms',
        'health.rise',
        'health.colour',
        'targets[0].weight',
        'targets[1].weight',
        'targets[1].drain',
        'health.udp_expect',
        'health.sni',
        'health.on_down',
      ]),
    );
    expect(issues.find((i) => i.key === 'health.udp_payload')?.reason).toMatch(/udp probe sends udp_payload/);
    expect(issuesOf(`
sniMappings:
  - { fqdn: c.example, ipv4: 10.0.0.2, port: 4433, health: { probe: dtls, interval_ms: 100, timeout_ms: 200 } }
`)).toEqual([{ key: 'health.timeout_ms', reason: 'timeout_ms (200) must not exceed interval_ms (100)' }]);
  });
});

describe('choosing among usable targets', () => {
  const t = mappingsFromYaml(POOL);

  it('gives weights 2:1 their shares and never a draining target a new client', () => {
    const counts = new Map<string, number>();
    for (const c of clients) {
      const r = t.resolve('api.example', c);
      if (r.kind !== 'target') throw new Error('no target');
      counts.set(key(r.target), (counts.get(key(r.target)) ?? 0) + 1);
    }
    expect(counts.get(key(C))).toBeUndefined();
    const ratio = counts.get(key(A))! / counts.get(key(B))!;
    expect(ratio).toBeGreaterThan(1.8);
    expect(ratio).toBeLessThan(2.2);
  });

  it("moves only a failed target's clients, and moves them back when it recovers", () => {
    const down = (target: UdpEndpoint): boolean => key(target) !== key(A);
    for (const c of clients) {
      const before = t.resolve('api.example', c);
      const during = t.resolve('api.example', c, down);
      if (before.kind !== 'target' || during.kind !== 'target') throw new Error('no target');
      if (key(before.target) === key(A)) expect(key(during.target)).toBe(key(B));
      else expect(during.target).toBe(before.target);
    }
  });

  it('drops with all-targets-down when none is usable, or with when_all_down: any spreads over the targets that do not drain', () => {
    const none = (): boolean => false;
    expect(t.resolve('api.example', clients[0]!, none)).toMatchObject({ kind: 'none', why: 'all-targets-down', match: 'exact' });
    const open = mappingsFromYaml(`when_all_down: any\n${POOL}`);
    const seen = new Set<string>();
    for (const c of clients.slice(0, 300)) {
      const r = open.resolve('api.example', c, none);
      if (r.kind !== 'target') throw new Error('no target');
      seen.add(key(r.target));
    }
    expect([...seen].sort()).toEqual([key(A), key(B)]);
    // Only draining targets left: failing open takes them too rather than nobody.
    const drained = mappingsFromYaml(`when_all_down: any
sniMappings:
  - fqdn: d.example
    targets: [{ ipv4: 10.0.0.2, port: 4433, drain: true }]
`);
    expect(drained.resolve('d.example', clients[0]!)).toMatchObject({ kind: 'target', target: A });
    const closed = mappingsFromYaml(`sniMappings:
  - fqdn: d.example
    targets: [{ ipv4: 10.0.0.2, port: 4433, drain: true }]
`);
    expect(closed.resolve('d.example', clients[0]!)).toMatchObject({ kind: 'none', why: 'all-targets-down' });
  });

  it('the default route follows the same rules', () => {
    const d = mappingsFromYaml(`sniMappings: []
default:
  targets:
    - { ipv4: 10.0.0.2, port: 4433, drain: true }
    - { ipv4: 10.0.0.3, port: 4433 }
`);
    for (const c of clients.slice(0, 200)) expect(d.resolve(undefined, c)).toMatchObject({ kind: 'target', target: B, match: 'default' });
    expect(d.resolve('x.example', clients[0]!, () => false)).toMatchObject({ kind: 'none', why: 'all-targets-down', match: 'default' });
  });
});

describe('DtlsSniMapper with a health predicate', () => {
  it('forwards to a usable target, and drops with all-targets-down, counted, when there is none', () => {
    let up = true;
    const m = new DtlsSniMapper({
      mappings: mappingsFromYaml(`sniMappings:\n  - { fqdn: foo.example, ipv4: 10.0.0.2, port: 4433 }\n`),
      isUsable: () => up,
    });
    const hello = [dtlsCapture('ossl_foo')[0]!];
    const client = { address: '192.0.2.1', port: 40000 };
    expect(m.findFlow(client, hello)).toMatchObject({ action: 'forward' });
    up = false;
    expect(m.findFlow({ ...client, port: 40001 }, hello)).toEqual({ action: 'drop', reason: 'all-targets-down' });
    expect(m.stats()).toMatchObject({ hellos: 2, routed: 1, allTargetsDown: 1, dropped: 1 });
  });
});
