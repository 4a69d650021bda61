import { endpointKey } from './decisions.js';
import { fmix32, fnv1a32 } from './hash.js';
import type { UdpEndpoint } from './types.js';

/**
 * Targets chosen per client by rendezvous (highest random weight) hashing: each client scores every target and
 * takes the best. A client keeps its target for as long as that target is listed, independent of the order of the
 * list; removing a target moves only the clients that were on it, and adding one takes about 1/n from each.
 *
 * The score is fixed forever, so that restarts and replicas agree: FNV-1a over the client key, continued over a
 * newline and the target's `ip:port`, then MurmurHash3's finaliser; ties go to the smaller target key.
 */
export class RendezvousSet {
  readonly targets: readonly UdpEndpoint[];
  readonly #suffixes: string[];

  /** `targets` must not be empty. */
  constructor(targets: readonly UdpEndpoint[]) {
    if (targets.length === 0) throw new RangeError('RendezvousSet: needs at least one target');
    this.targets = targets;
    this.#suffixes = targets.map((t) => `\n${endpointKey(t)}`);
  }

  /** The target for a client key such as `endpointKey(client)` or a bare address. */
  pick(clientKey: string): UdpEndpoint {
    const targets = this.targets;
    if (targets.length === 1) return targets[0]!;
    const state = fnv1a32(clientKey);
    let best = 0;
    let bestScore = -1;
    for (let i = 0; i < targets.length; i++) {
      const suffix = this.#suffixes[i]!;
      const score = fmix32(fnv1a32(suffix, state));
      if (score > bestScore || (score === bestScore && suffix < this.#suffixes[best]!)) {
        bestScore = score;
        best = i;
      }
    }
    return targets[best]!;
  }
}
