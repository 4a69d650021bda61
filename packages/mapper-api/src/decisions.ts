import type { Decision, UdpEndpoint } from './types.js';

export function forward(dst: UdpEndpoint, src?: UdpEndpoint): Decision {
  return src ? { action: 'forward', flow: { dstAddr: dst, srcAddr: src } } : { action: 'forward', flow: { dstAddr: dst } };
}

export function wait(): Decision {
  return { action: 'wait' };
}

export function drop(reason: string): Decision {
  return { action: 'drop', reason };
}

export function reply(datagrams: readonly Uint8Array[], reason: string): Decision {
  return { action: 'reply', datagrams, reason };
}

/** The key the balancer and the mappers use for a client: `ip:port`, IPv6 in brackets. */
export function endpointKey(e: UdpEndpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
