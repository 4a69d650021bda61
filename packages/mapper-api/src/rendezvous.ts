import { endpointKey } from './decisions.js';
import { fmix32, fnv1a32 } from './hash.js';
import type { UdpEndpoint } from './types.js';

/** Largest weight a target may have: far beyond any useful ratio, small enough that scores stay exact. */
export const MAX_TARGET_WEIGHT = 10_000;

/**
 * Targets chosen per client by rendezvous (highest random weight) hashing: each client scores every target and
 * takes the best. A client keeps its target for as long as that target is listed (and usable), independent of the
 * order of the list; removing a target, or passing it over, moves only the clients that were on it, and adding one
 * takes its share from each of the others.
 *
 * The hash is fixed forever, so that restarts and replicas agree: FNV-1a over the client key, continued over a
 * newline and the target's `ip:port`, then MurmurHash3's finaliser; ties go to the smaller target key. With weights,
 * a target's score is `weight / -ln(u)` for the hash as a fraction `u` in (0, 1], which gives each target a share of
 * clients proportional to its weight and keeps the moves minimal; with equal weights that picks the largest hash,
 * as the unweighted rule always has.
 */
export class RendezvousSet {
  readonly targets: readonly UdpEndpoint[];
  /** One per target; all 1 when none were given. */
  readonly weights: readonly number[];
  readonly #suffixes: string[];
  readonly #weighted: boolean;

  /** `targets` must not be empty; `weights`, when given, are integers from 1 to {@link MAX_TARGET_WEIGHT}. */
  constructor(targets: readonly UdpEndpoint[], weights?: readonly number[]) {
    if (targets.length === 0) throw new RangeError('RendezvousSet: needs at least one target');
    if (weights !== undefined) {
      if (weights.length !== targets.length) throw new RangeError(`RendezvousSet: ${weights.length} weights for ${targets.length} targets`);
      for (const w of weights) {
        if (!(Number.isInteger(w) && w >= 1 && w <= MAX_TARGET_WEIGHT)) {
          throw new RangeError(`RendezvousSet: a weight must be an integer from 1 to ${MAX_TARGET_WEIGHT}, got ${String(w)}`);
        }
      }
    }
    this.targets = targets;
    this.weights = weights ?? targets.map(() => 1);
    this.#weighted = this.weights.some((w) => w !== this.weights[0]);
    this.#suffixes = targets.map((t) => `\n${endpointKey(t)}`);
  }

  /** The target for a client key such as `endpointKey(client)` or a bare address. */
  pick(clientKey: string): UdpEndpoint {
    return this.targets[this.pickIndex(clientKey)]!;
  }

  /**
   * The index of the client's target among those `usable` accepts (all by default), or -1 when it accepts none.
   * Passing a target over moves only its own clients, each to the target it would have had without it.
   */
  pickIndex(clientKey: string, usable?: (index: number) => boolean): number {
    const targets = this.targets;
    if (targets.length === 1 && usable === undefined) return 0;
    const state = fnv1a32(clientKey);
    let best = -1;
    let bestScore = -1;
    for (let i = 0; i < targets.length; i++) {
      if (usable !== undefined && !usable(i)) continue;
      const suffix = this.#suffixes[i]!;
      const hash = fmix32(fnv1a32(suffix, state));
      const score = this.#weighted ? this.weights[i]! / -Math.log((hash + 1) / 0x1_0000_0000) : hash;
      if (score > bestScore || (score === bestScore && suffix < this.#suffixes[best]!)) {
        bestScore = score;
        best = i;
      }
    }
    return best;
  }
}
