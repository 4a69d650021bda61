import { drop } from './decisions.js';
import type { Decision, FlowMapper, UdpEndpoint } from './types.js';

/**
 * Asks `mappers` in order and answers with the first one that does not drop:
 *
 * - `forward` or `reply` from a mapper is the answer; later mappers are not asked.
 * - `wait` from a mapper is the answer too: that mapper has priority over the ones after it and may still forward
 *   once it has seen more datagrams, so a later mapper must not claim the client meanwhile.
 * - `drop`, a throw, a rejected promise or anything that is not a decision passes the client on to the next mapper.
 * - When every mapper drops, the answer is a drop whose reason joins theirs with `"; "`, in order.
 *
 * Synchronous mappers give a synchronous answer; the result is a promise only once some mapper returns one.
 * Throws when called with no mappers or with something that has no `findFlow` method.
 */
export function firstOf(...mappers: FlowMapper[]): FlowMapper {
  if (mappers.length === 0) throw new RangeError('firstOf: needs at least one mapper');
  mappers.forEach((m, i) => {
    if (typeof (m as Partial<FlowMapper> | null)?.findFlow !== 'function') {
      throw new TypeError(`firstOf: argument ${i} is not a FlowMapper (no findFlow method)`);
    }
  });
  const list = [...mappers];
  return {
    findFlow: (client, packets) => consult(list, client, packets, 0, []),
    release: (client) => {
      for (const m of list) m.release?.(client);
    },
  };
}

function consult(
  mappers: readonly FlowMapper[],
  client: UdpEndpoint,
  packets: readonly Uint8Array[],
  start: number,
  reasons: string[],
): Decision | Promise<Decision> {
  for (let i = start; i < mappers.length; i++) {
    let result: Decision | Promise<Decision>;
    try {
      result = mappers[i]!.findFlow(client, packets);
    } catch (error) {
      reasons.push(errorReason(error));
      continue;
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then(
        (decision) => settle(decision, reasons) ?? consult(mappers, client, packets, i + 1, reasons),
        (error: unknown) => {
          reasons.push(errorReason(error));
          return consult(mappers, client, packets, i + 1, reasons);
        },
      );
    }
    const settled = settle(result, reasons);
    if (settled) return settled;
  }
  return drop(reasons.join('; '));
}

/** The decision that ends the search, or undefined after recording why this mapper dropped. */
function settle(decision: unknown, reasons: string[]): Decision | undefined {
  const action = (decision as { action?: unknown } | null)?.action;
  if (action === 'forward' || action === 'wait' || action === 'reply') return decision as Decision;
  if (action === 'drop') {
    reasons.push(String((decision as { reason?: unknown }).reason ?? ''));
  } else {
    reasons.push('mapper returned something that is not a decision');
  }
  return undefined;
}

function errorReason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isPromiseLike(value: unknown): value is PromiseLike<Decision> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
