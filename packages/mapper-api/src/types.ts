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
 * Classifies a new flow. `packets` holds every datagram buffered so far for `client`, oldest first. A throw or a
 * rejected promise counts as a drop.
 */
export interface FlowMapper {
  findFlow(client: UdpEndpoint, packets: readonly Uint8Array[]): Decision | Promise<Decision>;
}
