import type { BenchTopology } from '../topology.js';
import { passToStack } from './kernel-path.js';
import type { RunningSystem, SystemUnderTest } from './system.js';

/** The ruleset a Linux user writes for the same job: DNAT by a hash of the client, SNAT to the backend side. */
export function nftRuleset(t: BenchTopology): string {
  const map = t.backends.map((b, i) => `${i} : ${b.address} . ${b.port}`).join(', ');
  const backNet = `${t.net.lb.back.addr.split('.').slice(0, 3).join('.')}.0/24`;
  return [
    'table ip flowlb_bench {',
    '  chain pre {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    ip daddr ${t.vip.address} udp dport ${t.vip.port} dnat ip to jhash ip saddr . udp sport mod ${t.backends.length} map { ${map} }`,
    '  }',
    '  chain post {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip daddr ${backNet} snat ip to ${t.net.lb.back.addr}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export const nftables: SystemUnderTest = {
  name: 'nftables',
  warmupPps: 20_000,
  runsIn: 'kernel',
  async start(t: BenchTopology): Promise<RunningSystem> {
    const undoPass = await passToStack(t);
    try {
      await t.topo.exec(t.lbNs, 'nft', ['-f', '-'], { input: nftRuleset(t) });
      // Unanswered UDP conntrack entries expire after 30 s by default; the benchmark's flows get no answers.
      await t.topo.sysctl(t.lbNs, { 'net.netfilter.nf_conntrack_udp_timeout': 3600 }, { ignoreMissing: true });
      return {
        target: t.vip,
        stop: async () => {
          await t.topo.exec(t.lbNs, 'nft', ['delete', 'table', 'ip', 'flowlb_bench']);
          undoPass();
        },
      };
    } catch (err) {
      undoPass();
      throw err;
    }
  },
};
