import type { UdpEndpoint } from '@flowlb/mapper-api';

/** What the mapper read from a client's ClientHello, for choosing its target. */
export interface QuicHello {
  /** The server_name as sent, or undefined when the client named none. */
  serverName: string | undefined;
  /** ALPN protocols offered, in the client's order; empty without the extension. */
  alpn: readonly string[];
}

export type QuicRoute =
  | { kind: 'target'; target: UdpEndpoint }
  /** No target: the client is dropped with `reason` (which the mapper counts, so keep the set of reasons small). */
  | { kind: 'none'; reason: string };

export interface QuicRoutes {
  /** Where a client goes whose ClientHello named `serverName` (undefined: it named none) and offered `alpn`. */
  resolve(hello: QuicHello, client: UdpEndpoint): QuicRoute;
}

/** Names compare in ASCII lower case without one trailing dot: DNS names are case-insensitive, and "a." is "a". */
export function normalizeServerName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

const NO_SNI: QuicRoute = Object.freeze({ kind: 'none', reason: 'no-sni' });
const UNKNOWN_NAME: QuicRoute = Object.freeze({ kind: 'none', reason: 'unknown-name' });

/**
 * Routes by exact server name: `{ 'a.example': { address: '10.0.0.1', port: 443 } }`. Names are matched in lower
 * case with one trailing dot ignored, on both sides; a hello without a name is dropped as `no-sni`, one whose name
 * is not listed as `unknown-name`. ALPN is not looked at. The table is copied: later changes to `table` do nothing.
 *
 * Throws a RangeError when two keys are the same name once normalised, or a TypeError for a target that is not
 * an address and a port from 0 to 65535.
 */
export function staticRoutes(table: Readonly<Record<string, UdpEndpoint>>): QuicRoutes {
  const targets = new Map<string, QuicRoute>();
  const spelled = new Map<string, string>();
  for (const [name, target] of Object.entries(table)) {
    if (
      typeof target !== 'object' ||
      target === null ||
      typeof target.address !== 'string' ||
      !(Number.isInteger(target.port) && target.port >= 0 && target.port <= 65535)
    ) {
      throw new TypeError(`staticRoutes: the target of ${JSON.stringify(name)} is not { address, port }`);
    }
    const key = normalizeServerName(name);
    const earlier = spelled.get(key);
    if (earlier !== undefined) {
      throw new RangeError(`staticRoutes: ${JSON.stringify(earlier)} and ${JSON.stringify(name)} are the same name`);
    }
    spelled.set(key, name);
    targets.set(key, Object.freeze({ kind: 'target', target: Object.freeze({ address: target.address, port: target.port }) }));
  }
  return {
    resolve(hello) {
      if (hello.serverName === undefined) return NO_SNI;
      return targets.get(normalizeServerName(hello.serverName)) ?? UNKNOWN_NAME;
    },
  };
}
