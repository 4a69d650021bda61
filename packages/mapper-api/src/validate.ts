import { isIP } from 'node:net';
import type { UdpEndpoint } from './types.js';

/**
 * Checks a target endpoint up front, when a mapper is built from configuration, so a typo fails at start-up with
 * the offending entry named instead of surfacing later as a send error on the first flow.
 */
export function assertEndpoint(e: unknown, what: string): asserts e is UdpEndpoint {
  if (typeof e !== 'object' || e === null) {
    throw new TypeError(`${what}: expected { address, port }, got ${e === null ? 'null' : typeof e}`);
  }
  const { address, port } = e as { address?: unknown; port?: unknown };
  if (typeof address !== 'string' || isIP(address) === 0) {
    throw new TypeError(`${what}: address ${JSON.stringify(address)} is not an IPv4 or IPv6 address`);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`${what}: port ${String(port)} is not an integer in 1..65535`);
  }
}
