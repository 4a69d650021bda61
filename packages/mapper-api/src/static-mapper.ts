import { forward } from './decisions.js';
import type { FlowMapper, UdpEndpoint } from './types.js';
import { assertEndpoint } from './validate.js';

/** Sends every client to `target`. */
export function staticMapper(target: UdpEndpoint): FlowMapper {
  assertEndpoint(target, 'staticMapper target');
  const { address, port } = target;
  return {
    // A fresh decision per call: the caller owns what it gets back and may keep or change it.
    findFlow: () => forward({ address, port }),
  };
}
