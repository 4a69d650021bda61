import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from './index.js';

/** The original's config.yaml, with the values of its README's example (VIP 31.32.33.34:10000). */
const SEED_CONFIG = `port: 10000
addr: "31.32.33.34"
interface: "eth0"
debug: true
conn_ttl_sec: 30
`;

function problems(text: string): string[] {
  try {
    parseConfig(text, 'config.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues.map((i) => `${i.file}${i.line ? `:${i.line}:${i.col}` : ''}: ${i.key ? `${i.key}: ` : ''}${i.message}`);
  }
  throw new Error('expected the config to be refused');
}

const BASE = 'port: 5000\naddr: 10.0.0.1\n';

describe('parseConfig', () => {
  it("loads the original's config unchanged, with our defaults around it", () => {
    const c = parseConfig(SEED_CONFIG, 'config.yaml');
    expect(c).toEqual({
      file: 'config.yaml',
      vip: { address: '31.32.33.34', port: 10000 },
      interfaces: ['eth0'],
      debug: true,
      connTtlSec: 30,
      mode: 'auto',
      xdpMode: 'auto',
      snatAddr: '31.32.33.34',
      // The VIP port 10000 is the first of the default range 10000-29999, so the range starts above it.
      snatPorts: { min: 10001, max: 29999 },
      reserveSnatPorts: false,
      flowTableSize: 131072,
      workers: 1,
      pending: { maxPendingClients: 10000, maxPendingPerSource: 256, maxDatagramsPerClient: 32, maxBytesPerClient: 65536, maxTotalBytes: 33554432, classifyTimeoutMs: 3000 },
      metricsAddr: undefined,
      pinPath: '/sys/fs/bpf/flowlb/31_32_33_34-10000',
      pinPathSet: false,
      sysctls: true,
    });
  });

  it('reads every key of ours', () => {
    const c = parseConfig(
      `port: 4433
addr: 192.0.2.1
interface: front
interfaces: [back]
debug: off
conn_ttl_sec: 0.5
unconfirmed_ttl_sec: 0.25
mode: xdp
xdp_mode: native
snat_addr: 198.51.100.1
snat_ports: "40000-40999"
reserve_snat_ports: yes
flow_table_size: 1024
workers: 3
pending: {max_clients: 5, max_per_source: 4, max_datagrams: 6, max_bytes_per_client: 7000, max_total_bytes: 80000, timeout_ms: 900}
metrics_addr: "127.0.0.1:0"
pin_path: /sys/fs/bpf/flowlb/lb1
rate_limit: {per_source: 50, per_24: 600000}
sysctls: false
`,
      'c.yaml',
    );
    expect(c).toMatchObject({
      vip: { address: '192.0.2.1', port: 4433 },
      interfaces: ['front', 'back'],
      debug: false,
      connTtlSec: 0.5,
      unconfirmedTtlSec: 0.25,
      newClientLimits: { perSource: { rate: 50, burst: 100 }, perNet24: { rate: 600_000, burst: 1_000_000 } },
      mode: 'xdp',
      xdpMode: 'native',
      snatAddr: '198.51.100.1',
      snatPorts: { min: 40000, max: 40999 },
      reserveSnatPorts: true,
      flowTableSize: 1024,
      workers: 3,
      pending: { maxPendingClients: 5, maxPendingPerSource: 4, maxDatagramsPerClient: 6, maxBytesPerClient: 7000, maxTotalBytes: 80000, classifyTimeoutMs: 900 },
      metricsAddr: { host: '127.0.0.1', port: 0 },
      pinPath: '/sys/fs/bpf/flowlb/lb1',
      pinPathSet: true,
      sysctls: false,
    });
    // YAML 1.1 spellings, as for every true-or-false key.
    expect(parseConfig(`${BASE}sysctls: off\n`, 'c').sysctls).toBe(false);
    expect(parseConfig(`${BASE}sysctls: yes\n`, 'c').sysctls).toBe(true);
    expect(parseConfig(`${BASE}snat_port_min: 30000\nsnat_port_max: 30010\n`, 'c').snatPorts).toEqual({ min: 30000, max: 30010 });
    expect(parseConfig(`${BASE}metrics_addr: "[::1]:9100"\n`, 'c').metricsAddr).toEqual({ host: '::1', port: 9100 });
    expect(parseConfig(`${BASE}metrics_addr: ":9100"\n`, 'c').metricsAddr).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parseConfig(`${BASE}metrics_addr: "0.0.0.0:9100"\n`, 'c').metricsAddr).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(parseConfig('port: 20000\naddr: 10.0.0.1\n', 'c').snatPorts).toEqual({ min: 10000, max: 19999 });
  });

  it.each([
    ['port: 70000\naddr: 10.0.0.1\n', ['config.yaml:1:7: port: expected an integer from 1 to 65535, got 70000']],
    ['port: "5000"\naddr: 10.0.0.1\n', ['config.yaml:1:7: port: expected an integer from 1 to 65535, got "5000"']],
    ['port: 50.5\naddr: 10.0.0.1\n', ['config.yaml:1:7: port: expected an integer from 1 to 65535, got 50.5']],
    ['port:\naddr: 10.0.0.1\n', ['config.yaml:1:6: port: expected an integer from 1 to 65535, got nothing (null)']],
    ['addr: 10.0.0.1\n', ['config.yaml: port: missing; expected an integer from 1 to 65535']],
    [`port: 5000\naddr: 10.0.0.01\n`, ['config.yaml:2:7: addr: expected an IPv4 address of this host like "192.0.2.1", got "10.0.0.01"']],
    [`port: 5000\naddr: 0.0.0.0\n`, ['config.yaml:2:7: addr: expected an IPv4 address of this host like "192.0.2.1", got "0.0.0.0"']],
    [`port: 5000\naddr: "::1"\n`, ['config.yaml:2:7: addr: expected an IPv4 address of this host like "192.0.2.1", got "::1"']],
    [`${BASE}interface: "eth 0"\n`, ['config.yaml:3:12: interface: expected a network interface name like "eth0", got "eth 0"']],
    [`${BASE}interface: averyveryverylongname\n`, ['config.yaml:3:12: interface: expected a network interface name like "eth0", got "averyveryverylongname"']],
    [`${BASE}debug: maybe\n`, ['config.yaml:3:8: debug: expected true or false, got "maybe"']],
    [`${BASE}conn_ttl_sec: 0\n`, ['config.yaml:3:15: conn_ttl_sec: expected a number of seconds greater than 0, got 0']],
    [`${BASE}mode: kernel\n`, ['config.yaml:3:7: mode: expected "auto", "xdp" or "userspace", got "kernel"']],
    [`${BASE}xdp_mode: skb\n`, ['config.yaml:3:11: xdp_mode: expected "native", "generic" or "auto", got "skb"']],
    [`${BASE}interfaces: eth1\n`, ['config.yaml:3:13: interfaces: expected a list of network interface names like ["eth1"], got "eth1"']],
    [`${BASE}interfaces: [eth1, 7]\n`, ['config.yaml:3:20: interfaces[1]: expected a network interface name like "eth1", got 7']],
    [`${BASE}snat_addr: 10.0.0.256\n`, ['config.yaml:3:12: snat_addr: expected an IPv4 address of this host like "192.0.2.1", got "10.0.0.256"']],
    [`${BASE}snat_port_min: 0\n`, ['config.yaml:3:16: snat_port_min: expected an integer from 1 to 65535, got 0']],
    [`${BASE}snat_port_max: 65536\n`, ['config.yaml:3:16: snat_port_max: expected an integer from 1 to 65535, got 65536']],
    [`${BASE}snat_ports: 10000:20000\n`, ['config.yaml:3:13: snat_ports: expected a port range like "10000-29999", got "10000:20000"']],
    [`${BASE}snat_ports: 30000-20000\n`, ['config.yaml:3:13: snat_ports: the range "30000-20000" runs backwards; expected min-max with min ≤ max']],
    [`${BASE}snat_ports: 1000-9999\nsnat_port_min: 3\n`, ['config.yaml:3:13: snat_ports: give either snat_ports or snat_port_min/snat_port_max, not both']],
    [`${BASE}snat_port_min: 40000\n`, ['config.yaml:3:16: snat_port_min: snat_port_min 40000 is greater than snat_port_max 29999 (the default)']],
    [`${BASE}snat_port_max: 2000\n`, ['config.yaml:3:16: snat_port_max: snat_port_min 10000 (the default) is greater than snat_port_max 2000']],
    [`${BASE}snat_ports: 4000-9999\n`, ['config.yaml:1:7: port: 5000 lies inside the SNAT port range 4000-9999 on the same address; move port or the SNAT range']],
    [`${BASE}reserve_snat_ports: 1\n`, ['config.yaml:3:21: reserve_snat_ports: expected true or false, got 1']],
    [`${BASE}sysctls: leave\n`, ['config.yaml:3:10: sysctls: expected true or false, got "leave"']],
    [`${BASE}sysctls: [forwarding]\n`, ['config.yaml:3:10: sysctls: expected true or false, got a list']],
    [`${BASE}sysctl: false\n`, ['config.yaml:3:1: sysctl: unknown key (did you mean "sysctls"?)']],
    [`${BASE}flow_table_size: 0\n`, ['config.yaml:3:18: flow_table_size: expected an integer from 1 to 67108864, got 0']],
    [`${BASE}flow_table_size: 1e9\n`, ['config.yaml:3:18: flow_table_size: expected an integer from 1 to 67108864, got 1000000000']],
    [`${BASE}pending: 5\n`, ['config.yaml:3:10: pending: expected a mapping with max_clients, max_per_source, max_datagrams, max_bytes_per_client, max_total_bytes, timeout_ms, got 5']],
    [`${BASE}pending:\n  max_clients: -1\n`, ['config.yaml:4:16: pending.max_clients: expected an integer greater than 0, got -1']],
    [`${BASE}pending:\n  max_datagrams: 0\n`, ['config.yaml:4:18: pending.max_datagrams: expected an integer greater than 0, got 0']],
    [`${BASE}pending:\n  max_bytes_per_client: 1.5\n`, ['config.yaml:4:25: pending.max_bytes_per_client: expected an integer greater than 0, got 1.5']],
    [`${BASE}pending:\n  max_total_bytes: "lots"\n`, ['config.yaml:4:20: pending.max_total_bytes: expected an integer greater than 0, got "lots"']],
    [`${BASE}pending:\n  timeout_ms: [1]\n`, ['config.yaml:4:15: pending.timeout_ms: expected an integer greater than 0, got a list']],
    [`${BASE}pending:\n  max_client: 4\n`, ['config.yaml:4:3: pending.max_client: unknown key (did you mean "max_clients"?)']],
    [`${BASE}metrics_addr: localhost\n`, ['config.yaml:3:15: metrics_addr: expected host:port like "127.0.0.1:9100"; ":9100" is loopback, "0.0.0.0:9100" every address (port 0 picks a free one), got "localhost"']],
    [`${BASE}metrics_addr: "127.0.0.1:99999"\n`, ['config.yaml:3:15: metrics_addr: expected host:port like "127.0.0.1:9100"; ":9100" is loopback, "0.0.0.0:9100" every address (port 0 picks a free one), got "127.0.0.1:99999"']],
    [`${BASE}pin_path: flowlb/lb1\n`, ['config.yaml:3:11: pin_path: expected an absolute path on a bpffs mount like "/sys/fs/bpf/flowlb/lb1", got "flowlb/lb1"']],
    [`${BASE}mode: xdp\n`, ['config.yaml:3:7: mode: xdp needs an interface to attach to: set interface (and interfaces for more)']],
    [`${BASE}interface: eth0\ninterfaces: [eth1, eth0]\n`, ['config.yaml:4:20: interfaces[1]: "eth0" is listed twice (also interface)']],
    [`${BASE}connTtlSec: 4\n`, ['config.yaml:3:1: connTtlSec: unknown key (did you mean "conn_ttl_sec"?)']],
    [`${BASE}prot: 4\n`, ['config.yaml:3:1: prot: unknown key (did you mean "port"?)']],
    // A key cut short, or spelt out longer, still names the key it was meant for.
    [`${BASE}conn_ttl: 4\n`, ['config.yaml:3:1: conn_ttl: unknown key (did you mean "conn_ttl_sec"?)']],
    [`${BASE}conn_ttl_s: 4\n`, ['config.yaml:3:1: conn_ttl_s: unknown key (did you mean "conn_ttl_sec"?)']],
    [`${BASE}unconfirmed_ttl: 4\n`, ['config.yaml:3:1: unconfirmed_ttl: unknown key (did you mean "unconfirmed_ttl_sec"?)']],
    [`${BASE}conn_ttl_seconds: 4\n`, ['config.yaml:3:1: conn_ttl_seconds: unknown key (did you mean "conn_ttl_sec"?)']],
    [`${BASE}connTtl: 4\n`, ['config.yaml:3:1: connTtl: unknown key (did you mean "conn_ttl_sec"?)']],
    [`${BASE}snat_address: 10.0.0.2\n`, ['config.yaml:3:1: snat_address: unknown key (did you mean "snat_addr"?)']],
    [`${BASE}port_min: 4\n`, ['config.yaml:3:1: port_min: unknown key (did you mean "snat_port_min"?)']],
    [`${BASE}pending:\n  timeout: 4\n`, ['config.yaml:4:3: pending.timeout: unknown key (did you mean "timeout_ms"?)']],
    [`${BASE}rate_limit:\n  per_sources: 4\n`, ['config.yaml:4:3: rate_limit.per_sources: unknown key (did you mean "per_source"?)']],
    [`${BASE}rate_limit:\n  per_24: 0\n`, ['config.yaml:4:11: rate_limit.per_24: expected an integer from 1 to 1000000, got 0']],
    [`${BASE}pending:\n  max_bytes: 4\n`, ['config.yaml:4:3: pending.max_bytes: unknown key (did you mean "max_bytes_per_client"?)']],
    // `snat` starts four keys alike: a guess would be a coin toss, so the keys are listed instead.
    [
      `${BASE}snat: 4\n`,
      [
        'config.yaml:3:1: snat: unknown key (known keys here: port, addr, interface, debug, conn_ttl_sec, unconfirmed_ttl_sec, mode, xdp_mode, interfaces, snat_addr, snat_port_min, snat_port_max, snat_ports, reserve_snat_ports, flow_table_size, workers, pending, rate_limit, metrics_addr, sysctls, pin_path)',
      ],
    ],
    [
      `${BASE}colour: blue\n`,
      [
        'config.yaml:3:1: colour: unknown key (known keys here: port, addr, interface, debug, conn_ttl_sec, unconfirmed_ttl_sec, mode, xdp_mode, interfaces, snat_addr, snat_port_min, snat_port_max, snat_ports, reserve_snat_ports, flow_table_size, workers, pending, rate_limit, metrics_addr, sysctls, pin_path)',
      ],
    ],
    ['- 1\n- 2\n', ['config.yaml:1:1: expected a mapping of config keys (port, addr, interface, …), got a list']],
    ['port: 5000\nport: 6000\naddr: 10.0.0.1\n', ['config.yaml:2:1: YAML: Map keys must be unique']],
    ['port: [5000\n', ['config.yaml:2:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]']],
    ['', ['config.yaml: the file is empty; expected a mapping with at least port and addr']],
    ['# only a comment\n', ['config.yaml: the file is empty; expected a mapping with at least port and addr']],
  ])('refuses %j', (text, expected) => {
    expect(problems(text)).toEqual(expected);
  });

  it('reports every problem at once, in document order', () => {
    const text = `addr: 10.0.0.1
interface: eth0
debug: perhaps
pending:
  max_clients: 0
  timout_ms: 10
interfaces: [eth0]
conn_ttl_sec: -3
`;
    expect(problems(text)).toEqual([
      'config.yaml: port: missing; expected an integer from 1 to 65535',
      'config.yaml:3:8: debug: expected true or false, got "perhaps"',
      'config.yaml:5:16: pending.max_clients: expected an integer greater than 0, got 0',
      'config.yaml:6:3: pending.timout_ms: unknown key (did you mean "timeout_ms"?)',
      'config.yaml:7:14: interfaces[0]: "eth0" is listed twice (also interface)',
      'config.yaml:8:15: conn_ttl_sec: expected a number of seconds greater than 0, got -3',
    ]);
    try {
      parseConfig(text, 'config.yaml');
    } catch (e) {
      expect((e as Error).message).toBe(
        '6 problems in the config:\n' +
          '  config.yaml: port: missing; expected an integer from 1 to 65535\n' +
          '  config.yaml:3:8: debug: expected true or false, got "perhaps"\n' +
          '  config.yaml:5:16: pending.max_clients: expected an integer greater than 0, got 0\n' +
          '  config.yaml:6:3: pending.timout_ms: unknown key (did you mean "timeout_ms"?)\n' +
          '  config.yaml:7:14: interfaces[0]: "eth0" is listed twice (also interface)\n' +
          '  config.yaml:8:15: conn_ttl_sec: expected a number of seconds greater than 0, got -3',
      );
    }
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowlb-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file and names it in errors', async () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, SEED_CONFIG);
    expect((await loadConfig(file)).vip).toEqual({ address: '31.32.33.34', port: 10000 });
    writeFileSync(file, 'port: x\naddr: 10.0.0.1\n');
    await expect(loadConfig(file)).rejects.toThrow(`${file}:1:7: port: expected an integer from 1 to 65535, got "x"`);
  });

  it('an unreadable file is a config error', async () => {
    await expect(loadConfig(join(dir, 'nope.yaml'))).rejects.toThrow(`${join(dir, 'nope.yaml')}: cannot read the config: no such file`);
    await expect(loadConfig(dir)).rejects.toThrow(`${dir}: cannot read the config: is a directory, not a file`);
  });
});
