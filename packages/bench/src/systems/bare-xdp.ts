import { ifIndex, withNetns } from '@flowlb/xdp-core';
import { BenchPrograms } from '../bench-object.js';
import type { BenchTopology } from '../topology.js';
import type { RunningSystem, SystemUnderTest } from './system.js';
import { attachBench } from './xdp-helpers.js';

/** Parses like flowlb and redirects to the backend side untouched: the most any XDP forwarder can do here. */
export const bareXdp: SystemUnderTest = {
  name: 'bare-xdp',
  warmupPps: 0,
  runsIn: 'kernel',
  async start(t: BenchTopology): Promise<RunningSystem> {
    const progs = await BenchPrograms.load();
    try {
      progs.setBarePort(withNetns(t.lbNs, () => ifIndex(t.net.lb.back.ifname)));
      const link = attachBench(progs, 'bare_fwd', t.lbNs, t.net.lb.front.ifname);
      const first = t.backends[0];
      if (!first) throw new Error('no backend');
      return {
        target: first,
        stop: async () => {
          link.close();
          progs.close();
        },
      };
    } catch (err) {
      progs.close();
      throw err;
    }
  },
};
