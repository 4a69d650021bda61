import { BenchPrograms } from '../bench-object.js';
import type { BenchTopology } from '../topology.js';
import { attachBench } from './xdp-helpers.js';

/**
 * Systems that take datagrams through the kernel's stack still need an XDP program on the balancer's client-side
 * veth: frames redirected into a veth are received only by its XDP path. XDP_PASS hands them on untouched.
 * Returns the undo.
 */
export async function passToStack(t: BenchTopology): Promise<() => void> {
  const progs = await BenchPrograms.load();
  try {
    const link = attachBench(progs, 'pass', t.lbNs, t.net.lb.front.ifname);
    return () => {
      link.close();
      progs.close();
    };
  } catch (err) {
    progs.close();
    throw err;
  }
}
