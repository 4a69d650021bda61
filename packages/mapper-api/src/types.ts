/** An IPv4 or IPv6 address and a UDP port. */
export interface UdpEndpoint {
  address: string;
  port: number;
}

/**
 * Where a flow goes. `dstAddr` is the backend; `srcAddr`, when set, is the SNAT endpoint the balancer should
 * send from (address and/or port), for mappers that care which one the backend sees.
 */
export interface Flow {
  srcAddr?: UdpEndpoint;
  dstAddr: UdpEndpoint;
}

export type Decision =
  | { action: 'forward'; flow: Flow }
  /** The mapper needs more datagrams from this client before it can decide. */
  | { action: 'wait' }
  | { action: 'drop'; reason: string }
  /**
   * Answer the client with `datagrams`, sent from the VIP, and keep nothing: no flow, no buffered datagram, no hold.
   * For stateless challenges such as a DTLS HelloVerifyRequest, whose answer brings the client back with proof that
   * it receives at its address.
   */
  | { action: 'reply'; datagrams: readonly Uint8Array[]; reason: string };

/**
 * Classifies a new flow. `packets` holds every datagram buffered so far for `client`, oldest first: each call gets
 * the same datagram objects as the one before, in the same order, plus those that arrived since. A throw or a
 * rejected promise counts as a drop.
 */
export interface FlowMapper {
  findFlow(client: UdpEndpoint, packets: readonly Uint8Array[]): Decision | Promise<Decision>;
  /**
   * Optional: the balancer is done with `client` (decided, dropped, timed out or pushed out, and no call for it is
   * running). A mapper that keeps state per client between calls, so as to read each datagram once, frees it here.
   * A client may come back later as new, with a first call that starts over.
   */
  release?(client: UdpEndpoint): void;
}
