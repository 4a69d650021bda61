import { withNetns, type Link } from '@flowlb/xdp-core';
import type { BenchPrograms, BenchProgramName } from '../bench-object.js';

/** Attaches one of the bench programs in native mode to a device of a namespace. */
export function attachBench(progs: BenchPrograms, name: BenchProgramName, ns: string, ifname: string): Link {
  return withNetns(ns, () => progs.program(name).attachXdp(ifname, { mode: 'native' }));
}
