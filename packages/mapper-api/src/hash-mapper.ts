import { endpointKey, forward } from './decisions.js';
import { RendezvousSet } from './rendezvous.js';
import type { FlowMapper, UdpEndpoint } from './types.js';
import { assertEndpoint } from './validate.js';

export interface HashMapperOptions {
  /**
   * What identifies a client: its `ip:port` (default), or only its address, so that every socket of one host
   * lands on the same target.
   */
  by?: 'endpoint' | 'address';
}

/**
 * Spreads clients over `targets` by rendezvous (highest random weight) hashing: each client scores every target
 * and goes to the best. The same client always gets the same target, independent of the order of `targets`, and
 * removing a target moves only the clients that were on it; adding one takes about 1/n of the clients from each.
 * The hash is FNV-1a with a MurmurHash3 finaliser, fixed forever so that restarts and replicas agree.
 *
 * Throws when `targets` is empty, holds an invalid endpoint or names one endpoint twice.
 */
export function hashMapper(targets: readonly UdpEndpoint[], options: HashMapperOptions = {}): FlowMapper {
  if (!Array.isArray(targets) || targets.length === 0) {
    throw new RangeError('hashMapper: needs at least one target');
  }
  const by = options.by ?? 'endpoint';
  if (by !== 'endpoint' && by !== 'address') {
    throw new RangeError(`hashMapper: option "by" must be "endpoint" or "address", got ${JSON.stringify(by)}`);
  }

  const seen = new Set<string>();
  const endpoints = targets.map((t, i) => {
    assertEndpoint(t, `hashMapper target ${i}`);
    const key = endpointKey(t);
    if (seen.has(key)) throw new RangeError(`hashMapper: target ${key} is listed more than once`);
    seen.add(key);
    return { address: t.address, port: t.port };
  });
  const set = new RendezvousSet(endpoints);

  return {
    findFlow(client) {
      return forward({ ...set.pick(by === 'address' ? client.address : endpointKey(client)) });
    },
  };
}
